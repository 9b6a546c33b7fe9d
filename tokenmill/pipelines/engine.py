"""The Dask stage engine: tasks that write their output atomically, skip-if-done, progress.

A stage is a list of `Task`s: a plain function, its arguments, and the path of the JSON of
counts it writes last. The engine never looks inside a task. It runs the tasks that have no
counts file yet as calls of the executor (`executor.run_calls`, on a client from
`executor.dask_client`: a `LocalCluster`, or a running cluster given by address), shows
progress as they finish, and returns every task's counts, read back from disk, in task order.
A task that was complete before a crash or kill is not run again.

A task that raises stops the stage with `TaskFailed`, which names the stage, the task and the
task's own error (chained, with its traceback); the other tasks are cancelled. Dask's
"Compute Failed" log block on the worker is dropped, as is the shutdown noise of a cluster
closed by Ctrl-C or an error. Local workers ignore SIGINT: Ctrl-C (sent by a terminal to the
whole process group) interrupts the client only, which closes the cluster.

Tasks whose input is small (`Task.nbytes`) run several to one Dask task (`group_tasks`), each
still with its own counts file: per-task costs (scheduling, serialisation, a round trip to the
client) stay small beside the work on corpora of many small files.

Every output is written under a temporary name beside its final one (`.NAME.tmp-XXXXXXXX`)
and renamed when complete; `sweep_temporaries` removes what a killed run left of them.
`output_lock` keeps a second run off an output folder that one is using.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import logging
import os
import socket
import time
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

from tokenmill.fsio import atomic_path, read_json, sweep_temporaries, write_json
from tokenmill.memory import (
    defer_pandas_for_arrow,
    peak_rss,
    release_free_memory,
    reset_peak_rss,
    status_bytes,
)
from tokenmill.pipelines.executor import (
    WORKER_SETUP,
    Call,
    dask_client,
    quiet_dask_logs,
    run_calls,
    worker_environ,
)

log = logging.getLogger(__name__)
TRIM_INTERVAL_S = 1.0  # a worker returns freed heap pages to the OS at most this often
GROUP_BYTES = 32 * 2**20  # small tasks are joined into Dask tasks of at most this much input
GROUPS_PER_SLOT = 4  # ... and into at least this many per worker thread, to keep all busy


# ---- re-exported for the engine's callers: atomic outputs (the low-level fsio) and the
# executor's clusters --------------------------------------------------------------------------

__all__ = [
    "WORKER_SETUP",
    "atomic_path",
    "dask_client",
    "read_json",
    "sweep_temporaries",
    "worker_environ",
    "write_json",
]


# ---- one run per output folder --------------------------------------------------------------


class OutputLocked(RuntimeError):
    """Another process holds the output folder's lock."""


@contextlib.contextmanager
def output_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold OUT/.lock (an exclusive `flock`) for the block, with this process's pid, host and
    start time written in it; OutputLocked at once when another process holds it.

    The kernel drops the lock when its holder dies (even by kill -9), so a stale file never
    blocks a run. On a filesystem without locks (some parallel filesystems) the run goes on
    with a warning."""
    import fcntl

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputLocked(
                f"{out} is in use by another tokenmill prepare ({_holder(path)}): wait for it "
                "to end or stop it, or use another --out"
            ) from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            log.warning(
                "%s: this filesystem has no file locks (%s); make sure no other run uses %s",
                path,
                e.strerror,
                out,
            )
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def _holder(path: Path) -> str:
    try:
        h = json.loads(path.read_text())
        return f"pid {h['pid']} on {h['host']}, started {h['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


# ---- tasks and stages -----------------------------------------------------------------------


@dataclass
class Task:
    """One unit of work: `fn(*args)` writes its outputs, then returns its counts (a dict),
    which the engine stores at `done` as the mark of completion. `nbytes`: the size of its
    input where known (0: unknown; such a task always runs alone)."""

    key: str
    fn: Callable[..., dict]
    args: tuple
    done: Path
    nbytes: int = 0


def _run_task(fn: Callable[..., dict], args: tuple, done: str) -> dict:
    """Run one task on a worker and store its counts at `done`, with its wall time
    (`wall_s`) and the worker process's RSS when it started and its peak while it ran
    (`start_rss_mb`, `peak_rss_mb`, on Linux; a worker with several threads counts from the
    latest task start on any of them: what the task added is at most the difference); a task
    whose counts are there already is not run again: Dask recomputes a finished task whose
    result was held by a worker that died, and the task's outputs are complete on disk."""
    with contextlib.suppress(FileNotFoundError):
        return read_json(done)
    defer_pandas_for_arrow()
    measured = reset_peak_rss()
    start = status_bytes("VmRSS")
    t0 = time.perf_counter()
    counts = fn(*args)
    counts["wall_s"] = round(time.perf_counter() - t0, 4)
    if measured:
        counts["peak_rss_mb"] = round(peak_rss() / 1e6, 1)
        counts["start_rss_mb"] = round(start / 1e6, 1)
    write_json(done, counts)
    release_free_memory(TRIM_INTERVAL_S)  # what tasks freed, before the next one runs here
    return counts


