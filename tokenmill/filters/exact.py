"""Exact deduplication: a 128-bit hash of normalized text, then, across the whole run, the
first occurrence in (source, file, record) order is kept.

The global step is a hash-partitioned shuffle on disk: each partition writes its hashes
sorted by bucket; one task per bucket finds the duplicates of that bucket. Memory per task is
one bucket's hashes, whatever the corpus size, and the result does not depend on the worker
count.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import xxhash

HASH_DTYPE = np.dtype([("hi", "<u8"), ("lo", "<u8"), ("key", "<i8")])


def normalize(text: str) -> str:
    """NFC, case-folded, whitespace runs collapsed to one space."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def text_hashes(texts: list[str], do_normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo) uint64 halves of xxh3-128 of each (normalized) text."""
    if not texts:
        return np.empty(0, np.uint64), np.empty(0, np.uint64)
    norm = normalize if do_normalize else (lambda t: t)
    digests = b"".join(xxhash.xxh3_128_digest(norm(t).encode("utf-8")) for t in texts)
    both = np.frombuffer(digests, dtype=">u8").reshape(-1, 2).astype(np.uint64)
    return both[:, 0].copy(), both[:, 1].copy()


def order_key(partition_ordinal: int, rows: np.ndarray) -> np.ndarray:
    """A global order: partitions in (source, file, slice) order, then rows within one."""
    return (np.int64(partition_ordinal) << np.int64(32)) | rows.astype(np.int64)


def bucketize(hi: np.ndarray, lo: np.ndarray, keys: np.ndarray, buckets: int):
    """Records sorted by bucket (stable) and the offsets of each bucket in them."""
    rec = np.empty(len(hi), dtype=HASH_DTYPE)
    rec["hi"], rec["lo"], rec["key"] = hi, lo, keys
    b = (hi % np.uint64(buckets)).astype(np.int64)
    order = np.argsort(b, kind="stable")
    rec = rec[order]
    offsets = np.searchsorted(b[order], np.arange(buckets + 1))
    return rec, offsets


def duplicate_keys(records: np.ndarray, with_cluster_sizes: bool = False, with_kept: bool = False):
    """Order keys of every record whose hash was seen at a smaller key (sorted ascending).

    With `with_kept`, also the key kept for each of them (the first of its hash), aligned;
    with `with_cluster_sizes`, also {copies: number of texts seen that many times} (>= 2).
    Returns a tuple when either is asked for: (dups[, kept][, sizes])."""
    if len(records) == 0:
        empty = np.empty(0, dtype=np.int64)
        out = [empty] + ([empty] if with_kept else []) + ([{}] if with_cluster_sizes else [])
        return tuple(out) if len(out) > 1 else empty
    idx = np.lexsort((records["key"], records["lo"], records["hi"]))
    r = records[idx]
    same = (r["hi"][1:] == r["hi"][:-1]) & (r["lo"][1:] == r["lo"][:-1])
    starts = np.flatnonzero(np.concatenate([[True], ~same]))
    group = np.cumsum(np.concatenate([[True], ~same])) - 1
    first = r["key"][starts][group]
    is_dup = np.concatenate([[False], same])
    order = np.argsort(r["key"][is_dup], kind="stable")
    dups = r["key"][is_dup][order]
    out = [dups]
    if with_kept:
        out.append(first[is_dup][order])
    if with_cluster_sizes:
        lengths = np.diff(np.append(starts, len(r)))
        values, counts = np.unique(lengths[lengths > 1], return_counts=True)
        out.append({str(int(v)): int(c) for v, c in zip(values, counts, strict=True)})
    return tuple(out) if len(out) > 1 else dups
