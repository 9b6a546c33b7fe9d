"""Deduplication against an earlier prepared corpus (`dedup.against`): the index a run leaves
in OUT/dedup, lookups in it against Python sets, and a second run that drops exactly the
documents an independent reading finds in the first (xxh3-128 of a plainly normalized text;
word 5-gram Jaccard for the near copies)."""

from __future__ import annotations

import json
import os
import random
import re
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import xxhash
from tmfixtures import sample_docs

from tokenmill.config import load_config
from tokenmill.filters.against import AgainstError, DedupIndex, in_pairs, in_sorted
from tokenmill.pipelines.prepare import InputsChanged, prepare

pytestmark = pytest.mark.distributed


def test_lookups_equal_python_sets():
    rng = np.random.default_rng(0)
    values = np.unique(rng.integers(0, 1000, 300, dtype=np.uint64))
    queries = rng.integers(0, 1000, 500, dtype=np.uint64)
    assert in_sorted(values, queries).tolist() == [q in set(values.tolist()) for q in queries]
    assert in_sorted(values[:0], queries).tolist() == [False] * 500
    pairs = np.unique(rng.integers(0, 20, (200, 2), dtype=np.uint64), axis=0)
    hi, lo = rng.integers(0, 22, 400, dtype=np.uint64), rng.integers(0, 22, 400, dtype=np.uint64)
    have = {tuple(p) for p in pairs.tolist()}
    assert in_pairs(pairs, hi, lo).tolist() == [(h, w) in have for h, w in zip(hi, lo, strict=True)]


def plain_hash(text: str) -> tuple[int, int]:
    norm = " ".join(unicodedata.normalize("NFC", text).casefold().split())
    d = xxhash.xxh3_128_digest(norm.encode())
    return int.from_bytes(d[:8], "big"), int.from_bytes(d[8:], "big")


def shingles(text: str) -> set:
    w = re.findall(r"[^\W]+", unicodedata.normalize("NFC", text).casefold())
    return {tuple(w[i : i + 5]) for i in range(len(w) - 4)} or set(w)


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def corpus(root: Path, name: str, texts: list[str], extra: str = "") -> Path:
    (root / name).mkdir(parents=True)
    (root / name / "part.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    cfg = root / f"{name}.yaml"
    cfg.write_text(
        "sources:\n"
        f"  - {{name: web, format: jsonl, paths: ['{name}/*.jsonl']}}\n"
        "tokenizer: {train: {vocab_size: 500}}\n"
        "keep_removed: true\n" + extra
    )
    return cfg


def kept_texts(out: Path) -> list[str]:
    return [
        t
        for f in sorted((out / "work" / "docs").rglob("*.parquet"))
        for t in pq.read_table(f, columns=["text"]).column("text").to_pylist()
    ]


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    root = tmp_path_factory.mktemp("against")
    texts = [d["text"] for d in sample_docs("c4")[:80]]
    out = root / "out_a"
    prepare(load_config(corpus(root, "a", texts)), out, workers=1, quiet=True)
    return root, out, texts


def test_a_run_leaves_an_index_of_every_kept_document(first):
    root, out, _ = first
    meta = json.loads((out / "dedup" / "meta.json").read_text())
    kept = kept_texts(out)
    assert meta["documents"] == len(kept)
    index = DedupIndex(out)
    parts = [np.load(p) for p in sorted((out / "dedup" / "exact").glob("b*.npy"))]
    assert len(parts) == meta["buckets"]
    assert {tuple(r) for p in parts for r in p.tolist()} == {plain_hash(t) for t in kept}
    hi, lo = (np.array(x, np.uint64) for x in zip(*(plain_hash(t) for t in kept), strict=True))
    assert index.exact(hi, lo).all()
    assert not index.exact(hi + np.uint64(1), lo).any()


def test_a_second_run_drops_what_the_first_has(first, tmp_path):
    root, out_a, texts_a = first
    rng = random.Random(5)
    near = texts_a[10] + " Extra closing words here."
    exact = "  " + texts_a[5].replace(" ", "   ", 3) + "\n"  # the same after normalizing
    texts_b = [d["text"] for d in sample_docs("c4")[60:140]]
    texts_b[rng.randrange(40, 80)] = near
    texts_b[rng.randrange(40, 80)] = exact
    cfg = corpus(root, "b", texts_b, f"dedup: {{against: [{out_a}]}}\n")
    out_b = tmp_path / "out_b"
    stats = prepare(load_config(cfg), out_b, workers=2, quiet=True)

    hashes_a = {plain_hash(t) for t in kept_texts(out_a)}
    sh_a = [shingles(t) for t in kept_texts(out_a)]
    passed_b = kept_texts(out_b)  # what process kept in B, before any dedup
    want_exact = [t for t in passed_b if plain_hash(t) in hashes_a]
    best = {t: max(jaccard(shingles(t), s) for s in sh_a) for t in passed_b}
    assert exact in want_exact and near not in want_exact and best[near] > 0.9
    removed = {}
    for f in (out_b / "removed").rglob("*.dedup.parquet"):
        t = pq.read_table(f).to_pydict()
        for text, reason, kept_id in zip(t["text"], t["reason"], t["kept_id"], strict=True):
            removed[text] = (reason, kept_id)
    against = {t for t, (r, _) in removed.items() if r == "dedup:against"}
    assert set(want_exact) <= against and near in against
    assert all(best[t] >= 0.5 for t in against)  # no far document is taken for a copy
    assert all(removed[t][1] is None for t in against)  # the old corpus names no document
    assert all(best[t] < 0.5 for t in passed_b if t not in removed)  # what stays is new
    assert stats["totals"]["removed"]["dedup:against"] == len(against)
    assert stats["stages"]["against"]["exact"] == len(want_exact)
    s = stats["sources"]["web"]
    assert s["documents_in"] == s["documents_kept"] + sum(s["removed"].values())

    # the earlier index is an input: rewritten, the rerun is refused
    meta = out_a / "dedup" / "meta.json"
    st = meta.stat()
    os.utime(meta, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(InputsChanged, match=r"dedup/meta.json"):
        prepare(load_config(cfg), out_b, workers=1, quiet=True)
    os.utime(meta, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_an_index_made_otherwise_is_refused(first, tmp_path):
    root, out_a, texts = first
    cfg = corpus(root, "c", texts[:5], f"dedup: {{against: [{out_a}], minhash: {{ngram: 4}}}}\n")
    with pytest.raises(AgainstError, match=r"other settings \(minhash: .*'ngram': 5"):
        prepare(load_config(cfg), tmp_path / "o1", workers=1, quiet=True)
    cfg = corpus(root, "d", texts[:5], f"dedup: {{against: [{tmp_path}]}}\n")
    with pytest.raises(AgainstError, match=r"no deduplication index"):
        prepare(load_config(cfg), tmp_path / "o2", workers=1, quiet=True)
