"""Set up a local Dask worker process before its first task (loaded as a Dask preload).

- SIGINT is ignored: a terminal's Ctrl-C goes to the whole process group, and only the
  client should act on it (it closes the cluster). Without this, every worker prints a
  KeyboardInterrupt traceback.
- Dask's "Compute Failed" log block is dropped: the client re-raises the task's error as
  `engine.TaskFailed`, which the command line prints as one line (and in full with -v).
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
    logger = logging.getLogger("distributed.worker")
    if not any(isinstance(f, _NoComputeFailed) for f in logger.filters):
        logger.addFilter(_NoComputeFailed())
