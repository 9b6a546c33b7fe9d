"""Set up a local Dask worker process before its first task (loaded as a Dask preload).

- SIGINT is ignored: a terminal's Ctrl-C goes to the whole process group, and only the
  client should act on it (it closes the cluster). Without this, every worker prints a
  KeyboardInterrupt traceback.
- Dask's logs in the worker are kept to `tokenmill.worker-log-level` (dask config, set by
  `executor.dask_client`: CRITICAL; ERROR when the client logs at DEBUG, i.e. `tokenmill -v`). What
  a worker would log at ERROR reaches the user another way: a task's error is re-raised on
  the client as `engine.TaskFailed` (one line; in full with -v), a lost worker as the
  client's error. The rest is the noise of a cluster going down after Ctrl-C ("Failed to
  communicate with scheduler during heartbeat" and its traceback, from every worker).
- Dask's "Compute Failed" block is dropped even then: the client prints that error itself.
"""

from __future__ import annotations

import contextlib
import logging
import signal


class _NoComputeFailed(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Compute Failed")


def dask_setup(worker) -> None:
    """Dask's preload hook, called in the worker process."""
    with contextlib.suppress(ValueError):  # only the main thread may set handlers
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    import dask

    level = str(dask.config.get("tokenmill.worker-log-level", "CRITICAL")).upper()
    logging.getLogger("distributed").setLevel(logging.getLevelName(level))
    logger = logging.getLogger("distributed.worker")
    if not any(isinstance(f, _NoComputeFailed) for f in logger.filters):
        logger.addFilter(_NoComputeFailed())
