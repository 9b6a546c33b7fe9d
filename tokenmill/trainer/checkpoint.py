"""Checkpoints in SAVE: DeepSpeed's files per tag `stepN` (weights, optimizer and LR state of
every rank) with our client state (the step, the sampler's position, the model config), and
SAVE/latest, which we write, atomically, only once every rank has written its files: a kill at
any moment leaves `latest` naming the previous complete checkpoint."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path

log = logging.getLogger("tokenmill.trainer")


def write_latest(save: Path, tag: str) -> None:
    """Point SAVE/latest at `tag`, atomically: a kill leaves the old or the new name, never an
    empty or half-written file."""
    tmp = save / f".latest.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(tag)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, save / "latest")
    dir_fd = os.open(save, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(engine, save: Path, step: int, data, model_cfg, rank: int) -> None:
    """Write checkpoint `step{step}` on every rank, then (rank 0) point SAVE/latest at it."""
    import torch.distributed as dist

    client = {"step": step, "data": data.state_dict(), "model": asdict(model_cfg)}
    # `latest` is ours to write: DeepSpeed's rank 0 writes it before the other ranks have
    # finished their files, so a kill in between would leave it naming a torn checkpoint
    engine.save_checkpoint(str(save), tag=f"step{step}", client_state=client, save_latest=False)
    dist.barrier()  # every rank's files are written
    if rank == 0:
        write_latest(save, f"step{step}")
    log.info("saved %s", save / f"step{step}")


def resume(engine, save: Path, data, model_cfg) -> int:
    """Load the checkpoint SAVE/latest names into the engine and the sampler; returns its step.
    Refuses a checkpoint of another model."""
    path, client = engine.load_checkpoint(str(save))
    if path is None:
        raise RuntimeError(f"{save}: could not load the checkpoint named in 'latest'")
    if client["model"] != asdict(model_cfg):
        raise ValueError(f"{save}: the checkpoint is of another model: {client['model']}")
    data.load_state_dict(client["data"])
    step = client["step"]
    log.info("resumed from %s at step %d (%d samples seen)", path, step, data.train.consumed)
    return step
