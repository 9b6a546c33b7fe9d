"""What a training run is given: its settings (`TrainConfig`, filled by `tokenmill train`'s
flags) and the DeepSpeed config they resolve to.

As in Megatron-DeepSpeed, the DeepSpeed JSON carries what DeepSpeed does (batch sizes, ZeRO,
clipping, bf16); the optimizer and LR schedule are ours (optim.py). Flags override the JSON;
the JSON overrides the defaults, which are the preset's where it has one (presets.TRAINING:
peak and final LR, global batch).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from tokenmill.trainer.presets import TRAINING, check_name

log = logging.getLogger("tokenmill.trainer")


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
    # optimizer and schedule (AdamW 0.9/0.999, wd 0.1 as the paper's 1.3B ablations); lr and
    # min_lr None: the preset's (presets.TRAINING, GPT-3's for its sizes)
    lr: float | None = None
    min_lr: float | None = None  # None: the preset's, scaled with a given lr
    warmup_steps: int | None = None  # None: warmup_tokens if given, else optim.warmup_steps
    warmup_tokens: int | None = None
    steps: int = 1000
    stop_at: int | None = None  # leave after this step (the schedule still spans `steps`)
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    seed: int = 1234
    # data
    mixture: dict[str, float] | None = None  # source -> weight; None: the manifest's mixture
    valid_fraction: float = 0.01
    valid_data: str | None = None  # validate on this manifest's held-out slice (None: `data`'s)
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

    def __post_init__(self):
        check_name(self.model)
        for name, value, low in _lower_bounds(self):
            if value is not None and value < low:
                raise ValueError(f"--{name}: must be >= {low} (got {value})")
        for name, value in (("lr", self.lr), ("global-batch", self.global_batch)):
            if value is not None and value <= 0:
                raise ValueError(f"--{name}: must be > 0 (got {value})")
        if not 0 <= self.valid_fraction < 1:
            raise ValueError(f"--valid-fraction: must be in [0, 1) (got {self.valid_fraction})")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"--dropout: must be in [0, 1) (got {self.dropout})")
        if self.zero_stage is not None and self.zero_stage not in (0, 1, 2, 3):
            raise ValueError(f"--zero-stage: must be 0, 1, 2 or 3 (got {self.zero_stage})")
        if self.mixture is not None:
            bad = {k: w for k, w in self.mixture.items() if not w >= 0}
            if bad or not any(w > 0 for w in self.mixture.values()):
                raise ValueError(
                    f"--mixture: weights must be >= 0 with at least one above 0 (got "
                    f"{self.mixture})"
                )


def _lower_bounds(c: TrainConfig) -> list[tuple[str, int | float | None, int]]:
    """(flag, value, lowest allowed) of the numeric settings with a lower bound only."""
    return [
        ("steps", c.steps, 1),
        ("log-interval", c.log_interval, 1),  # the step count is taken modulo it
        ("eval-interval", c.eval_interval, 0),
        ("eval-samples", c.eval_samples, 1),
        ("save-interval", c.save_interval, 0),
        ("stop-at", c.stop_at, 0),
        ("warmup", c.warmup_steps, 0),
        ("warmup-tokens", c.warmup_tokens, 0),
        ("min-lr", c.min_lr, 0),
        ("seq-len", c.seq_len, 1),
        ("micro-batch", c.micro_batch, 1),
        ("grad-accum", c.grad_accum, 1),
        ("clip-grad", c.clip_grad, 0),
        ("weight-decay", c.weight_decay, 0),
        ("seed", c.seed, 0),
    ]


def with_preset_defaults(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with the preset's learning rates where none is given; a given --lr without
    --min-lr keeps the preset's ratio of the two."""
    t = TRAINING[cfg.model]
    lr = cfg.lr if cfg.lr is not None else t.lr
    min_lr = cfg.min_lr if cfg.min_lr is not None else lr * t.min_lr / t.lr
    if min_lr > lr:
        raise ValueError(f"--min-lr {min_lr:g} is above the peak --lr {lr:g}")
    return replace(cfg, lr=lr, min_lr=min_lr)


def resolve_batch(micro, glob, accum, world: int) -> tuple[int, int, int]:
    """(micro, global, accumulation) with global = micro * accumulation * world, from any of
    them (defaults: micro 4, accumulation 1; a global batch alone: the largest micro batch up
    to 4 that divides it, and accumulation for the rest)."""
    if micro and glob and accum:
        pass
    elif micro and glob:
        accum = glob // (micro * world)
    elif micro:
        accum = accum or 1
        glob = micro * accum * world
    elif glob and accum:
        micro = glob // (accum * world)
    elif glob:
        per_process = glob // world
        micro = max(d for d in range(1, 5) if per_process % d == 0) if per_process else 0
        accum = per_process // micro if micro else 0
    else:
        micro, accum = 4, accum or 1
        glob = micro * accum * world
    if not micro or not accum or micro * accum * world != glob:
        raise ValueError(
            f"global batch {glob} is not micro batch {micro} x accumulation {accum} x "
            f"{world} processes: pick sizes that divide"
        )
    return micro, glob, accum


def preset_batch(name: str, micro: int | None, accum: int | None, world: int):
    """(micro, global, accumulation) for the preset's global batch over `world` processes,
    keeping a given micro batch or accumulation; by default micro batches of 4 (fewer where the
    batch is smaller). Where the sizes do not divide the preset's batch, the nearest whole
    number of steps is taken (at least one sample per process) and logged."""
    want = TRAINING[name].global_batch
    if micro:
        accum = max(1, round(want / (micro * world)))
    elif accum:
        micro = max(1, round(want / (accum * world)))
    else:
        accum = max(1, want // (4 * world))
        micro = max(1, want // (accum * world))
    glob = micro * accum * world
    if glob != want:
        log.info(
            "global batch %d sequences (micro %d x accumulation %d x %d processes): the %s "
            "preset's %d does not divide into them",
            glob,
            micro,
            accum,
            world,
            name,
            want,
        )
    return micro, glob, accum


def deepspeed_config(cfg: TrainConfig, world: int) -> dict:
    """The DeepSpeed config: JSON file, then flags, then `extra_ds`. Batch sizes left open by
    both (no global batch, and not both micro batch and accumulation) take the preset's global
    batch."""
    ds = json.loads(Path(cfg.deepspeed_config).read_text()) if cfg.deepspeed_config else {}
    for section in ("optimizer", "scheduler"):
        if section in ds:
            raise ValueError(
                f"{cfg.deepspeed_config}: remove the {section!r} section; the optimizer and LR "
                "schedule come from --lr, --min-lr, --warmup, --weight-decay (as in "
                "Megatron-DeepSpeed)"
            )
    micro = cfg.micro_batch or ds.get("train_micro_batch_size_per_gpu")
    glob = cfg.global_batch or ds.get("train_batch_size")
    accum = cfg.grad_accum or ds.get("gradient_accumulation_steps")
    if glob or (micro and accum):
        micro, glob, accum = resolve_batch(micro, glob, accum, world)
    else:
        micro, glob, accum = preset_batch(cfg.model, micro, accum, world)
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
