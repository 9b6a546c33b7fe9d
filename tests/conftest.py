"""Shared fixtures; the helpers behind them live in tmfixtures.py.

Dev dependencies: the `require` fixture imports one for a test (`require("kenlm")`). A missing
one skips the test locally but fails it when TOKENMILL_REQUIRE_DEV=1 (set by .ci/run), so a
broken install cannot turn CI green by skipping. Under the switch, `pytest.importorskip` skips
(in files that still use it) fail as well (docs/TESTING.md).
"""

from __future__ import annotations

import importlib
import os
import signal
from pathlib import Path

import pytest
from tmfixtures import make_corpus

REQUIRE_DEV = "TOKENMILL_REQUIRE_DEV"
# pytest-timeout: pyproject's `timeout` (300 s) is per test; a `slow` test without its own
# @pytest.mark.timeout gets this instead (the slow suite's budget is 30 min in all).
SLOW_TIMEOUT = 1200


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


def _required() -> bool:
    return os.environ.get(REQUIRE_DEV) == "1"


def _require(module: str, why: str = ""):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        error = e
    msg = f"{module} is not importable ({error}){f' ({why})' if why else ''}: "
    msg += "install the dev extra (pip install -e '.[dev]')"
    if _required():
        pytest.fail(f"{REQUIRE_DEV}=1 and {msg}", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def require():
    """require("module"[, why]) -> the module, or the test skipped (locally) / failed (under
    TOKENMILL_REQUIRE_DEV=1). Session-scoped so module-scoped fixtures can use it too."""
    return _require


def _import_skip(report) -> bool:
    """A skip that pytest.importorskip raised."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return "could not import" in reason


def _fail_import_skip(report) -> None:
    if _required() and report.skipped and _import_skip(report):
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE_DEV}=1 makes this import skip a failure: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    _fail_import_skip((yield).get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    _fail_import_skip((yield).get_result())


@pytest.fixture(scope="session")
def corpus_config(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(autouse=True)
def _default_sigint():
    """Every test starts with Python's own Ctrl-C handling, unblocked: what an earlier test
    left (importing dask_jobqueue sets SIGINT -> sys.exit()) must not change what the next
    one sees, nor what the processes it starts inherit."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    # Dask worker processes inherit this: keep their log noise out of test output.
    monkeypatch.setenv("DASK_LOGGING__DISTRIBUTED", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
