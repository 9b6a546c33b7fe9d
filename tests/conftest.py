"""Shared fixtures; the helpers behind them live in tmfixtures.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tmfixtures import make_corpus


@pytest.fixture(scope="session")
def corpus_config(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    # Dask worker processes inherit this: keep their log noise out of test output.
    monkeypatch.setenv("DASK_LOGGING__DISTRIBUTED", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
