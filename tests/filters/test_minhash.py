"""Near dedup on planted duplicates in real text: recall, false merges, components on Dask."""

from __future__ import annotations

import collections
import os
import random
import re
import unicodedata

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tmfixtures import sample_docs

from tokenmill.filters import minhash
from tokenmill.filters.components import (
    EDGE_DTYPE,
    cluster_sizes,
    components_local,
    connected_components,
    save_removed,
)
from tokenmill.filters.minhash import LSH, near_edges, optimal_bands, signatures, words_of
from tokenmill.filters.quality import NO_SPACE_LANGS


def shingles(text: str, n: int = 5) -> set:
    words = [w for w in re.split(r"\W+", text.casefold()) if w]
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)} or set(words)


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def perturb(text: str, frac: float, rng: random.Random) -> str:
    words = text.split(" ")
    for i in range(len(words)):
        if rng.random() < frac:
            words[i] = f"w{rng.randrange(10**6)}"
    return " ".join(words)


def _docs(min_words=80):
    texts = [r["text"] for r in sample_docs("c4") + sample_docs("pile")]
    texts += [r["content"] for r in sample_docs("oscar")]
    return [t for t in texts if len(t.split()) >= min_words]


def test_bands_match_published_choices():
    # equal weights reproduce datasketch / RedPajama-v2's 9 x 13 for 0.8 and 128 permutations
    assert optimal_bands(0.8, 128, 0.5, 0.5) == (9, 13)
    b, r = optimal_bands(0.7, 112)
    assert b * r <= 112


@pytest.mark.parametrize("weights", [(0.1, 0.9), (0.5, 0.5), (0.3, 0.7)])
def test_bands_equal_datasketchs_optimal_parameters(require, weights):
    """datasketch's search (scipy's quad for the areas; ours integrates on a grid) is the
    oracle, for our default 1:9 weights (14 x 9 at 0.8 and 128 permutations) and others."""
    optimal_param = require("datasketch.lsh", "the reference bands x rows search")._optimal_param
    assert optimal_bands(0.8, 128) == optimal_param(0.8, 128, 0.1, 0.9) == (14, 9)
    for threshold in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9):
        for num_perm in (64, 112, 128, 256):
            want = tuple(optimal_param(threshold, num_perm, *weights))
            assert optimal_bands(threshold, num_perm, *weights) == want, (threshold, num_perm)


def test_signature_agreement_estimates_jaccard():
    rng = random.Random(0)
    base = _docs()[:150]
    pairs = [(t, perturb(t, 0.03, rng)) for t in base]
    a = signatures([x for x, _ in pairs], ["en"] * len(pairs))
    b = signatures([y for _, y in pairs], ["en"] * len(pairs))
    est = (a == b).mean(axis=1)
    true = np.array([jaccard(x, y) for x, y in pairs])
    assert np.mean(np.abs(est - true)) < 0.05


def _candidate_pairs(texts, langs):
    lsh = LSH(threshold=0.8)
    rec = lsh.records(texts, langs, np.arange(len(texts)))
    edges = near_edges(rec)
    g = nx.Graph()
    g.add_edges_from(zip(edges["u"].tolist(), edges["v"].tolist(), strict=True))
    return g


def test_planted_near_duplicates_recall_and_false_merges():
    rng = random.Random(1)
    base = _docs()
    texts, planted = list(base), []
    for i, t in enumerate(base[:300]):
        copy = perturb(t, rng.choice([0.01, 0.02, 0.03]), rng)
        planted.append((i, len(texts)))
        texts.append(copy)
    g = _candidate_pairs(texts, ["xx"] * len(texts))
    comp = {n: k for k, c in enumerate(nx.connected_components(g)) for n in c}

    def merged(i, j):
        return i in comp and j in comp and comp[i] == comp[j]

    high = [(i, j) for i, j in planted if jaccard(texts[i], texts[j]) >= 0.85]
    assert len(high) > 100
    recall = sum(merged(i, j) for i, j in high) / len(high)
    assert recall >= 0.95, recall
    # pairs of unrelated real documents with Jaccard <= 0.5 are (almost) never merged
    low = [
        (i, j)
        for i in range(0, 400)
        for j in range(i + 1, 400, 7)
        if jaccard(texts[i], texts[j]) <= 0.5
    ]
    false = sum(merged(i, j) for i, j in low) / len(low)
    assert false < 0.01, false


