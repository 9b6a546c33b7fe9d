"""The stages of `prepare`, as plain functions of (input partition, settings) -> outputs + counts.

Nothing here imports Dask: the engine runs these functions wherever it likes. Each one writes
its files under temporary names and renames them when complete; its returned counts are
stored by the engine as the mark of completion.

  scan_file           count the records of one input file (to cut big files into slices)
  process_partition   read -> language ID -> quality -> exact-dedup hashes, fused in one pass
  dedup_bucket        one bucket of the exact-dedup shuffle: which rows repeat an earlier one
  train_tokenizer     byte-level BPE on a deterministic sample of the kept, deduplicated text
  tokenize_partition  drop duplicates, encode, append end-of-document: raw .bin tokens + sizes
  write_shard         copy runs of tokenized documents into one Megatron .bin/.idx shard
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tokenmill.config import Config
from tokenmill.filters.exact import HASH_DTYPE, bucketize, duplicate_keys, order_key, text_hashes
from tokenmill.filters.langid import LanguageId
from tokenmill.filters.minhash import BAND_DTYPE, LSH, bucket_sort, near_edges
from tokenmill.filters.registry import apply_filters, build_filters
from tokenmill.pipelines.engine import atomic_path
from tokenmill.pipelines.readers import (
    Bad,
    Doc,
    FileError,
    count_records,
    meta_json,
    read_records,
)
from tokenmill.report.hist import length_hist, score_hist
from tokenmill.shards.verify import shard_file_records

BATCH_DOCS = 1024
UNDETERMINED = "und"  # language of records that never reached language ID

DOC_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("lang", pa.string()),
        ("lang_score", pa.float32()),
        ("meta", pa.string()),
    ]
)
REMOVED_SCHEMA = DOC_SCHEMA.append(pa.field("reason", pa.string()))
# Kept documents carry their exact-dedup hash (sampling for the tokenizer uses it).
KEPT_SCHEMA = DOC_SCHEMA.append(pa.field("hash_lo", pa.uint64()))


@dataclass(frozen=True)
class Partition:
    """Records [start, stop) of one input file; `ordinal` is its place in the global order."""

    source: str
    fmt: str
    text_key: str
    path: str
    rel: str  # the file's path relative to its source's root: part of every document id
    file_idx: int
    slice_idx: int
    start: int
    stop: int | None
    ordinal: int

    @property
    def key(self) -> str:
        return f"{self.file_idx:05d}-{self.slice_idx:04d}"


# ---- scan -----------------------------------------------------------------------------------


def scan_file(path: str, fmt: str, max_doc_bytes: int) -> dict:
    """Records of one input file, and what is wrong with it if it cannot be read to its end
    (never raises for a file: a damaged or unreadable one is reported by its partition)."""
    try:
        n, error = count_records(path, fmt, max_doc_bytes)
    except Exception as e:  # noqa: BLE001 - one file never ends the run
        n, error = 0, f"input:read_error: {path}: {type(e).__name__}: {e}"
    return {"path": path, "records": n, "error": error}


# ---- process: read, language ID, quality, hashes --------------------------------------------


class _LangCounts:
    """documents in / kept / removed by reason, per language."""

    def __init__(self):
        self.by_lang: dict[str, dict] = defaultdict(
            lambda: {"documents_in": 0, "bytes_in": 0, "documents_kept": 0, "removed": Counter()}
        )

    def add(self, lang: str, nbytes: int, reason: str | None) -> None:
        c = self.by_lang[lang]
        c["documents_in"] += 1
        c["bytes_in"] += nbytes
        if reason is None:
            c["documents_kept"] += 1
        else:
            c["removed"][reason] += 1

    def to_json(self) -> dict:
        return {k: {**v, "removed": dict(v["removed"])} for k, v in sorted(self.by_lang.items())}


def _batches(it, n):
    batch = []
    for item in it:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _until_damage(records, damage: list[FileError]):
    """The records, ending (not raising) where the reader meets damage, which goes to `damage`:
    so the batch being filled at that moment is processed like any other."""
    try:
        yield from records
    except FileError as e:
        damage.append(e)
    except Exception as e:  # noqa: BLE001 - a reader bug must not end the run: report it
        damage.append(FileError("input:read_error", f"{type(e).__name__}: {e}"))


EXAMPLES_PER_REASON = 5  # records named per reason per partition (and per source in stats)
REMOVED_RAW_CAP = 65_536  # bytes of a bad record's raw line kept with keep_removed


def _example(examples: dict, part: Partition, idx: int, bad: Bad) -> None:
    """Note (file, record) of an input removal, the first few per reason."""
    got = examples.setdefault(str(bad), [])
    if len(got) < EXAMPLES_PER_REASON:
        where = f"record {idx}" + (f", line {bad.line}" if bad.line is not None else "")
        got.append(
            {
                "path": part.path,
                "reason": str(bad),
                "record": idx,
                "line": bad.line,
                "detail": f"{part.path}: {where} set aside as {bad}",
            }
        )


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
            "reason": [reason for _, _, reason in rows],
        },
        schema=REMOVED_SCHEMA,
    )


def _doc_table(part, docs, langs, scores, idxs, schema, extra) -> pa.Table:
    """The rows `idxs` of a batch as a table in the inter-stage document schema."""
    cols = {
        "id": [f"{part.source}/{part.rel}/{docs[i][0]}" for i in idxs],
        "source": [part.source] * len(idxs),
        "text": [docs[i][1].text for i in idxs],
        "url": [docs[i][1].url for i in idxs],
        "lang": [langs[i] for i in idxs],
        "lang_score": [scores[i] for i in idxs],
        "meta": [docs[i][2] for i in idxs],
        **extra,
    }
    return pa.table(cols, schema=schema)


def process_partition(
    part: Partition, cfg: Config, work: str, buckets: int, near_buckets: int = 1
) -> dict:
    """Read one partition and apply every per-document step in one pass.

    Writes `work/docs/SOURCE/KEY.parquet` (kept documents, DOC_SCHEMA + hash_lo),
    `KEY.hashes.npy` (exact-dedup hashes sorted by bucket) and, with keep_removed,
    `OUT/removed/SOURCE/KEY.parquet`.
    """
    out = Path(work) / "docs" / part.source
    langid = (
        LanguageId(
            cfg.languages,
            cfg.langid.threshold,
            cfg.langid.thresholds,
            cfg.langid.model_path,
        )
        if cfg.langid.enabled
        else None
    )
    quality = build_filters(cfg.quality.filter_names(part.source, part.fmt), cfg.quality)

    removed: Counter = Counter()
    langs_count = _LangCounts()
    counts = {"partition": part.key, "source": part.source, "documents_in": 0, "bytes_in": 0}
    errors: list[dict] = []
    examples: dict[str, list[dict]] = {}  # reason -> the first records set aside for it
    his, los, rows = [], [], []
    mh = cfg.dedup.minhash
    lsh = (
        LSH(mh.threshold, mh.num_perm, mh.ngram, mh.seed, mh.bands, mh.rows) if mh.enabled else None
    )
    band_recs: list[np.ndarray] = []
    chars_in: list[int] = []
    scores_by_lang: dict[str, list[float]] = defaultdict(list)
    kept_n = 0
    kept_bytes = 0

    kept_path = out / f"{part.key}.parquet"
    removed_path = Path(work).parent / "removed" / part.source / f"{part.key}.parquet"
    keep_removed = atomic_path(removed_path) if cfg.keep_removed else contextlib.nullcontext()
    with atomic_path(kept_path) as tmp_kept, keep_removed as tmp_removed:
        kept_writer = pq.ParquetWriter(tmp_kept, KEPT_SCHEMA, compression="zstd")
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
        damage: list[FileError] = []
        max_bytes = cfg.input.max_doc_bytes
        # damage ends the loop through _until_damage (the batch being filled is kept)
        for batch in _batches(_until_damage(records, damage), BATCH_DOCS):
            counts["documents_in"] += len(batch)
            docs: list[tuple[int, Doc, str]] = []
            set_aside: list[tuple[int, Bad | Doc, str]] = []  # input:* removals
            for idx, item in batch:
                if isinstance(item, str):
                    bad = item if isinstance(item, Bad) else Bad(item)
                    reason = str(bad)
                    removed[reason] += 1
                    langs_count.add(UNDETERMINED, 0, reason)
                    _example(examples, part, idx, bad)
                    set_aside.append((idx, bad, reason))
                    continue
                counts["bytes_in"] += item.nbytes
                meta = meta_json(item.meta) if item.nbytes <= max_bytes else None
                if meta is None:
                    # (a meta that cannot be written out: nested too deep, lone surrogates)
                    too_large = item.nbytes > max_bytes
                    reason = "input:too_large" if too_large else "input:invalid_record"
                    removed[reason] += 1
                    langs_count.add(UNDETERMINED, item.nbytes, reason)
                    _example(examples, part, idx, Bad(reason))
                    set_aside.append((idx, item, reason))
                else:
                    docs.append((idx, item, meta))
            if removed_writer is not None and set_aside:
                removed_writer.write_table(_input_removed_table(part, set_aside))
            if not docs:
                continue
            texts = [d.text for _, d, _ in docs]
            in_bytes = [d.nbytes for _, d, _ in docs]  # before any rule rewrites a text
            chars_in.extend(len(t) for t in texts)
            reasons: list[str | None] = [None] * len(docs)
            if langid is not None:
                langs, scores, reasons = langid(texts)
            else:
                langs, scores = [UNDETERMINED] * len(docs), [0.0] * len(docs)
            new_texts = apply_filters(quality, texts, langs, reasons)
            for i, t in enumerate(new_texts):
                if t is not texts[i]:  # rewritten by a rule (C4's line filter)
                    texts[i] = t
                    docs[i][1].text = t
                    docs[i][1].nbytes = len(t.encode("utf-8"))
            keep = [i for i, r in enumerate(reasons) if r is None]
            if langid is not None:
                for lang, score in zip(langs, scores, strict=True):
                    scores_by_lang[lang].append(score)
            for i, r in enumerate(reasons):
                langs_count.add(langs[i], in_bytes[i], r)
                if r is not None:
                    removed[r] += 1

            if keep:
                hi, lo = text_hashes([texts[i] for i in keep], cfg.dedup.normalize)
                kept_writer.write_table(
                    _doc_table(part, docs, langs, scores, keep, KEPT_SCHEMA, {"hash_lo": lo})
                )
                his.append(hi)
                los.append(lo)
                rows.append(np.arange(kept_n, kept_n + len(keep)))
                if lsh is not None:
                    band_recs.append(
                        lsh.records(
                            [texts[i] for i in keep],
                            [langs[i] for i in keep],
                            order_key(part.ordinal, rows[-1]),
                        )
                    )
                kept_n += len(keep)
                kept_bytes += sum(docs[i][1].nbytes for i in keep)
            if removed_writer is not None:
                gone = [i for i, r in enumerate(reasons) if r is not None]
                if gone:
                    removed_writer.write_table(
                        _doc_table(
                            part,
                            docs,
                            langs,
                            scores,
                            gone,
                            REMOVED_SCHEMA,
                            {"reason": [reasons[i] for i in gone]},
                        )
                    )
        for e in damage:
            # Everything before the damage is kept and counted; the damage is reported.
            detail = e.detail if part.path in e.detail else f"{part.path}: {e.detail}"
            errors.append({"path": part.path, "reason": e.reason, "detail": detail})
        kept_writer.close()
        if removed_writer is not None:
            removed_writer.close()

    cat = np.concatenate
    hi = cat(his) if his else np.empty(0, np.uint64)
    lo = cat(los) if los else np.empty(0, np.uint64)
    keys = order_key(part.ordinal, cat(rows) if rows else np.empty(0, np.int64))
    rec, offsets = bucketize(hi, lo, keys, buckets)
    with atomic_path(out / f"{part.key}.hashes.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, rec)
    band_offsets = None
    if lsh is not None:
        brec = np.concatenate(band_recs) if band_recs else np.empty(0, BAND_DTYPE)
        brec, band_offsets = bucket_sort(brec, brec["key"], near_buckets)
        with atomic_path(out / f"{part.key}.bands.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, brec)
        band_offsets = band_offsets.tolist()
    languages = langs_count.to_json()
    for lang, values in scores_by_lang.items():
        languages[lang]["lang_score"] = score_hist(values)
    return {
        **counts,
        "documents_kept": kept_n,
        "bytes_kept": kept_bytes,
        "removed": dict(removed),
        "languages": languages,
        "histograms": {"chars_in": length_hist(chars_in)},
        "errors": errors + [e for got in examples.values() for e in got],
        "bucket_offsets": offsets.tolist(),
        "band_offsets": band_offsets,
        "ordinal": part.ordinal,
    }


# ---- exact dedup ----------------------------------------------------------------------------


def dedup_bucket(bucket: int, hash_files: list[tuple[str, int, int]], out_path: str) -> dict:
    """Find, in one hash bucket, every document whose text appeared earlier in the run."""
    parts = []
    for path, lo, hi in hash_files:
        if hi > lo:
            parts.append(np.array(np.load(path, mmap_mode="r")[lo:hi]))
    records = np.concatenate(parts) if parts else np.empty(0, dtype=HASH_DTYPE)
    dups, kept, sizes = duplicate_keys(records, with_cluster_sizes=True, with_kept=True)
    with atomic_path(out_path[:-4] + ".kept.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, kept)  # the key kept for each duplicate, aligned (for --keep-removed)
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, dups)
    return {
        "bucket": bucket,
        "hashes": int(len(records)),
        "duplicates": int(len(dups)),
        "cluster_sizes": sizes,
    }


def near_bucket(bucket: int, band_files: list[tuple[str, int, int]], out_path: str) -> dict:
    """One bucket of the LSH shuffle: documents sharing a band key become edges to the
    smallest document of their band bucket."""
    parts = [np.array(np.load(p, mmap_mode="r")[lo:hi]) for p, lo, hi in band_files if hi > lo]
    records = np.concatenate(parts) if parts else np.empty(0, BAND_DTYPE)
    edges = near_edges(records)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        np.save(f, edges)
    return {"bucket": bucket, "band_keys": int(len(records)), "edges": int(len(edges))}


def verify_edges(
    edge_path: str, docs_files: dict[int, str], threshold: float, ngram: int, out_path: str
) -> dict:
    """Keep the candidate edges whose documents' true shingle Jaccard reaches `threshold`
    (LSH candidates include some pairs below it). Reads only the rows it needs."""
    from tokenmill.filters.components import EDGE_DTYPE
    from tokenmill.filters.minhash import shingle_set, true_jaccard

    edges = np.load(edge_path)
    keys = np.unique(np.concatenate([edges["u"], edges["v"]])) if len(edges) else []
    shingles: dict[int, set] = {}
    by_part: dict[int, list[int]] = defaultdict(list)
    for k in keys:
        by_part[int(k) >> 32].append(int(k) & 0xFFFFFFFF)
    for ordinal, rows in by_part.items():
        table = pq.read_table(docs_files[ordinal], columns=["text", "lang"]).take(rows)
        for row, text, lang in zip(
            rows, table.column("text").to_pylist(), table.column("lang").to_pylist(), strict=True
        ):
            shingles[(ordinal << 32) | row] = shingle_set(text, lang, ngram)
    keep = np.array(
        [
            true_jaccard(shingles[int(u)], shingles[int(v)]) >= threshold
            for u, v in zip(edges["u"], edges["v"], strict=True)
        ],
        dtype=bool,
    )
    kept = edges[keep] if len(edges) else np.empty(0, EDGE_DTYPE)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        np.save(f, kept)
    return {
        "candidates": int(len(edges)),
        "edges": int(len(kept)),
        "rejected": int(len(edges) - len(kept)),
    }


def duplicate_pairs(ordinal: int, files: list[str]) -> dict[int, int]:
    """{row of partition `ordinal`: key of the document kept instead} from the dedup files
    and their aligned `.kept.npy`."""
    lo_key, hi_key = np.int64(ordinal) << 32, np.int64(ordinal + 1) << 32
    out: dict[int, int] = {}
    for path in files:
        keys = np.load(path, mmap_mode="r")
        a, b = np.searchsorted(keys, [lo_key, hi_key])
        if b > a:
            kept = np.load(path[:-4] + ".kept.npy", mmap_mode="r")[a:b]
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


def duplicate_rows(ordinal: int, bucket_files: list[str]) -> np.ndarray:
    """Rows of partition `ordinal` that are exact duplicates (sorted)."""
    lo_key, hi_key = np.int64(ordinal) << 32, np.int64(ordinal + 1) << 32
    found = []
    for path in bucket_files:
        keys = np.load(path, mmap_mode="r")
        a, b = np.searchsorted(keys, [lo_key, hi_key])
        if b > a:
            found.append(np.asarray(keys[a:b]) & 0xFFFFFFFF)
    return np.sort(np.concatenate(found)) if found else np.empty(0, np.int64)


# ---- tokenizer ------------------------------------------------------------------------------


def sample_texts(
    docs_files: list[tuple[str, int]],
    bucket_files: list[str],
    rate: float,
    max_bytes: int,
    tally: Counter | None = None,
):
    """Kept, non-duplicate texts whose hash falls under `rate`, in global order, up to
    `max_bytes`: the same sample whatever the worker count. `tally` counts documents and
    bytes yielded."""
    cutoff = np.uint64(min(int(rate * 2**64), 2**64 - 1))
    tally = tally if tally is not None else Counter()
    for path, ordinal in docs_files:
        dups = duplicate_rows(ordinal, bucket_files)
        row0 = 0
        for batch in pq.ParquetFile(path).iter_batches(
            batch_size=4096, columns=["text", "hash_lo"]
        ):
            n = batch.num_rows
            rows = np.arange(row0, row0 + n)
            row0 += n
            sel = batch.column("hash_lo").to_numpy() <= cutoff
            if len(dups):
                sel &= ~np.isin(rows, dups)
            chosen = batch.column("text").filter(pa.array(sel))
            sizes = pc.binary_length(chosen).to_numpy(zero_copy_only=False).tolist()
            for text, size in zip(chosen.to_pylist(), sizes, strict=True):
                if tally["bytes"] + size > max_bytes:
                    return
                tally["documents"] += 1
                tally["bytes"] += size
                yield text


def train_tokenizer(
    cfg: Config,
    docs_files: list[tuple[str, int]],
    bucket_files: list[str],
    rate: float,
    out_path: str,
) -> dict:
    from tokenmill.tokenize.bpe import train_bpe

    t = cfg.tokenizer
    tally: Counter = Counter()
    texts = sample_texts(docs_files, bucket_files, rate, t.train.sample_bytes, tally)
    tok = train_bpe(texts, t.train.vocab_size, [t.eod_token, t.pad_token], t.train.min_frequency)
    with atomic_path(out_path) as tmp:
        tok.save(str(tmp))
    return {
        "documents": tally["documents"],
        "bytes_in": tally["bytes"],
        "vocab_size": tok.get_vocab_size(),
    }


# ---- tokenize -------------------------------------------------------------------------------


def tokenize_partition(
    part_key: str,
    ordinal: int,
    docs_path: str,
    bucket_files: list[str],
    near_files: list[str],
    tokenizer_path: str,
    eod_token: str,
    out_base: str,
    split_languages: bool = False,
    removed_path: str | None = None,
    docs_paths: dict[int, str] | None = None,
) -> dict:
    """Encode the kept, non-duplicate documents of one partition.

    Writes, in document order, OUT_BASE.bin (the tokens, each document's followed by the
    end-of-document id, as raw bytes in the shards' dtype: what a shard's .bin holds),
    OUT_BASE.sizes.npy (tokens per document) and OUT_BASE.docs.parquet (id, url, lang); with
    `split_languages`, one such set per language, OUT_BASE.LANG.*, and the counts list the
    languages written under "groups". The counts give the token dtype under "dtype". With
    `removed_path`, the duplicates dropped here go there (Parquet: id, text, url, lang,
    reason, kept_id).
    """
    from tokenmill.shards.megatron import dtype_for_vocab
    from tokenmill.tokenize.bpe import load_tokenizer, token_id
    from tokenmill.tokenize.encode import encode_pipelined

    tok = load_tokenizer(tokenizer_path)
    eod = token_id(tok, eod_token)
    dtype = dtype_for_vocab(tok.get_vocab_size())
    exact = duplicate_rows(ordinal, bucket_files)
    near = np.setdiff1d(duplicate_rows(ordinal, near_files), exact)  # exact copies count as exact
    dups = np.union1d(exact, near)
    removed_batches: list = []
    by_lang: dict[str, Counter] = defaultdict(Counter)
    chars_kept: list[np.ndarray] = []
    all_sizes: list[np.ndarray] = []
    n_docs = n_tokens = n_bytes = 0

    def kept_batches():
        """(batch, its texts) for each input batch with duplicates dropped (counted)."""
        row0 = 0
        for batch in pq.ParquetFile(docs_path).iter_batches(
            batch_size=BATCH_DOCS, columns=["id", "url", "lang", "text"]
        ):
            rows = np.arange(row0, row0 + batch.num_rows)
            row0 += batch.num_rows
            keep = ~np.isin(rows, dups) if len(dups) else np.ones(len(rows), bool)
            if not keep.all():
                gone = ~keep
                is_near = np.isin(rows, near)
                for lang, n in zip(
                    batch.column("lang").filter(pa.array(gone)).to_pylist(),
                    is_near[gone],
                    strict=True,
                ):
                    by_lang[lang]["dedup:near" if n else "dedup:exact"] += 1
                if removed_path is not None:
                    removed_batches.append((rows[gone], batch.filter(pa.array(gone))))
                batch = batch.filter(pa.array(keep))
            if batch.num_rows:
                yield batch, batch.column("text").to_pylist()

    with contextlib.ExitStack() as stack:
        outputs: dict[str, _TokenFiles] = {}

        def output_for(group: str) -> _TokenFiles:
            if group not in outputs:
                base = out_base if group == "" else f"{out_base}.{group}"
                outputs[group] = stack.enter_context(_TokenFiles(base))
            return outputs[group]

        if not split_languages:
            output_for("")  # always present, even when empty
        for batch, flat, sizes in encode_pipelined(tok, kept_batches(), eod, dtype):
            # per-language counts, vectorized (no per-document Python)
            enc = batch.column("lang").dictionary_encode()
            codes = enc.indices.to_numpy(zero_copy_only=False)
            names = enc.dictionary.to_pylist()
            nbytes = pc.binary_length(batch.column("text")).to_numpy(zero_copy_only=False)
            k = len(names)
            for name, d, t, b in zip(
                names,
                np.bincount(codes, minlength=k).tolist(),
                np.bincount(codes, weights=sizes, minlength=k).astype(np.int64).tolist(),
                np.bincount(codes, weights=nbytes, minlength=k).astype(np.int64).tolist(),
                strict=True,
            ):
                by_lang[name]["documents"] += d
                by_lang[name]["tokens"] += t
                by_lang[name]["bytes"] += b
            if split_languages and k > 1:
                token_codes = np.repeat(codes, sizes)
                for j, group in sorted(enumerate(names), key=lambda x: x[1]):
                    mask = codes == j
                    output_for(group).write(
                        batch.filter(pa.array(mask)), flat[token_codes == j], sizes[mask]
                    )
            else:
                output_for(names[0] if split_languages else "").write(batch, flat, sizes)
            all_sizes.append(sizes)
            chars_kept.append(pc.utf8_length(batch.column("text")).to_numpy(zero_copy_only=False))
            n_docs += batch.num_rows
            n_tokens += len(flat)
            n_bytes += int(nbytes.sum())
    if removed_path is not None and removed_batches:
        _write_removed_duplicates(
            removed_path, removed_batches, near, ordinal, bucket_files, near_files, docs_paths or {}
        )
    sizes = np.concatenate(all_sizes) if all_sizes else np.empty(0, np.int64)
    return {
        "partition": part_key,
        "documents": n_docs,
        "tokens": n_tokens,
        "bytes_in": n_bytes,
        "dtype": dtype.name,
        "duplicates": int(len(exact)),
        "near_duplicates": int(len(near)),
        "groups": sorted(outputs),
        "languages": {k: dict(v) for k, v in by_lang.items()},
        "histograms": {
            "chars_kept": length_hist(np.concatenate(chars_kept) if chars_kept else []),
            "tokens_kept": length_hist(sizes),
        },
    }


TOKEN_DOCS_SCHEMA = pa.schema([("id", pa.string()), ("url", pa.string()), ("lang", pa.string())])


class _TokenFiles:
    """One tokenized series: BASE.bin (raw tokens), BASE.docs.parquet (id, url, lang) and
    BASE.sizes.npy, each written under a temporary name and renamed on a clean exit."""

    def __init__(self, base: str):
        self.base = base
        self._stack = contextlib.ExitStack()
        self._sizes: list[np.ndarray] = []

    def __enter__(self) -> _TokenFiles:
        with contextlib.ExitStack() as stack:
            tmp_bin = stack.enter_context(atomic_path(self.base + ".bin"))
            self._bin = stack.enter_context(open(tmp_bin, "wb"))
            tmp_docs = stack.enter_context(atomic_path(self.base + ".docs.parquet"))
            self._docs = stack.enter_context(
                pq.ParquetWriter(tmp_docs, TOKEN_DOCS_SCHEMA, compression="zstd")
            )
            self._stack = stack.pop_all()
        return self

    def write(self, batch: pa.RecordBatch, flat: np.ndarray, sizes: np.ndarray) -> None:
        self._bin.write(memoryview(np.ascontiguousarray(flat)).cast("B"))
        self._docs.write_table(
            pa.table(
                {name: batch.column(name) for name in TOKEN_DOCS_SCHEMA.names},
                schema=TOKEN_DOCS_SCHEMA,
            )
        )
        self._sizes.append(sizes)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:  # discard every file
            self._stack.__exit__(exc_type, exc, tb)
            return
        with self._stack:
            sizes = np.concatenate(self._sizes) if self._sizes else np.empty(0, np.int64)
            with atomic_path(self.base + ".sizes.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, sizes.astype(np.int64, copy=False))


def _write_removed_duplicates(
    path, removed_batches, near, ordinal, bucket_files, near_files, docs_paths
) -> None:
    """The duplicates a partition dropped, each with the id of the document kept instead."""
    kept_exact = duplicate_pairs(ordinal, bucket_files)
    kept_near = duplicate_pairs(ordinal, near_files)
    rows = np.concatenate([r for r, _ in removed_batches])
    table = pa.concat_tables([pa.Table.from_batches([b]) for _, b in removed_batches])
    is_near = np.isin(rows, near)
    # a copy's first occurrence may itself be a near duplicate of an earlier document: the
    # near cluster's survivor (which the copy's cluster shares) is then the one in the shards
    kept_keys = [kept_near.get(r, kept_exact.get(r)) for r in rows.tolist()]
    ids = resolve_ids(kept_keys, docs_paths)
    table = table.append_column(
        "reason",
        pa.array(["dedup:near" if n else "dedup:exact" for n in is_near.tolist()], pa.string()),
    )
    table = table.append_column("kept_id", pa.array([ids[k] for k in kept_keys], pa.string()))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


# ---- shards ---------------------------------------------------------------------------------


def plan_shards(size_files: list[str], tokens_per_shard: int) -> list[list[tuple[int, int, int]]]:
    """Cut a source's documents, in order, into shards of at most `tokens_per_shard` tokens
    (a longer document gets a shard of its own). Returns, per shard, its runs as
    (partition index, first row, end row)."""
    shards: list[list[tuple[int, int, int]]] = []
    current: list[tuple[int, int, int]] = []
    room = tokens_per_shard
    for p, path in enumerate(size_files):
        cum = np.cumsum(np.load(path), dtype=np.int64)
        row, base = 0, 0
        while row < len(cum):
            # the most rows from `row` whose tokens fit in the room left
            end = int(np.searchsorted(cum, base + room, side="right"))
            if end == row:
                if current:  # close this shard and try again with an empty one
                    shards.append(current)
                    current, room = [], tokens_per_shard
                    continue
                end = row + 1  # one document bigger than a shard
            current.append((p, row, end))
            used = int(cum[end - 1] - base)
            room -= used
            base = int(cum[end - 1])
            row = end
            if room <= 0:
                shards.append(current)
                current, room = [], tokens_per_shard
    if current:
        shards.append(current)
    return shards


def write_shard(
    prefix: str, runs: list[tuple[str, int, int]], source: str, dtype: str, lang: str | None = None
) -> dict:
    """Write one Megatron shard (PREFIX.bin/.idx) and its PREFIX.docs.parquet provenance.

    `runs` are (BASE, first row, end row) ranges of series written by `tokenize_partition`
    (tokens of `dtype`): their .bin bytes are copied file to file, their sizes and docs rows
    sliced."""
    from tokenmill.shards.megatron import ShardWriter

    n_docs = n_tokens = 0
    with contextlib.ExitStack() as stack:
        tmp_docs = stack.enter_context(atomic_path(prefix + ".docs.parquet"))
        docs_writer = stack.enter_context(
            pq.ParquetWriter(tmp_docs, TOKEN_DOCS_SCHEMA, compression="zstd")
        )
        writer = stack.enter_context(ShardWriter(prefix, np.dtype(dtype)))
        for base, start, end in runs:
            if end <= start:
                continue
            sizes = np.load(base + ".sizes.npy")
            first_token = int(sizes[:start].sum())
            writer.copy_many(base + ".bin", first_token, sizes[start:end])
            row0 = 0
            for batch in pq.ParquetFile(base + ".docs.parquet").iter_batches(batch_size=65536):
                a, b = max(start - row0, 0), min(end - row0, batch.num_rows)
                row0 += batch.num_rows
                if b > a:
                    docs_writer.write_table(
                        pa.Table.from_batches([batch.slice(a, b - a)], schema=TOKEN_DOCS_SCHEMA)
                    )
                if row0 >= end:
                    break
            n_docs += end - start
            n_tokens += int(sizes[start:end].sum())
        if n_docs == 0:
            raise ValueError(f"shard {prefix} has no documents")
    return {
        "prefix": prefix,
        "source": source,
        "lang": lang,
        "documents": n_docs,
        "tokens": n_tokens,
        # hashed here, on the worker that just wrote the files (still in its page cache), so
        # that build_manifest need not read every shard again in the client
        "files": shard_file_records(prefix),
    }
