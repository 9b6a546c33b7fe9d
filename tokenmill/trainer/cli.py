"""`tokenmill train`: a typer command function, registered by tokenmill/cli.py.

torch and deepspeed are imported inside the function, so `tokenmill --help` stays instant and
works without the `train` extra; `tokenmill train` without it says how to install it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tokenmill.trainer.settings import TrainConfig

_SUFFIX = {"K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


def parse_count(text: str) -> int:
    """'375M' -> 375000000; plain integers pass through."""
    t = text.strip().upper().replace("_", "")
    if t and t[-1] in _SUFFIX:
        return int(float(t[:-1]) * _SUFFIX[t[-1]])
    return int(t)


def parse_mixture(text: str) -> dict[str, float]:
    """'oscar=0.5,c4=0.5' -> {'oscar': 0.5, 'c4': 0.5}; a lone name weighs 1."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, eq, weight = part.partition("=")
        try:
            w = float(weight) if eq else 1.0
        except ValueError:
            raise ValueError(f"--mixture: {part!r} is not SOURCE=WEIGHT (e.g. c4=0.5)") from None
        if not name.strip() or name.strip() in out:
            raise ValueError(f"--mixture: {part!r}: a source name, once each")
        out[name.strip()] = w
    if not out:
        raise ValueError("--mixture: give SOURCE=WEIGHT pairs, e.g. c4=1")
    return out


class Opt:
    """The options of `tokenmill train`, one Annotated type each (typer reads their help).
    The command's parameters are named as TrainConfig's fields, but for --adam-beta2 and the
    launcher's --local-rank."""

    data = Annotated[
        Path,
        typer.Option(
            help="OUT/manifest.json of a `tokenmill prepare` run. Its shards are checked before "
            "training (structure and sizes, not SHA-256: `tokenmill verify OUT` does that)."
        ),
    ]
    model = Annotated[
        str, typer.Option(help="Preset: tiny, 125m, 350m, 760m, 1b3 (the paper's), 176b (BLOOM).")
    ]
    position = Annotated[
        str | None, typer.Option(help="none | learned | rotary | alibi (default: alibi).")
    ]
    activation = Annotated[
        str | None, typer.Option(help="gelu (tanh approximation) | swiglu (default: gelu).")
    ]
    embed_ln = Annotated[
        bool | None,
        typer.Option(
            "--embed-ln/--no-embed-ln", help="LayerNorm after the embedding (default on)."
        ),
    ]
    seq_len = Annotated[int | None, typer.Option(help="Tokens per sample (default: preset).")]
    dropout = Annotated[float | None, typer.Option(help="Dropout (default 0, as BLOOM).")]
    deepspeed_config = Annotated[
        Path | None,
        typer.Option(
            "--deepspeed",
            help="DeepSpeed JSON (batch sizes, zero_optimization, gradient_clipping, bf16); "
            "the flags below override it. No optimizer/scheduler sections: those are the flags.",
        ),
    ]
    zero_stage = Annotated[int | None, typer.Option(help="ZeRO stage 0-3 (default 1).")]
    micro_batch = Annotated[
        int | None, typer.Option(help="Sequences per process per micro-step (default 4).")
    ]
    global_batch = Annotated[
        int | None,
        typer.Option(
            help="Sequences per optimizer step = micro x accum x processes (default: the "
            "preset's: tiny 4, 125m..760m 256, 1b3 512, 176b 2048)."
        ),
    ]
    grad_accum = Annotated[int | None, typer.Option(help="Micro-steps per optimizer step.")]
    clip_grad = Annotated[float | None, typer.Option(help="Gradient norm clip (default 1.0).")]
    bf16 = Annotated[
        bool | None, typer.Option("--bf16/--no-bf16", help="bf16 (default) or fp32 training.")
    ]
    lr = Annotated[
        float | None,
        typer.Option(
            help="Peak learning rate (default: the preset's, GPT-3's for its sizes: tiny 3e-3, "
            "125m 6e-4, 350m 3e-4, 760m 2.5e-4, 1b3 2e-4, 176b 6e-5)."
        ),
    ]
    min_lr = Annotated[
        float | None,
        typer.Option(
            help="Learning rate at the end of the cosine (default: the preset's share of the "
            "peak, a tenth; 1b3 1e-5 as the paper's)."
        ),
    ]
    warmup_steps = Annotated[
        int | None,
        typer.Option(
            "--warmup",
            help="Warmup steps (default: --warmup-tokens, else 375M tokens as GPT-3 but at "
            "most a tenth of the steps).",
        ),
    ]
    warmup_tokens = Annotated[
        str | None, typer.Option(help="Warmup in tokens, e.g. 375M (the paper's).")
    ]
    steps = Annotated[int, typer.Option(help="Optimizer steps; the LR schedule spans them.")]
    stop_at = Annotated[
        int | None, typer.Option(help="Leave after this step (checkpointed); resume later.")
    ]
    weight_decay = Annotated[float, typer.Option(help="AdamW weight decay.")]
    adam_beta2 = Annotated[float, typer.Option(help="Adam beta2 (BLOOM used 0.95).")]
    seed = Annotated[int, typer.Option(help="Seeds the weights and the sample order.")]
    mixture = Annotated[
        str | None,
        typer.Option(
            help="Sources and weights to train on, e.g. c4=1 or oscar=0.5,c4=0.5 (default: the "
            "manifest's mixture). A source left out is not trained on."
        ),
    ]
    valid_fraction = Annotated[
        float, typer.Option(help="Held-out share of each source's documents.")
    ]
    valid_data = Annotated[
        Path | None,
        typer.Option(
            help="Validate on the held-out slice of this manifest (same tokenizer) instead of "
            "--data's: one held-out mixture for runs on different data (tokenmill ablate)."
        ),
    ]
    eval_interval = Annotated[int, typer.Option(help="Validation every N steps (0: never).")]
    eval_samples = Annotated[int, typer.Option(help="Held-out sequences per validation.")]
    save = Annotated[
        Path | None, typer.Option(help="Checkpoint folder; a run resumes from its `latest`.")
    ]
    save_interval = Annotated[
        int, typer.Option(help="Checkpoint every N steps (0: only at the end).")
    ]
    resume = Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue from SAVE's latest checkpoint.")
    ]
    log_dir = Annotated[
        Path | None, typer.Option(help="TensorBoard and metrics.jsonl (default SAVE/logs).")
    ]
    log_interval = Annotated[int, typer.Option(min=1, help="Print every N steps.")]
    peak_tflops = Annotated[
        float | None,
        typer.Option(help="Peak TFLOP/s of one device for MFU (known GPUs: detected)."),
    ]
    # the deepspeed launcher passes it; LOCAL_RANK in the environment is what we read
    local_rank = Annotated[int | None, typer.Option("--local_rank", "--local-rank", hidden=True)]


