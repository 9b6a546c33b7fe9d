"""The Dask stage engine: tasks that write their output atomically, skip-if-done, progress.

A stage is a list of `Task`s: a plain function, its arguments, and the path of the JSON of
counts it writes last. The engine never looks inside a task. It submits the tasks that have no
counts file yet to a dask.distributed `Client` (a `LocalCluster`, or a running cluster given
by address), shows progress as they finish, and returns every task's counts, read back from
disk, in task order. A task that was complete before a crash or kill is not run again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

log = logging.getLogger(__name__)


# ---- atomic outputs -------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


# ---- tasks and stages -----------------------------------------------------------------------


@dataclass
class Task:
    """One unit of work: `fn(*args)` writes its outputs, then returns its counts (a dict),
    which the engine stores at `done` as the mark of completion."""

    key: str
    fn: Callable[..., dict]
    args: tuple
    done: Path


def _run_task(fn: Callable[..., dict], args: tuple, done: str) -> dict:
    t0 = time.perf_counter()
    counts = fn(*args)
    counts["wall_s"] = round(time.perf_counter() - t0, 4)
    write_json(done, counts)
    return counts


@dataclass
class StageResult:
    name: str
    counts: list[dict]
    ran: int
    skipped: int
    wall_s: float
    extra: dict = field(default_factory=dict)


class Engine:
    """Runs stages on a Dask client with a progress display."""

    def __init__(self, client, console: Console | None = None, quiet: bool = False):
        self.client = client
        self.console = console or Console(stderr=True)
        self.quiet = quiet

    def run_stage(self, name: str, tasks: list[Task], unit: str = "docs") -> StageResult:
        from distributed import as_completed

        t0 = time.perf_counter()
        todo = [t for t in tasks if not t.done.exists()]
        skipped = len(tasks) - len(todo)
        if skipped:
            log.info("%s: %d of %d tasks already complete, skipped", name, skipped, len(tasks))
        with self._progress() as progress:
            bar = progress.add_task(name, total=len(tasks), completed=skipped, docs=0, mb=0.0)
            docs = 0
            mb = 0.0
            futures = {
                self.client.submit(
                    _run_task,
                    t.fn,
                    t.args,
                    str(t.done),
                    key=f"{name}-{t.key}-{uuid.uuid4().hex[:6]}",
                    pure=False,
                    retries=2,
                ): t
                for t in todo
            }
            for fut in as_completed(futures):
                counts = fut.result()  # re-raises a task's error here, with its traceback
                docs += int(
                    counts.get("documents_in", counts.get("documents", counts.get("records", 0)))
                )
                mb += counts.get("bytes_in", 0) / 1e6
                progress.update(bar, advance=1, docs=docs, mb=mb)
        wall = time.perf_counter() - t0
        counts = [read_json(t.done) for t in tasks]
        return StageResult(name, counts, len(todo), skipped, wall)

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description:<10}"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn("{task.fields[docs]:>10,} docs {task.fields[mb]:>9,.1f} MB"),
            RateColumn(),
            TimeElapsedColumn(),
            console=self.console,
            disable=self.quiet,
            transient=False,
        )


class RateColumn(ProgressColumn):
    """Documents and MB per second since the stage started."""

    def render(self, task) -> Text:
        elapsed = task.elapsed or 0
        if not elapsed:
            return Text("")
        docs, mb = task.fields.get("docs", 0), task.fields.get("mb", 0.0)
        return Text(f"{docs / elapsed:,.0f} docs/s {mb / elapsed:,.1f} MB/s")


# ---- clusters -------------------------------------------------------------------------------


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Client on a running cluster (`scheduler`) or on a new LocalCluster of `workers`
    single-threaded worker processes (default: one per CPU)."""
    from distributed import Client, LocalCluster

    for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
