"""Stage `process`: per partition, one fused pass: read -> language ID -> quality -> hashes.

Plans one task per partition (from `scan`); each runs the shared `DocumentPass` and writes
the kept documents (`WorkDir.docs`, DOC_SCHEMA + hash_lo), their exact-dedup hashes sorted by
bucket (`WorkDir.hashes`), with MinHash their LSH band keys sorted by near bucket
(`WorkDir.bands`) and, with keep_removed, what it removed (`WorkDir.removed`). Collects the
partitions' counts: the dedup stages read each partition's bucket offsets from them.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokenmill.config import Config
from tokenmill.filters.exact import bucketize, order_key, text_hashes
from tokenmill.filters.langid import LanguageId
from tokenmill.filters.minhash import BAND_DTYPE, LSH, bucket_sort
from tokenmill.filters.registry import build_filters
from tokenmill.fsio import atomic_path
from tokenmill.pipelines.docpass import UNDETERMINED, Batch, DocumentPass
from tokenmill.pipelines.engine import Task
from tokenmill.pipelines.readers import Bad, Doc, default_rules, read_records
from tokenmill.pipelines.stages.base import Counts, Partition, Run, Stage
from tokenmill.pipelines.stages.decontam import Decontaminator
from tokenmill.pipelines.workdir import WorkDir

DOC_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("lang", pa.string()),
        ("lang_score", pa.float32()),
        ("meta", pa.string()),
        # a scoring rule's score (fasttext_quality); null where none judged the document.
        # Work files written before it lack the column: readers take that as null.
        ("quality_score", pa.float32()),
    ]
)
REMOVED_SCHEMA = DOC_SCHEMA.append(pa.field("reason", pa.string()))
# Kept documents carry their exact-dedup hash (sampling for the tokenizer uses it).
KEPT_SCHEMA = DOC_SCHEMA.append(pa.field("hash_lo", pa.uint64()))
REMOVED_RAW_CAP = 65_536  # bytes of a bad record's raw line kept with keep_removed


@dataclass
class ProcessCounts(Counts):
    PROGRESS = ("documents_in", "bytes_in")
    TOTALS = {k: k for k in ("documents_in", "documents_kept", "bytes_in", "bytes_kept")}

    partition: str
    source: str
    documents_in: int
    bytes_in: int
    documents_kept: int
    bytes_kept: int
    removed: dict
    languages: dict
    histograms: dict
    errors: list
    bucket_offsets: list
    band_offsets: list | None
    ordinal: int
    wall_s: float = 0.0
    rewritten: dict = field(default_factory=dict)  # per rule: DocumentPass.rewritten (older: {})
    decontam: dict = field(default_factory=dict)  # evaluation set -> the items its removals hit


def _input_removed_table(part: Partition, rows: list[tuple[int, Bad | Doc, str]]) -> pa.Table:
    """Rows of OUT/removed for records set aside while reading: the raw line as text (invalid
    UTF-8 replaced, at most REMOVED_RAW_CAP bytes), the file and record number in meta."""
    texts, metas = [], []
    for idx, item, _ in rows:
        if isinstance(item, Doc):  # a document over max_doc_bytes
            raw = item.text.encode("utf-8", "replace")
            line = None
        else:
            raw = item.raw or b""
            line = item.line
        texts.append(raw[:REMOVED_RAW_CAP].decode("utf-8", "replace"))
        meta = {"file": part.path, "record": idx, "line": line, "raw_bytes": len(raw)}
        if isinstance(item, Bad) and item.raw is None:
            meta["raw_bytes"] = None  # not kept by the reader (a line over max_doc_bytes)
        metas.append(json.dumps(meta, ensure_ascii=False))
    return pa.table(
        {
            "id": [f"{part.source}/{part.rel}/{idx}" for idx, _, _ in rows],
            "source": [part.source] * len(rows),
            "text": texts,
            "url": [None] * len(rows),
            "lang": [UNDETERMINED] * len(rows),
            "lang_score": [0.0] * len(rows),
            "meta": metas,
            "quality_score": [None] * len(rows),
            "reason": [reason for _, _, reason in rows],
        },
        schema=REMOVED_SCHEMA,
    )


def _doc_table(part: Partition, b: Batch, idxs: list[int], schema, extra) -> pa.Table:
    """The rows `idxs` of a batch as a table in the inter-stage document schema."""
    cols = {
        "id": [f"{part.source}/{part.rel}/{b.docs[i][0]}" for i in idxs],
        "source": [part.source] * len(idxs),
        "text": [b.docs[i][1].text for i in idxs],
        "url": [b.docs[i][1].url for i in idxs],
        "lang": [b.langs[i] for i in idxs],
        "lang_score": [b.scores[i] for i in idxs],
        "meta": [b.docs[i][2] for i in idxs],
        "quality_score": [b.quality_scores[i] for i in idxs],
        **extra,
    }
    return pa.table(cols, schema=schema)


class _KeptDocs:
    """The kept documents of a partition as they are written: rows, hashes and band keys."""

    def __init__(self, part: Partition, cfg: Config, writer: pq.ParquetWriter):
        mh = cfg.dedup.minhash
        self.part, self.normalize, self.writer = part, cfg.dedup.normalize, writer
        self.lsh = (
            LSH(mh.threshold, mh.num_perm, mh.ngram, mh.seed, mh.bands, mh.rows)
            if mh.enabled
            else None
        )
        self.his, self.los, self.rows, self.band_recs = [], [], [], []
        self.n = self.nbytes = 0

    def add(self, b: Batch, keep: list[int]) -> None:
        texts = [b.texts[i] for i in keep]
        hi, lo = text_hashes(texts, self.normalize)
        self.writer.write_table(_doc_table(self.part, b, keep, KEPT_SCHEMA, {"hash_lo": lo}))
        self.his.append(hi)
        self.los.append(lo)
        self.rows.append(np.arange(self.n, self.n + len(keep)))
        if self.lsh is not None:
            keys = order_key(self.part.ordinal, self.rows[-1])
            self.band_recs.append(self.lsh.records(texts, [b.langs[i] for i in keep], keys))
        self.n += len(keep)
        self.nbytes += sum(b.docs[i][1].nbytes for i in keep)

    def save_hashes(self, wd: WorkDir, buckets: int) -> list[int]:
        """Write the hashes sorted by bucket; the buckets' offsets."""
        cat = np.concatenate
        hi = cat(self.his) if self.his else np.empty(0, np.uint64)
        lo = cat(self.los) if self.los else np.empty(0, np.uint64)
        keys = order_key(self.part.ordinal, cat(self.rows) if self.rows else np.empty(0, np.int64))
        rec, offsets = bucketize(hi, lo, keys, buckets)
        with atomic_path(wd.hashes(self.part.source, self.part.key)) as tmp, open(tmp, "wb") as f:
            np.save(f, rec)
        return offsets.tolist()

    def save_bands(self, wd: WorkDir, near_buckets: int) -> list[int] | None:
        """Write the band keys sorted by near bucket; the buckets' offsets (None: no MinHash)."""
        if self.lsh is None:
            return None
        recs = self.band_recs
        brec = np.concatenate(recs) if recs else np.empty(0, BAND_DTYPE)
        brec, offsets = bucket_sort(brec, brec["key"], near_buckets)
        with atomic_path(wd.bands(self.part.source, self.part.key)) as tmp, open(tmp, "wb") as f:
            np.save(f, brec)
        return offsets.tolist()


