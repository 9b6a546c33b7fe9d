"""Launching the trainer as a user does, in real subprocesses on CPU (DS_ACCELERATOR=cpu,
gloo): one process, or several through torchrun or the deepspeed launcher; and reading what
a run logged."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path


def env() -> dict:
    """The environment of a launch from a shell: CPU accelerator, no rank of the test's own."""
    out = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    out.pop("RANK", None)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deepspeed_launcher(nproc: int, port: int) -> list[str]:
    return [
        str(Path(sys.executable).parent / "deepspeed"),
        f"--num_gpus={nproc}",
        f"--master_port={port}",
        "--module",
        "tokenmill.trainer",
    ]


def train(
    args: list[str],
    nproc: int = 1,
    launcher: str = "torchrun",
    port: int | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    port = port or free_port()
    if nproc == 1:
        cmd = [sys.executable, "-m", "tokenmill.trainer"]
    elif launcher == "torchrun":
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc-per-node={nproc}",
            f"--master-port={port}",
            "-m",
            "tokenmill.trainer",
        ]
    else:
        cmd = deepspeed_launcher(nproc, port)
    p = subprocess.run(cmd + args, env=env(), capture_output=True, text=True, timeout=600)
    if check:
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return p


def shm_left(port: int) -> list[str]:
    """DeepSpeed's CPU all-reduce buffers (69 MB per rank, /dev/shm) of the run on `port`."""
    pattern = f"deepspeed_allreduce_buffer_{os.getuid()}_*_{port}_*"
    return sorted(f.name for f in Path("/dev/shm").glob(pattern))


def metrics(folder: Path) -> dict[int, dict]:
    """The records of LOG_DIR/metrics.jsonl by step."""
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, lines)}


def unlink_shm(port: int) -> None:
    for name in shm_left(port):  # a killed run cannot remove its own
        (Path("/dev/shm") / name).unlink(missing_ok=True)
