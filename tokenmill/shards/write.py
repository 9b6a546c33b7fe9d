"""Shard writing: token series cut, in order, into Megatron shards of a token budget each.

`cut_into_shards` decides where shards begin and end (document boundaries, at most
`tokens_per_shard` tokens, a longer document alone); `write_shard` copies the runs of series
(see `tokenmill.tokenize.series`) of one shard into PREFIX.bin/.idx and PREFIX.docs.parquet.
(Budget planning, how many tokens of which source to train on, is `tokenmill.shards.plan`.)
"""

from __future__ import annotations

import contextlib

import numpy as np
import pyarrow.parquet as pq

from tokenmill.fsio import atomic_path
from tokenmill.shards.megatron import ShardWriter
from tokenmill.shards.verify import shard_file_records
from tokenmill.tokenize.series import TOKEN_DOCS_SCHEMA, docs_table


def cut_into_shards(
    size_files: list[str], tokens_per_shard: int
) -> list[list[tuple[int, int, int]]]:
    """Cut a source's documents, in order, into shards of at most `tokens_per_shard` tokens
    (a longer document gets a shard of its own). Returns, per shard, its runs as
    (index in `size_files`, first row, end row)."""
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


def _copy_docs(writer: pq.ParquetWriter, path: str, start: int, end: int) -> None:
    """Rows [start, end) of a series' docs.parquet, appended to `writer` (a column an older
    series lacks, quality_score, as nulls)."""
    row0 = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
        a, b = max(start - row0, 0), min(end - row0, batch.num_rows)
        row0 += batch.num_rows
        if b > a:
            writer.write_table(docs_table(batch.slice(a, b - a)))
        if row0 >= end:
            break


def write_shard(
    prefix: str, runs: list[tuple[str, int, int]], source: str, dtype: str, lang: str | None = None
) -> dict:
    """Write one Megatron shard (PREFIX.bin/.idx) and its PREFIX.docs.parquet provenance (id,
    url, lang, quality_score of each sequence).

    `runs` are (BASE, first row, end row) ranges of token series (tokens of `dtype`): their
    .bin bytes are copied file to file, their sizes and docs rows sliced. Returns the shard's
    counts: prefix, source, lang, documents, tokens and its files' sizes and SHA-256."""
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
            _copy_docs(docs_writer, base + ".docs.parquet", start, end)
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
