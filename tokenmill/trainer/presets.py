"""Model presets as one table of data (as litgpt's named configs).

`tiny` is for tests on CPU; 125m/350m/760m are the GPT-3 paper's shapes; `1b3` is the
BigScience ablation model (the paper's 1.3B: GPT-2 tokenizer, 50257 padded to 50304);
`176b` is BLOOM. Unlisted switches take GPTConfig's defaults (ALiBi, GeLU, embedding
LayerNorm, the BLOOM architecture); override any field with `preset(name, field=value)`.
`published` is the parameter count the source reports, with the switches it was counted for.
"""

from __future__ import annotations

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

# (count, switches it was published for): the paper's ablation baseline had learned positions
# and no embedding LayerNorm ("~1.3B", 1.316e9 counted); BLOOM's model card.
PUBLISHED: dict[str, tuple[int, dict]] = {
    "1b3": (1_316_000_000, dict(position="learned", embed_ln=False)),
    "176b": (176_247_271_424, {}),
}


def preset(name: str, **overrides) -> GPTConfig:
    """The preset's GPTConfig with `overrides` (None values are ignored) applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(PRESETS)}")
    fields = dict(PRESETS[name])
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return GPTConfig(**fields)
