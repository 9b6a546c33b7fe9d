"""Readers for the corpora as distributed: C4 json.gz, the Pile jsonl.zst, OSCAR 23.01 jsonl.zst,
OSCAR 22.01 jsonl.gz, OSCAR 21.09 txt.gz + metadata jsonl.gz, OSCAR 2019 txt.gz, generic JSON
lines / Parquet, and `hf`: anything `datasets.load_dataset(..., streaming=True)` opens.

Inputs are local paths, `file://` URLs or fsspec URLs (s3://, gs://, hf://, memory://...);
`expand_inputs` turns a source's patterns (globs included) into its list of inputs. An `hf`
input is a data file read through `datasets`, or a dataset spec (see `parse_hf_spec`):
`datasets:allenai/c4?name=en&split=train&shard=3&num_shards=1024`, one per streaming shard.

A reader yields `(record_index, Doc | Bad)`. Bad records are never dropped silently: each
comes back as a `Bad`, a str that is its reason (`input:invalid_json`, `input:invalid_utf8`,
`input:invalid_record` (a field of the wrong type), `input:too_deep`, `input:missing_text`,
`input:empty`, `input:too_large`, `input:unreadable_rows`) and carries the record's raw bytes
and line number where there are some, for the engine to count and set aside. A truncated or
corrupt archive (gzip, zstd, bz2, xz) stops the file with a `FileError` naming the compressed
byte offset of the damage, after every record decoded before it was yielded; a file that cannot
be opened at all is a `FileError` too. Readers raise nothing else, whatever the bytes.

Records are lines (JSON lines formats), blank-line separated blocks (OSCAR 2019) or rows
(Parquet). `start`/`stop` select a slice of them, so one big file can be several partitions;
skipped records are only split off, never parsed.

Modules:
- `formats`: the table of formats (reader, record counter, detection, default rule sets);
  `read_records` and `count_records` below dispatch through it, config validation, raw stats
  and the quality defaults read it. Adding a format: its reader, and one row there.
- `records`: Doc, Bad, FileError and the helpers every format shares (make_doc...).
- `compression`: opening files and URLs; gzip / zstd / bzip2 / xz decompression that finds
  damage at its exact offset; the zstd frame follower.
- `lines`: line and block splitting with the size cap.
- `jsonl`: the JSON lines formats (c4, pile, oscar2201, oscar2301, jsonl) in one hot loop.
- `oscar`: OSCAR 2019 (blocks) and OSCAR 21.09 (text file + metadata file).
- `parquet`, `hf`: Parquet rows; `datasets` specs and streaming.
- `inputs`: expand_inputs (globs, fsspec URLs, datasets specs), is_url, local_path.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

from tokenmill.pipelines.readers import compression
from tokenmill.pipelines.readers.compression import (
    READ_BUFFER,
    ZSTD_PIECE,
    Decompressed,
    compression_of,
    inflate,
    open_binary,
    open_raw,
    read_chunks,
)
from tokenmill.pipelines.readers.formats import (
    CORPUS_SUFFIXES,
    FORMAT_NAMES,
    FORMATS,
    FormatSpec,
    default_rules,
    format_by_record,
    format_by_suffix,
    unknown_format,
)
from tokenmill.pipelines.readers.hf import HFSpec, expand_hf_spec, parse_hf_spec
from tokenmill.pipelines.readers.inputs import HF_SPEC_PREFIX, expand_inputs, is_url, local_path
from tokenmill.pipelines.readers.lines import split_blocks, split_lines
from tokenmill.pipelines.readers.oscar import oscar2109_meta_path
from tokenmill.pipelines.readers.records import Bad, Doc, FileError, make_doc, meta_json

__all__ = [
    "CORPUS_SUFFIXES",
    "FORMATS",
    "FORMAT_NAMES",
    "HF_SPEC_PREFIX",
    "READ_BUFFER",
    "ZSTD_PIECE",
    "Bad",
    "Decompressed",
    "Doc",
    "FileError",
    "FormatSpec",
    "HFSpec",
    "compression_of",
    "count_records",
    "default_rules",
    "expand_hf_spec",
    "expand_inputs",
    "format_by_record",
    "format_by_suffix",
    "inflate",
    "is_url",
    "local_path",
    "make_doc",
    "meta_json",
    "open_binary",
    "open_raw",
    "oscar2109_meta_path",
    "parse_hf_spec",
    "read_chunks",
    "read_records",
    "split_blocks",
    "split_lines",
]


def read_records(
    path: str,
    fmt: str,
    *,
    text_key: str = "text",
    start: int = 0,
    stop: int | None = None,
    max_doc_bytes: int = 10_000_000,
) -> Iterator[tuple[int, Doc | Bad]]:
    """Yield `(record_index, Doc or Bad)` for records `start <= i < stop`.

    Raises FileError after the last readable record of a damaged file, or if the file cannot
    be opened; nothing else, whatever the file holds. An unknown `fmt` is a ValueError, raised
    (like everything else) when the first record is asked for.
    """
    spec = FORMATS.get(fmt)
    if spec is None:
        return _raising(unknown_format(fmt))
    # the format's own generator, not one wrapped in another: a JSON lines record is a few
    # microseconds, and each generator level a record passes through costs a resume
    return spec.read(path, text_key, start, stop, max_doc_bytes)


def _raising(error: Exception) -> Iterator[tuple[int, Doc | Bad]]:
    raise error
    yield  # (a generator: the error comes when the first record is asked for)


def count_records(path: str, fmt: str, max_doc_bytes: int = 10_000_000) -> tuple[int, str | None]:
    """Count the records of a file without parsing them; also says (as the FileError's
    `reason: detail`) if the file is damaged or cannot be read. Raises nothing else (but a
    ValueError for an unknown `fmt`)."""
    spec = FORMATS.get(fmt)
    if spec is None:
        raise unknown_format(fmt)
    return spec.count(path, max_doc_bytes)


class _Package(types.ModuleType):
    """Setting READ_BUFFER or ZSTD_PIECE on the package sets them in `compression`, where they
    are read (so `monkeypatch.setattr(readers, "READ_BUFFER", n)` reaches the readers)."""

    def __setattr__(self, name: str, value) -> None:
        if name in ("READ_BUFFER", "ZSTD_PIECE"):
            setattr(compression, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