def _run_group(items: list[tuple[str, Callable[..., dict], tuple, str]]) -> list[dict]:
    """Run (key, fn, args, done) tasks one after another on a worker, each storing its own
    counts (a group stopped half-way keeps the tasks it finished); their counts in order. A
    task's error is raised with its key as the attribute `task_key`."""
    out = []
    for key, fn, args, done in items:
        try:
            out.append(_run_task(fn, args, done))
        except Exception as e:
            e.task_key = key  # type: ignore[attr-defined]  # pickled with the error
            raise
    return out


def group_tasks(tasks: list[Task], slots: int, limit: int = GROUP_BYTES) -> list[list[Task]]:
    """Consecutive tasks joined into groups of at most `limit` bytes of input, and of at most
    1 / (GROUPS_PER_SLOT x `slots`) of the input of all of them, so that each of `slots`
    worker threads still gets several groups. A task of unknown size, or of that size or
    more, is a group of its own."""
    known = sum(t.nbytes for t in tasks if t.nbytes > 0)
    cap = min(limit, known // (GROUPS_PER_SLOT * max(1, slots)))
    groups: list[list[Task]] = []
    current: list[Task] = []
    size = 0
    for t in tasks:
        if current and (t.nbytes <= 0 or size + t.nbytes > cap):
            groups.append(current)
            current, size = [], 0
        if t.nbytes <= 0 or t.nbytes >= cap:
            groups.append([t])
            continue
        current.append(t)
        size += t.nbytes
    if current:
        groups.append(current)
    return groups


def _slots(client: Any) -> int:
    """Worker threads connected to `client` now (1 when running here)."""
    if client is None:
        return 1
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001 - a cluster still starting: group by `limit` alone
        return 1


class TaskFailed(RuntimeError):
    """A task raised: names the stage and task and carries the task's own error as the cause
    (raised from it, so its traceback comes along)."""

    def __init__(self, stage: str, key: str, error: BaseException):
        self.stage, self.key, self.error = stage, key, error
        first = " ".join(str(error).split())  # one line, whatever the error printed
        detail = f"{type(error).__name__}: {first}" if first else type(error).__name__
        super().__init__(f"{stage} task {key} failed: {detail}")


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
        defer_pandas_for_arrow()  # in the client process too
        self.client = client
        self.console = console or Console(stderr=True)
        self.quiet = quiet

    def run_stage(
        self,
        name: str,
        tasks: list[Task],
        docs_field: str | None = None,
        bytes_field: str | None = None,
    ) -> StageResult:
        """Run the tasks not done yet; every task's counts, in task order. The progress bar
        adds up the counts' `docs_field` and `bytes_field` (none where not given)."""
        t0 = time.perf_counter()
        todo = [t for t in tasks if not t.done.exists()]
        skipped = len(tasks) - len(todo)
        if skipped:
            log.info("%s: %d of %d tasks already complete, skipped", name, skipped, len(tasks))
        groups = group_tasks(todo, _slots(self.client))
        calls = [
            Call(g[0].key, _run_group, ([(t.key, t.fn, t.args, str(t.done)) for t in g],))
            for g in groups
        ]
        with self._progress() as progress:
            bar = progress.add_task(name, total=len(tasks), completed=skipped, docs=0, mb=0.0)
            seen = {"docs": 0, "mb": 0.0}

            def done(call: Call, group: list[dict]) -> None:
                for counts in group:
                    seen["docs"] += int(counts.get(docs_field, 0)) if docs_field else 0
                    seen["mb"] += counts.get(bytes_field, 0) / 1e6 if bytes_field else 0.0
                progress.update(bar, advance=len(group), **seen)

            def failed(call: Call, error: Exception) -> None:
                raise TaskFailed(name, getattr(error, "task_key", call.key), error) from error

            run_calls(self.client, name, calls, retries=2, on_result=done, on_error=failed)
        wall = time.perf_counter() - t0
        counts = [read_json(t.done) for t in tasks]
        release_free_memory()  # this process (client, and scheduler of a local cluster) too
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


# ---- SLURM through dask-jobqueue ------------------------------------------------------------


def _import_jobqueue():
    """dask_jobqueue, imported with the SIGINT handler kept: importing it installs
    `lambda *_: sys.exit()` for SIGINT (dask_jobqueue/runner.py), which would turn Ctrl-C
    into a silent exit with status 0 instead of an interrupted run (exit 130 and a hint)."""
    import signal
    import threading

    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT) if main else None
    try:
        import dask_jobqueue
    finally:
        if main and before is not None:
            signal.signal(signal.SIGINT, before)
    return dask_jobqueue


class ClusterError(RuntimeError):
    """A cluster could not be set up: bad config, missing package, no worker in time."""


