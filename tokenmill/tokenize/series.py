"""Token series: documents encoded and written as the shards' raw material.

A series is BASE.bin (each document's tokens followed by the end-of-document id, as raw
bytes in the shards' dtype: what a shard's .bin holds), BASE.sizes.npy (tokens per document)
and BASE.docs.parquet (id, url, lang, quality_score), in document order. `encode_series`
encodes batches of documents into one series, or one per language (BASE.LANG.*), and counts
documents, tokens and bytes per language; `TokenFiles` writes one series.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tokenmill import hist
from tokenmill.fsio import atomic_path
from tokenmill.tokenize.encode import encode_pipelined

# quality_score: a scoring rule's score (fasttext_quality), null where none ran
TOKEN_DOCS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),
        ("lang", pa.string()),
        ("quality_score", pa.float32()),
    ]
)


def docs_table(batch: pa.RecordBatch) -> pa.Table:
    """The rows of `batch` as a TOKEN_DOCS_SCHEMA table; a column it lacks is null (files
    written before the column existed: an older OUT/work resumed)."""
    n = batch.num_rows
    names = batch.schema.names
    return pa.table(
        {
            f.name: batch.column(f.name) if f.name in names else pa.nulls(n, f.type)
            for f in TOKEN_DOCS_SCHEMA
        },
        schema=TOKEN_DOCS_SCHEMA,
    )


class TokenFiles:
    """One tokenized series: BASE.bin (raw tokens), BASE.docs.parquet (TOKEN_DOCS_SCHEMA) and
    BASE.sizes.npy, each written under a temporary name and renamed on a clean exit."""

    def __init__(self, base: str):
        self.base = base
        self._stack = contextlib.ExitStack()
        self._sizes: list[np.ndarray] = []

    def __enter__(self) -> TokenFiles:
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
        self._docs.write_table(docs_table(batch))
        self._sizes.append(sizes)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:  # discard every file
            self._stack.__exit__(exc_type, exc, tb)
            return
        with self._stack:
            sizes = np.concatenate(self._sizes) if self._sizes else np.empty(0, np.int64)
            with atomic_path(self.base + ".sizes.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, sizes.astype(np.int64, copy=False))


@dataclass
class SeriesTally:
    """What `encode_series` wrote: documents, tokens and UTF-8 bytes of the kept texts, per
    language too (`by_lang`: documents, tokens, bytes), the series written (`groups`: "" for
    one series, else languages) and the length histograms of the kept documents."""

    documents: int = 0
    tokens: int = 0
    bytes_kept: int = 0
    groups: list[str] = field(default_factory=list)
    by_lang: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    chars: list[int] = field(default_factory=lambda: [0] * hist.LENGTH_BINS)
    token_sizes: list[np.ndarray] = field(default_factory=list)

    def add(self, batch: pa.RecordBatch, flat, sizes, codes, names: list[str], nbytes) -> None:
        """Count one encoded batch, per language vectorized (no per-document Python)."""
        k = len(names)
        for name, d, t, b in zip(
            names,
            np.bincount(codes, minlength=k).tolist(),
            np.bincount(codes, weights=sizes, minlength=k).astype(np.int64).tolist(),
            np.bincount(codes, weights=nbytes, minlength=k).astype(np.int64).tolist(),
            strict=True,
        ):
            self.by_lang[name]["documents"] += d
            self.by_lang[name]["tokens"] += t
            self.by_lang[name]["bytes"] += b
        self.token_sizes.append(sizes)
        chars = pc.utf8_length(batch.column("text")).to_numpy(zero_copy_only=False)
        self.chars = hist.add(self.chars, hist.length_hist(chars))
        self.documents += batch.num_rows
        self.tokens += len(flat)
        self.bytes_kept += int(nbytes.sum())

    def histograms(self) -> dict:
        sizes = np.concatenate(self.token_sizes) if self.token_sizes else []
        return {"chars_kept": self.chars, "tokens_kept": hist.length_hist(sizes)}


def encode_series(
    tok, batches: Iterable[pa.RecordBatch], eod: int, dtype, base: str, split_languages: bool
) -> SeriesTally:
    """Encode `batches` (columns id, url, lang, text; quality_score where they have it) into
    the series BASE (with
    `split_languages`, one per language, BASE.LANG); what was written."""
    tally = SeriesTally()
    with contextlib.ExitStack() as stack:
        outputs: dict[str, TokenFiles] = {}

        def output_for(group: str) -> TokenFiles:
            if group not in outputs:
                name = base if group == "" else f"{base}.{group}"
                outputs[group] = stack.enter_context(TokenFiles(name))
            return outputs[group]

        if not split_languages:
            output_for("")  # always present, even when empty
        texts = ((b, b.column("text").to_pylist()) for b in batches)
        for batch, flat, sizes in encode_pipelined(tok, texts, eod, dtype):
            enc = batch.column("lang").dictionary_encode()
            codes = enc.indices.to_numpy(zero_copy_only=False)
            names = enc.dictionary.to_pylist()
            nbytes = pc.binary_length(batch.column("text")).to_numpy(zero_copy_only=False)
            tally.add(batch, flat, sizes, codes, names, nbytes)
            if split_languages and len(names) > 1:
                token_codes = np.repeat(codes, sizes)
                for j, group in sorted(enumerate(names), key=lambda x: x[1]):
                    mask = codes == j
                    output_for(group).write(
                        batch.filter(pa.array(mask)), flat[token_codes == j], sizes[mask]
                    )
            else:
                output_for(names[0] if split_languages else "").write(batch, flat, sizes)
    tally.groups = sorted(outputs)
    return tally
