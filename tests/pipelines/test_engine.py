"""Local Dask workers: the environment they start with."""

from __future__ import annotations

import os

from tokenmill.pipelines.engine import dask_client


def _worker_env(name: str) -> list:
    with dask_client(workers=2) as client:
        return sorted(client.run(os.environ.get, name).values(), key=str)


def test_workers_share_the_cores_among_their_tokenizer_threads(monkeypatch):
    monkeypatch.delenv("RAYON_NUM_THREADS", raising=False)
    want = str(max(1, (os.cpu_count() or 1) // 2))
    assert _worker_env("RAYON_NUM_THREADS") == [want, want]
    assert _worker_env("OMP_NUM_THREADS") == ["1", "1"]  # Dask's own settings are kept


def test_a_users_rayon_setting_wins(monkeypatch):
    monkeypatch.setenv("RAYON_NUM_THREADS", "3")
    assert _worker_env("RAYON_NUM_THREADS") == ["3", "3"]
