"""The smaller pieces of tokenmill.filters.minhash against plain Python: band keys, the LSH
records, the bucket sort, the word and shingle helpers that verification uses, Jaccard, and
the character table."""

from __future__ import annotations

import random
import re
import unicodedata

import numpy as np
import pytest
from tmfixtures import sample_docs

from tokenmill.filters.minhash import (
    BAND_DTYPE,
    LSH,
    _CharClasses,
    band_keys,
    bucket_sort,
    jaccard_estimate,
    optimal_bands,
    shingle_set,
    signatures,
    true_jaccard,
    words_of,
)

MASK = (1 << 64) - 1
MUL = 0x9E3779B97F4A7C15


def plain_band_keys(sig: np.ndarray, bands: int, rows: int) -> list[list[int]]:
    out = []
    for row in sig.tolist():
        keys = []
        for band in range(bands):
            k = ((band + 1) * MUL) & MASK
            for j in range(band * rows, (band + 1) * rows):
                k = ((k ^ row[j]) * MUL) & MASK
            keys.append(k)
        out.append(keys)
    return out


def test_band_keys_equal_a_plain_reading():
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 2**32, (7, 20), dtype=np.uint64).astype(np.uint32)
    for bands, rows in ((4, 5), (20, 1), (1, 20), (3, 4)):
        assert band_keys(sig, bands, rows).tolist() == plain_band_keys(sig, bands, rows)


def test_lsh_records_are_every_documents_band_keys():
    texts = [d["text"] for d in sample_docs("c4")[:9]]
    lsh = LSH(0.8, 64, 5, 3)
    assert (lsh.bands, lsh.rows) == optimal_bands(0.8, 64) and lsh.bands * lsh.rows <= 64
    docs = np.arange(100, 109) * 7
    rec = lsh.records(texts, ["en"] * 9, docs)
    assert rec.dtype == BAND_DTYPE and len(rec) == 9 * lsh.bands
    keys = band_keys(signatures(texts, ["en"] * 9, 64, 5, 3), lsh.bands, lsh.rows)
    assert rec["band"].tolist() == list(range(lsh.bands)) * 9
    assert rec["doc"].tolist() == [d for d in docs.tolist() for _ in range(lsh.bands)]
    assert rec["key"].tolist() == keys.reshape(-1).tolist()
    assert (lsh.num_perm, lsh.ngram, lsh.seed) == (64, 5, 3)
    given = LSH(0.5, 128, 4, 1, bands=16, rows=8)
    assert (given.bands, given.rows, given.ngram) == (16, 8, 4)
    assert LSH(0.5, 128, 4, 1, bands=16, rows=8).records(texts[:1], ["en"], docs[:1]).size == 16


def test_lsh_refuses_half_given_or_too_many_rows():
    with pytest.raises(ValueError, match="set both minhash.bands and minhash.rows"):
        LSH(0.8, 128, bands=4)
    with pytest.raises(ValueError, match="set both"):
        LSH(0.8, 128, rows=4)
    with pytest.raises(ValueError, match=r"bands x rows = 132 > num_perm = 128"):
        LSH(0.8, 128, bands=12, rows=11)
    LSH(0.8, 128, bands=16, rows=8)  # exactly num_perm: fine


def test_bucket_sort_is_a_stable_sort_by_hash_mod_buckets():
    rng = np.random.default_rng(1)
    for n, buckets in ((0, 3), (1, 1), (50, 1), (200, 7), (300, 64)):
        rec = np.arange(n)
        h = rng.integers(0, 2**64, n, dtype=np.uint64)
        got, offsets = bucket_sort(rec, h, buckets)
        want = sorted(range(n), key=lambda i: (int(h[i]) % buckets, i))
        assert got.tolist() == want
        counts = [sum(1 for x in h.tolist() if x % buckets == b) for b in range(buckets)]
        assert offsets.tolist() == [sum(counts[:b]) for b in range(buckets + 1)]