def _edge_files(tmp_path, rng, nodes: int, per_file: int, chain: bool = False):
    """Three edge files of random edges (the first a path 3000 - ... - 3099 with `chain`),
    and the same graph in networkx."""
    g = nx.Graph()
    files = []
    for f in range(3):
        u, v = rng.integers(0, nodes, per_file), rng.integers(0, nodes, per_file)
        if chain and f == 0:  # a long diameter: several rounds
            u, v = np.arange(3001, 3100), np.arange(3000, 3099)
        keep = u != v
        e = np.empty(int(keep.sum()), EDGE_DTYPE)
        e["u"], e["v"] = np.maximum(u, v)[keep], np.minimum(u, v)[keep]
        g.add_edges_from(zip(e["u"].tolist(), e["v"].tolist(), strict=True))
        np.save(tmp_path / f"e{f}.npy", e)
        files.append(str(tmp_path / f"e{f}.npy"))
    return g, files


def _assert_matches_networkx(g, got: dict, removed: list[str], sizes: dict) -> None:
    expected = {n: min(c) for c in nx.connected_components(g) for n in c}
    assert got == expected
    gone = np.sort(np.concatenate([np.load(p) for p in removed]))
    assert gone.tolist() == sorted(n for n, lab in expected.items() if n != lab)
    want = {}
    for c in nx.connected_components(g):
        want[str(len(c))] = want.get(str(len(c)), 0) + 1
    assert sizes == dict(sorted(want.items(), key=lambda x: int(x[0])))


def test_components_on_dask_match_networkx(tmp_path):
    from distributed import Client, LocalCluster

    g, files = _edge_files(tmp_path, np.random.default_rng(0), 500, 120)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        labels = connected_components(client, files)
        got = labels.compute()["label"].to_dict()
        removed = save_removed(labels, str(tmp_path / "removed"))
        sizes = cluster_sizes(labels)
    _assert_matches_networkx(g, got, removed, sizes)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_local_components_match_networkx(tmp_path, seed):
    """The in-process path gives the labels, removals and sizes the cluster path gives: the
    smallest id of each networkx component. Long chains need several rounds."""
    g, files = _edge_files(tmp_path, np.random.default_rng(seed), 2000, 600, chain=True)
    rounds = []
    labels = components_local(files, rounds=rounds)
    got = dict(zip(labels.node.tolist(), labels.label.tolist(), strict=True))
    assert rounds[-1] == 0 and len(rounds) > 2
    removed = save_removed(labels, str(tmp_path / "removed"))
    _assert_matches_networkx(g, got, removed, cluster_sizes(labels))


def test_a_small_graph_is_solved_in_one_task_on_a_worker(tmp_path):
    """solve_local runs where Dask puts it (the process that runs `prepare` only counts the
    edges) and gives networkx's components; the one-task size follows the worker's memory."""
    from distributed import Client, LocalCluster

    from tokenmill.filters.components import (
        LOCAL_BYTES_PER_EDGE,
        LOCAL_MAX_EDGES,
        local_edge_limit,
        solve_local,
    )

    g, files = _edge_files(tmp_path, np.random.default_rng(5), 1500, 400, chain=True)
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        got = client.submit(solve_local, files, str(tmp_path / "removed"), pure=False).result()
        worker_pid = client.run(os.getpid)
    assert os.getpid() not in worker_pid.values()
    assert got["rounds"][-1] == 0
    removed = got["files"]
    assert removed == [str(tmp_path / "removed" / "removed_00000.npy")]
    gone = np.load(removed[0])
    kept = np.load(removed[0][:-4] + ".kept.npy")
    labels = {int(n): int(k) for n, k in zip(gone, kept, strict=True)}
    for comp in nx.connected_components(g):
        low = min(comp)
        labels.setdefault(low, low)
        assert all(labels.get(n, n) == low for n in comp)
    assert got["cluster_sizes"] == {
        str(k): v
        for k, v in sorted(collections.Counter(len(c) for c in nx.connected_components(g)).items())
    }
    # half the smallest worker's memory at LOCAL_BYTES_PER_EDGE, capped; no limit: the cap
    assert local_edge_limit(2 * 2**30) == 2**30 // LOCAL_BYTES_PER_EDGE == 7_158_278
    assert local_edge_limit(None) == local_edge_limit(0) == LOCAL_MAX_EDGES
    assert local_edge_limit(2**40) == LOCAL_MAX_EDGES


