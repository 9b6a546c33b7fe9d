"""Readers for the corpora as distributed: C4 json.gz, the Pile jsonl.zst, OSCAR 23.01 jsonl.zst,
OSCAR 2019 txt.gz, and generic JSON lines / Parquet.

A reader yields `(record_index, Doc | reason)`. Bad records are never dropped silently: each
comes back as a reason (`input:invalid_json`, `input:invalid_utf8`, `input:missing_text`,
`input:empty`, `input:too_large`) for the engine to count. A truncated or corrupt archive stops
the file with a `FileError`, after everything readable before the damage was yielded.

Records are lines (JSON lines formats), blank-line separated blocks (OSCAR 2019) or rows
(Parquet). `start`/`stop` select a slice of them, so one big file can be several partitions;
skipped records are only split off, never parsed.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import zstandard

READ_BUFFER = 1 << 20


@dataclass(slots=True)
class Doc:
    text: str
    url: str | None
    meta: dict
    nbytes: int  # UTF-8 size of text


class FileError(Exception):
    """A file could not be read to its end (truncated or corrupt archive, I/O error)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _Decompressed(io.RawIOBase):
    """A gzip or zstd file decompressed chunk by chunk.

    Every byte that can be decompressed is returned before a truncated or corrupt stream
    raises (EOFError, zlib.error or ZstdError), so no complete record before the damage is
    lost; the library stream readers either buffer past it or stop silently. Multi-member
    gzip and multi-frame zstd files are read to their end.
    """

    def __init__(self, path: str, kind: str):
        self._raw = open(path, "rb")
        self._kind = kind
        self._obj = self._new()
        self._pending = b""

    def _new(self):
        if self._kind == "gz":
            return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        return zstandard.ZstdDecompressor(max_window_size=2**31).decompressobj()

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self._pending:
            chunk = self._raw.read(READ_BUFFER)
            if not chunk:
                if not self._obj.eof:
                    raise EOFError("compressed stream ended before its end marker (truncated)")
                return 0
            while chunk:
                if self._obj.eof:  # a further gzip member or zstd frame
                    if not chunk.strip(b"\x00"):
                        break  # zero padding after the last member
                    self._obj = self._new()
                self._pending += self._obj.decompress(chunk)
                chunk = self._obj.unused_data if self._obj.eof else b""
        n = min(len(buf), len(self._pending))
        buf[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_binary(path: str) -> IO[bytes]:
    """Open a local file, transparently decompressing .gz and .zst, as a buffered byte stream."""
    if path.endswith(".gz"):
        return io.BufferedReader(_Decompressed(path, "gz"), READ_BUFFER)
    if path.endswith(".zst") or path.endswith(".zstd"):
        return io.BufferedReader(_Decompressed(path, "zst"), READ_BUFFER)
    return io.BufferedReader(open(path, "rb", buffering=0), READ_BUFFER)


_DAMAGE = (EOFError, zlib.error, zstandard.ZstdError, OSError)


def _lines(stream: IO[bytes], max_bytes: int) -> Iterator[bytes | None]:
    """Yield each line (without the newline), or None for a line longer than `max_bytes`,
    which is consumed in pieces so that a huge line never sits in memory whole."""
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while True:
                rest = stream.readline(READ_BUFFER)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None
            continue
        yield line.rstrip(b"\r\n")


def _blocks(stream: IO[bytes], max_bytes: int) -> Iterator[bytes | None]:
    """OSCAR 2019: documents are runs of non-empty lines separated by blank lines."""
    buf: list[bytes] = []
    size = 0
    too_large = False
    for line in _lines(stream, max_bytes):
        if line is not None and not line.strip():
            if buf or too_large:
                yield None if too_large else b"\n".join(buf)
            buf, size, too_large = [], 0, False
            continue
        if too_large:
            continue
        if line is None or size + len(line) > max_bytes:
            buf, too_large = [], True
            continue
        buf.append(line)
        size += len(line) + 1
    if buf or too_large:
        yield None if too_large else b"\n".join(buf)


def _get(obj: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _doc_from_json(fmt: str, rec: dict, text_key: str) -> Doc | str:
    if fmt == "c4":
        text, url, meta = rec.get("text"), rec.get("url"), {"timestamp": rec.get("timestamp")}
    elif fmt == "pile":
        text, url, meta = rec.get("text"), None, rec.get("meta") or {}
    elif fmt == "oscar2301":
        headers = rec.get("warc_headers") or {}
        text, url = rec.get("content"), headers.get("warc-target-uri")
        md = rec.get("metadata") or {}
        meta = {
            "warc_record_id": headers.get("warc-record-id"),
            "warc_date": headers.get("warc-date"),
            "identification": md.get("identification"),
            "quality_warnings": md.get("quality_warnings"),
            "categories": md.get("categories"),
            "harmful_pp": md.get("harmful_pp"),
        }
    else:  # jsonl
        text = _get(rec, text_key)
        url = rec.get("url") if isinstance(rec.get("url"), str) else None
        meta = {}
    return _make_doc(text, url, meta)


def _make_doc(text, url, meta) -> Doc | str:
    if not isinstance(text, str):
        return "input:missing_text"
    try:
        nbytes = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates from JSON escapes
        return "input:invalid_utf8"
    if not text.strip():
        return "input:empty"
    return Doc(text=text, url=url if isinstance(url, str) else None, meta=meta, nbytes=nbytes)


def _parse_line(fmt: str, raw: bytes, text_key: str) -> Doc | str:
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "input:invalid_utf8"
    try:
        rec = json.loads(s)
    except ValueError:
        return "input:invalid_json"
    if not isinstance(rec, dict):
        return "input:invalid_json"
    return _doc_from_json(fmt, rec, text_key)


def _parse_block(raw: bytes) -> Doc | str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "input:invalid_utf8"
    return _make_doc(text, None, {})


def read_records(
    path: str,
    fmt: str,
    *,
    text_key: str = "text",
    start: int = 0,
    stop: int | None = None,
    max_doc_bytes: int = 10_000_000,
) -> Iterator[tuple[int, Doc | str]]:
    """Yield `(record_index, Doc or removal reason)` for records `start <= i < stop`.

    Raises FileError after the last readable record of a damaged file.
    """
    if fmt == "parquet":
        yield from _read_parquet(path, text_key, start, stop, max_doc_bytes)
        return
    split = _blocks if fmt == "oscar2019" else _lines
    try:
        with open_binary(path) as stream:
            index = -1
            for raw in split(stream, max_doc_bytes):
                if fmt != "oscar2019" and raw is not None and not raw.strip():
                    continue  # a blank line is no record
                index += 1
                if index < start:
                    continue
                if stop is not None and index >= stop:
                    return
                if raw is None:
                    yield index, "input:too_large"
                elif fmt == "oscar2019":
                    yield index, _parse_block(raw)
                else:
                    yield index, _parse_line(fmt, raw, text_key)
    except _DAMAGE as e:
        raise FileError("input:truncated_file", f"{path}: {type(e).__name__}: {e}") from e


def count_records(path: str, fmt: str, max_doc_bytes: int = 10_000_000) -> tuple[int, str | None]:
    """Count the records of a file without parsing them; also says if the file is damaged."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows, None
    n = 0
    split = _blocks if fmt == "oscar2019" else _lines
    try:
        with open_binary(path) as stream:
            for raw in split(stream, max_doc_bytes):
                if fmt != "oscar2019" and raw is not None and not raw.strip():
                    continue
                n += 1
    except _DAMAGE as e:
        return n, f"{type(e).__name__}: {e}"
    return n, None


def _read_parquet(path, text_key, start, stop, max_doc_bytes):
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    if text_key not in pf.schema_arrow.names:
        raise FileError("input:missing_text", f"{path}: no column {text_key!r}")
    cols = [text_key] + (["url"] if "url" in pf.schema_arrow.names else [])
    index = 0
    for batch in pf.iter_batches(batch_size=4096, columns=cols):
        texts = batch.column(text_key).to_pylist()
        urls = batch.column("url").to_pylist() if "url" in cols else [None] * len(texts)
        for text, url in zip(texts, urls, strict=True):
            i = index
            index += 1
            if i < start:
                continue
            if stop is not None and i >= stop:
                return
            doc = _make_doc(text, url, {})
            if isinstance(doc, Doc) and doc.nbytes > max_doc_bytes:
                doc = "input:too_large"
            yield i, doc