def plain_words(text: str, lang: str) -> list[str]:
    t = unicodedata.normalize("NFC", text).casefold()
    if lang in ("zh", "ja", "th"):
        return [c for c in t if c.isalnum()]
    return re.findall(r"[^\W]+", t)  # letters, marks, numbers and "_"; the texts have no marks


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_words_and_shingle_sets_equal_a_plain_reading(lang):
    docs = [d["text"] for d in sample_docs("c4")[:40]] + ["", "  ", "one", "a b c d", "我们"]
    if lang == "zh":
        docs += [d["content"] for d in sample_docs("oscar") if "中" in d["content"]][:5]
    for t in docs:
        w = plain_words(t, lang)
        assert words_of(t, lang) == w
        for n in (1, 3, 5):
            grams = {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}
            assert shingle_set(t, lang, n) == (grams or set(w) or {t})


def test_jaccard():
    assert true_jaccard({1, 2, 3}, {2, 3, 4}) == 0.5
    assert true_jaccard({1}, {2}) == 0.0
    assert true_jaccard({1, 2}, {1, 2}) == 1.0
    assert true_jaccard(set(), set()) == 1.0
    assert true_jaccard(set(), {1}) == 0.0
    a = np.array([1, 2, 3, 4], np.uint32)
    assert jaccard_estimate(a, np.array([1, 2, 0, 0], np.uint32)) == 0.5
    assert isinstance(jaccard_estimate(a, a), float) and jaccard_estimate(a, a) == 1.0


def test_the_character_table_is_filled_by_256_blocks_on_demand():
    c = _CharClasses()
    assert c.table.shape == (0x110000,) and c.done.shape == (0x110000 >> 8,)
    assert not c.table.any() and not c.done.any()
    rng = random.Random(2)
    cps = sorted({rng.randrange(0x110000) for _ in range(300)} | {0x41, 0x5F, 0x4E2D, 0x10FFFF})
    cls = c(np.array(cps, np.int64))
    for cp, got in zip(cps, cls.tolist(), strict=True):
        ch = chr(cp)
        word = unicodedata.category(ch)[0] in "LMN" or ch == "_"
        assert got == (1 if word else 0) | (2 if ch.isalnum() else 0), hex(cp)
    assert c.done.sum() == len({cp >> 8 for cp in cps})


def plain_signature(shingles: list[int], num_perm: int, seed: int) -> list[int]:
    """The documented MinHash: h_k(x) = ((a_k x + b_k) mod 2^64) >> 32, minimized over the
    document's shingles; a_k = 2 r + 1 (r drawn from [1, 2^63)), b_k from [0, 2^63), both
    from numpy's default_rng(seed), in that order."""
    rng = np.random.default_rng(seed)
    a = [2 * int(r) + 1 for r in rng.integers(1, 2**63, size=num_perm, dtype=np.uint64)]
    b = [int(r) for r in rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)]
    return [
        min(((ak * x + bk) & MASK) >> 32 for x in shingles) for ak, bk in zip(a, b, strict=True)
    ]


def test_signatures_are_the_documented_minhash_and_its_defaults():
    from tokenmill.filters.minhash import shingle_hashes

    texts = [d["text"] for d in sample_docs("c4")[:6]] + ["x", ""]
    langs = ["en"] * len(texts)
    g, doc = shingle_hashes(texts, langs, 5)
    sig = signatures(texts, langs, 16, 5, 7)
    assert sig.dtype == np.uint32 and sig.shape == (len(texts), 16)
    for i in range(len(texts)):
        assert sig[i].tolist() == plain_signature(g[doc == i].tolist(), 16, 7), i
    assert np.array_equal(signatures(texts, langs), signatures(texts, langs, 128, 5, 1))
    assert signatures([], [], 8).shape == (0, 8)
    lsh = LSH()  # the defaults: 0.8, 128 permutations, 5-grams, seed 1
    assert (lsh.num_perm, lsh.ngram, lsh.seed) == (128, 5, 1)
    assert (lsh.bands, lsh.rows) == optimal_bands(0.8, 128)


def test_near_edges_of_nothing_and_of_one_record():
    from tokenmill.filters.components import EDGE_DTYPE
    from tokenmill.filters.minhash import near_edges

    for n in (0, 1):
        rec = np.zeros(n, BAND_DTYPE)
        edges = near_edges(rec)
        assert edges.dtype == EDGE_DTYPE and len(edges) == 0


