"""What a training run reports: rank 0's terminal log, LOG_DIR/metrics.jsonl and TensorBoard
(one record per step), the throughput behind tokens/s, TFLOP/s and MFU, and `batch`, a digest
of each step's samples. A resumed run first drops the records (metrics.jsonl) and events
(TensorBoard) past its checkpoint, so each step is logged once."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from tokenmill.fsio import atomic_path

log = logging.getLogger("tokenmill.trainer")

# Dense bf16 peak TFLOP/s per device, by substring of torch.cuda.get_device_name().
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def setup_logging(rank: int) -> None:
    """Rank 0 logs INFO to the terminal with a time stamp; the other ranks only warnings."""
    if rank == 0 and not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.INFO if rank == 0 else logging.WARNING)


def peak_tflops(given: float | None, device) -> float | None:
    """The peak for MFU: `given`, else the known GPU's (None on CPU or an unknown GPU)."""
    if given is None and device.type == "cuda":
        import torch

        name = torch.cuda.get_device_name(device)
        return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    return given


def batch_digest(pairs: list[tuple[int, int]]) -> str:
    """16 hex digits naming a step's global batch by its (source, sample index) pairs: equal
    digests, equal samples in the same order (the sample's tokens are a function of the pair)."""
    rows = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return hashlib.blake2b(rows.tobytes(), digest_size=8).hexdigest()


def drop_metrics_after(path: Path, step: int) -> int:
    """Keep the records of steps <= `step` in metrics.jsonl (a resumed run writes the later
    ones again); returns how many were dropped, a torn last line included."""
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # cut short by a kill
            dropped += 1
            continue
        if record.get("step", 0) <= step:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)
    return dropped


def drop_events_after(log_dir: Path, step: int) -> int:
    """Rewrite the TensorBoard event files in `log_dir` without the events of steps past
    `step` (a resumed run logs them again); returns how many were dropped. TensorBoard's own
    purge (SummaryWriter's purge_step) only hides them from readers that implement it."""
    try:
        from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError:  # no tensorboard: no event files of ours either
        return 0
    dropped = 0
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        records = list(RawEventFileLoader(str(path)).Load())  # stops at a torn last record
        kept = [r for r in records if Event.FromString(r).step <= step]
        if len(kept) == len(records) and path.stat().st_size == sum(16 + len(r) for r in kept):
            continue
        dropped += len(records) - len(kept)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            writer = RecordWriter(f)
            for r in kept:
                writer.write(r)
            writer.flush()
    return dropped


class MetricsLog:
    """Per-step records to metrics.jsonl (every value) and TensorBoard (the numbers); either
    may be absent (another rank, no log folder, no tensorboard), and then records go nowhere."""

    def __init__(self, metrics=None, writer=None):
        self.metrics, self.writer = metrics, writer

    def record(self, step: int, values: dict) -> None:
        if self.metrics:
            self.metrics.write(json.dumps({"step": step, **values}) + "\n")
            self.metrics.flush()
        if self.writer:
            for k, v in values.items():
                if isinstance(v, int | float):
                    name = f"train/{k}" if k != "valid_loss" else "valid/loss"
                    self.writer.add_scalar(name, v, step)


def open_metrics(log_dir: Path | None, rank: int, step: int, held_logs: list) -> MetricsLog:
    """Rank 0's MetricsLog in `log_dir`, continuing after `step` (0: a new run); each file it
    opens goes into `held_logs` at once, for the teardown to close whatever happens next."""
    if rank != 0 or not log_dir:
        return MetricsLog()
    log_dir.mkdir(parents=True, exist_ok=True)
    if step:
        # a run killed after its last checkpoint logged steps that this one does again
        dropped = drop_metrics_after(log_dir / "metrics.jsonl", step)
        events = drop_events_after(log_dir, step)
        if dropped or events:
            log.info(
                "%s: dropped %d records and %d TensorBoard events past step %d (logged after "
                "the last checkpoint)",
                log_dir,
                dropped,
                events,
                step,
            )
    metrics = open(log_dir / "metrics.jsonl", "a")
    held_logs.append(metrics)
    writer = None
    try:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard hides the events of steps past the checkpoint likewise
        writer = SummaryWriter(str(log_dir), purge_step=step + 1 if step else None)
        held_logs.append(writer)
    except ImportError:
        log.warning("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
    return MetricsLog(metrics, writer)


class Throughput:
    """Tokens/s over each log interval, and from the end of the first interval on (the steady
    rate, past warm-up); time spent `paused()` (evaluation, checkpoints) is left out of both."""

    def __init__(self, tokens_per_step: int):
        self.tokens_per_step = tokens_per_step
        self.t0, self.steps, self.last = time.perf_counter(), 0, None
        self.steady_t, self.steady_step, self.paused_s = 0.0, None, 0.0

    def step(self) -> None:
        self.steps += 1

    def rate(self) -> float:
        """Tokens/s since the interval began (the caller synchronizes the device first)."""
        self.last = self.steps * self.tokens_per_step / (time.perf_counter() - self.t0)
        return self.last

    def next_interval(self, step: int) -> None:
        """Start the next interval after `step`; the first call also starts the steady clock."""
        self.t0, self.steps = time.perf_counter(), 0
        if self.steady_step is None:
            self.steady_t, self.steady_step, self.paused_s = self.t0, step, 0.0

    @contextlib.contextmanager
    def paused(self):
        start = time.perf_counter()
        yield
        self.t0 += time.perf_counter() - start
        self.paused_s += time.perf_counter() - start

    def steady(self, step: int) -> float | None:
        """Tokens/s from the end of the first interval to `step`; None before then."""
        if self.steady_step is None or step <= self.steady_step:
            return None
        dt = time.perf_counter() - self.steady_t - self.paused_s
        return (step - self.steady_step) * self.tokens_per_step / dt
