"""MinHash signatures and LSH band keys, vectorized over a batch (numpy; no per-shingle Python).

Shingles are word n-grams (default 5) of the NFC, case-folded text; a word is a maximal run
of Unicode letters, marks, numbers and "_", and for languages written without spaces (zh, ja,
th, ...) each alphanumeric character. Words are found and hashed in numpy over the texts'
code points (no per-word Python): a word's 64-bit hash is the sum of a mix (splitmix64) of
each (code point, place in the word), mixed again with its length, the same on every
machine. N-grams combine their word hashes by multiply-add, and each of `num_perm` universal
hashes h_k(x) = (a_k x + b_k mod 2^64) >> 32 is minimized per document with
`np.minimum.reduceat`. Band keys hash `rows` consecutive signature values per band.

Bands x rows are chosen for a Jaccard threshold t as datasketch does, by minimizing the
false positive and false negative areas of the S-curve 1 - (1 - s^r)^b around t, but with
misses weighted 9:1 (see `optimal_bands`).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import numpy as np
from xxhash import xxh3_64_intdigest

from tokenmill.filters.quality import NO_SPACE_LANGS, code_points

_MUL = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: odd, mixes well
_PRIME = np.uint64(0x100000001B3)


@lru_cache(maxsize=64)
def optimal_bands(
    threshold: float, num_perm: int, fp_weight: float = 0.1, fn_weight: float = 0.9
) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimizing the weighted false positive and
    false negative probability mass around `threshold`.

    Equal weights (datasketch's default) give 9 x 13 for 0.8 and 128 permutations, which
    finds only 69% of pairs at Jaccard 0.85. We weight misses 9:1 (14 x 9: 97.5% of pairs at
    0.85 found, 2.7% of pairs at exactly 0.5 become candidates), since a missed copy stays
    in the corpus while a rare false merge costs one document."""
    xs = np.linspace(0.0, 1.0, 2001)

    def area(b, r, lo, hi, fn):
        x = xs[(xs >= lo) & (xs <= hi)]
        p = 1 - (1 - x**r) ** b
        return np.trapezoid(1 - p if fn else p, x)

    best, best_err = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            err = fp_weight * area(b, r, 0, threshold, False) + fn_weight * area(
                b, r, threshold, 1, True
            )
            if err < best_err:
                best, best_err = (b, r), err
    return best


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    return a, b


