"""Stage `verify` (near dedup with `dedup.minhash.verify`): the candidate edges it keeps are
those whose documents' true word-shingle Jaccard reaches the threshold, checked against
Python sets of word n-grams (`shingle_set`, itself checked against a plain reading in
tests/filters/test_minhash_parts.py)."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tmfixtures import sample_docs, verify_here

from tokenmill.filters.components import EDGE_DTYPE
from tokenmill.filters.minhash import shingle_set, true_jaccard
from tokenmill.pipelines.stages.near import array_jaccard, shingle_arrays, verify_edges


def _variants(rng: random.Random) -> list[tuple[str, str]]:
    """(text, lang): real documents, and copies of them changed by a few words or many."""
    en = [d["text"] for d in sample_docs("c4")[:40]]
    zh = [
        d["content"]
        for d in sample_docs("oscar")
        if d["metadata"]["identification"]["label"] == "zh"
    ][:6]
    assert len(en) == 40 and len(zh) == 6
    out = []
    for text in en[:12]:
        words = text.split()
        out.append((text, "en"))
        for share in (0.02, 0.1, 0.3):  # words replaced: Jaccard ~0.9, ~0.6, ~0.2
            w = list(words)
            for i in rng.sample(range(len(w)), max(1, int(share * len(w)))):
                w[i] = f"zz{rng.randrange(10**6)}"
            out.append((" ".join(w), "en"))
    for text in zh:
        out.append((text, "zh"))
        out.append((text[: int(len(text) * 0.9)], "zh"))  # no spaces: characters are words
    out += [("one two three", "en"), ("one two four", "en"), ("...", "en"), ("...", "en"),
            ("!!", "en"), ("", "en")]  # fmt: skip
    return out


def test_verify_keeps_exactly_the_candidates_at_or_above_the_threshold(tmp_path):
    rng = random.Random(7)
    docs = _variants(rng)
    # two partitions (ordinals 2 and 5), the rows shuffled between them
    order = list(range(len(docs)))
    rng.shuffle(order)
    half = len(order) // 2
    where, files = {}, {}
    for ordinal, idx in ((2, order[:half]), (5, order[half:])):
        path = tmp_path / f"docs{ordinal}.parquet"
        pq.write_table(
            pa.table({"text": [docs[i][0] for i in idx], "lang": [docs[i][1] for i in idx]}),
            path,
            row_group_size=7,
        )
        files[ordinal] = str(path)
        for row, i in enumerate(idx):
            where[i] = (ordinal << 32) | row
    # candidates: every pair within a family of variants, and random pairs
    pairs = {(i, j) for i in range(len(docs)) for j in range(i + 1, min(i + 4, len(docs)))}
    pairs |= {tuple(sorted(rng.sample(range(len(docs)), 2))) for _ in range(60)}
    pairs = sorted(pairs)
    edges = np.array([(where[i], where[j]) for i, j in pairs], dtype=EDGE_DTYPE)
    np.save(tmp_path / "e.npy", edges)
    sets = {i: shingle_set(t, lang, 5) for i, (t, lang) in enumerate(docs)}
    exact = [true_jaccard(sets[i], sets[j]) for i, j in pairs]
    for threshold in (0.8, 0.5):
        (counts,) = verify_here([tmp_path / "e.npy"], files, threshold, 5, tmp_path)
        want = edges[np.array([j >= threshold for j in exact])]
        got = np.load(tmp_path / "e.verified.npy")
        assert got.dtype == EDGE_DTYPE
        assert got.tolist() == want.tolist()
        for chunk in (1, 4000):  # runs of one edge each; of a few: the same edges kept
            verify_edges(str(tmp_path / "e.npy"), str(tmp_path / "shingles"), threshold,
                         str(tmp_path / "c.npy"), chunk_bytes=chunk)  # fmt: skip
            assert np.load(tmp_path / "c.npy").tolist() == want.tolist()
        assert counts == {
            "candidates": len(edges),
            "edges": len(want),
            "rejected": len(edges) - len(want),
            "wall_s": 0.0,
        }
    # the pairs span the whole range, so both thresholds decide real cases
    assert min(exact) < 0.3 and max(exact) == 1.0 and any(0.5 <= j < 0.8 for j in exact)


def test_shingle_arrays_give_the_jaccard_of_the_word_shingle_sets():
    rng = random.Random(3)
    docs = _variants(rng)
    arrays = shingle_arrays([t for t, _ in docs], [lang for _, lang in docs], 5)
    assert len(arrays) == len(docs)
    for (t, lang), a in zip(docs, arrays, strict=True):
        assert a.dtype == np.uint64 and np.all(np.diff(a.astype(np.float64)) > 0)
        assert len(a) == len(shingle_set(t, lang, 5))  # one hash per distinct shingle
    for _ in range(300):
        i, j = rng.randrange(len(docs)), rng.randrange(len(docs))
        (ti, li), (tj, lj) = docs[i], docs[j]
        assert array_jaccard(arrays[i], arrays[j]) == true_jaccard(
            shingle_set(ti, li, 5), shingle_set(tj, lj, 5)
        ), (ti[:40], tj[:40])
    assert array_jaccard(np.empty(0, np.uint64), np.empty(0, np.uint64)) == 1.0
    assert shingle_arrays([], [], 5) == []


def test_each_partition_hashes_the_documents_edges_name_once_and_only_those(tmp_path):
    """verify.shingles: a document named by edges of several edge files is hashed once; the
    rows no edge names are not; a partition no edge names gets empty files; each document's
    hashes are its shingle_arrays, in row order with their offsets."""
    from tokenmill.fsio import write_json
    from tokenmill.pipelines.stages.near import edge_ends, partition_shingles

    texts = [d["text"] for d in sample_docs("c4")[:30]]
    pq.write_table(pa.table({"text": texts, "lang": ["en"] * 30}), tmp_path / "d.parquet",
                   row_group_size=4)  # fmt: skip
    key = lambda o, r: (o << 32) | r  # noqa: E731
    e1 = np.array([(key(3, 2), key(3, 9)), (key(3, 2), key(4, 1))], dtype=EDGE_DTYPE)
    e2 = np.array([(key(3, 9), key(3, 17)), (key(1, 5), key(3, 2))], dtype=EDGE_DTYPE)
    ends = []
    for i, e in enumerate((e1, e2)):
        np.save(tmp_path / f"e{i}.npy", e)
        ends.append(str(tmp_path / f"e{i}.ends.npy"))
        counts = edge_ends(str(tmp_path / f"e{i}.npy"), ends[-1])
        assert counts["edges"] == 2 and counts["ends"] == len(set(e["u"]) | set(e["v"]))
    assert np.load(ends[1]).tolist() == sorted({key(3, 9), key(3, 17), key(1, 5), key(3, 2)})
    write_json(tmp_path / "ends.json", ends)
    c = partition_shingles(3, str(tmp_path / "d.parquet"), str(tmp_path / "ends.json"), 5,
                           str(tmp_path / "p3"))  # fmt: skip
    assert (c["partition"], c["documents"]) == (3, 3)  # rows 2, 9 and 17, each once
    rows, offs = np.load(tmp_path / "p3.rows.npy"), np.load(tmp_path / "p3.offs.npy")
    assert rows.tolist() == [2, 9, 17]
    sh = np.fromfile(tmp_path / "p3.sh", dtype=np.uint64)
    want = shingle_arrays([texts[r] for r in (2, 9, 17)], ["en"] * 3, 5)
    assert offs.tolist() == [0, *np.cumsum([len(w) for w in want]).tolist()]
    for i, w in enumerate(want):
        assert sh[offs[i] : offs[i + 1]].tolist() == w.tolist()
    assert c["shingles"] == len(sh) == offs[-1]
    c = partition_shingles(
        2, str(tmp_path / "none.parquet"), str(tmp_path / "ends.json"), 5, str(tmp_path / "p2")
    )  # fmt: skip  (not read: no row named)
    assert (c["documents"], c["shingles"]) == (0, 0)
    assert np.load(tmp_path / "p2.rows.npy").size == 0 and (tmp_path / "p2.sh").stat().st_size == 0


def test_a_pair_whose_shingles_are_missing_is_an_error_naming_the_file(tmp_path):
    """A shingle file that lacks a row an edge names (stale) fails the task, never a guess."""
    import pytest

    texts = [d["text"] for d in sample_docs("c4")[:4]]
    pq.write_table(pa.table({"text": texts, "lang": ["en"] * 4}), tmp_path / "d.parquet")
    np.save(tmp_path / "e.npy", np.array([(0, 1)], dtype=EDGE_DTYPE))
    verify_here([tmp_path / "e.npy"], {0: str(tmp_path / "d.parquet")}, 0.8, 5, tmp_path)
    np.save(tmp_path / "e.npy", np.array([(0, 3)], dtype=EDGE_DTYPE))  # row 3: not hashed
    with pytest.raises(KeyError, match=r"p000000: no shingles for row 3"):
        verify_edges(str(tmp_path / "e.npy"), str(tmp_path / "shingles"), 0.8,
                     str(tmp_path / "v.npy"))  # fmt: skip