@pytest.mark.parametrize("lang", ["ru", "ja"])
def test_non_latin_text_is_not_one_big_cluster(lang):
    docs = [
        r["content"]
        for r in sample_docs("oscar")
        if r["metadata"]["identification"]["label"] == lang
    ][:60]
    assert len(docs) >= 30
    g = _candidate_pairs(docs, [lang] * len(docs))
    biggest = max((len(c) for c in nx.connected_components(g)), default=0)
    assert biggest <= 4


def test_verify_keeps_only_pairs_at_the_threshold(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tmfixtures import verify_here

    from tokenmill.filters.exact import order_key

    rng = random.Random(3)
    base = _docs()[:3]
    texts = [base[0], perturb(base[0], 0.01, rng), base[1], base[2]]
    pq.write_table(pa.table({"text": texts, "lang": ["en"] * 4}), tmp_path / "p.parquet")
    k = order_key(7, np.arange(4))
    edges = np.empty(2, EDGE_DTYPE)
    edges["u"], edges["v"] = [k[1], k[3]], [k[0], k[2]]  # a real copy, an unrelated pair
    np.save(tmp_path / "e.npy", edges)
    (counts,) = verify_here(
        [tmp_path / "e.npy"], {7: str(tmp_path / "p.parquet")}, 0.8, 5, tmp_path
    )
    wall = counts.pop("wall_s", 0.0)  # the task's timing, where the stage reports it
    assert isinstance(wall, float) and wall >= 0
    assert counts == {"candidates": 2, "edges": 1, "rejected": 1}
    assert np.load(tmp_path / "e.verified.npy")["u"].tolist() == [k[1]]


# ---- words and their hashes ----------------------------------------------------------------


def plain_words(text: str, lang: str) -> list[str]:
    """Words read plainly, one character at a time."""
    t = unicodedata.normalize("NFC", text).casefold()
    if lang in NO_SPACE_LANGS:
        return [c for c in t if c.isalnum()]
    words, cur = [], ""
    for c in t:
        if unicodedata.category(c)[0] in "LMN" or c == "_":
            cur += c
        elif cur:
            words.append(cur)
            cur = ""
    return words + [cur] if cur else words


_SAMPLE = [(r["text"], "en") for r in sample_docs("c4")[:40]] + [
    (r["content"], r["metadata"]["identification"]["label"]) for r in sample_docs("oscar")[::15]
]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.sampled_from(["en", "zh", "th"]))
def test_words_are_runs_of_word_characters(text, lang):
    assert words_of(text, lang) == plain_words(text, lang)


def test_each_word_gets_one_hash_wherever_it_occurs():
    texts = [t for t, _ in _SAMPLE] + ["", "!!", "a_b", "\ud800 x"]
    langs = [lang for _, lang in _SAMPLE] + ["en"] * 4
    assert any(lang in NO_SPACE_LANGS for lang in langs)
    words = [words_of(t, lang) for t, lang in zip(texts, langs, strict=True)]
    h, doc = minhash._word_hashes(
        [minhash._prepare(t) for t in texts],
        np.array([lang in NO_SPACE_LANGS for lang in langs]),
    )
    flat = [w for ws in words for w in ws]
    assert doc.tolist() == [i for i, ws in enumerate(words) for _ in ws]
    by_word: dict[str, int] = {}
    for w, v in zip(flat, h.tolist(), strict=True):
        assert by_word.setdefault(w, v) == v  # the same word, the same hash
    assert len(set(by_word.values())) == len(by_word) > 1000  # distinct words, distinct hashes


def test_shingles_do_not_depend_on_the_batch():
    texts = [t for t, _ in _SAMPLE] * 8  # past the million-code-point slices
    langs = [lang for _, lang in _SAMPLE] * 8
    assert sum(map(len, texts)) > 1 << 20
    g, gdoc = minhash.shingle_hashes(texts, langs, 5)
    for i in (0, 3, len(texts) - 1):
        one, _ = minhash.shingle_hashes([texts[i]], [langs[i]], 5)
        assert np.array_equal(g[gdoc == i], one)


def test_a_long_document_is_hashed_in_slices_with_no_word_cut():
    text = " ".join(t for t, lang in _SAMPLE if lang == "en")
    text = (text + " ") * (2 * (1 << 16) // len(text) + 2)
    assert len(minhash._pieces(minhash._prepare(text))) > 2
    whole, _ = minhash._word_hashes([minhash._prepare(text)], np.array([False]))
    sliced, doc = minhash.shingle_hashes([text], ["en"], 1)  # 1-grams: the words themselves
    assert np.array_equal(sliced, whole) and not doc.any()
    assert len(whole) == len(words_of(text, "en"))
