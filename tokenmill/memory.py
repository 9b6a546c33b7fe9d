"""Process memory: what the workers and the driver give back or never take.

Measured on benchmarks/end_to_end.py (benchmarks/RESULTS.md): together with spaCy imported
without its command line, these took a 2-worker run from 642 to 535 MB of peak PSS."""

from __future__ import annotations

import time
from typing import Any


def release_free_memory(min_interval_s: float = 0.0) -> bool:
    """Return the C heap's free pages to the OS (glibc's malloc_trim); a no-op elsewhere.
    Whether it ran: not when it last ran under `min_interval_s` seconds ago.

    Libraries that parse or build big structures in C (tokenizers, Arrow) free them into
    glibc's heap, which keeps the pages mapped and counted against the process. A trim walks
    the whole heap (~1 ms a call measured in a worker), so after each of many small tasks
    the engine asks at most once a second: the heap reuses what a task freed for the next."""
    global _malloc_trim, _last_trim
    if _malloc_trim is None:
        import ctypes
        import ctypes.util

        try:
            _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            _malloc_trim = False
    now = time.monotonic()
    if not _malloc_trim or now - _last_trim < min_interval_s:
        return False
    _malloc_trim(0)
    _last_trim = time.monotonic()
    return True


_last_trim = float("-inf")
_malloc_trim: Any = None


def reset_peak_rss() -> bool:
    """Restart this process's peak resident set size (Linux's VmHWM) from its current size,
    so that `peak_rss` then measures what comes next. Whether it could: not outside Linux,
    nor where /proc/self/clear_refs is not writable."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # 5: the peak RSS only (1-4 would clear pages' referenced bits)
    except OSError:
        return False
    return True


def peak_rss() -> int:
    """This process's peak resident set size in bytes, since it started or since the last
    `reset_peak_rss`; 0 where /proc does not say."""
    return status_bytes("VmHWM")


def status_bytes(field: str, pid: int | str = "self") -> int:
    """A size field of /proc/PID/status (VmRSS, VmHWM, ...) in bytes; 0 where there is none
    (not Linux, or the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class _NoPandasFinder:
    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("pandas import deferred by tokenmill", name=name)
        return None


_arrow_probe_done = False


def defer_pandas_for_arrow() -> None:
    """Keep pyarrow from importing pandas (~30 MB a process) just to ask whether an object is
    a pandas one, which it does on the first `pa.array`/`pa.table` from Python lists.

    That probe is made once, here, while `import pandas` fails, so pyarrow takes lists as
    lists from then on. Explicit conversions (`Table.to_pandas`, `Table.from_pandas`) still
    import pandas and work, so Dask dataframes and `datasets` are unaffected. A no-op when
    pandas is already imported."""
    global _arrow_probe_done
    if _arrow_probe_done:
        return
    _arrow_probe_done = True
    import sys

    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    finder = _NoPandasFinder()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])  # makes pyarrow's one pandas probe
    finally:
        sys.meta_path.remove(finder)
