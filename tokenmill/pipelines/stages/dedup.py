"""Stage `dedup`: exact dedup, one task per hash bucket; and the lookups of its results.

Plans one task per bucket from the `process` counts (each partition's slice of the bucket in
its hashes file); each task finds the documents whose text appeared earlier in the run and
writes their keys (`WorkDir.dups`) with, aligned, the key kept instead (`.kept.npy`).
Collects the duplicates files (`Run.bucket_files`) and the stage's cluster sizes.

`duplicate_rows`, `duplicate_pairs` and `resolve_ids` read such files (of exact or near
dedup) back for one partition: the tokenizer and tokenize stages drop what they list.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from tokenmill.filters.against import exact_part
from tokenmill.filters.exact import HASH_DTYPE, duplicate_keys
from tokenmill.fsio import atomic_path
from tokenmill.pipelines.engine import StageResult, Task
from tokenmill.pipelines.stages.base import Counts, Run, Stage
from tokenmill.pipelines.workdir import kept_file


@dataclass
class DedupCounts(Counts):
    TOTALS = {"hashes": "hashes", "duplicates": "duplicates"}

    bucket: int
    hashes: int
    duplicates: int
    cluster_sizes: dict
    wall_s: float = 0.0


def bucket_specs(run: Run, kind: str, b: int) -> list[tuple[str, int, int]]:
    """(file, start, end) of bucket `b` in every partition's `hashes` or `bands` records."""
    wd = run.wd
    out = []
    for p, c in zip(run.partitions, run.counts["process"], strict=True):
        if kind == "hashes":
            out.append((str(wd.hashes(p.source, p.key)), *c.bucket_offsets[b : b + 2]))
        else:
            out.append((str(wd.bands(p.source, p.key)), *c.band_offsets[b : b + 2]))
    return out


def bucket_tasks(run: Run, kind: str, n: int, fn, output, done, index=None) -> list[Task]:
    """One task per bucket of a shuffle (`fn(bucket, its slices of every partition's `kind`
    file, output(bucket), index(bucket) or None)`): named b0, b1, ... for hashes, n0, n1, ...
    for bands. `index`: where the bucket's part of OUT/dedup goes (dedup.write_index)."""
    letter = "b" if kind == "hashes" else "n"
    write = run.cfg.dedup.write_index and index is not None
    return [
        Task(
            f"{letter}{b}",
            fn,
            (b, bucket_specs(run, kind, b), str(output(b)), str(index(b)) if write else None),
            done(b),
        )
        for b in range(n)
    ]


def save_index_part(path: str | None, part: np.ndarray) -> None:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, part)


def dedup_bucket(
    bucket: int, hash_files: list[tuple[str, int, int]], out_path: str, index: str | None = None
) -> dict:
    """Find, in one hash bucket, every document whose text appeared earlier in the run; with
    `index`, write the bucket's distinct hashes there (OUT/dedup, tokenmill.filters.against)."""
    parts = []
    for path, lo, hi in hash_files:
        if hi > lo:
            parts.append(np.array(np.load(path, mmap_mode="r")[lo:hi]))
    records = np.concatenate(parts) if parts else np.empty(0, dtype=HASH_DTYPE)
    dups, kept, sizes = duplicate_keys(records, with_cluster_sizes=True, with_kept=True)
    save_index_part(index, exact_part(records))
    with atomic_path(kept_file(out_path)) as tmp, open(tmp, "wb") as f:
        np.save(f, kept)  # the key kept for each duplicate, aligned (for --keep-removed)
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, dups)
    return DedupCounts(bucket, int(len(records)), int(len(dups)), sizes).to_json()


class DedupStage(Stage):
    name = "dedup"
    counts = DedupCounts

    def enabled(self, run: Run) -> bool:
        return run.cfg.dedup.exact

    def tasks(self, run: Run) -> list[Task]:
        wd = run.wd
        return bucket_tasks(
            run, "hashes", run.buckets, dedup_bucket, wd.dups, wd.done_dedup, wd.exact_index
        )

    def collect(self, run: Run, result: StageResult, counts: list[DedupCounts]) -> None:
        run.bucket_files = [str(run.wd.dups(b)) for b in range(run.buckets)]
        sizes: dict[str, int] = {}
        for c in counts:
            for k, v in c.cluster_sizes.items():
                sizes[k] = sizes.get(k, 0) + v
        run.stages[self.name]["cluster_sizes"] = dict(
            sorted(sizes.items(), key=lambda x: int(x[0]))
        )


# ---- the results, read back per partition ---------------------------------------------------


def _partition_slice(keys: np.ndarray, ordinal: int) -> tuple[int, int]:
    """Where the keys of partition `ordinal` are in the sorted `keys`."""
    lo_key, hi_key = np.int64(ordinal) << 32, np.int64(ordinal + 1) << 32
    a, b = np.searchsorted(keys, [lo_key, hi_key])
    return int(a), int(b)


def duplicate_rows(ordinal: int, bucket_files: list[str]) -> np.ndarray:
    """Rows of partition `ordinal` that are duplicates in the files (sorted)."""
    found = []
    for path in bucket_files:
        keys = np.load(path, mmap_mode="r")
        a, b = _partition_slice(keys, ordinal)
        if b > a:
            found.append(np.asarray(keys[a:b]) & 0xFFFFFFFF)
    return np.sort(np.concatenate(found)) if found else np.empty(0, np.int64)


def duplicate_pairs(ordinal: int, files: list[str]) -> dict[int, int]:
    """{row of partition `ordinal`: key of the document kept instead} from the dedup files
    and their aligned `.kept.npy`."""
    out: dict[int, int] = {}
    for path in files:
        keys = np.load(path, mmap_mode="r")
        a, b = _partition_slice(keys, ordinal)
        if b > a:
            kept = np.load(kept_file(path), mmap_mode="r")[a:b]
            out.update(
                zip((np.asarray(keys[a:b]) & 0xFFFFFFFF).tolist(), kept.tolist(), strict=True)
            )
    return out


def resolve_ids(keys, docs_paths: dict[int, str]) -> dict[int, str]:
    """Document ids of order keys (partition ordinal << 32 | row), reading only `id` columns."""
    by_part: dict[int, list[int]] = defaultdict(list)
    for k in set(keys):
        by_part[int(k) >> 32].append(int(k))
    out: dict[int, str] = {}
    for ordinal, ks in by_part.items():
        ids = pq.read_table(docs_paths[ordinal], columns=["id"]).column("id")
        for k in ks:
            out[k] = ids[k & 0xFFFFFFFF].as_py()
    return out
