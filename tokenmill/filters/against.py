"""Deduplication against earlier prepared corpora: the index a run leaves, and lookups in it.

Every `prepare` with `dedup.write_index` (the default) leaves OUT/dedup/: the exact hashes
and the MinHash band keys of every document its process stage kept (duplicates included:
a copy has its original's hash), in the run's own buckets, one sorted, distinct array per
bucket, and meta.json with the settings they were made with. A later run given that OUT in
`dedup.against` removes its documents whose exact hash, or any band key, is in the index
(`dedup:against`), without reading the old corpus' text.

    OUT/dedup/meta.json           settings, bucket counts, documents indexed
    OUT/dedup/exact/bBUCKET.npy   (hi, lo) of xxh3-128, uint64 pairs sorted: 16 bytes each
    OUT/dedup/near/nBUCKET.npy    band keys (uint64, a band's index is in its key) sorted: 8 bytes

A document's bucket is `hi % buckets` (exact) and `key % near_buckets` (bands), as in the
run's shuffles, so a lookup opens only its bucket's file (memory-mapped).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

INDEX_VERSION = 1


def exact_part(records: np.ndarray) -> np.ndarray:
    """The distinct (hi, lo) of exact-dedup records (HASH_DTYPE), sorted, as (n, 2) uint64."""
    pairs = np.empty((len(records), 2), np.uint64)
    pairs[:, 0], pairs[:, 1] = records["hi"], records["lo"]
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def near_part(records: np.ndarray) -> np.ndarray:
    """The distinct band keys of LSH records (BAND_DTYPE), sorted."""
    return np.unique(np.asarray(records["key"], np.uint64))


def in_sorted(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Whether each of `values` is in the sorted 1-d `sorted_values`."""
    if not len(sorted_values) or not len(values):
        return np.zeros(len(values), bool)
    pos = np.searchsorted(sorted_values, values)
    pos[pos == len(sorted_values)] = 0
    return np.asarray(sorted_values[pos] == values)


def in_pairs(sorted_pairs: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Whether each (hi, lo) is a row of the (n, 2) `sorted_pairs` (sorted by hi, then lo)."""
    out = np.zeros(len(hi), bool)
    if not len(sorted_pairs) or not len(hi):
        return out
    col = np.ascontiguousarray(sorted_pairs[:, 0])
    start = np.searchsorted(col, hi, side="left")
    stop = np.searchsorted(col, hi, side="right")
    for i in np.flatnonzero(stop > start).tolist():  # a hi seen: compare its lo values
        out[i] = bool((sorted_pairs[start[i] : stop[i], 1] == lo[i]).any())
    return out


class AgainstError(ValueError):
    """An OUT whose index cannot be used; the message names it and what to do."""


class DedupIndex:
    """The index an earlier run left in OUT/dedup (read-only, memory-mapped per bucket)."""

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.root = self.out / "dedup"
        meta = self.root / "meta.json"
        if not meta.is_file():
            raise AgainstError(
                f"dedup.against: {self.out} has no deduplication index ({meta} not found): "
                "it is not a finished prepare output, or was prepared by an older tokenmill or "
                "with dedup.write_index: false; prepare it again to make one"
            )
        self.meta = json.loads(meta.read_text(encoding="utf-8"))
        if self.meta.get("version") != INDEX_VERSION:
            raise AgainstError(f"dedup.against: {meta} is index version {self.meta.get('version')}")
        self._cache: dict[str, np.ndarray] = {}

    def settings(self) -> dict:
        return self.meta["settings"]

    def _part(self, path: Path) -> np.ndarray:
        key = str(path)
        if key not in self._cache:
            self._cache[key] = np.load(path, mmap_mode="r")
        return self._cache[key]

    def _by_bucket(self, of: np.ndarray, buckets: int | None, part, lookup) -> np.ndarray:
        """`lookup(bucket's sorted array, positions)` for the values whose bucket (`of` mod
        `buckets`) it is, bucket by bucket; False where there is no index."""
        out = np.zeros(len(of), bool)
        if not buckets or not len(of):
            return out
        b = (of % np.uint64(buckets)).astype(np.int64)
        for bucket in np.unique(b).tolist():
            at = np.flatnonzero(b == bucket)
            out[at] = lookup(self._part(part(bucket)), at)
        return out

    def exact(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Whether each (hi, lo) text hash is in the index."""
        return self._by_bucket(
            hi,
            self.meta.get("buckets"),
            lambda b: self.root / "exact" / f"b{b:05d}.npy",
            lambda part, at: in_pairs(part, hi[at], lo[at]),
        )

    def near(self, keys: np.ndarray) -> np.ndarray:
        """Whether each band key is in the index."""
        return self._by_bucket(
            keys,
            self.meta.get("near_buckets"),
            lambda b: self.root / "near" / f"n{b:05d}.npy",
            lambda part, at: in_sorted(part, keys[at]),
        )
