"""A real `prepare` output of the bundled sample shared by the shard-integrity tests, copied
per test (without OUT/work) so each can damage its own copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prepared_out(tmp_path_factory) -> Path:
    from tokenmill.config import load_config
    from tokenmill.pipelines.prepare import prepare

    out = tmp_path_factory.mktemp("shards-prepared") / "out"
    prepare(load_config(), out, workers=1, quiet=True)
    return out


@pytest.fixture
def out_copy(prepared_out, tmp_path) -> Path:
    dst = tmp_path / "out"
    shutil.copytree(prepared_out, dst, ignore=shutil.ignore_patterns("work"))
    return dst
