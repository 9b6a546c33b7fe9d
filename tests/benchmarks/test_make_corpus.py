"""benchmarks/make_corpus.py: the scale-run corpus is in the sources' real layouts, its ground
truth says what each document is, and the same arguments give the same bytes. Checked with
tokenmill's readers (the files as prepare reads them) and a plain reading of the truth."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
import unicodedata
from pathlib import Path

import pytest

from tokenmill.pipelines.readers import read_records

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mc():
    spec = importlib.util.spec_from_file_location("make_corpus", ROOT / "benchmarks/make_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_corpus"] = mod  # (its dataclasses look their module up)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def corpus(mc, tmp_path_factory):
    out = tmp_path_factory.mktemp("mc") / "c"
    args = ["--out", str(out), "--size", "1.5MB", "--part-size", "400KB", "--seed", "3"]
    return out, mc.main(args + ["--exact", "0.1", "--near-rate", "0.05", "--junk", "0.05"])


def _docs(out: Path) -> dict[tuple[str, str, int], str]:
    """(source, file, record) -> text, read by tokenmill's readers."""
    docs = {}
    for source, fmt, pattern in (("c4", "c4", "*/*.json.gz"), ("oscar", "oscar2301", "*/*.zst")):
        for f in sorted((out / source).glob(pattern)):
            rel = str(f.relative_to(out / source))
            for i, doc in read_records(str(f), fmt):
                assert not isinstance(doc, str), (f, i, doc)  # every record valid
                docs[(source, rel, i)] = doc.text
    return docs


def test_the_truth_describes_every_document(mc, corpus):
    out, summary = corpus
    docs = _docs(out)
    with gzip.open(out / "truth.jsonl.gz", "rt") as f:
        truth = [json.loads(line) for line in f]
    assert len(truth) == len(docs) == summary["documents"]
    assert {(t["source"], t["file"], t["record"]) for t in truth} == set(docs)
    kinds = {k: sum(t["kind"] == k for t in truth) for k in ("unique", "exact", "near", "junk")}
    assert kinds == summary["counts"] and all(kinds.values())
    n = len(truth)  # the shares asked for, within sampling error
    assert abs(kinds["exact"] / n - 0.1) < 0.03 and abs(kinds["junk"] / n - 0.05) < 0.02
    assert abs(kinds["near"] / n - 0.15) < 0.04
    assert sum(len(t.encode()) for t in docs.values()) == summary["text_bytes"] >= 1_500_000
    norm = lambda t: " ".join(unicodedata.normalize("NFC", t).casefold().split())  # noqa: E731
    uniques = [docs[(t["source"], t["file"], t["record"])] for t in truth if t["kind"] == "unique"]
    assert len(set(uniques)) == len(uniques)
    for t in truth:
        text = docs[(t["source"], t["file"], t["record"])]
        if t["kind"] in ("exact", "near"):
            orig = docs[tuple(t["of"])]
            assert t["of"][0] == t["source"]  # a copy stays in its original's language
        if t["kind"] == "exact":
            assert text != orig and norm(text) == norm(orig)
        elif t["kind"] == "near":
            lang = "en" if t["source"] == "c4" else t["file"].split("_", 1)[0]
            w = mc.words(orig, lang)
            assert orig.startswith(text) and t["jaccard"] == round(mc.jaccard5(text, orig, lang), 4)
            if len(w) >= 100:  # long enough for the cut to reach the level
                assert abs(t["jaccard"] - t["target"]) < 0.05, t  # (repeated 5-grams)


def _parse(para: str, by_head: dict[str, list[str]], lang: str) -> list[str]:
    """`para` as pool sentences joined as written (a space, or nothing for Chinese and
    Japanese), found by a left-to-right search over the pool (sentences are not split back
    by their punctuation: some end in a quote, some without a full stop); `by_head`: the
    pool's sentences by their first 4 characters."""
    joiner = "" if lang in ("zh", "ja") else " "
    best: dict[int, list[str]] = {0: []}
    for i in sorted_positions(best, len(para)):
        for k in range(1, 5):
            for x in by_head.get(para[i : i + k], []) if len(para[i : i + k]) == k else []:
                j = i + len(x)
                if para.startswith(x, i) and (j == len(para) or para.startswith(joiner, j)):
                    best.setdefault(j + len(joiner) if j < len(para) else j, best[i] + [x])
    assert len(para) in best, para  # not made of the pool's sentences
    return best[len(para)]


def sorted_positions(best: dict[int, list[str]], end: int):
    """The reached positions in increasing order, while the search adds more."""
    done = -1
    while True:
        ahead = [i for i in best if done < i < end]
        if not ahead:
            return
        done = min(ahead)
        yield done


def test_unique_documents_are_real_sentences_and_stay_apart(mc, corpus):
    """Every unique document is made of the pool's sentences, none over MAX_SHARE of its
    words, and no two of them (sharing sentences as the pool is small) come near the near
    dedup threshold: the largest 5-gram Jaccard of any pair sharing a 5-gram is under 0.3."""
    out, _ = corpus
    docs = _docs(out)
    with gzip.open(out / "truth.jsonl.gz", "rt") as f:
        truth = [json.loads(line) for line in f]
    pools = {}
    for lang, pool in mc.sentence_pools(mc.paragraph_pools([])).items():
        for x in pool:
            pools.setdefault(lang, {}).setdefault(x[:4], []).append(x)
    shingles, owners = [], {}
    for t in truth:
        if t["kind"] != "unique":
            continue
        lang = "en" if t["source"] == "c4" else t["file"].split("_", 1)[0]
        text = docs[(t["source"], t["file"], t["record"])]
        sentences = [s for para in text.split("\n") for s in _parse(para, pools[lang], lang)]
        sizes = [len(mc.words(s, lang)) for s in sentences]
        assert max(sizes) <= mc.MAX_SHARE * sum(sizes)
        w = mc.words(text, lang)
        sh = {tuple(w[i : i + 5]) for i in range(len(w) - 4)}
        for g in sh:
            owners.setdefault(g, []).append(len(shingles))
        shingles.append(sh)
    pairs = {(a, b) for ids in owners.values() for a in ids for b in ids if a < b}
    assert pairs  # the pool is small: documents do share sentences
    worst = max(len(shingles[a] & shingles[b]) / len(shingles[a] | shingles[b]) for a, b in pairs)
    assert worst < 0.3, worst


def test_parts_rotate_and_the_same_arguments_give_the_same_bytes(mc, corpus, tmp_path):
    out, summary = corpus
    c4 = sorted((out / "c4" / "en").iterdir())
    assert len(c4) >= 2 and [p.name for p in c4][:2] == [
        "c4-train.00000-of-01024.json.gz",
        "c4-train.00001-of-01024.json.gz",
    ]
    again = tmp_path / "again"
    mc.main([
        "--out", str(again), "--size", "1.5MB", "--part-size", "400KB", "--seed", "3",
        "--exact", "0.1", "--near-rate", "0.05", "--junk", "0.05",
    ])  # fmt: skip
    for f in summary["files"] + ["truth.jsonl.gz"]:
        assert (again / f).read_bytes() == (out / f).read_bytes(), f


def test_bad_arguments_are_refused(mc, tmp_path):
    with pytest.raises(SystemExit):
        mc.main(["--out", str(tmp_path / "x"), "--exact", "0.6", "--junk", "0.5"])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(SystemExit):
        mc.main(["--out", str(tmp_path / "full")])
    with pytest.raises(SystemExit):
        mc.main(["--out", str(tmp_path / "y"), "--size", "lots"])