def _prepare(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


_WORD, _ALNUM = 1, 2  # bits of _CharClasses' table


class _CharClasses:
    """Per code point: _WORD (Unicode letter, mark or number, or "_": the characters of a
    word) and _ALNUM (str.isalnum(): for languages without spaces, each is a word). Filled
    lazily, 256 code points at a time, for the blocks texts use: a table of all 1.1 million
    would cost ~0.3 s in every worker."""

    def __init__(self):
        self.table = np.zeros(0x110000, dtype=np.uint8)
        self.done = np.zeros(0x110000 >> 8, dtype=bool)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        used = np.bincount(codes >> 8, minlength=len(self.done)).astype(bool)
        for block in np.flatnonzero(used & ~self.done).tolist():
            for cp in range(block << 8, (block + 1) << 8):
                c = chr(cp)
                word = unicodedata.category(c)[0] in "LMN" or c == "_"
                self.table[cp] = _WORD * word | _ALNUM * c.isalnum()
            self.done[block] = True
        return self.table[codes]


_CLASSES = _CharClasses()
_MIX = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, in place: a bijection of uint64 with full avalanche."""
    x ^= x >> _S30
    x *= _MIX
    x ^= x >> _S27
    x *= _MIX2
    x ^= x >> _S31
    return x


def _word_hashes(texts: list[str], no_space: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash of each word, its document) for prepared texts, words in order. A word
    is a maximal run of word characters (Unicode letters, marks, numbers, "_"); in a
    no-space text, each alphanumeric character. No per-word Python: the texts' code points
    in numpy, a word's hash the sum of a mix of each (code point, place in the word)."""
    lengths = np.fromiter(map(len, texts), np.int64, count=len(texts))
    # "\0" between texts: not a word character, so no word spans two texts
    codes = code_points("\0".join(texts))
    doc_of = np.repeat(np.arange(len(texts)), lengths + 1)[: len(codes)]
    cls = _CLASSES(codes)
    word = (cls & _WORD).astype(bool)
    single = None
    if no_space.any():
        ns = no_space[doc_of]
        single = (cls & _ALNUM).astype(bool) & ns
        word &= ~ns
    edge = np.zeros(len(codes) + 1, dtype=bool)  # a word starts or ends here
    np.not_equal(word[1:], word[:-1], out=edge[1:-1])
    edge[0], edge[-1] = word[:1].any(), word[-1:].any()
    bounds = np.flatnonzero(edge)
    starts, ends = bounds[0::2], bounds[1::2]
    if single is not None:
        at = np.flatnonzero(single)
        starts = np.concatenate([starts, at])
        ends = np.concatenate([ends, at + 1])
        order = np.argsort(starts, kind="stable")
        starts, ends = starts[order], ends[order]
        word |= single
    if not len(starts):
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    # place of each character in its word (characters outside words add nothing)
    opens = np.zeros(len(codes), dtype=bool)
    opens[starts] = True
    which = np.cumsum(opens) - 1
    place = np.arange(len(codes)) - starts[np.maximum(which, 0)]
    with np.errstate(over="ignore"):
        part = _splitmix((codes.astype(np.uint64) << np.uint64(32)) | place.astype(np.uint64))
        part *= word
        h = np.add.reduceat(part, starts)
        h = _splitmix(h ^ (ends - starts).astype(np.uint64) * _MUL)
    return h, doc_of[starts]


_SLICE = 1 << 16  # code points hashed per numpy pass: the temporaries stay in cache


def _pieces(text: str, size: int = _SLICE) -> list[str]:
    """`text` cut before a space about every `size` characters, so that a long text's words
    are found a slice at a time (a space is never part of a word: no word is cut)."""
    if len(text) <= size:
        return [text]
    out, start = [], 0
    while len(text) - start > size:
        cut = text.find(" ", start + size)
        if cut < 0:
            break
        out.append(text[start:cut])
        start = cut
    out.append(text[start:])
    return out


def shingle_hashes(texts: list[str], langs: list[str], ngram: int, short: bool = True):
    """(hashes uint64, document index per hash), each document's in order. With `short`,
    every document gets at least one shingle (a document of fewer than `ngram` words: its
    words; of none: its whole text); without, only whole n-grams (decontamination)."""
    prepared = [_prepare(t) for t in texts]
    pieces, owner = [], []
    for i, t in enumerate(prepared):
        for piece in _pieces(t):
            pieces.append(piece)
            owner.append(i)
    owner_of = np.asarray(owner, dtype=np.int64)
    no_space = np.fromiter((lang in NO_SPACE_LANGS for lang in langs), bool, count=len(langs))
    hs, parents = [], []
    first, size = 0, 0  # pieces about _SLICE code points at a time
    for k, piece in enumerate(pieces):
        size += len(piece) + 1
        if size >= _SLICE or k == len(pieces) - 1:
            h, at = _word_hashes(pieces[first : k + 1], no_space[owner_of[first : k + 1]])
            hs.append(h)
            parents.append(owner_of[first + at])
            first, size = k + 1, 0
    h = np.concatenate(hs) if hs else np.empty(0, np.uint64)
    parent = np.concatenate(parents) if parents else np.empty(0, np.int64)
    n = len(h)
    counts = np.bincount(parent, minlength=len(texts)) if n else np.zeros(len(texts), np.int64)
    if n >= ngram:
        g = h[: n - ngram + 1].copy()
        with np.errstate(over="ignore"):
            for i in range(1, ngram):
                g = g * _PRIME + h[i : n - ngram + 1 + i]
        gdoc = parent[: n - ngram + 1]
        valid = gdoc == parent[ngram - 1 :]
        g, gdoc = g[valid], gdoc[valid]
    else:
        g, gdoc = np.empty(0, np.uint64), np.empty(0, np.int64)
    # documents shorter than n words: their words are the shingles; no words: one constant
    few = counts < ngram
    if short and few.any():
        mask = few[parent]
        g = np.concatenate([g, h[mask]])
        gdoc = np.concatenate([gdoc, parent[mask]])
        # no words at all: the whole text is the one shingle (only identical texts match)
        empty = np.flatnonzero(counts == 0)
        whole = np.fromiter(
            (xxh3_64_intdigest(prepared[i].encode("utf-8", "surrogatepass")) for i in empty),
            np.uint64,
            count=len(empty),
        )
        g = np.concatenate([g, whole])
        gdoc = np.concatenate([gdoc, empty])
        order = np.argsort(gdoc, kind="stable")
        g, gdoc = g[order], gdoc[order]
    return g.astype(np.uint64), gdoc.astype(np.int64)


def signatures(
    texts: list[str], langs: list[str], num_perm: int = 128, ngram: int = 5, seed: int = 1
) -> np.ndarray:
    """MinHash signatures, shape (documents, num_perm), uint32."""
    out = np.empty((num_perm, len(texts)), dtype=np.uint32)
    if not texts:
        return out.T
    g, gdoc = shingle_hashes(texts, langs, ngram)
    starts = np.flatnonzero(np.concatenate([[True], gdoc[1:] != gdoc[:-1]]))
    a, b = _permutations(num_perm, seed)
    tmp = np.empty_like(g)
    shift = np.uint64(32)
    # one permutation at a time over a contiguous vector, in place: memory-bound, ~10x faster
    # than a (shingles x permutations) matrix reduced along axis 0
    with np.errstate(over="ignore"):
        for k in range(num_perm):
            np.multiply(g, a[k], out=tmp)
            np.add(tmp, b[k], out=tmp)
            np.right_shift(tmp, shift, out=tmp)
            out[k] = np.minimum.reduceat(tmp, starts)
    return out.T


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """uint64 key per (document, band), shape (documents, bands)."""
    keys = np.empty((sig.shape[0], bands), dtype=np.uint64)
    s = sig.astype(np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            k = np.full(sig.shape[0], np.uint64(band + 1) * _MUL, dtype=np.uint64)
            for j in range(band * rows, (band + 1) * rows):
                k = (k ^ s[:, j]) * _MUL
            keys[:, band] = k
    return keys


def jaccard_estimate(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


BAND_DTYPE = np.dtype([("band", "<u4"), ("key", "<u8"), ("doc", "<i8")])


class LSH:
    """Signatures -> (band, key, doc) records for the LSH shuffle."""

    def __init__(
        self,
        threshold: float = 0.8,
        num_perm: int = 128,
        ngram: int = 5,
        seed: int = 1,
        bands: int | None = None,
        rows: int | None = None,
    ):
        if (bands is None) != (rows is None):
            raise ValueError("set both minhash.bands and minhash.rows, or neither")
        self.bands, self.rows = (bands, rows) if bands else optimal_bands(threshold, num_perm)
        if self.bands * self.rows > num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} > num_perm = {num_perm}")
        self.num_perm, self.ngram, self.seed = num_perm, ngram, seed

    def records(self, texts: list[str], langs: list[str], docs: np.ndarray) -> np.ndarray:
        sig = signatures(texts, langs, self.num_perm, self.ngram, self.seed)
        keys = band_keys(sig, self.bands, self.rows)
        rec = np.empty(keys.size, dtype=BAND_DTYPE)
        rec["band"] = np.tile(np.arange(self.bands, dtype=np.uint32), len(texts))
        rec["key"] = keys.reshape(-1)
        rec["doc"] = np.repeat(np.asarray(docs, dtype=np.int64), self.bands)
        return rec


def bucket_sort(rec: np.ndarray, hash_values: np.ndarray, buckets: int):
    """Records stably sorted by bucket (hash mod buckets) and each bucket's offsets."""
    b = (np.asarray(hash_values, dtype=np.uint64) % np.uint64(buckets)).astype(np.int64)
    order = np.argsort(b, kind="stable")
    return rec[order], np.searchsorted(b[order], np.arange(buckets + 1))


def near_edges(records: np.ndarray) -> np.ndarray:
    """Edges (u, v), u > v, from every document to the smallest document sharing its
    (band, key); unique and sorted."""
    from tokenmill.filters.components import EDGE_DTYPE

    if len(records) == 0:
        return np.empty(0, EDGE_DTYPE)
    r = records[np.lexsort((records["doc"], records["key"], records["band"]))]
    new_group = np.concatenate(
        [[True], (r["band"][1:] != r["band"][:-1]) | (r["key"][1:] != r["key"][:-1])]
    )
    group = np.cumsum(new_group) - 1
    first_doc = r["doc"][np.flatnonzero(new_group)][group]
    mask = r["doc"] != first_doc
    pairs = np.unique(np.stack([r["doc"][mask], first_doc[mask]], axis=1), axis=0)
    edges = np.empty(len(pairs), EDGE_DTYPE)
    if len(pairs):
        edges["u"], edges["v"] = pairs[:, 0], pairs[:, 1]
    return edges


def words_of(text: str, lang: str) -> list[str]:
    """The words `shingle_hashes` hashes, as strings (for checks and true Jaccard)."""
    t = _prepare(text)
    cls = _CLASSES(code_points(t))
    if lang in NO_SPACE_LANGS:
        return [t[i] for i in np.flatnonzero(cls & _ALNUM).tolist()]
    word = (cls & _WORD).astype(bool)
    edge = np.flatnonzero(np.diff(np.concatenate([[False], word, [False]]).astype(np.int8)))
    return [t[a:b] for a, b in zip(edge[0::2].tolist(), edge[1::2].tolist(), strict=True)]


def shingle_set(text: str, lang: str, ngram: int) -> set:
    """The document's shingles as a set (for true Jaccard), split as `shingle_hashes` does."""
    words = words_of(text, lang)
    grams = {tuple(words[i : i + ngram]) for i in range(len(words) - ngram + 1)}
    return grams or set(words) or {text}


def true_jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0
