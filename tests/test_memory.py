"""Worker memory: pyarrow's pandas probe is deferred without breaking pandas conversions."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = """
import sys
{pre}
import pyarrow as pa
from tokenmill.memory import defer_pandas_for_arrow
defer_pandas_for_arrow()
t = pa.table({{"a": [1, 2], "s": ["x", None]}})
after_lists = "pandas" in sys.modules
df = t.to_pandas()
back = pa.Table.from_pandas(df, preserve_index=False)
print(after_lists, type(df).__name__, back.to_pylist() == t.to_pylist(), "pandas" in sys.modules)
"""


def _run(pre: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", CODE.format(pre=pre)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_arrow_from_lists_leaves_pandas_unimported_and_conversions_still_work():
    assert _run("") == "False DataFrame True True"


def test_no_op_when_pandas_is_already_imported():
    assert _run("import pandas") == "True DataFrame True True"


def test_heap_trims_are_throttled_when_asked():
    from tokenmill.memory import release_free_memory

    if not release_free_memory():
        pytest.skip("not glibc: nothing to trim")
    assert release_free_memory(min_interval_s=3600) is False  # ran a moment ago
    assert release_free_memory() is True  # unthrottled calls always run


def test_the_peak_rss_restarts_from_the_current_size_when_reset():
    from tokenmill.memory import peak_rss, reset_peak_rss

    if not reset_peak_rss():
        pytest.skip("no /proc/self/clear_refs")
    code = """
from tokenmill.memory import peak_rss, reset_peak_rss
def rss():
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmRSS:"))
block = bytearray(200 * 10**6); del block
before = peak_rss()
reset_peak_rss()
after = peak_rss()
print(before - rss() >= 190e6, abs(after - rss()) < 20e6)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
    assert peak_rss() > 0
