"""Stage `tokenize`: per partition, drop the duplicates, encode, write a token series.

Plans one task per partition (from `scan`) with the dedup results (`Run.bucket_files`,
`Run.near_files`) and the tokenizer; each task writes the partition's series
(`WorkDir.tokens`, see `tokenmill.tokenize.series`) and, with keep_removed, the duplicates
it dropped (`WorkDir.removed_duplicates`). Collects, per partition, the series written
(`groups`) and their token dtype: the shards stage cuts them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokenmill.filters.base import Rewrites
from tokenmill.filters.spans import remove_spans
from tokenmill.fsio import atomic_path
from tokenmill.pipelines.docpass import BATCH_DOCS
from tokenmill.pipelines.engine import Task
from tokenmill.pipelines.stages.base import Counts, Run, Stage
from tokenmill.pipelines.stages.dedup import duplicate_pairs, duplicate_rows, resolve_ids
from tokenmill.pipelines.stages.spans import span_edits


@dataclass
class TokenizeCounts(Counts):
    PROGRESS = ("documents", "bytes_kept")
    # stats.json keeps its key: `bytes_in` of stage tokenize (the bytes it encoded)
    TOTALS = {
        "documents": "documents",
        "bytes_in": "bytes_kept",
        "tokens": "tokens",
        "duplicates": "duplicates",
    }
    LEGACY = {"bytes_in": "bytes_kept"}  # its done-JSON key before the rename (a resumed OUT)

    partition: str
    documents: int
    tokens: int
    bytes_kept: int  # UTF-8 bytes of the documents encoded (kept, not duplicates)
    dtype: str
    duplicates: int
    near_duplicates: int
    groups: list
    languages: dict
    histograms: dict
    wall_s: float = 0.0
    against_duplicates: int = 0  # dropped as in an earlier corpus (dedup.against)
    span_removed: int = 0  # left empty by span dedup (dedup.spans)
    rewritten: dict = field(default_factory=dict)  # span dedup's edits, as a rule's
    encoder: str = "hf"  # tiktoken or hf (tokenmill.tokenize.fastbpe); older OUTs: hf
    encoder_reason: str | None = None  # why hf
    encoder_hf_documents: int = 0  # documents (pieces of long ones) tiktoken left to hf


def _reasons(rows, near, against, spans=()) -> list[str]:
    """The dedup reason of each dropped row: left empty by span dedup, against an earlier
    corpus, near, else exact."""
    is_span = np.isin(rows, np.asarray(spans, np.int64))
    is_against, is_near = np.isin(rows, against), np.isin(rows, near)
    return [
        "dedup:span" if s else "dedup:against" if a else "dedup:near" if n else "dedup:exact"
        for s, a, n in zip(is_span.tolist(), is_against.tolist(), is_near.tolist(), strict=True)
    ]


@dataclass
class _SpanEdits:
    """Span dedup's part of a partition: `edits` {row: its duplicate spans}, `n` sentences a
    span; the rewrites made and the rows left empty (`removed`)."""

    edits: dict[int, list[int]]
    n: int
    rewrites: Rewrites = field(default_factory=Rewrites)
    removed: list[int] = field(default_factory=list)

    def apply(self, rows: np.ndarray, batch, by_lang, removed_batches):
        """`batch` (its rows `rows`) with the sentences of its duplicate spans removed; a
        document left with white space only is dropped as dedup:span."""
        hit = [i for i, r in enumerate(rows.tolist()) if r in self.edits]
        if not hit:
            return batch
        texts = batch.column("text").to_pylist()
        empty = np.zeros(len(rows), bool)
        for i in hit:
            spans = self.edits[int(rows[i])]
            new = remove_spans(texts[i], spans, self.n)
            if new.strip():
                self.rewrites.add("dedup:span", texts[i], new, {"spans": len(spans)})
                texts[i] = new
            else:
                empty[i] = True
        if empty.any():
            for lang in batch.column("lang").filter(pa.array(empty)).to_pylist():
                by_lang[lang]["dedup:span"] += 1
            self.removed += rows[empty].tolist()
            if removed_batches is not None:
                removed_batches.append((rows[empty], batch.filter(pa.array(empty))))
        at = batch.schema.get_field_index("text")
        batch = batch.set_column(at, "text", pa.array(texts, pa.string()))
        return batch.filter(pa.array(~empty)) if empty.any() else batch


def _kept_batches(docs_path, dups, near, against, by_lang, removed_batches, spans=None):
    """Each batch of the partition's documents with its duplicates dropped (counted per
    language in `by_lang`; kept in `removed_batches` when that is a list) and, with `spans`
    (a _SpanEdits), its duplicate spans removed."""
    row0 = 0
    docs = pq.ParquetFile(docs_path)
    columns = ["id", "url", "lang", "text"]
    if "quality_score" in docs.schema_arrow.names:  # (older work files lack it: null)
        columns.append("quality_score")
    for batch in docs.iter_batches(batch_size=BATCH_DOCS, columns=columns):
        rows = np.arange(row0, row0 + batch.num_rows)
        row0 += batch.num_rows
        keep = ~np.isin(rows, dups) if len(dups) else np.ones(len(rows), bool)
        if not keep.all():
            gone = ~keep
            for lang, reason in zip(
                batch.column("lang").filter(pa.array(gone)).to_pylist(),
                _reasons(rows[gone], near, against),
                strict=True,
            ):
                by_lang[lang][reason] += 1
            if removed_batches is not None:
                removed_batches.append((rows[gone], batch.filter(pa.array(gone))))
            batch = batch.filter(pa.array(keep))
        if spans is not None and batch.num_rows:
            batch = spans.apply(rows[keep], batch, by_lang, removed_batches)
        if batch.num_rows:
            yield batch


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
    against_file: str | None = None,
    span_files: list[str] | None = None,
    span_sentences: int = 3,
    backend: str = "auto",
) -> dict:
    """Encode the kept, non-duplicate documents of one partition into the series OUT_BASE
    (with `split_languages`, one per language, OUT_BASE.LANG, listed under "groups"); the
    counts give the token dtype under "dtype". With `removed_path`, the duplicates dropped
    here go there (Parquet: id, url, lang, text, quality_score where the docs file has it,
    reason, kept_id), with the documents span dedup left empty. `against_file`: the
    partition's documents found in earlier corpora (stage against), dropped first.
    `span_files`: the duplicate spans (stage span_dedup), removed from their documents.
    `backend`: tokenizer.backend (auto: tiktoken where it gives HF's ids, see fastbpe)."""
    from tokenmill.shards.megatron import dtype_for_vocab
    from tokenmill.tokenize.bpe import load_tokenizer, token_id
    from tokenmill.tokenize.fastbpe import partition_encoder
    from tokenmill.tokenize.series import encode_series

    tok = load_tokenizer(tokenizer_path)
    dtype = dtype_for_vocab(tok.get_vocab_size())
    against = duplicate_rows(ordinal, [against_file]) if against_file else np.empty(0, np.int64)
    exact = np.setdiff1d(duplicate_rows(ordinal, bucket_files), against)
    # exact copies count as exact; what an earlier corpus has counts as against
    near = np.setdiff1d(duplicate_rows(ordinal, near_files), np.union1d(exact, against))
    dups = np.union1d(np.union1d(exact, near), against)
    removed_batches: list | None = [] if removed_path is not None else None
    dedup_by_lang: dict[str, Counter] = defaultdict(Counter)
    spans = _SpanEdits(span_edits(ordinal, span_files), span_sentences) if span_files else None
    batches = _kept_batches(docs_path, dups, near, against, dedup_by_lang, removed_batches, spans)
    eod = token_id(tok, eod_token)
    encoder = partition_encoder(tok, backend)
    tally = encode_series(encoder, batches, eod, dtype, out_base, split_languages)
    if removed_batches:
        _write_removed_duplicates(
            removed_path,
            removed_batches,
            (near, against, spans.removed if spans else ()),
            ordinal,
            bucket_files,
            near_files,
            docs_paths or {},
        )
    languages = {k: dict(v) for k, v in dedup_by_lang.items()}
    for lang, c in tally.by_lang.items():
        languages[lang] = {**languages.get(lang, {}), **c}
    return TokenizeCounts(
        partition=part_key,
        documents=tally.documents,
        tokens=tally.tokens,
        bytes_kept=tally.bytes_kept,
        dtype=dtype.name,
        duplicates=int(len(exact)),
        near_duplicates=int(len(near)),
        against_duplicates=int(len(against)),
        span_removed=len(spans.removed) if spans else 0,
        rewritten=spans.rewrites.to_json() if spans else {},
        groups=tally.groups,
        languages=languages,
        histograms=tally.histograms(),
        encoder=encoder.backend,
        encoder_reason=encoder.reason,
        encoder_hf_documents=encoder.hf_documents,
    ).to_json()


def _write_removed_duplicates(
    path, removed_batches, near_against, ordinal, bucket_files, near_files, docs_paths
) -> None:
    """The duplicates a partition dropped, each with the id of the document kept instead
    (none for what an earlier corpus has: its documents are not named in its index)."""
    kept_exact = duplicate_pairs(ordinal, bucket_files)
    kept_near = duplicate_pairs(ordinal, near_files)
    rows = np.concatenate([r for r, _ in removed_batches])
    table = pa.concat_tables([pa.Table.from_batches([b]) for _, b in removed_batches])
    reasons = _reasons(rows, *near_against)
    # a copy's first occurrence may itself be a near duplicate of an earlier document: the
    # near cluster's survivor (which the copy's cluster shares) is then the one in the shards
    kept_keys = [
        None if why == "dedup:against" else kept_near.get(r, kept_exact.get(r))
        for r, why in zip(rows.tolist(), reasons, strict=True)
    ]
    ids = resolve_ids([k for k in kept_keys if k is not None], docs_paths)
    table = table.append_column("reason", pa.array(reasons, pa.string()))
    table = table.append_column(
        "kept_id", pa.array([None if k is None else ids[k] for k in kept_keys], pa.string())
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


class TokenizeStage(Stage):
    name = "tokenize"
    counts = TokenizeCounts

    def tasks(self, run: Run) -> list[Task]:
        wd, cfg = run.wd, run.cfg
        split = {s.name: s.split_languages for s in cfg.sources}
        docs = {p.ordinal: str(wd.docs(p.source, p.key)) for p in run.partitions}
        keep = cfg.keep_removed
        return [
            Task(
                f"{p.source}-{p.key}",
                tokenize_partition,
                (
                    p.key,
                    p.ordinal,
                    docs[p.ordinal],
                    run.bucket_files,
                    run.near_files,
                    str(wd.tokenizer()),
                    cfg.tokenizer.eod_token,
                    wd.tokens(p.source, p.key),
                    split[p.source],
                    str(wd.removed_duplicates(p.source, p.key)) if keep else None,
                    docs if keep else None,
                    run.against_files.get(p.ordinal),
                    run.span_files,
                    cfg.dedup.spans.sentences,
                    cfg.tokenizer.backend,
                ),
                wd.done_tokenize(p.source, p.key),
                p.nbytes,
            )
            for p in run.partitions
        ]

    def collect(self, run: Run, result, counts: list[TokenizeCounts]) -> None:
        """The encoders used: partitions per encoder, the reasons for hf, and the documents
        that tiktoken's partitions gave to hf."""
        run.stages[self.name]["encoders"] = {
            "partitions": dict(sorted(Counter(c.encoder for c in counts).items())),
            "reasons": dict(
                sorted(Counter(c.encoder_reason for c in counts if c.encoder_reason).items())
            ),
            "hf_documents": sum(c.encoder_hf_documents for c in counts),
        }
