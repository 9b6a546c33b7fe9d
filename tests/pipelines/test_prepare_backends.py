"""`prepare` with tiktoken's encoder (tokenizer.backend auto, the default) and with HF
tokenizers forced (backend hf): byte-identical shards, and stats.json says which encoder made
each partition. (Kept out of tests/tokenize/, which mutation testing runs per mutant: a
pipeline run per mutant would be too slow, docs/TESTING.md.)"""

from __future__ import annotations

import json

import pytest
from tmfixtures import make_corpus

from tokenmill.config import load_config
from tokenmill.pipelines.prepare import prepare

pytestmark = [pytest.mark.distributed, pytest.mark.slow]  # a prepare run each way: ~20 s


def _files(out) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted((out / "shards").rglob("*"))
        if p.is_file()
    }


def test_shards_are_byte_identical_with_tiktoken_and_with_hf(tmp_path):
    config = make_corpus(tmp_path / "corpus", n_per_file=20)
    stats, shards = {}, {}
    for backend in ("auto", "hf"):
        cfg = load_config(config)
        cfg.tokenizer.backend = backend
        out = tmp_path / backend
        stats[backend] = prepare(cfg, out, workers=1, quiet=True)
        shards[backend] = _files(out)
        written = json.loads((out / "stats.json").read_text())["stages"]["tokenize"]
        assert written["encoders"] == stats[backend]["stages"]["tokenize"]["encoders"]
    assert len(shards["auto"]) >= 3 * 3  # .bin, .idx, .docs.parquet of three sources
    assert shards["auto"] == shards["hf"]
    parts = stats["auto"]["stages"]["tokenize"]["tasks"]
    assert parts >= 6
    assert stats["auto"]["stages"]["tokenize"]["encoders"] == {
        "partitions": {"tiktoken": parts},
        "reasons": {},
        "hf_documents": 0,
    }
    assert stats["hf"]["stages"]["tokenize"]["encoders"] == {
        "partitions": {"hf": parts},
        "reasons": {"tokenizer.backend is hf": parts},
        "hf_documents": 0,
    }
    assert stats["auto"]["totals"] == stats["hf"]["totals"]
