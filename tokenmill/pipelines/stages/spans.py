"""Stages `spans` and `span_dedup` (only with `dedup.spans.enabled`): span deduplication as C4
did (tokenmill.filters.spans), distributed like exact dedup.

`spans`: one task per partition reads the documents the process stage kept, hashes every
span of `dedup.spans.sentences` sentences and writes the records sorted by span bucket
(`WorkDir.spans`). `span_dedup`: one task per span bucket gathers that bucket of every
partition and writes the spans whose hash occurred earlier in the corpus (`WorkDir.span_dups`,
sorted by document key). The tokenize stage then removes those spans' sentences from their
documents (`span_edits`), counting them as rewritten (`dedup:span`), or removes a document
left empty as `dedup:span`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from tokenmill.filters.exact import order_key
from tokenmill.filters.minhash import bucket_sort
from tokenmill.filters.spans import SPAN_DTYPE, duplicate_spans, span_records
from tokenmill.fsio import atomic_path
from tokenmill.pipelines.docpass import BATCH_DOCS
from tokenmill.pipelines.engine import Task
from tokenmill.pipelines.stages.base import Counts, Run, Stage
from tokenmill.pipelines.stages.dedup import _partition_slice, duplicate_rows

SPAN_BUCKETS_PER_BUCKET = 16  # documents have tens of sentences: more buckets than exact's


def span_buckets(run: Run) -> int:
    return min(65536, run.buckets * SPAN_BUCKETS_PER_BUCKET)


@dataclass
class SpanCounts(Counts):
    TOTALS = {"spans": "spans"}

    partition: str
    spans: int
    offsets: list
    wall_s: float = 0.0


@dataclass
class SpanDedupCounts(Counts):
    TOTALS = {"spans": "spans", "duplicates": "duplicates"}

    bucket: int
    spans: int
    duplicates: int
    wall_s: float = 0.0


def hash_partition(
    part_key: str,
    ordinal: int,
    docs_path: str,
    n: int,
    buckets: int,
    out_path: str,
    dup_files: list[str] = (),
) -> dict:
    """The span records of one partition's kept documents, sorted by span bucket; the
    documents the dedup stages drop (listed in `dup_files`) have none: a span whose first
    occurrence is in a dropped document must stay where it occurs next."""
    drop = duplicate_rows(ordinal, list(dup_files))
    parts, row0 = [], 0
    for batch in pq.ParquetFile(docs_path).iter_batches(batch_size=BATCH_DOCS, columns=["text"]):
        rows = np.arange(row0, row0 + batch.num_rows)
        row0 += batch.num_rows
        texts = batch.column("text").to_pylist()
        if len(drop):
            keep = ~np.isin(rows, drop)
            rows, texts = rows[keep], [t for t, k in zip(texts, keep.tolist(), strict=True) if k]
        parts.append(span_records(texts, order_key(ordinal, rows), n))
    rec = np.concatenate(parts) if parts else np.empty(0, SPAN_DTYPE)
    rec, offsets = bucket_sort(rec, rec["hash"], buckets)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        np.save(f, rec)
    return SpanCounts(part_key, int(len(rec)), offsets.tolist()).to_json()


def dedup_span_bucket(bucket: int, files: list[tuple[str, int, int]], out_path: str) -> dict:
    """The spans of one bucket whose hash occurred earlier in the corpus."""
    parts = [np.array(np.load(p, mmap_mode="r")[lo:hi]) for p, lo, hi in files if hi > lo]
    records = np.concatenate(parts) if parts else np.empty(0, SPAN_DTYPE)
    dups = duplicate_spans(records)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        np.save(f, dups)
    return SpanDedupCounts(bucket, int(len(records)), int(len(dups))).to_json()


def span_edits(ordinal: int, files: list[str]) -> dict[int, list[int]]:
    """{row of partition `ordinal`: its duplicate spans' indexes (sorted)} from the files."""
    out: dict[int, list[int]] = defaultdict(list)
    for path in files:
        dups = np.load(path, mmap_mode="r")
        a, b = _partition_slice(np.asarray(dups["key"]), ordinal)
        if b > a:
            part = np.asarray(dups[a:b])
            for key, idx in zip(part["key"].tolist(), part["idx"].tolist(), strict=True):
                out[key & 0xFFFFFFFF].append(idx)
    return {row: sorted(idx) for row, idx in out.items()}


class SpansStage(Stage):
    name = "spans"
    counts = SpanCounts

    def enabled(self, run: Run) -> bool:
        return run.cfg.dedup.spans.enabled

    def tasks(self, run: Run) -> list[Task]:
        wd, n, buckets = run.wd, run.cfg.dedup.spans.sentences, span_buckets(run)
        dups = run.bucket_files + run.near_files

        def dropped(p) -> list[str]:  # what exact, near and against dedup drop
            against = run.against_files.get(p.ordinal)
            return dups + ([against] if against else [])

        return [
            Task(
                f"{p.source}-{p.key}",
                hash_partition,
                (
                    p.key,
                    p.ordinal,
                    str(wd.docs(p.source, p.key)),
                    n,
                    buckets,
                    str(wd.spans(p.source, p.key)),
                    dropped(p),
                ),
                wd.done_spans(p.source, p.key),
                p.nbytes,
            )
            for p in run.partitions
        ]


class SpanDedupStage(Stage):
    name = "span_dedup"
    counts = SpanDedupCounts

    def enabled(self, run: Run) -> bool:
        return run.cfg.dedup.spans.enabled

    def tasks(self, run: Run) -> list[Task]:
        wd = run.wd
        offsets = [c.offsets for c in run.counts["spans"]]
        files = [str(wd.spans(p.source, p.key)) for p in run.partitions]
        return [
            Task(
                f"s{b}",
                dedup_span_bucket,
                (
                    b,
                    [(f, o[b], o[b + 1]) for f, o in zip(files, offsets, strict=True)],
                    str(wd.span_dups(b)),
                ),  # fmt: skip
                wd.done_span_dups(b),
            )
            for b in range(span_buckets(run))
        ]

    def collect(self, run: Run, result, counts: list[SpanDedupCounts]) -> None:
        run.span_files = [str(run.wd.span_dups(c.bucket)) for c in counts if c.duplicates]
