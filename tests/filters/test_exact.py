"""Exact dedup: normalization, first occurrence kept, bucket shuffle = global answer."""

from __future__ import annotations

import numpy as np

from tokenmill.filters.exact import (
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
