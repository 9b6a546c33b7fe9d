"""Fixtures for the trainer: a real `prepare` output of the bundled sample, and a small
hand-written shard set whose every token says where it came from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tokenmill.shards.megatron import ShardWriter


@pytest.fixture(scope="session")
def prepared(tmp_path_factory) -> Path:
    """OUT of `tokenmill prepare` on the bundled sample (c4, pile, oscar); returns the manifest."""
    from tokenmill.config import load_config
    from tokenmill.pipelines.prepare import prepare

    out = tmp_path_factory.mktemp("prepared")
    prepare(load_config(), out, workers=1, quiet=True)
    return out / "manifest.json"


def write_traceable(root: Path, docs: dict[str, list[int]], weights: dict[str, float]) -> Path:
    """Shards where token k of document d is d * 1000 + k (documents numbered across sources,
    in manifest order), two shards per source, int32; returns the manifest, in
    build_manifest's format."""
    shards, d = [], 0
    for source, lengths in docs.items():
        half = (len(lengths) + 1) // 2
        for i, part in enumerate([lengths[:half], lengths[half:]]):
            prefix = f"shards/{source}/{source}_{i:05d}"
            with ShardWriter(root / prefix, np.int32) as w:
                for n in part:
                    w.write(d * 1000 + np.arange(n))
                    d += 1
            shards.append(
                {"prefix": prefix, "source": source, "documents": len(part), "tokens": sum(part)}
            )
    manifest = {
        "version": 1,
        "tokenizer": {
            "path": "tokenizer.json",
            "vocab_size": 70000,
            "eod_token": "<|endoftext|>",
            "eod_id": 0,
            "pad_id": 1,
            "dtype": "int32",
        },
        "sources": {s: {"tokens": sum(n), "weight": weights[s]} for s, n in docs.items()},
        "shards": shards,
        "mixture": weights,
        "budget": None,
        "data_path": "",
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root / "manifest.json"


@pytest.fixture
def traceable(tmp_path) -> Path:
    rng = np.random.default_rng(7)
    docs = {
        "a": [int(n) for n in rng.integers(1, 90, size=40)],
        "b": [int(n) for n in rng.integers(1, 300, size=25)],
    }
    return write_traceable(tmp_path, docs, {"a": 0.75, "b": 0.25})
