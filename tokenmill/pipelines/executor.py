"""Where parallel work runs: every parallel step (a prepare stage, the downloads, a raw stats
scan) is a list of `Call`s given to `run_calls`, on a client from `dask_client`.

    calls = [Call(str(i), scan_file, (inp, settings)) for i, inp in enumerate(inputs)]
    with dask_client(workers=4) as client:
        results = run_calls(client, "scan", calls, on_result=show_progress)

`run_calls` submits the calls, hands each result to `on_result` as it finishes (the step's
progress display) and returns the results in call order. A call that raises goes to
`on_error`, which raises to stop the step (by default the call's own error) or returns to let
the other calls finish. Whatever stops the step (that error, Ctrl-C, an error in a callback)
cancels the calls not yet finished. Calls may send events to the client while they run
(`event_sender` on the worker, `events=(topic, handler)` here): a download's bytes. With no
client the calls run here, one after another: a small input is not worth starting a cluster.

`dask_client` gives a client on a running cluster or on a new LocalCluster of single-threaded
worker processes that ignore SIGINT: Ctrl-C (sent by a terminal to the whole process group)
interrupts the client only, which cancels the step and closes the cluster. A Ctrl-C is also
latched and checked between calls, so one that Python delivered where it was swallowed (a
finalizer) still stops the run. The shutdown noise of a cluster closed that way, or by an
error, is dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """`fn(*args)`, run on a worker; `key` names it in the step (errors, Dask's task keys)."""

    key: str
    fn: Callable[..., Any]
    args: tuple = ()


def _reraise(call: Call, error: Exception) -> None:
    raise error


# Set by Ctrl-C while a `dask_client` is open. Python raises KeyboardInterrupt wherever the
# main thread happens to be, and where that is a finalizer (`__del__`, a weakref callback) or
# a library's catch-all, the exception is swallowed and the run would go on to its end; the
# latch is checked again between calls, so a Ctrl-C is never lost.
_INTERRUPTED = threading.Event()


def _on_sigint(signum, frame) -> None:
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def _check_interrupted() -> None:
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupt_latch() -> Iterator[None]:
    """Ctrl-C sets `_INTERRUPTED` (and raises as usual) while the block runs, when this is
    the main thread and SIGINT has Python's default handler; the handler is restored after."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    _INTERRUPTED.clear()
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _INTERRUPTED.clear()


def run_calls(
    client: Any,
    step: str,
    calls: Sequence[Call],
    *,
    retries: int = 0,
    on_result: Callable[[Call, Any], None] | None = None,
    on_error: Callable[[Call, Exception], None] = _reraise,
    events: tuple[str, Callable[[Any], None]] | None = None,
) -> list[Any]:
    """Run `calls` on `client` (here, in order, when it is None) and return their results in
    call order (None for a call whose error `on_error` let pass). `retries`: Dask's, for a
    call whose worker died. `events`: (topic, handler) for what the calls send with
    `event_sender(topic)` while the step runs."""
    if client is None:
        return _run_here(calls, on_result, on_error)
    from distributed import as_completed

    results: list[Any] = [None] * len(calls)
    if events is not None:
        client.subscribe_topic(*events)
    futures = {}
    try:
        _check_interrupted()
        for i, call in enumerate(calls):
            # unique: a key Dask still holds from an earlier step would return its result
            key = f"{step}-{call.key}-{uuid.uuid4().hex[:6]}"
            fut = client.submit(call.fn, *call.args, key=key, pure=False, retries=retries)
            futures[fut] = i
        for fut in as_completed(futures):
            _check_interrupted()
            i = futures[fut]
            try:
                results[i] = fut.result()  # re-raises the call's error, with its traceback
            except Exception as e:
                on_error(calls[i], e)
                continue
            if on_result is not None:
                on_result(calls[i], results[i])
    except BaseException:
        with contextlib.suppress(Exception):  # a cluster going down may refuse; it drops them
            client.cancel(list(futures))
        raise
    finally:
        if events is not None:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(events[0])
    return results


def _run_here(calls, on_result, on_error) -> list[Any]:
    results: list[Any] = [None] * len(calls)
    for i, call in enumerate(calls):
        try:
            results[i] = call.fn(*call.args)
        except Exception as e:
            on_error(call, e)
            continue
        if on_result is not None:
            on_result(call, results[i])
    return results


def event_sender(topic: str) -> Callable[[Any], None] | None:
    """In a call running on a Dask worker: a function that sends a message on `topic` to the
    client (`run_calls(events=...)`); never raises, so progress cannot fail a call. None
    where the call runs outside a worker."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None

    def send(msg: Any) -> None:
        with contextlib.suppress(Exception):
            worker.log_event(topic, msg)

    return send


# ---- clusters -------------------------------------------------------------------------------


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Client on a running cluster (`scheduler`) or on a new LocalCluster of `workers`
    single-threaded worker processes (default: one per CPU).

    For SLURM, start the cluster with `engine.slurm_cluster` and pass its `scheduler_address`.
    """
    from distributed import Client

    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise ValueError(f"workers: must be a whole number (got {workers!r})")
    if workers is not None and workers < 1:
        raise ValueError(f"workers: must be >= 1 (got {workers})")
    quiet_dask_logs()
    levels: dict[str, int] = {}
    try:
        if scheduler:
            with _interrupt_latch(), Client(scheduler) as client, _quiet_on_error(levels):
                yield client
            return
        n = workers or os.cpu_count() or 1
        import dask

        # Dask's statistical profiler samples every worker's stack 100 times a second; no
        # one reads it here (there is no dashboard), so its CPU goes to the pipeline instead.
        settings = {
            "distributed.worker.profile.enabled": False,
            "distributed.nanny.pre-spawn-environ": worker_environ(n),
            "distributed.worker.preload": [WORKER_SETUP],
            # the workers' own errors only with -v (worker_setup)
            "tokenmill.worker-log-level": "ERROR"
            if log.isEnabledFor(logging.DEBUG)
            else "CRITICAL",
        }
        with (
            _interrupt_latch(),
            dask.config.set(settings),
            _local_cluster(n) as cluster,
            Client(cluster) as client,
            _quiet_on_error(levels),
        ):
            yield client
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


# Run in every local worker process before its first task (a Dask preload module).
WORKER_SETUP = "tokenmill.pipelines.worker_setup"


def _local_cluster(n: int):
    """A LocalCluster of `n` single-threaded worker processes, spawned with SIGINT ignored:
    they keep it ignored (a SIG_IGN survives exec, and Python leaves it so), so a terminal's
    Ctrl-C, sent to the whole process group, interrupts the client alone, which then closes
    the cluster. (Workers a nanny restarts later get the same from WORKER_SETUP.)"""
    from distributed import LocalCluster

    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        # ":0": any free port for the scheduler's web server, not 8787 with a warning when
        # another cluster has it
        return LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
    finally:
        if main:
            signal.signal(signal.SIGINT, old if old is not None else signal.default_int_handler)


@contextlib.contextmanager
def _quiet_on_error(levels: dict[str, int]) -> Iterator[None]:
    """A cluster closed by an exception (Ctrl-C, a failed task) logs connection errors and
    cancelled coroutines while it goes down: noise on top of the one message that matters.
    Silences Dask's loggers until the cluster is closed (the caller restores `levels`)."""
    try:
        yield
    except BaseException:
        for name in list(logging.root.manager.loggerDict):
            if name == "distributed" or name.startswith(("distributed.", "tornado")):
                logger = logging.getLogger(name)
                levels.setdefault(name, logger.level)
                logger.setLevel(logging.CRITICAL + 1)
        raise


def worker_environ(workers: int) -> dict:
    """Environment variables for `workers` local worker processes: Dask's own (one thread
    for OpenMP / MKL / OpenBLAS) and, unless set already, RAYON_NUM_THREADS, so that the
    workers' tokenizers threads together use the machine's cores once. With the library's
    default (a thread per core in every worker) they contend and spin: a 2-worker run of
    benchmarks/end_to_end.py spent 16.5 CPU s in them, against 13.0 s with one each."""
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    if "RAYON_NUM_THREADS" not in os.environ:
        env["RAYON_NUM_THREADS"] = max(1, (os.cpu_count() or 1) // workers)
    return env


def quiet_dask_logs() -> None:
    """Dask's client-side loggers at ERROR: its INFO lines are not the user's business."""
    for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.ERROR)