def train(
    ctx: typer.Context,
    data: Opt.data,
    model: Opt.model = "tiny",
    position: Opt.position = None,
    activation: Opt.activation = None,
    embed_ln: Opt.embed_ln = None,
    seq_len: Opt.seq_len = None,
    dropout: Opt.dropout = None,
    deepspeed_config: Opt.deepspeed_config = None,
    zero_stage: Opt.zero_stage = None,
    micro_batch: Opt.micro_batch = None,
    global_batch: Opt.global_batch = None,
    grad_accum: Opt.grad_accum = None,
    clip_grad: Opt.clip_grad = None,
    bf16: Opt.bf16 = None,
    lr: Opt.lr = None,
    min_lr: Opt.min_lr = None,
    warmup_steps: Opt.warmup_steps = None,
    warmup_tokens: Opt.warmup_tokens = None,
    steps: Opt.steps = 1000,
    stop_at: Opt.stop_at = None,
    weight_decay: Opt.weight_decay = 0.1,
    adam_beta2: Opt.adam_beta2 = 0.999,
    seed: Opt.seed = 1234,
    mixture: Opt.mixture = None,
    valid_fraction: Opt.valid_fraction = 0.01,
    valid_data: Opt.valid_data = None,
    eval_interval: Opt.eval_interval = 100,
    eval_samples: Opt.eval_samples = 64,
    save: Opt.save = None,
    save_interval: Opt.save_interval = 0,
    resume: Opt.resume = True,
    log_dir: Opt.log_dir = None,
    log_interval: Opt.log_interval = 10,
    peak_tflops: Opt.peak_tflops = None,
    local_rank: Opt.local_rank = None,
) -> None:
    """Train the paper's GPT on prepared shards with DeepSpeed (ZeRO, bf16), on CPU or GPUs.

    Samples are seq_len+1 tokens across document boundaries, blended by the manifest's mixture
    weights, deterministic for --seed; a resumed run sees exactly the samples it would have.
    Logs loss, tokens/s, TFLOP/s and MFU (6N + 12*L*H*Q*T model FLOPs per token) to the
    terminal, SAVE/logs/metrics.jsonl and TensorBoard. Several processes:
    `torchrun --nproc-per-node N -m tokenmill train ...` or
    `deepspeed --num_gpus N --module tokenmill train ...`.
    """
    from tokenmill.trainer.train import MissingTrainExtra, run

    try:
        run(train_config(ctx.params))  # every parameter above, by name
    except (ValueError, FileNotFoundError, MissingTrainExtra) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e


def train_config(params: dict) -> TrainConfig:
    """The TrainConfig of the command's parameters (by name, as typer passed them)."""
    fields = {k: v for k, v in params.items() if k not in ("adam_beta2", "local_rank")}
    for k in ("data", "deepspeed_config", "save", "log_dir", "valid_data"):  # paths, as strings
        fields[k] = str(Path(fields[k])) if fields[k] else None
    fields["mixture"] = parse_mixture(fields["mixture"]) if fields["mixture"] else None
    tokens = fields["warmup_tokens"]
    fields["warmup_tokens"] = parse_count(tokens) if tokens else None
    return TrainConfig(**fields, betas=(0.9, params["adam_beta2"]))