def load_slurm_config(path: str | os.PathLike) -> dict:
    """Read a dask-jobqueue config file (`jobqueue: slurm: {...}`, the format of
    dask-jobqueue's own jobqueue.yaml; other top-level dask config sections are allowed).

    Keys may use `-` or `_`. A key dask-jobqueue does not know fails here, since dask-jobqueue
    itself would silently ignore a typo such as `walltme`.
    """
    import yaml

    try:
        import dask

        _import_jobqueue()  # registers the jobqueue defaults with dask.config
    except ImportError as e:
        raise ClusterError(
            f"running on SLURM needs dask-jobqueue ({e}): pip install 'tokenmill[slurm]'"
        ) from None
    path = Path(path)
    if not path.is_file():
        raise ClusterError(
            f"cluster config not found: {path} (start from deploy/slurm.yaml in the repository)"
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ClusterError(f"{path}: not valid YAML:\n{e}") from None
    jobqueue = raw.get("jobqueue") if isinstance(raw, dict) else None
    section = jobqueue.get("slurm") if isinstance(jobqueue, dict) else None
    if not isinstance(section, dict):
        raise ClusterError(f"{path}: expected a `jobqueue: slurm: {{...}}` section")
    known = dask.config.get("jobqueue.slurm")
    unknown = sorted(k for k in section if k.replace("_", "-") not in known)
    if unknown:
        raise ClusterError(
            f"{path}: unknown jobqueue.slurm keys {unknown}; known: {', '.join(sorted(known))}"
        )
    for key in ("cores", "processes", "memory"):
        if section.get(key) is None:
            raise ClusterError(f"{path}: jobqueue.slurm.{key} is required (per job)")
    cores, processes = section["cores"], section["processes"]
    if not (isinstance(cores, int) and isinstance(processes, int) and 0 < processes <= cores):
        raise ClusterError(f"{path}: cores and processes must be whole numbers, processes <= cores")
    if cores != processes:
        log.warning(
            "%s: %d cores / %d processes = %d threads per worker; tokenmill's tasks are "
            "single-threaded (as `prepare --workers` runs them): set processes equal to cores",
            path,
            cores,
            processes,
            cores // processes,
        )
    return raw


@contextlib.contextmanager
def slurm_cluster(
    path: str | os.PathLike,
    jobs: int = 1,
    wait: float = 1800,
    console: Console | None = None,
) -> Iterator[Any]:
    """A `dask_jobqueue.SLURMCluster` set up from the config file at `path`, with `jobs`
    batch jobs submitted, once at least one worker has joined (ClusterError after `wait` s).

    The scheduler runs in this process; each job starts `processes` workers. The jobs are
    cancelled when the block ends. With `jobs=0` nothing is submitted and `sbatch` is not
    needed: that is how `tokenmill cluster-script` shows the job script.
    """
    import dask

    raw = load_slurm_config(path)
    # dask-jobqueue reads dask.config each time it builds a job (at every scale-up), so the
    # file's settings stay in force until the cluster is closed. merge() copies: the global
    # config is left as it was.
    merged = dask.config.merge(dask.config.config, raw)
    slurm = merged["jobqueue"]["slurm"]
    logs = slurm.get("log-directory")
    fresh_logs = bool(logs) and not os.path.exists(logs)
    # a preview's scheduler takes any free port for its web server (no "8787 in use" warning)
    preview = {} if jobs else {"dashboard_address": ":0"}
    options = {**(slurm.get("scheduler-options") or {}), **preview}
    with dask.config.set({k: merged[k] for k in raw}):
        SLURMCluster = _import_jobqueue().SLURMCluster  # noqa: N806 (a class)

        quiet_dask_logs()
        try:
            with SLURMCluster(scheduler_options=options) as cluster:
                if jobs:
                    _start_jobs(cluster, jobs, wait, console or Console(stderr=True))
                yield cluster
        finally:
            if not jobs and fresh_logs:  # dask-jobqueue makes it on construction; a preview
                with contextlib.suppress(OSError):  # leaves nothing behind
                    os.rmdir(logs)


def _start_jobs(cluster: Any, jobs: int, wait: float, console: Console) -> None:
    import dask
    from distributed import TimeoutError as DaskTimeoutError

    slurm = dask.config.get("jobqueue.slurm")
    cluster.scale(jobs=jobs)
    console.print(
        f"submitted {jobs} SLURM job(s) of {slurm['processes']} worker(s) each, scheduler "
        f"{cluster.scheduler_address}; waiting up to {wait:.0f} s for the first worker "
        "(`squeue --me` shows the jobs)",
        highlight=False,
    )
    try:
        cluster.wait_for_workers(1, timeout=wait)
    except (TimeoutError, DaskTimeoutError):
        logs = slurm.get("log-directory") or "the slurm-JOBID.out files"
        raise ClusterError(
            f"no SLURM worker joined within {wait:.0f} s. If the jobs are still queued "
            "(`squeue --me`), raise --wait. If they ran and ended, read their logs in "
            f"{logs}: a worker needs the same Python with tokenmill installed (`python` in "
            "the config; default: the one running this command) and must reach the "
            f"scheduler at {cluster.scheduler_address} (`interface` in the config)."
        ) from None
