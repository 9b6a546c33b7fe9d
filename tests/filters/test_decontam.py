"""Evaluation-set indexes and n-gram overlap (tokenmill.filters.decontam) against a plain
reading: words by a regex over the NFC, case-folded text, n-grams as tuples of words. Reading
evaluation files: tests/pipelines/test_evalsets.py."""

from __future__ import annotations

import random
import re
import unicodedata

import numpy as np
import pytest

from tests.tmfixtures import sample_docs
from tokenmill.filters.decontam import EvalIndex, find_contamination
from tokenmill.filters.minhash import shingle_hashes


def plain_words(text: str) -> list[str]:
    # letters, marks, numbers and "_" (the ASCII and Latin text below has no marks)
    return re.findall(r"[^\W]+", unicodedata.normalize("NFC", text).casefold())


def plain_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    w = plain_words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [d["text"] for d in sample_docs("c4")[:80]]


def test_index_holds_every_ngram_of_every_long_enough_item(tmp_path, texts):
    rng = random.Random(0)
    items = [t for t in texts[:30]] + ["one two three", "", "  "]
    for _ in range(10):  # windows of the texts, some shorter than the n-gram
        w = plain_words(rng.choice(texts))
        a = rng.randrange(len(w))
        items.append(" ".join(w[a : a + rng.randrange(1, 20)]))
    path = ("qa", items)
    ix = EvalIndex.build(*path, ngram=8)
    want_grams = set().union(*(plain_ngrams(t, 8) for t in items))
    assert ix.counts == {
        "items": len(items),
        "no_text": 0,
        "too_short": sum(1 for t in items if len(plain_words(t)) < 8),
        "ngrams": len(want_grams),
    }
    assert np.all(np.diff(ix.hashes.astype(np.float64)) > 0) or len(ix.hashes) < 2
    # each hash's item is the first item that has the n-gram
    for k, t in enumerate(items):
        g, _ = shingle_hashes([t], ["en"], 8, short=False)
        first = [
            min(i for i, u in enumerate(items) if gram in plain_ngrams(u, 8))
            for gram in sorted(plain_ngrams(t, 8))
        ]
        got = ix.lookup(g)
        assert sorted(set(got.tolist())) == sorted(set(first)), k


def test_documents_overlap_exactly_the_items_they_share_an_ngram_with(tmp_path, texts):
    rng = random.Random(1)
    items = []
    for _ in range(25):
        w = plain_words(rng.choice(texts))
        a = rng.randrange(max(1, len(w) - 14))
        items.append(" ".join(w[a : a + 14]).upper() + " " + " ".join(rng.sample(w, 3)))
    items += ["entirely made up words that appear in no document of the sample at all zzz qqq"]
    path = ("set_a", items)
    ix = EvalIndex.build(*path, ngram=13)
    hits = find_contamination(texts, ["en"] * len(texts), [ix])
    item_grams = [plain_ngrams(t, 13) for t in items]
    for d, t in enumerate(texts):
        grams = plain_ngrams(t, 13)
        want = [i for i, g in enumerate(item_grams) if g & grams]
        got = [h.items for h in hits[d]]
        assert got == ([want] if want else []), d
        assert all(h.name == "set_a" for h in hits[d])
    assert sum(map(bool, hits)) >= 20  # the windows come from these documents


def test_every_set_is_reported_in_order(tmp_path, texts):
    a = ("a", [texts[3]])
    b = ("b", ["x", texts[5], texts[3]])
    ia, ib = EvalIndex.build(*a, ngram=5), EvalIndex.build(*b, ngram=5)
    hits = find_contamination(texts[:8], ["en"] * 8, [ib, ia])
    assert [(h.name, h.items) for h in hits[3]][0] == ("b", [2])
    assert ("a", [0]) in [(h.name, h.items) for h in hits[3]]
    assert [h.name for h in hits[5]][:1] == ["b"]
    assert find_contamination([], [], [ia]) == []
    assert find_contamination(texts[:2], ["en"] * 2, []) == [[], []]
    with pytest.raises(ValueError, match="n-gram sizes"):
        find_contamination(texts[:2], ["en"] * 2, [ia, EvalIndex.build(*b, ngram=6)])


def test_short_documents_never_match_and_short_items_are_counted(tmp_path):
    path = ("s", ["alpha beta gamma", "alpha beta gamma delta"])
    ix = EvalIndex.build(*path, ngram=4)
    assert ix.counts["too_short"] == 1 and ix.counts["ngrams"] == 1
    hits = find_contamination(
        ["alpha beta gamma", "x alpha, beta; GAMMA delta y", "alpha beta gamma epsilon"],
        ["en"] * 3,
        [ix],
    )
    assert [[h.items for h in d] for d in hits] == [[], [[1]], []]


def test_no_space_languages_use_a_word_per_character(tmp_path):
    path = ("zh", ["我们今天去公园"])
    ix = EvalIndex.build(*path, ngram=5, lang="zh")
    hits = find_contamination(["他说我们今天去公园玩", "我们明天去公园"], ["zh", "zh"], [ix])
    assert [bool(h) for h in hits] == [True, False]


def test_save_and_load_round_trip(tmp_path, texts):
    ix = EvalIndex.build("r", texts[:10], ngram=7)
    ix.save(tmp_path / "r.npz")
    back = EvalIndex.load(tmp_path / "r.npz")
    assert (back.name, back.ngram, back.counts) == (ix.name, ix.ngram, ix.counts)
    assert np.array_equal(back.hashes, ix.hashes) and np.array_equal(back.items, ix.items)