def document_pass(part: Partition, cfg: Config, eval_indexes: tuple[str, ...] = ()) -> DocumentPass:
    """The shared document pass with the config's language ID, the source's rules and the
    decontamination step (when there are evaluation sets)."""
    lid = cfg.langid
    langid = (
        LanguageId(cfg.languages, lid.threshold, lid.thresholds, lid.model_path)
        if lid.enabled
        else None
    )
    quality = build_filters(
        cfg.quality.filter_names(part.source, default_rules(part.fmt)), cfg.quality
    )
    decontam = Decontaminator(eval_indexes) if eval_indexes else None
    return DocumentPass(part.path, langid, quality, cfg.input.max_doc_bytes, decontam)


def process_partition(
    part: Partition,
    cfg: Config,
    work: str,
    buckets: int,
    near_buckets: int = 1,
    eval_indexes: tuple[str, ...] = (),
) -> dict:
    """Read one partition and apply every per-document step in one pass (the module
    docstring lists what it writes); `work` is OUT/work."""
    wd = WorkDir.of_work(work)
    dp = document_pass(part, cfg, eval_indexes)
    removed_path = wd.removed(part.source, part.key)
    keep_removed = atomic_path(removed_path) if cfg.keep_removed else contextlib.nullcontext()
    with atomic_path(wd.docs(part.source, part.key)) as tmp_kept, keep_removed as tmp_removed:
        kept = _KeptDocs(part, cfg, pq.ParquetWriter(tmp_kept, KEPT_SCHEMA, compression="zstd"))
        removed_writer = (
            pq.ParquetWriter(tmp_removed, REMOVED_SCHEMA, compression="zstd")
            if cfg.keep_removed
            else None
        )
        records = read_records(
            part.path,
            part.fmt,
            text_key=part.text_key,
            start=part.start,
            stop=part.stop,
            max_doc_bytes=cfg.input.max_doc_bytes,
        )
        for b in dp.batches(records):
            if removed_writer is not None and b.set_aside:
                removed_writer.write_table(_input_removed_table(part, b.set_aside))
            if keep := b.kept():
                kept.add(b, keep)
            gone = [i for i, r in enumerate(b.reasons) if r is not None]
            if removed_writer is not None and gone:
                reasons = {"reason": [b.reasons[i] for i in gone]}
                removed_writer.write_table(_doc_table(part, b, gone, REMOVED_SCHEMA, reasons))
        kept.writer.close()
        if removed_writer is not None:
            removed_writer.close()
    return _counts(part, dp, kept, wd, buckets, near_buckets).to_json()


