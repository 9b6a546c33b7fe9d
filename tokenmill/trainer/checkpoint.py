"""Checkpoints in SAVE: DeepSpeed's files per tag `stepN` (weights, optimizer and LR state of
every rank) with our client state (the step, the sampler's position, the model config, the
number of processes), and SAVE/latest, which we write, atomically, only once every rank has
written its files: a kill at any moment leaves `latest` naming the previous complete checkpoint.

The client state is also written beside DeepSpeed's files as SAVE/stepN/tokenmill.json, so a
resume is checked before anything is built or loaded: another model shape, other data or
another number of processes is refused with a message (DeepSpeed's own load would fail in its
strict weight load, or per rank on the ZeRO partitions, with a traceback each).

Each step folder also holds a copy of the run's tokenizer (SAVE/stepN/tokenizer.json, and the
manifest's tokenizer section under `tokenizer` in tokenmill.json), so `tokenmill eval` and
`tokenmill export` need nothing but the checkpoint (weights.py reads it back)."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from tokenmill.fsio import read_json, write_json

log = logging.getLogger("tokenmill.trainer")

INFO = "tokenmill.json"
TOKENIZER = "tokenizer.json"


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


def save_checkpoint(engine, save: Path, step: int, data, model_cfg, rank: int, world: int) -> None:
    """Write checkpoint `step{step}` on every rank, then (rank 0) point SAVE/latest at it."""
    import torch.distributed as dist

    tag = f"step{step}"
    client = {
        "step": step,
        "data": data.state_dict(),
        "model": asdict(model_cfg),
        "world_size": world,
    }
    # `latest` is ours to write: DeepSpeed's rank 0 writes it before the other ranks have
    # finished their files, so a kill in between would leave it naming a torn checkpoint
    engine.save_checkpoint(str(save), tag=tag, client_state=client, save_latest=False)
    if rank == 0:
        write_json(save / tag / INFO, {**client, "tokenizer": copy_tokenizer(data, save / tag)})
    dist.barrier()  # every rank's files are written
    if rank == 0:
        write_latest(save, tag)
    log.info("saved %s", save / tag)


def copy_tokenizer(data, folder: Path) -> dict:
    """Copy the run's tokenizer.json into `folder`; returns the manifest's tokenizer section
    with `path` naming the copy (None, with a warning, where the manifest's file is missing)."""
    section = dict(data.manifest["tokenizer"])
    source = data.root / section["path"]
    if not source.exists():
        log.warning("%s is missing: the checkpoint carries no tokenizer", source)
        return {**section, "path": None}
    shutil.copyfile(source, folder / TOKENIZER)
    return {**section, "path": TOKENIZER}


def latest_tag(save: Path) -> str | None:
    """The tag SAVE/latest names, or None where there is none."""
    latest = save / "latest"
    return latest.read_text().strip() if latest.exists() else None


def check_resumable(save: Path, model_cfg, data, world: int) -> None:
    """Refuse, before anything is loaded, a checkpoint that this run cannot continue: another
    model, other data, another number of processes. Checkpoints written before
    SAVE/stepN/tokenmill.json existed are left to `resume`'s checks."""
    tag = latest_tag(save)
    info_path = save / tag / INFO if tag else None
    if info_path is None or not info_path.exists():
        return
    info = read_json(info_path)
    fresh = f"or start a fresh run (--no-resume, or another --save than {save})"
    if info["model"] != asdict(model_cfg):
        diff = {
            k: (v, asdict(model_cfg).get(k))
            for k, v in info["model"].items()
            if asdict(model_cfg).get(k) != v
        }
        changed = ", ".join(f"{k} {a} (this run: {b})" for k, (a, b) in sorted(diff.items()))
        raise ValueError(
            f"{save / tag}: the checkpoint is of another model: {changed}. Resume with the "
            f"model flags it was written with, {fresh}"
        )
    if info["world_size"] != world:
        theirs = _processes(info["world_size"])
        raise ValueError(
            f"{save / tag} was written by {theirs} and this run has {_processes(world)}: the "
            f"checkpoint holds each process's share of the ZeRO state, so resume with {theirs}, "
            f"{fresh}"
        )
    data.check_state(info["data"])


def _processes(n: int) -> str:
    return f"{n} process" + ("es" if n != 1 else "")


def resume(engine, save: Path, data, model_cfg) -> int:
    """Load the checkpoint SAVE/latest names into the engine and the sampler; returns its step.
    Refuses a checkpoint of another model (where check_resumable could not tell)."""
    tag = latest_tag(save)
    path, client = engine.load_checkpoint(str(save), tag=tag)
    if path is None:
        raise RuntimeError(f"{save}: could not load the checkpoint named in 'latest' ({tag})")
    if client["model"] != asdict(model_cfg):
        raise ValueError(f"{save}: the checkpoint is of another model: {client['model']}")
    data.load_state_dict(client["data"])
    step = client["step"]
    log.info("resumed from %s at step %d (%d samples seen)", path, step, data.train.consumed)
    return step
