"""The process group's life: torch and deepspeed imported (or a one-line install hint), a lone
process made a world of one, DeepSpeed's group started on the accelerator's backend, and a
teardown that every path out runs while the interpreter is whole."""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("tokenmill.trainer")


class MissingTrainExtra(ImportError):
    """torch or deepspeed cannot be imported: the `train` extra is not installed (or broken)."""


def import_train_extra(name: str):
    """Import torch or deepspeed; MissingTrainExtra (with the install advice) where it fails."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        # the README's install advice: the CPU or CUDA torch wheel first, then the extra, so
        # that deepspeed does not pull a torch build of its own choosing
        raise MissingTrainExtra(
            f"`tokenmill train` needs the train extra ({e}): pip install torch first, then "
            "pip install 'tokenmill[train]'"
        ) from e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_process_group():
    """Start DeepSpeed's process group (gloo on CPU, where no GPU is seen); returns
    torch.distributed. A process started without a launcher is a world of one."""
    torch = import_train_extra("torch")

    if "DS_ACCELERATOR" not in os.environ and not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"
    if "RANK" not in os.environ:  # a plain single process: be a world of one
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))

    deepspeed = import_train_extra("deepspeed")
    import torch.distributed as dist
    from deepspeed.accelerator import get_accelerator

    deepspeed.utils.logger.setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*torch\.distributed\.\w+` is deprecated")
    deepspeed.init_distributed(dist_backend=get_accelerator().communication_backend_name())
    return dist


@dataclass
class Held:
    """What the teardown closes: the engine and rank 0's open logs."""

    engine: object = None
    logs: list = field(default_factory=list)


def teardown(dist, held: Held, completed: bool) -> None:
    """Close logs, destroy the engine, then the process groups, while the interpreter is whole:
    left to interpreter exit, gloo's threads can abort the process ("terminate called without
    an active exception"), which DESIGN.md saw with ZeRO-3 + bf16. The barrier only after a
    completed run: after an error the other ranks may never reach it."""
    for f in held.logs:
        f.close()
    held.logs.clear()
    if held.engine is not None and hasattr(held.engine, "destroy"):
        held.engine.destroy()
    held.engine = None
    gc.collect()  # the engine's buffers and pending work go now, not at interpreter exit
    if completed:
        dist.barrier()
    _unlink_shm(dist.get_rank())
    import deepspeed.comm

    # DeepSpeed's, not torch's: it also drops DeepSpeed's module-level handles on the groups
    # (its clone of the world group), whose gloo threads would otherwise live until exit
    deepspeed.comm.destroy_process_group()
    gc.collect()


def _unlink_shm(rank: int) -> None:
    # DeepSpeed's CPU shared-memory all-reduce op creates /dev/shm/deepspeed_allreduce_buffer_
    # UID_ADDR_PORT_RANK (69 MB per rank) at init and never unlinks it: one more per run until
    # the tmpfs is full. Unlinking our own name leaves peers' mappings valid.
    name = "_".join(
        [
            "deepspeed_allreduce_buffer",
            str(os.getuid()),
            os.environ.get("MASTER_ADDR", ""),
            os.environ.get("MASTER_PORT", ""),
            str(rank),
        ]
    )
    with contextlib.suppress(OSError):
        os.unlink(Path("/dev/shm") / name)