def _counts(part, dp: DocumentPass, kept: _KeptDocs, wd, buckets, near_buckets) -> ProcessCounts:
    """Save the hashes and band keys; the partition's counts."""
    # everything before damage is kept and counted; the damage is reported
    errors = [
        {
            "path": part.path,
            "reason": e.reason,
            "detail": e.detail if part.path in e.detail else f"{part.path}: {e.detail}",
        }
        for e in dp.damage
    ]
    return ProcessCounts(
        partition=part.key,
        source=part.source,
        documents_in=dp.documents_in,
        bytes_in=dp.bytes_in,
        documents_kept=kept.n,
        bytes_kept=kept.nbytes,
        removed=dict(dp.removed),
        languages=dp.language_counts(),
        histograms=dp.histograms(),
        errors=errors + dp.example_errors(),
        bucket_offsets=kept.save_hashes(wd, buckets),
        band_offsets=kept.save_bands(wd, near_buckets),
        ordinal=part.ordinal,
        rewritten=dp.rewritten.to_json(),
        decontam={name: sorted(items) for name, items in sorted(dp.decontam_items.items())},
    )


class ProcessStage(Stage):
    name = "process"
    counts = ProcessCounts

    def tasks(self, run: Run) -> list[Task]:
        work = str(run.wd.work)
        return [
            Task(
                f"{p.source}-{p.key}",
                process_partition,
                (p, run.cfg, work, run.buckets, run.near_buckets, run.eval_indexes),
                run.wd.done_process(p.source, p.key),
                p.nbytes,
            )
            for p in run.partitions
        ]
