"""Exact dedup: normalization, first occurrence kept, bucket shuffle = global answer, and each
function against a plain reading (xxhash, Python loops)."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import xxhash

from tokenmill.filters.exact import (
    HASH_DTYPE,
    bucketize,
    duplicate_keys,
    normalize,
    order_key,
    text_hashes,
)


def test_normalize_folds_case_width_of_space_and_nfc():
    assert normalize("Caf\u0065\u0301  au\tLAIT\n") == normalize("café au lait")
    hi, lo = text_hashes(["Café  au lait", "café au\nlait", "cafe au lait"])
    assert (hi[0], lo[0]) == (hi[1], lo[1])
    assert (hi[0], lo[0]) != (hi[2], lo[2])
    raw_hi, _ = text_hashes(["A", "a"], do_normalize=False)
    assert raw_hi[0] != raw_hi[1]


def _records(texts, ordinal, buckets):
    hi, lo = text_hashes(texts)
    return bucketize(hi, lo, order_key(ordinal, np.arange(len(texts))), buckets)


def test_first_occurrence_kept_whatever_the_bucket_count():
    a = ["one", "two", "three", "two", "four"]
    b = ["five", "one", "six", "Two"]
    expected = {
        int(order_key(0, np.array([3]))[0]),
        int(order_key(1, np.array([1]))[0]),
        int(order_key(1, np.array([3]))[0]),
    }
    for buckets in (1, 2, 7):
        ra, oa = _records(a, 0, buckets)
        rb, ob = _records(b, 1, buckets)
        dups = set()
        for k in range(buckets):
            part = np.concatenate([ra[oa[k] : oa[k + 1]], rb[ob[k] : ob[k + 1]]])
            dups |= set(duplicate_keys(part).tolist())
        assert dups == expected


# ---- each function against a plain reading (mutation testing found these gaps) -------------


def test_normalize_gives_the_exact_text():
    # NFC (e + combining acute is é), case-folded (ß is ss), every whitespace run one space
    assert normalize("  Caf\u0065\u0301\tAU\u00a0lait STRAẞE \n") == "café au lait strasse"
    assert normalize("") == "" and normalize(" \t\n") == ""


def test_text_hashes_are_xxh3_128_of_the_normalized_utf8():
    texts = ["Café  au lait", "", "日本語のテキスト", "a" * 1000, "A b"]
    hi, lo = text_hashes(texts)
    assert hi.dtype == lo.dtype == np.dtype(np.uint64) and hi.shape == lo.shape == (5,)
    for t, h, low in zip(texts, hi.tolist(), lo.tolist(), strict=True):
        d = xxhash.xxh3_128_intdigest(normalize(t).encode("utf-8"))
        assert (h, low) == (d >> 64, d & (2**64 - 1))
    raw_hi, raw_lo = text_hashes(["A b"], do_normalize=False)
    d = xxhash.xxh3_128_intdigest(b"A b")
    assert (int(raw_hi[0]), int(raw_lo[0])) == (d >> 64, d & (2**64 - 1))
    # a partition without text still gives two (empty) hash columns
    e_hi, e_lo = text_hashes([])
    assert e_hi.shape == e_lo.shape == (0,)
    assert e_hi.dtype == e_lo.dtype == np.dtype(np.uint64)


def test_order_key_packs_partition_and_row_as_the_stages_unpack_it():
    rows = np.array([0, 1, 7, 2**32 - 1])
    keys = order_key(5, rows)
    assert keys.dtype == np.dtype(np.int64)
    # tokenmill/pipelines/stages.py reads a key back as (key >> 32, key & 0xFFFFFFFF)
    assert [(int(k) >> 32, int(k) & 0xFFFFFFFF) for k in keys] == [(5, int(r)) for r in rows]
    assert order_key(0, np.array([2**32 - 1]))[0] < order_key(1, np.array([0]))[0]


def test_bucketize_groups_by_hash_modulo_buckets_in_input_order():
    rng = np.random.default_rng(0)
    n = 2000
    hi = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    lo = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    keys = order_key(3, np.arange(n))
    for buckets in (1, 3, 16):
        rec, offsets = bucketize(hi, lo, keys, buckets)
        bucket = [int(h) % buckets for h in hi.tolist()]
        assert offsets.tolist() == [sum(b < k for b in bucket) for k in range(buckets + 1)]
        for k in range(buckets):
            part = rec[offsets[k] : offsets[k + 1]]
            mine = [i for i in range(n) if bucket[i] == k]  # in input order: a stable sort
            assert part["key"].tolist() == keys[mine].tolist()
            assert part["hi"].tolist() == hi[mine].tolist()
            assert part["lo"].tolist() == lo[mine].tolist()


def plain_duplicates(records: list[tuple[int, int, int]]) -> tuple[list, list, dict]:
    """(dups, kept, sizes) read plainly: records in key order, a dict of first keys."""
    first: dict[tuple[int, int], int] = {}
    copies: Counter = Counter()
    dups, kept = [], []
    for h, low, key in sorted(records, key=lambda r: r[2]):
        copies[(h, low)] += 1
        if (h, low) in first:
            dups.append(key)
            kept.append(first[(h, low)])
        else:
            first[(h, low)] = key
    sizes = Counter(c for c in copies.values() if c > 1)
    return dups, kept, {str(c): n for c, n in sizes.items()}


def test_duplicate_keys_kept_keys_and_cluster_sizes_equal_a_plain_reading():
    rng = random.Random(0)
    # hashes equal in one half only must not count as equal
    hashes = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (2**64 - 1, 0), (0, 2**64 - 1)]
    # (9, 9): seen once; (5, 5): exactly twice (the smallest cluster)
    picks = [rng.choice(hashes) for _ in range(300)] + [(9, 9), (5, 5), (5, 5)]
    keys = rng.sample(range(10**6), len(picks))
    plain = [(h, low, k) for (h, low), k in zip(picks, keys, strict=True)]
    records = np.array(plain, dtype=HASH_DTYPE)
    want_dups, want_kept, want_sizes = plain_duplicates(plain)
    dups, kept, sizes = duplicate_keys(records, with_cluster_sizes=True, with_kept=True)
    assert dups.tolist() == want_dups and kept.tolist() == want_kept and sizes == want_sizes
    assert sizes["2"] == 1 and sum(int(c) * n for c, n in sizes.items()) == 302
    only = duplicate_keys(records)
    assert isinstance(only, np.ndarray) and only.tolist() == want_dups
    d, k = duplicate_keys(records, with_kept=True)
    assert (d.tolist(), k.tolist()) == (want_dups, want_kept)
    d, s = duplicate_keys(records, with_cluster_sizes=True)
    assert (d.tolist(), s) == (want_dups, want_sizes)


def test_duplicate_keys_of_no_records_has_the_same_shape():
    none = np.empty(0, dtype=HASH_DTYPE)
    only = duplicate_keys(none)
    assert isinstance(only, np.ndarray) and only.shape == (0,) and only.dtype == np.int64
    dups, kept = duplicate_keys(none, with_kept=True)
    assert dups.dtype == kept.dtype == np.int64 and len(dups) == len(kept) == 0
    dups, sizes = duplicate_keys(none, with_cluster_sizes=True)
    assert dups.dtype == np.int64 and len(dups) == 0 and sizes == {}
    dups, kept, sizes = duplicate_keys(none, with_cluster_sizes=True, with_kept=True)
    assert len(dups) == len(kept) == 0 and sizes == {}