def _splitmix_int(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def plain_shingle_hashes(text: str, lang: str, ngram: int) -> list[int]:
    """The documented shingle hashes in plain Python: a word's hash is splitmix(sum over its
    characters of splitmix(code point << 32 | place in the word) ^ length * 2^64/phi); an
    n-gram folds its words' hashes with g = g * 0x100000001B3 + h; a document of fewer than n
    words has its words as shingles, one of none the xxh3-64 of its prepared text. These
    values are what OUT/dedup's band keys are made of: they must not change between versions
    (an index from an earlier run must stay comparable)."""
    import xxhash

    t = unicodedata.normalize("NFC", text).casefold()
    words = plain_words(text, lang)
    hashes = []
    for w in words:
        s = sum(_splitmix_int((ord(c) << 32) | i) for i, c in enumerate(w)) & MASK
        hashes.append(_splitmix_int(s ^ ((len(w) * MUL) & MASK)))
    if len(hashes) >= ngram:
        out = []
        for i in range(len(hashes) - ngram + 1):
            g = hashes[i]
            for h in hashes[i + 1 : i + ngram]:
                g = (g * 0x100000001B3 + h) & MASK
            out.append(g)
        return out
    return hashes or [xxhash.xxh3_64_intdigest(t.encode("utf-8", "surrogatepass"))]


@pytest.mark.parametrize("ngram", [1, 3, 5])
def test_shingle_hashes_are_the_documented_values(ngram):
    from tokenmill.filters.minhash import shingle_hashes

    texts = [d["text"] for d in sample_docs("c4")[:12]] + ["", "!!!", "one two", "a b c d e"]
    texts += ["x " * 40_000]  # longer than a slice: hashed a slice at a time
    langs = ["en"] * len(texts)
    g, doc = shingle_hashes(texts, langs, ngram)
    for i, t in enumerate(texts):
        assert g[doc == i].tolist() == plain_shingle_hashes(t, "en", ngram), i
    g, doc = shingle_hashes(texts, langs, ngram, short=False)  # whole n-grams only
    for i, t in enumerate(texts):
        want = plain_shingle_hashes(t, "en", ngram) if len(plain_words(t, "en")) >= ngram else []
        assert g[doc == i].tolist() == want, i


# Tests from the second mutation run's survivors (docs/TESTING.md, minhash.py): the paths that
# only a text hashed alone reaches, long texts and their slices, and exact results of the
# helpers that the first tests met only with easy inputs.

SPEC_TEXTS = ["", "!!!", "one two", "a b c d e", "a b c d e f", "\ud800 !", "ab \udfff cd", "x"]


@pytest.mark.parametrize("ngram", [1, 3, 5])
def test_shingle_hashes_of_each_text_alone_are_the_documented_values(ngram):
    """Alone, a text is its whole batch: a batch of fewer than n words (or of none, or of
    exactly n) takes paths a mixed batch never does. A wordless text with a lone surrogate
    is hashed from its surrogatepass UTF-8."""
    from tokenmill.filters.minhash import shingle_hashes

    for t in SPEC_TEXTS:
        for short in (True, False):
            g, doc = shingle_hashes([t], ["en"], ngram, short)
            want = plain_shingle_hashes(t, "en", ngram)
            if not short and len(plain_words(t, "en")) < ngram:
                want = []
            assert (g.dtype, doc.dtype) == (np.uint64, np.int64)
            assert (g.tolist(), doc.tolist()) == (want, [0] * len(want)), (t, short)
    for short in (True, False):
        g, doc = shingle_hashes([], [], ngram, short)
        assert (g.dtype, doc.dtype, len(g), len(doc)) == (np.uint64, np.int64, 0, 0)


def test_pieces_cut_before_the_first_space_past_each_slice():
    from tokenmill.filters.minhash import _SLICE, _pieces

    assert _SLICE == 1 << 16
    assert _pieces("ab cde", 4) == ["ab cde"]  # the only space is before the 4th character
    assert _pieces("aaaa bbbb cc dd", 4) == ["aaaa", " bbbb", " cc dd"]
    assert _pieces("abcd", 4) == ["abcd"] and _pieces("abcd ", 4) == ["abcd", " "]
    assert _pieces("abcdefgh", 4) == ["abcdefgh"]  # no space at all: one piece
    assert _pieces("a bcdefgh", 4) == ["a bcdefgh"]
    assert _pieces("abcde fghijk", 4) == ["abcde", " fghijk"]  # the rest has no space past 4
    rng = random.Random(5)
    for _ in range(300):
        size = rng.randrange(1, 12)
        text = "".join(rng.choice("ab  ") for _ in range(rng.randrange(0, 60)))
        got = _pieces(text, size)
        assert "".join(got) == text
        if len(text) <= size:
            assert got == [text]
            continue
        # every cut: the first space at or past `size`
        for piece, nxt in zip(got, got[1:], strict=False):
            assert len(piece) >= size and " " not in piece[size:] and nxt.startswith(" ")
        assert len(got[-1]) <= size or " " not in got[-1][size:]


def test_long_texts_without_spaces_past_a_slice_are_hashed_whole():
    from tokenmill.filters.minhash import _SLICE, shingle_hashes

    texts = ["a few words " + "y" * (_SLICE + 10), "word " * 20 + "z" * (2 * _SLICE)]
    for i, t in enumerate(texts):
        g, doc = shingle_hashes([t], ["en"], 3)
        assert g.tolist() == plain_shingle_hashes(t, "en", 3), i


def test_pieces_are_hashed_about_a_slice_of_code_points_at_a_time(monkeypatch):
    """`shingle_hashes` hands `_word_hashes` whole pieces, closing a batch once its code points
    (a piece's length and its separator) reach _SLICE: the temporaries stay small whatever the
    number of texts. Each batch gets its pieces' no-space flags, one per piece."""
    from tokenmill.filters import minhash

    real, calls = minhash._word_hashes, []

    def spy(pieces, no_space):
        calls.append((list(pieces), no_space.tolist()))
        return real(pieces, no_space)

    def text(n: int) -> str:
        return ("ab " * n)[:n]

    lengths = [32766, 32767, 1, 32767, 32767, 32766, 32767, 10]  # + 1 each: 65535, 65537, ...
    texts = [text(n) for n in lengths]
    langs = ["en", "zh", "en", "zh", "en", "en", "zh", "en"]
    monkeypatch.setattr(minhash, "_word_hashes", spy)
    g, doc = minhash.shingle_hashes(texts, langs, 2)
    groups = [[0, 1, 2], [3, 4], [5, 6, 7]]
    assert calls == [([texts[i] for i in grp], [langs[i] == "zh" for i in grp]) for grp in groups]
    monkeypatch.setattr(minhash, "_word_hashes", real)
    for i, t in enumerate(texts):  # batching changes no value
        assert g[doc == i].tolist() == minhash.shingle_hashes([t], [langs[i]], 2)[0].tolist()


def test_permutations_are_the_documented_draws():
    """a_k = 2 r + 1, r from [1, 2^63), then b_k from [0, 2^63), from default_rng(seed); the
    first values for seed 1 are pinned, since band keys on disk are made of them."""
    from tokenmill.filters.minhash import _permutations

    for num_perm, seed in ((1, 0), (16, 7), (300, 1)):
        a, b = _permutations(num_perm, seed)
        rng = np.random.default_rng(seed)
        ra = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64).tolist()
        rb = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64).tolist()
        assert (a.dtype, b.dtype) == (np.uint64, np.uint64)
        assert a.tolist() == [2 * r + 1 for r in ra] and b.tolist() == rb
    a, b = _permutations(3, 1)
    assert a.tolist() == [9441442522235856127, 17532960557476522087, 2659275481604167887]
    assert b.tolist() == [8749746783503398889, 2876137494685333844, 3904497331914684452]


