"""What a training run is given: its settings (`TrainConfig`, filled by `tokenmill train`'s
flags) and the DeepSpeed config they resolve to.

As in Megatron-DeepSpeed, the DeepSpeed JSON carries what DeepSpeed does (batch sizes, ZeRO,
clipping, bf16); the optimizer and LR schedule are ours (optim.py). Flags override the JSON;
the JSON overrides the defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TrainConfig:
    data: str
    model: str = "tiny"
    # model switches (None: the preset's)
    position: str | None = None
    activation: str | None = None
    embed_ln: bool | None = None
    seq_len: int | None = None
    dropout: float | None = None
    # DeepSpeed (None: from `deepspeed_config`, else the defaults in `deepspeed_config()`)
    deepspeed_config: str | None = None
    zero_stage: int | None = None
    micro_batch: int | None = None
    global_batch: int | None = None
    grad_accum: int | None = None
    clip_grad: float | None = None
    bf16: bool | None = None
    # optimizer and schedule (the paper's 1.3B ablations: AdamW 0.9/0.999, wd 0.1, 2e-4 -> 1e-5)
    lr: float = 2e-4
    min_lr: float = 1e-5
    warmup_steps: int | None = None  # None: warmup_tokens if given, else 1% of steps
    warmup_tokens: int | None = None
    steps: int = 1000
    stop_at: int | None = None  # leave after this step (the schedule still spans `steps`)
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    seed: int = 1234
    # data
    valid_fraction: float = 0.01
    eval_interval: int = 100
    eval_samples: int = 64
    # outputs
    save: str | None = None
    save_interval: int = 0  # 0: only at the end (and at stop_at)
    resume: bool = True
    log_dir: str | None = None  # None: SAVE/logs when saving
    log_interval: int = 10
    peak_tflops: float | None = None
    extra_ds: dict = field(default_factory=dict)  # merged last into the DeepSpeed config


def resolve_batch(micro, glob, accum, world: int) -> tuple[int, int, int]:
    """(micro, global, accumulation) with global = micro * accumulation * world, from any of
    them (defaults: micro 4, accumulation 1)."""
    if micro and glob and accum:
        pass
    elif micro and glob:
        accum = glob // (micro * world)
    elif micro:
        accum = accum or 1
        glob = micro * accum * world
    elif glob:
        accum = accum or 1
        micro = glob // (accum * world)
    else:
        micro, accum = 4, accum or 1
        glob = micro * accum * world
    if not micro or not accum or micro * accum * world != glob:
        raise ValueError(
            f"global batch {glob} is not micro batch {micro} x accumulation {accum} x "
            f"{world} processes: pick sizes that divide"
        )
    return micro, glob, accum


def deepspeed_config(cfg: TrainConfig, world: int) -> dict:
    """The DeepSpeed config: JSON file, then flags, then `extra_ds`."""
    ds = json.loads(Path(cfg.deepspeed_config).read_text()) if cfg.deepspeed_config else {}
    for section in ("optimizer", "scheduler"):
        if section in ds:
            raise ValueError(
                f"{cfg.deepspeed_config}: remove the {section!r} section; the optimizer and LR "
                "schedule come from --lr, --min-lr, --warmup, --weight-decay (as in "
                "Megatron-DeepSpeed)"
            )
    micro, glob, accum = resolve_batch(
        cfg.micro_batch or ds.get("train_micro_batch_size_per_gpu"),
        cfg.global_batch or ds.get("train_batch_size"),
        cfg.grad_accum or ds.get("gradient_accumulation_steps"),
        world,
    )
    ds.update(
        train_micro_batch_size_per_gpu=micro,
        train_batch_size=glob,
        gradient_accumulation_steps=accum,
    )
    zero = ds.setdefault("zero_optimization", {})
    if cfg.zero_stage is not None:
        zero["stage"] = cfg.zero_stage
    zero.setdefault("stage", 1)
    if cfg.clip_grad is not None:
        ds["gradient_clipping"] = cfg.clip_grad
    ds.setdefault("gradient_clipping", 1.0)
    bf16 = ds.setdefault("bf16", {})
    if cfg.bf16 is not None:
        bf16["enabled"] = cfg.bf16
    bf16.setdefault("enabled", True)
    if bf16["enabled"] and ds.get("fp16", {}).get("enabled"):
        raise ValueError("bf16 and fp16 are both enabled: choose one")
    ds.setdefault("steps_per_print", 10**9)  # we log ourselves
    ds.setdefault("wall_clock_breakdown", False)
    ds["zero_allow_untested_optimizer"] = True  # our torch AdamW
    ds.update(cfg.extra_ds)
    return ds
