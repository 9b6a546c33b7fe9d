"""The optimizer and LR schedule (ours, not the DeepSpeed JSON's, as in Megatron-DeepSpeed):
AdamW without weight decay on biases and LayerNorms, linear warmup, then cosine decay to
`min_lr`."""

from __future__ import annotations

import math

from tokenmill.trainer.presets import WARMUP_MAX_SHARE, WARMUP_TOKENS
from tokenmill.trainer.settings import TrainConfig


def lr_factor(step: int, warmup: int, total: int, lr: float, min_lr: float) -> float:
    """Multiplier of `lr` after `step` optimizer steps: linear warmup, then cosine to min_lr."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return (min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))) / lr


def warmup_steps(cfg: TrainConfig, tokens_per_step: int) -> int:
    """--warmup steps if given, else --warmup-tokens in whole steps, else GPT-3's 375M tokens
    but at most a tenth of the steps (100 steps of the tiny model: 10)."""
    if cfg.warmup_steps is not None:
        return cfg.warmup_steps
    if cfg.warmup_tokens is not None:
        return math.ceil(cfg.warmup_tokens / tokens_per_step)
    return min(math.ceil(WARMUP_TOKENS / tokens_per_step), int(cfg.steps * WARMUP_MAX_SHARE))


def build_optimizer(cfg: TrainConfig, model, tokens_per_step: int):
    """(AdamW, its LambdaLR schedule) for `model`: decay on the matrices only."""
    import torch

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=cfg.betas,
        eps=cfg.eps,
    )
    warmup = warmup_steps(cfg, tokens_per_step)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup, cfg.steps, cfg.lr, cfg.min_lr)
    )
    return optimizer, scheduler
