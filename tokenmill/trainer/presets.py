"""Model presets as one table of data (as litgpt's named configs), and the training settings
each one defaults to.

`tiny` is for tests and CPU demos; 125m/350m/760m are the GPT-3 paper's shapes; `1b3` is the
BigScience ablation model (the paper's 1.3B: GPT-2 tokenizer, 50257 padded to 50304);
`176b` is BLOOM. Unlisted switches take GPTConfig's defaults (ALiBi, GeLU, embedding
LayerNorm, the BLOOM architecture); override any field with `preset(name, field=value)`.
`PUBLISHED` is the parameter count the source reports, with the switches and vocabulary it
was counted for.

`TRAINING` holds each preset's peak learning rate, the learning rate at the end of the cosine
and the global batch in sequences, from the GPT-3 paper's Table 2.1 (Brown et al. 2020) for
its sizes: 125M 6e-4, 350M 3e-4, 760M 2.5e-4 with 0.5M-token batches, 1.3B 2e-4 with 1M
tokens; cosine to 10% of the peak. At the presets' 2048 tokens per sequence that is 256
sequences (524,288 tokens) and 512 (1,048,576). `1b3` follows the BigScience ablations
(2e-4 -> 1e-5, 512 sequences: the same peak and batch as GPT-3 XL); `176b` BLOOM (6e-5 -> 6e-6,
2048 sequences; BLOOM's ramp from 192 is not modelled). `tiny` is no paper's: 3e-3 with 4
sequences of 128 tokens is what makes it learn visibly on a CPU in 100 steps (the bundled
sample: loss 9.0 at the start, 7.46 at step 100, validation 8.07, where 2e-4 left it at 8.93;
mean of the last 10 steps at 1e-3 7.58, at 3e-3 7.38, at 1e-2 7.32).

The global batch is reached by gradient accumulation from the default micro batch (4
sequences per process), so a preset runs wherever its micro batch fits: 1b3 on one GPU is 4 x
128 accumulation steps, on 8 GPUs 4 x 16 (settings.preset_batch; given sizes win). Warmup,
where not given: GPT-3's (and BigScience's) 375M tokens, but at most a tenth of the steps, so
a short run reaches its peak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # model.py imports torch; the CLI reads this table without it
    from tokenmill.trainer.model import GPTConfig

PRESETS: dict[str, dict] = {
    "tiny": dict(n_layer=2, n_embd=64, n_head=4, seq_len=128, vocab_size=8000),
    "125m": dict(n_layer=12, n_embd=768, n_head=12, seq_len=2048),
    "350m": dict(n_layer=24, n_embd=1024, n_head=16, seq_len=2048),
    "760m": dict(n_layer=24, n_embd=1536, n_head=16, seq_len=2048),
    "1b3": dict(n_layer=24, n_embd=2048, n_head=16, seq_len=2048),  # FFN 4h = 8192
    "176b": dict(
        n_layer=70, n_embd=14336, n_head=112, seq_len=2048, vocab_size=250880, init_std=0.0048
    ),
}


@dataclass(frozen=True)
class Training:
    """A preset's defaults: peak LR, LR at the end of the cosine, sequences per optimizer step."""

    lr: float
    min_lr: float
    global_batch: int


TRAINING: dict[str, Training] = {
    "tiny": Training(lr=3e-3, min_lr=3e-4, global_batch=4),
    "125m": Training(lr=6e-4, min_lr=6e-5, global_batch=256),
    "350m": Training(lr=3e-4, min_lr=3e-5, global_batch=256),
    "760m": Training(lr=2.5e-4, min_lr=2.5e-5, global_batch=256),
    "1b3": Training(lr=2e-4, min_lr=1e-5, global_batch=512),
    "176b": Training(lr=6e-5, min_lr=6e-6, global_batch=2048),
}

WARMUP_TOKENS = 375_000_000  # GPT-3's, BigScience's 1.3B ablations' and BLOOM's
WARMUP_MAX_SHARE = 0.1  # ...but never more than this share of the steps (short runs)

# (count, switches and vocabulary it was published for): the paper's ablation baseline had
# learned positions and no embedding LayerNorm ("~1.3B", 1.316e9 counted, GPT-2's vocabulary);
# BLOOM's model card.
PUBLISHED: dict[str, tuple[int, dict]] = {
    "1b3": (1_316_000_000, dict(vocab_size=50257, position="learned", embed_ln=False)),
    "176b": (176_247_271_424, dict(vocab_size=250880)),
}


def check_name(name: str) -> None:
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(PRESETS)}")


def preset(name: str, **overrides) -> GPTConfig:
    """The preset's GPTConfig with `overrides` (None values are ignored) applied."""
    from tokenmill.trainer.model import GPTConfig

    check_name(name)
    fields = dict(PRESETS[name])
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return GPTConfig(**fields)