def plain_near_edges(records: np.ndarray) -> list[tuple[int, int]]:
    smallest: dict[tuple[int, int], int] = {}
    for band, key, doc in records.tolist():
        smallest[band, key] = min(doc, smallest.get((band, key), doc))
    return sorted(
        {(doc, smallest[band, key]) for band, key, doc in records.tolist()}
        - {(d, d) for d in records["doc"].tolist()}
    )


def test_near_edges_join_each_document_to_the_smallest_sharing_a_band_key():
    from tokenmill.filters.components import EDGE_DTYPE
    from tokenmill.filters.minhash import near_edges

    rng = np.random.default_rng(3)
    for n in (2, 5, 40, 400):
        rec = np.zeros(n, BAND_DTYPE)
        rec["band"] = rng.integers(0, 3, n)
        rec["key"] = rng.integers(0, 4, n).astype(np.uint64) * np.uint64(2**62)
        rec["doc"] = rng.integers(0, max(2, n // 4), n)
        edges = near_edges(rec)
        assert edges.dtype == EDGE_DTYPE
        assert list(zip(edges["u"].tolist(), edges["v"].tolist(), strict=True)) == plain_near_edges(
            rec
        ), n


def test_lsh_half_given_message_is_exact():
    for kw in ({"bands": 4}, {"rows": 4}):
        with pytest.raises(ValueError) as e:
            LSH(0.8, 128, **kw)
        assert str(e.value) == "set both minhash.bands and minhash.rows, or neither"


def test_bucket_sort_takes_hash_values_of_any_integer_type():
    """Hash values as Python ints or int64 are the same uint64 values: their buckets are exact
    even above 2^53 (no float on the way)."""
    rng = np.random.default_rng(4)
    h = rng.integers(2**60, 2**63, 200, dtype=np.int64)
    for buckets in (3, 7, 1000):
        want = bucket_sort(np.arange(200), h.astype(np.uint64), buckets)
        for given in (h, h.tolist()):
            got = bucket_sort(np.arange(200), given, buckets)
            assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
            order = sorted(range(200), key=lambda i: (int(h[i]) % buckets, i))
            assert got[0].tolist() == order


def test_band_keys_warn_about_nothing():
    """The keys overflow uint64 on purpose; no RuntimeWarning may reach the pipeline's log."""
    import warnings

    sig = np.random.default_rng(5).integers(0, 2**32, (3, 32), dtype=np.uint64).astype(np.uint32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert band_keys(sig, 8, 4).tolist() == plain_band_keys(sig, 8, 4)


def test_the_character_table_fills_only_the_blocks_asked_for(monkeypatch):
    """A block is 256 code points: asking for one character fills its block and nothing else
    (the whole table would cost ~0.3 s per worker), and the table is uint8 flags that the word
    finders can mask."""
    from tokenmill.filters import minhash

    c = _CharClasses()
    got = c(np.array([0x4E2D, 0x4E2D], np.int64))
    assert got.dtype == np.uint8 and got.tolist() == [3, 3]
    assert c.table.dtype == np.uint8
    assert np.flatnonzero(c.done).tolist() == [0x4E]
    assert not c.table[:0x4E00].any() and not c.table[0x4F00:].any()
    assert c.table[0x4E00:0x4F00].all()  # CJK ideographs: every one a letter
    fresh = _CharClasses()  # a new process's table, filled by the word finders themselves
    monkeypatch.setattr(minhash, "_CLASSES", fresh)
    text = "Çà et là, 中文 snake_case x2"
    assert words_of(text, "en") == plain_words(text, "en")
    assert minhash.shingle_hashes([text], ["en"], 2)[0].tolist() == plain_shingle_hashes(
        text, "en", 2
    )


def test_a_batch_without_words_between_batches_with_words():
    """Each of these texts fills a batch of its own: the wordless one in the middle adds no
    hash, so no n-gram spans it and every hash keeps its document."""
    from tokenmill.filters.minhash import shingle_hashes

    texts = [("ab " * 22000)[:65535], "!" * 65535, "cd ef gh"]
    g, doc = shingle_hashes(texts, ["en"] * 3, 2)
    for i, t in enumerate(texts):
        assert g[doc == i].tolist() == plain_shingle_hashes(t, "en", 2), i
