"""`tokenmill train`: a typer command function, registered by tokenmill/cli.py.

torch and deepspeed are imported inside the function, so `tokenmill --help` stays instant and
works without the `train` extra; `tokenmill train` without it says how to install it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_SUFFIX = {"K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


def parse_count(text: str) -> int:
    """'375M' -> 375000000; plain integers pass through."""
    t = text.strip().upper().replace("_", "")
    if t and t[-1] in _SUFFIX:
        return int(float(t[:-1]) * _SUFFIX[t[-1]])
    return int(t)


def train(
    data: Annotated[
        Path,
        typer.Option(
            help="OUT/manifest.json of a `tokenmill prepare` run. Its shards are checked before "
            "training (structure and sizes, not SHA-256: `tokenmill verify OUT` does that)."
        ),
    ],
    model: Annotated[
        str, typer.Option(help="Preset: tiny, 125m, 350m, 760m, 1b3 (the paper's), 176b (BLOOM).")
    ] = "tiny",
    position: Annotated[
        str | None, typer.Option(help="none | learned | rotary | alibi (default: alibi).")
    ] = None,
    activation: Annotated[
        str | None, typer.Option(help="gelu (tanh approximation) | swiglu (default: gelu).")
    ] = None,
    embed_ln: Annotated[
        bool | None,
        typer.Option(
            "--embed-ln/--no-embed-ln", help="LayerNorm after the embedding (default on)."
        ),
    ] = None,
    seq_len: Annotated[
        int | None, typer.Option(help="Tokens per sample (default: preset).")
    ] = None,
    dropout: Annotated[float | None, typer.Option(help="Dropout (default 0, as BLOOM).")] = None,
    deepspeed: Annotated[
        Path | None,
        typer.Option(
            "--deepspeed",
            help="DeepSpeed JSON (batch sizes, zero_optimization, gradient_clipping, bf16); "
            "the flags below override it. No optimizer/scheduler sections: those are the flags.",
        ),
    ] = None,
    zero_stage: Annotated[int | None, typer.Option(help="ZeRO stage 0-3 (default 1).")] = None,
    micro_batch: Annotated[
        int | None, typer.Option(help="Sequences per process per micro-step (default 4).")
    ] = None,
    global_batch: Annotated[
        int | None, typer.Option(help="Sequences per optimizer step = micro x accum x processes.")
    ] = None,
    grad_accum: Annotated[int | None, typer.Option(help="Micro-steps per optimizer step.")] = None,
    clip_grad: Annotated[
        float | None, typer.Option(help="Gradient norm clip (default 1.0).")
    ] = None,
    bf16: Annotated[
        bool | None, typer.Option("--bf16/--no-bf16", help="bf16 (default) or fp32 training.")
    ] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-4,
    min_lr: Annotated[float, typer.Option(help="Learning rate at the end of the cosine.")] = 1e-5,
    warmup: Annotated[
        int | None, typer.Option(help="Warmup steps (default: --warmup-tokens, else 1% of steps).")
    ] = None,
    warmup_tokens: Annotated[
        str | None, typer.Option(help="Warmup in tokens, e.g. 375M (the paper's).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Optimizer steps; the LR schedule spans them.")] = 1000,
    stop_at: Annotated[
        int | None, typer.Option(help="Leave after this step (checkpointed); resume later.")
    ] = None,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.1,
    adam_beta2: Annotated[float, typer.Option(help="Adam beta2 (BLOOM used 0.95).")] = 0.999,
    seed: Annotated[int, typer.Option(help="Seeds the weights and the sample order.")] = 1234,
    valid_fraction: Annotated[
        float, typer.Option(help="Held-out share of each source's documents.")
    ] = 0.01,
    eval_interval: Annotated[int, typer.Option(help="Validation every N steps (0: never).")] = 100,
    eval_samples: Annotated[int, typer.Option(help="Held-out sequences per validation.")] = 64,
    save: Annotated[
        Path | None, typer.Option(help="Checkpoint folder; a run resumes from its `latest`.")
    ] = None,
    save_interval: Annotated[
        int, typer.Option(help="Checkpoint every N steps (0: only at the end).")
    ] = 0,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue from SAVE's latest checkpoint.")
    ] = True,
    log_dir: Annotated[
        Path | None, typer.Option(help="TensorBoard and metrics.jsonl (default SAVE/logs).")
    ] = None,
    log_interval: Annotated[int, typer.Option(help="Print every N steps.")] = 10,
    peak_tflops: Annotated[
        float | None,
        typer.Option(help="Peak TFLOP/s of one device for MFU (known GPUs: detected)."),
    ] = None,
    local_rank: Annotated[
        int | None, typer.Option("--local_rank", "--local-rank", hidden=True)
    ] = None,  # the deepspeed launcher passes it; LOCAL_RANK in the environment is what we read
) -> None:
    """Train the paper's GPT on prepared shards with DeepSpeed (ZeRO, bf16), on CPU or GPUs.

    Samples are seq_len+1 tokens across document boundaries, blended by the manifest's mixture
    weights, deterministic for --seed; a resumed run sees exactly the samples it would have.
    Logs loss, tokens/s, TFLOP/s and MFU (6N + 12*L*H*Q*T model FLOPs per token) to the
    terminal, SAVE/logs/metrics.jsonl and TensorBoard. Several processes:
    `torchrun --nproc-per-node N -m tokenmill train ...` or
    `deepspeed --num_gpus N --module tokenmill train ...`.
    """
    from tokenmill.trainer.train import MissingTrainExtra, TrainConfig, run

    cfg = TrainConfig(
        data=str(data),
        model=model,
        position=position,
        activation=activation,
        embed_ln=embed_ln,
        seq_len=seq_len,
        dropout=dropout,
        deepspeed_config=str(deepspeed) if deepspeed else None,
        zero_stage=zero_stage,
        micro_batch=micro_batch,
        global_batch=global_batch,
        grad_accum=grad_accum,
        clip_grad=clip_grad,
        bf16=bf16,
        lr=lr,
        min_lr=min_lr,
        warmup_steps=warmup,
        warmup_tokens=parse_count(warmup_tokens) if warmup_tokens else None,
        steps=steps,
        stop_at=stop_at,
        weight_decay=weight_decay,
        betas=(0.9, adam_beta2),
        seed=seed,
        valid_fraction=valid_fraction,
        eval_interval=eval_interval,
        eval_samples=eval_samples,
        save=str(save) if save else None,
        save_interval=save_interval,
        resume=resume,
        log_dir=str(log_dir) if log_dir else None,
        log_interval=log_interval,
        peak_tflops=peak_tflops,
    )
    try:
        run(cfg)
    except (ValueError, FileNotFoundError, MissingTrainExtra) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
