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
"""

from __future__ import annotations

import bz2
import glob
import io
import json
import lzma
import os
import re
import sys
import zlib
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import parse_qs, quote, urlencode

import zstandard

READ_BUFFER = 1 << 20
# decompressed bytes per zstd piece: bounded, so a highly compressed stretch (one input chunk can
# hold tens of MB) never sits in memory whole nor leaves the CPU cache before it is split
ZSTD_PIECE = 1 << 18
FORMATS = (
    "c4",
    "pile",
    "oscar2301",
    "oscar2201",
    "oscar2109",
    "oscar2019",
    "jsonl",
    "parquet",
    "hf",
)
HF_SPEC_PREFIX = "datasets:"


@dataclass(slots=True)
class Doc:
    text: str
    url: str | None
    meta: dict
    nbytes: int  # UTF-8 size of text


class Bad(str):
    """A record set aside: the str is its reason (`input:...`); `raw` holds the record's bytes
    (None where they were not kept, as for a line over max_doc_bytes) and `line` its 1-based
    line in the (decompressed) file where records are lines.

    A str subclass so that code that counts reasons keeps working; only bad records pay for it.
    """

    raw: bytes | None
    line: int | None

    def __new__(cls, reason: str, raw: bytes | None = None, line: int | None = None):
        self = super().__new__(cls, reason)
        self.raw = raw
        self.line = line
        return self

    @property
    def reason(self) -> str:
        return str(self)


class FileError(Exception):
    """A file could not be read to its end (truncated or corrupt archive, I/O error), or could
    not be opened at all."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _Damage(EOFError):
    """Damage in a compressed stream, found at compressed byte `offset`."""

    def __init__(self, what: str, offset: int, truncated: bool):
        super().__init__(f"{what} at compressed byte {offset:,}")
        self.offset = offset
        self.truncated = truncated


def _file_error(path: str, e: BaseException) -> FileError:
    """The FileError for an exception met reading `path`."""
    if isinstance(e, FileError):
        return e
    if isinstance(e, _Damage):
        reason = "input:truncated_file" if e.truncated else "input:corrupt_file"
        return FileError(
            reason, f"{path}: {e}; every record before it was read, the rest of the file is lost"
        )
    if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return FileError(
            "input:unreadable_file", f"{path}: cannot be opened ({type(e).__name__}: {e})"
        )
    reason = "input:truncated_file" if isinstance(e, EOFError) else "input:read_error"
    return FileError(reason, f"{path}: {type(e).__name__}: {e}")


def _inflate(raw: IO[bytes], kind: str) -> Iterator[bytes]:
    """The decompressed bytes of a gzip (`kind` "gz"), zstd ("zst"), bzip2 ("bz2") or xz
    ("xz") stream, piece by piece.

    Every byte that can be decompressed is yielded before a truncated or corrupt stream raises
    `_Damage` (an EOFError naming the compressed offset), so no complete record before the
    damage is lost: what comes out is what a streaming decoder fed one byte at a time gives.
    Multi-member gzip/bzip2/xz and multi-frame zstd files are read to their end; zero padding
    after the last member (to the end of a READ_BUFFER chunk) is ignored.

    zstd comes in pieces of at most ZSTD_PIECE bytes from zstandard's stream reader. That
    reader stops silently on a truncated frame (so `_ZstdInput` follows the frames to tell),
    may keep back output of the last whole blocks once its input is used up, and loses the
    output of the call that meets corrupt data; so a damaged seekable file is decoded again
    from its start the `_decompressed` way, and what that yields beyond the bytes already
    handed out is handed out too.
    """
    if kind != "zst":
        yield from _decompressed(raw, kind)
        return
    source = _ZstdInput(raw)
    reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(
        source, read_size=READ_BUFFER, read_across_frames=True, closefd=False
    )
    done = 0
    error: zstandard.ZstdError | None = None
    try:
        while piece := reader.read(ZSTD_PIECE):
            done += len(piece)
            yield piece
    except zstandard.ZstdError as e:
        error = e
    if error is None and source.complete:
        return
    seekable = getattr(raw, "seekable", None)  # (download.check_file's reader has none)
    if seekable is not None and seekable():  # damaged (rare): see the docstring
        raw.seek(0)
        for piece in _decompressed(raw, kind):  # raises at the damage
            if done < len(piece):
                yield piece[done:]
            done = max(0, done - len(piece))
    if error is not None:
        raise _Damage(f"corrupt data ({error})", source.consumed, False) from error
    raise _Damage("compressed stream ends before its end marker (truncated)", source.consumed, True)


def _decompressor(kind: str):
    if kind == "gz":
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if kind == "zst":
        return zstandard.ZstdDecompressor(max_window_size=2**31).decompressobj()
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor()


# what each decoder raises on corrupt data (bz2: OSError "Invalid data stream")
_CORRUPT = (zlib.error, zstandard.ZstdError, OSError, lzma.LZMAError, EOFError)


def _decompressed(raw: IO[bytes], kind: str) -> Iterator[bytes]:
    """`_inflate` with the decoders' decompressobj API, READ_BUFFER compressed bytes per call
    (a zstd piece is unbounded).

    A decoder that meets corrupt data drops the output of that whole call; so the call is
    made again from the state before it, one byte at a time, to yield everything decodable
    and find the exact offset of the damage. zlib's state is copied before each call (cheap:
    its 32 KB window); the others' is rebuilt by decoding their member again from its start,
    which needs a seekable file (else the damage is reported at the chunk's start)."""
    obj = _decompressor(kind)
    pos = 0  # compressed bytes taken by decoders so far
    begin = 0  # where obj's member (gzip member, zstd frame, bz2/xz stream) begins
    copyable = kind == "gz"
    while True:
        chunk = raw.read(READ_BUFFER)
        if not chunk:
            if not obj.eof:
                raise _Damage("compressed stream ends before its end marker (truncated)", pos, True)
            return
        end_of_chunk = pos + len(chunk)
        fine = False  # feeding one byte at a time, after an error in this chunk
        i = 0
        while i < len(chunk):
            if obj.eof:  # a further member
                if chunk[i] == 0 and not chunk[i:].strip(b"\x00"):
                    pos = end_of_chunk
                    break  # zero padding after the last member
                obj, begin = _decompressor(kind), pos
            step = 1 if fine else len(chunk) - i
            data = chunk if step == len(chunk) else chunk[i : i + step]
            saved = obj.copy() if copyable and not fine else None
            try:
                out = obj.decompress(data)
            except _CORRUPT as e:
                what = f"corrupt data ({type(e).__name__}: {e})"
                if fine:
                    raise _Damage(what, pos, False) from e
                if saved is None:
                    saved = _replay(raw, kind, begin, pos, end_of_chunk)
                    if saved is None:
                        raise _Damage(what, pos, False) from e
                obj, fine = saved, True
                continue
            used = step - len(obj.unused_data) if obj.eof else step
            i += used
            pos += used
            if out:
                yield out


def _replay(raw: IO[bytes], kind: str, begin: int, pos: int, resume: int):
    """A decoder in the state it had after compressed bytes [begin, pos) of its member, made
    by decoding them again; the file is left at `resume`. None if the file cannot seek."""
    seekable = getattr(raw, "seekable", None)
    if seekable is None or not seekable():
        return None
    obj = _decompressor(kind)
    raw.seek(begin)
    left = pos - begin
    while left > 0:
        data = raw.read(min(left, READ_BUFFER))
        if not data:
            return None
        obj.decompress(data)
        left -= len(data)
    raw.seek(resume)
    return obj


_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_SKIPPABLE = 0x184D2A50  # to 0x184D2A5F


class _ZstdInput:
    """A zstd file's compressed bytes on their way to the stream reader, whose frame and block
    headers (RFC 8878) are followed so that `complete` can say whether the bytes so far end at
    the end of a frame; zero padding after a frame, to the end of a READ_BUFFER chunk, is dropped.
    Block contents are skipped unread; a header the decoder cannot take stops the following
    (the decoder raises on it)."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._pending = b""  # read and followed, not yet handed out
        self._off = 0
        self._need = 4  # size of the next header: a frame's magic number first
        self._state = "magic"  # magic, descriptor, block, skippable or lost
        self._head = b""  # the next header's bytes so far
        self._skip = 0  # bytes to pass before the next header
        self._checksum = False  # the current frame ends with a 4-byte checksum
        self._ended = False  # the last header taken was a frame's last one
        self.consumed = 0  # compressed bytes handed to the decoder

    @property
    def complete(self) -> bool:
        """The bytes read so far end at the end of a frame (and hold at least one)."""
        return self._ended and self._skip == 0 and not self._head

    def read(self, n: int = -1) -> bytes:
        while self._off >= len(self._pending):
            chunk = self._raw.read(READ_BUFFER)
            if not chunk:
                return b""
            self._pending, self._off = self._follow(chunk), 0
        end = len(self._pending) if n < 0 else self._off + n
        piece = self._pending[self._off : end]
        self._off += len(piece)
        self.consumed += len(piece)
        return piece

    def _follow(self, chunk: bytes) -> bytes:
        """Walk the headers in `chunk`; the chunk less any zero padding after a frame's end."""
        pos, size = self._skip, len(chunk)
        while pos < size and self._state != "lost":
            if self._ended and not self._head and chunk[pos] == 0 and not chunk[pos:].strip(b"\0"):
                self._skip = 0
                return chunk[:pos]  # zero padding after the last frame
            part = chunk[pos : pos + self._need - len(self._head)]  # cut short at the chunk's end
            self._head += part
            pos += len(part)
            if len(self._head) == self._need:
                pos += self._header(int.from_bytes(self._head, "little"))
                self._head = b""
        self._skip = max(0, pos - size)
        return chunk

    def _header(self, value: int) -> int:
        """Take one header; return the size of what follows it up to the next header."""
        state = self._state
        self._ended = False
        if state == "magic":
            if value == _ZSTD_MAGIC:
                self._state, self._need = "descriptor", 1
            elif value & 0xFFFFFFF0 == _ZSTD_SKIPPABLE:
                self._state, self._need = "skippable", 4
            else:
                self._state = "lost"
            return 0
        if state == "skippable":  # value: the size of the skippable frame's data
            self._state, self._need, self._ended = "magic", 4, True
            return value
        if state == "descriptor":  # Frame_Header_Descriptor: the rest of the header's size
            single_segment = value >> 5 & 1
            self._checksum = bool(value >> 2 & 1)
            self._state, self._need = "block", 3
            window = 0 if single_segment else 1
            return window + (0, 1, 2, 4)[value & 3] + (single_segment, 2, 4, 8)[value >> 6]
        # block header: last-block bit, type (raw, RLE, compressed, reserved), size
        block_type, block_size = value >> 1 & 3, value >> 3
        if block_type == 3:
            self._state = "lost"
            return 0
        if value & 1:  # the frame's last block
            self._state, self._need, self._ended = "magic", 4, True
            return (1 if block_type == 1 else block_size) + 4 * self._checksum
        return 1 if block_type == 1 else block_size


class _Decompressed(io.RawIOBase):
    """A compressed file decompressed chunk by chunk (see `_inflate`), as a raw stream."""

    def __init__(self, source: str | IO[bytes], kind: str):
        self._raw = open(source, "rb") if isinstance(source, str) else source
        self._pieces = _inflate(self._raw, kind)
        self._pending = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while self._pos >= len(self._pending):
            self._pending, self._pos = next(self._pieces, b""), 0
            if not self._pending:
                return 0
        # hand out the decompressed bytes by offset: slicing them off would copy the rest
        n = min(len(buf), len(self._pending) - self._pos)
        buf[:n] = memoryview(self._pending)[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def is_url(path: str) -> bool:
    """An fsspec URL (s3://, hf://, memory://, https://...), not a local path or file://."""
    return "://" in path and not path.startswith("file://")


def local_path(path: str) -> str:
    """`file://` URLs as plain paths; everything else unchanged."""
    return path.removeprefix("file://") if path.startswith("file://") else path


def _open_raw(path: str) -> IO[bytes]:
    if is_url(path):
        import fsspec

        fs, p = fsspec.core.url_to_fs(path)
        return fs.open(p, "rb", block_size=READ_BUFFER)
    return open(local_path(path), "rb", buffering=0)


_SUFFIXES = ((".gz", "gz"), (".zst", "zst"), (".zstd", "zst"), (".bz2", "bz2"), (".xz", "xz"))


def _compression(path: str) -> str | None:
    """The compression a file name says (a URL's query aside): "gz", "zst", "bz2", "xz" or
    None."""
    name = path.split("?", 1)[0] if is_url(path) else path
    for suffix, kind in _SUFFIXES:
        if name.endswith(suffix):
            return kind
    return None


def open_binary(path: str) -> IO[bytes]:
    """Open a local file, file:// or fsspec URL, transparently decompressing .gz, .zst, .bz2
    and .xz, as a buffered byte stream."""
    kind = _compression(path)
    if kind:
        return io.BufferedReader(_Decompressed(_open_raw(path), kind), READ_BUFFER)
    raw = _open_raw(path)
    return raw if is_url(path) else io.BufferedReader(raw, READ_BUFFER)


_DAMAGE = (EOFError, zlib.error, zstandard.ZstdError, OSError, lzma.LZMAError)


def _chunks(path: str) -> Iterator[bytes]:
    """The bytes of a local file, file:// or fsspec URL, decompressed if compressed, in pieces
    (damage raises as in `_inflate`). The file is closed when the iterator is."""
    kind = _compression(path)
    with _open_raw(path) as raw:
        if kind:
            yield from _inflate(raw, kind)
        else:
            while chunk := raw.read(READ_BUFFER):
                yield chunk


def _lines(chunks: Iterator[bytes], max_bytes: int) -> Iterator[bytes | None]:
    """Yield each line of the bytes `chunks` hold (without its `\n` and trailing `\r`s), or
    None for a line longer than `max_bytes`, whose pieces are dropped as they come so that a
    huge line never sits in memory whole. A line may span any number of chunks.

    Lines are cut out one at a time (find, slice) rather than split all at once: a chunk can
    be tens of MB, and one line's memory freed and reused stays in the CPU cache."""
    parts: list[bytes] = []  # the start of a line that goes on in a later chunk
    size = 0  # len(b"".join(parts))
    too_large = False  # the current line is too large; its pieces are being dropped
    for chunk in chunks:
        find = chunk.find
        i = 0
        j = find(b"\n")
        if j >= 0 and (parts or too_large):  # the end of a line begun in an earlier chunk
            if too_large or size + j > max_bytes:
                yield None
            else:
                parts.append(chunk[:j])
                yield b"".join(parts).rstrip(b"\r\n")
            parts, size, too_large = [], 0, False
            i = j + 1
            j = find(b"\n", i)
        while j >= 0:
            yield None if j - i > max_bytes else chunk[i:j].rstrip(b"\r\n")
            i = j + 1
            j = find(b"\n", i)
        if too_large or i == len(chunk):
            continue
        size += len(chunk) - i
        if size > max_bytes:
            parts, too_large = [], True
        else:
            parts.append(chunk[i:])
    if too_large:
        yield None
    elif parts:  # the last line has no newline
        yield b"".join(parts).rstrip(b"\r\n")


def _blocks(chunks: Iterator[bytes], max_bytes: int) -> Iterator[bytes | None]:
    """OSCAR 2019: documents are runs of non-empty lines separated by blank lines."""
    buf: list[bytes] = []
    size = 0
    too_large = False
    for line in _lines(chunks, max_bytes):
        if line is not None and (not line or line.isspace()):
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


def _fields(fmt: str, rec: dict, text_key: str) -> tuple[object, object, dict] | None:
    """`(text, url, meta)` of a JSON record of format `fmt` (text still unchecked), or None if
    a field the format defines has the wrong type (the record is `input:invalid_record`)."""
    if fmt == "pile":
        meta = rec.get("meta")
        if meta is None:
            meta = {}
        elif type(meta) is not dict:
            return None
        return rec.get("text"), None, meta
    if fmt == "c4":
        url, ts = rec.get("url"), rec.get("timestamp")
        if not (url is None or type(url) is str) or not (ts is None or type(ts) is str):
            return None
        return rec.get("text"), url, {"timestamp": ts}
    if fmt in ("oscar2201", "oscar2301"):
        headers, md = rec.get("warc_headers"), rec.get("metadata")
        if headers is None:
            headers = {}
        if md is None:
            md = {}
        if type(headers) is not dict or type(md) is not dict:
            return None
        url = headers.get("warc-target-uri")
        if not (url is None or type(url) is str):
            return None
        # 22.01 has `annotation`; 23.01 has quality_warnings, categories and harmful_pp
        extra = (
            ("annotation",)
            if fmt == "oscar2201"
            else ("quality_warnings", "categories", "harmful_pp")
        )
        meta = {
            "warc_record_id": headers.get("warc-record-id"),
            "warc_date": headers.get("warc-date"),
            "identification": md.get("identification"),
            **{k: md.get(k) for k in extra},
        }
        return rec.get("content"), url, meta
    # jsonl: a generic layout, so a url of another type is only left out
    url = rec.get("url")
    return _get(rec, text_key), url if isinstance(url, str) else None, {}


def _make_doc(text, url, meta) -> Doc | str:
    if not isinstance(text, str):
        return "input:missing_text"
    if text.isascii():  # most web text: its length is its UTF-8 size, no copy needed
        nbytes = len(text)
    else:
        try:
            nbytes = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogates from JSON escapes
            return "input:invalid_utf8"
    if not text or text.isspace():  # (str.strip() would copy the whole text)
        return "input:empty"
    if url is not None:
        if not isinstance(url, str):
            url = None
        elif not url.isascii():
            try:
                url.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate cannot be written out
                return "input:invalid_utf8"
    return Doc(text, url, meta, nbytes)


def meta_json(meta: dict) -> str | None:
    """A document's meta as the JSON text stages store, or None where it cannot be written
    (nested deeper than the json module goes from here, or lone surrogates in a string)."""
    try:
        out = json.dumps(meta, ensure_ascii=False)
        if not out.isascii():
            out.encode("utf-8")
    except (RecursionError, ValueError, TypeError, UnicodeEncodeError):
        return None
    return out


_decode_json = json.JSONDecoder().decode


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
    be opened; nothing else, whatever the file holds.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "parquet":
        yield from _read_parquet(path, text_key, start, stop, max_doc_bytes)
        return
    if fmt == "hf":
        yield from _read_hf(path, text_key, start, stop, max_doc_bytes)
        return
    if fmt == "oscar2109":
        yield from _read_oscar2109(path, start, stop, max_doc_bytes)
        return
    try:
        if fmt == "oscar2019":
            yield from _read_oscar2019(path, start, stop, max_doc_bytes)
            return
        # JSON lines, in one loop: this is the per-record hot path
        last = sys.maxsize if stop is None else stop
        decode = _decode_json
        index = -1
        blank = 0  # blank lines so far: a record's line number is index + blank + 1
        for raw in _lines(_chunks(path), max_doc_bytes):
            if raw is not None and (not raw or raw.isspace()):
                blank += 1
                continue  # a blank line is no record
            index += 1
            if index < start:
                continue
            if index >= last:
                return
            if raw is None:
                yield index, Bad("input:too_large", None, index + blank + 1)
                continue
            try:
                rec = decode(raw.decode("utf-8"))  # strict UTF-8; skips json.loads' sniffing
            except UnicodeDecodeError:
                yield index, Bad("input:invalid_utf8", raw, index + blank + 1)
                continue
            except ValueError:
                yield index, Bad("input:invalid_json", raw, index + blank + 1)
                continue
            except RecursionError:
                yield index, Bad("input:too_deep", raw, index + blank + 1)
                continue
            if type(rec) is not dict:
                yield index, Bad("input:invalid_json", raw, index + blank + 1)
                continue
            fields = _fields(fmt, rec, text_key)
            doc = "input:invalid_record" if fields is None else _make_doc(*fields)
            if type(doc) is str:
                doc = Bad(doc, raw, index + blank + 1)
            yield index, doc
    except _DAMAGE as e:
        raise _file_error(path, e) from e


def _read_oscar2019(path, start, stop, max_doc_bytes):
    index = -1
    for raw in _blocks(_chunks(path), max_doc_bytes):
        index += 1
        if index < start:
            continue
        if stop is not None and index >= stop:
            return
        if raw is None:
            yield index, Bad("input:too_large")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield index, Bad("input:invalid_utf8", raw)
            continue
        doc = _make_doc(text, None, {})
        yield index, Bad(doc, raw) if type(doc) is str else doc


def count_records(path: str, fmt: str, max_doc_bytes: int = 10_000_000) -> tuple[int, str | None]:
    """Count the records of a file without parsing them; also says (as the FileError's
    `reason: detail`) if the file is damaged or cannot be read. Raises nothing else."""
    try:
        if fmt == "parquet":
            return _parquet_file(path).metadata.num_rows, None
        if fmt == "hf":
            return _count_hf(path)
    except FileError as e:
        return 0, str(e)
    n = 0
    split = _blocks if fmt == "oscar2019" else _lines
    try:
        # OSCAR 21.09: a record is a line of the metadata file
        source, cap = path, max_doc_bytes
        if fmt == "oscar2109":
            source, cap = oscar2109_meta_path(path), max(max_doc_bytes, READ_BUFFER)
        for raw in split(_chunks(source), cap):
            if fmt != "oscar2019" and raw is not None and (not raw or raw.isspace()):
                continue
            n += 1
    except FileError as e:
        return n, str(e)
    except _DAMAGE as e:
        return n, str(_file_error(path, e))
    return n, None


def _parquet_file(path: str):
    """The file's ParquetFile; FileError if it cannot be opened or its footer is unreadable."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(_open_raw(path) if is_url(path) else local_path(path))
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for a broken footer
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise _file_error(path, e) from e
        raise FileError(
            "input:corrupt_file",
            f"{path}: not a readable Parquet file ({type(e).__name__}: {e}); "
            "its footer (row groups, schema) is missing or damaged, so no row can be read",
        ) from e


def _parquet_rows(pf, path, cols, start, stop):
    """`(index, text, url)` of rows `start <= i < stop`, row group by row group; the rows of a
    row group that cannot be decoded come back as `(index, None, Bad)`, and after the last
    row a FileError names the damaged row groups."""
    import pyarrow as pa

    damaged = []
    first = 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        lo, hi = first, first + n
        first = hi
        if hi <= start or (stop is not None and lo >= stop):
            continue
        index = lo
        try:
            for batch in pf.iter_batches(batch_size=4096, row_groups=[g], columns=cols):
                texts = batch.column(0).to_pylist()
                urls = batch.column(1).to_pylist() if len(cols) > 1 else [None] * len(texts)
                for text, url in zip(texts, urls, strict=True):
                    yield index, text, url
                    index += 1
        except (pa.ArrowException, OSError, ValueError, EOFError) as e:
            damaged.append(f"row group {g} (rows {lo}-{hi - 1}): {type(e).__name__}: {e}")
            for i in range(max(index, start), hi if stop is None else min(hi, stop)):
                yield i, None, Bad("input:unreadable_rows", None, i + 1)
        if stop is not None and hi >= stop:
            break
    if damaged:
        raise FileError(
            "input:corrupt_file",
            f"{path}: {len(damaged)} row group(s) cannot be decoded, their rows are counted as "
            f"input:unreadable_rows: {'; '.join(damaged[:3])}",
        )


def _read_parquet(path, text_key, start, stop, max_doc_bytes):
    pf = _parquet_file(path)
    names = pf.schema_arrow.names
    if text_key not in names:
        raise FileError("input:missing_text", f"{path}: no column {text_key!r}")
    cols = [text_key] + (["url"] if "url" in names and text_key != "url" else [])
    for i, text, url in _parquet_rows(pf, path, cols, start, stop):
        if i < start:
            continue
        if url.__class__ is Bad:
            yield i, url
            continue
        doc = _make_doc(text, url, {})
        if type(doc) is str:
            doc = Bad(doc, None, i + 1)
        elif doc.nbytes > max_doc_bytes:
            doc = Bad("input:too_large", None, i + 1)
        yield i, doc


# ---- OSCAR 21.09: text file + metadata file ----------------------------------------------------

_OSCAR2109_TEXT = re.compile(r"(?P<stem>.+?)(?P<part>_part_\d+)?\.txt\.gz")


def oscar2109_meta_path(text_path: str) -> str:
    """The metadata file of an OSCAR 21.09 text file: `fr_part_3.txt.gz` ->
    `fr_meta_part_3.jsonl.gz`, `nn.txt.gz` -> `nn_meta.jsonl.gz` (the pairing the OSCAR-2109
    loading script checks)."""
    head, sep, name = text_path.rpartition("/")
    m = _OSCAR2109_TEXT.fullmatch(name)
    if m is None:
        raise FileError("input:missing_metadata", f"{text_path}: not an OSCAR 21.09 text file name")
    return f"{head}{sep}{m['stem']}_meta{m['part'] or ''}.jsonl.gz"


def _text_line(stream: IO[bytes], cap: int) -> bytes | None:
    """One line of an OSCAR 21.09 text file without its `\n` (a `\r` is text there), or None
    at the end of the file. Lines longer than `cap` are consumed and returned cut to `cap + 1`
    bytes, which is enough for the caller to see the document is too large."""
    line = stream.readline(cap + 1)
    if not line:
        return None
    if len(line) > cap and not line.endswith(b"\n"):
        while True:
            rest = stream.readline(READ_BUFFER)
            if not rest or rest.endswith(b"\n"):
                break
        return line
    return line[:-1] if line.endswith(b"\n") else line


def _read_oscar2109(path, start, stop, max_doc_bytes):
    """A record is a metadata line; its text is `nb_sentences` lines of the text file from line
    `offset` on. Both files stream side by side, so memory stays at one document."""
    meta_path = oscar2109_meta_path(path)
    if not is_url(meta_path) and not os.path.exists(local_path(meta_path)):
        raise FileError("input:missing_metadata", f"{path}: no metadata file {meta_path}")
    try:
        with open_binary(path) as text, closing(_chunks(meta_path)) as meta:
            line_no = 0
            index = -1
            blank = 0
            # metadata lines hold WARC headers, not text: the document cap is not theirs
            for raw in _lines(meta, max(max_doc_bytes, READ_BUFFER)):
                if raw is not None and (not raw or raw.isspace()):
                    blank += 1
                    continue
                index += 1
                if stop is not None and index >= stop:
                    return
                rec = _oscar2109_meta(raw)
                if type(rec) is not str and rec["offset"] < line_no:
                    rec = "input:invalid_record"  # its text would overlap the one before
                if type(rec) is str:
                    if index >= start:
                        yield index, Bad(rec, raw, index + blank + 1)
                    continue
                offset, count = rec["offset"], rec["nb_sentences"]
                while line_no < offset:
                    if _text_line(text, READ_BUFFER) is None:
                        raise FileError(
                            "input:truncated_file",
                            f"{path}: text ends at line {line_no}, before offset {offset} of "
                            f"{meta_path} line {index + blank + 1}",
                        )
                    line_no += 1
                parts: list[bytes] = []
                size = 0
                for _ in range(count):
                    line = _text_line(text, max_doc_bytes)
                    if line is None:
                        raise FileError(
                            "input:truncated_file",
                            f"{path}: text ends inside document {index} (line {line_no})",
                        )
                    line_no += 1
                    size += len(line) + 1
                    if index >= start and size <= max_doc_bytes + 1:
                        parts.append(line)
                if index < start:
                    continue
                if size - 1 > max_doc_bytes:
                    yield index, Bad("input:too_large", raw, index + blank + 1)
                    continue
                headers = rec["headers"]
                meta_out = {
                    "warc_record_id": headers.get("warc-record-id"),
                    "warc_date": headers.get("warc-date"),
                    "offset": offset,
                    "nb_sentences": count,
                }
                try:
                    text_str = b"\n".join(parts).decode("utf-8")
                except UnicodeDecodeError:
                    yield index, Bad("input:invalid_utf8", raw, index + blank + 1)
                    continue
                doc = _make_doc(text_str, headers.get("warc-target-uri"), meta_out)
                yield index, Bad(doc, raw, index + blank + 1) if type(doc) is str else doc
            while text.read(READ_BUFFER):  # to its end, so damage after the last document shows
                pass
    except _DAMAGE as e:
        raise _file_error(path, e) from e


def _oscar2109_meta(raw: bytes | None) -> dict | str:
    """A metadata record (with `headers` a dict), or the reason it cannot be used."""
    if raw is None:
        return "input:too_large"
    try:
        rec = _decode_json(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "input:invalid_utf8"
    except ValueError:
        return "input:invalid_json"
    except RecursionError:
        return "input:too_deep"
    if type(rec) is not dict:
        return "input:invalid_json"
    offset, count = rec.get("offset"), rec.get("nb_sentences")
    if type(offset) is not int or type(count) is not int or offset < 0 or count < 0:
        return "input:missing_text"
    headers = rec.get("headers")
    if headers is None:
        headers = {}
    if type(headers) is not dict:
        return "input:invalid_record"
    url = headers.get("warc-target-uri")
    if not (url is None or type(url) is str):
        return "input:invalid_record"
    rec["headers"] = headers
    return rec


# ---- hf: datasets.load_dataset(..., streaming=True) --------------------------------------------


@dataclass
class HFSpec:
    """A dataset `datasets.load_dataset` can stream, and optionally one shard of it."""

    name: str
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    data_files: list[str] = field(default_factory=list)
    shard: int | None = None
    num_shards: int | None = None

    def to_string(self) -> str:
        q: list[tuple[str, str]] = []
        if self.config:
            q.append(("name", self.config))
        q.append(("split", self.split))
        if self.revision:
            q.append(("revision", self.revision))
        q += [("data_files", f) for f in self.data_files]
        if self.num_shards is not None:
            q += [("shard", str(self.shard)), ("num_shards", str(self.num_shards))]
        return f"{HF_SPEC_PREFIX}{self.name}?{urlencode(q, safe='/*:', quote_via=quote)}"


def parse_hf_spec(spec: str) -> HFSpec:
    """`datasets:NAME[?name=CONFIG&split=SPLIT&revision=REV&data_files=F...&shard=K&num_shards=N]`.

    NAME is a hub dataset (`allenai/c4`) or a packaged builder (`json`, `parquet`, `text`, `csv`)
    with `data_files` (local paths, globs or fsspec URLs). `split` defaults to train.
    """
    if not spec.startswith(HF_SPEC_PREFIX):
        raise ValueError(f"not a datasets spec: {spec!r} (expected {HF_SPEC_PREFIX}NAME?...)")
    name, _, query = spec[len(HF_SPEC_PREFIX) :].partition("?")
    q = parse_qs(query, keep_blank_values=False)
    unknown = set(q) - {"name", "config", "split", "revision", "data_files", "shard", "num_shards"}
    if not name or unknown:
        raise ValueError(f"bad datasets spec {spec!r}: unknown keys {sorted(unknown)}")
    one = lambda k: q[k][-1] if k in q else None  # noqa: E731
    shard, num = one("shard"), one("num_shards")
    return HFSpec(
        name=name,
        config=one("name") or one("config"),
        split=one("split") or "train",
        revision=one("revision"),
        data_files=q.get("data_files", []),
        shard=None if shard is None else int(shard),
        num_shards=None if num is None else int(num),
    )


_BUILDERS = {
    ".parquet": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".txt": "text",
    ".arrow": "arrow",
}


def _builder_for(path: str) -> str:
    name = path.split("?", 1)[0].lower()
    for comp in (".gz", ".zst", ".zstd", ".bz2", ".xz"):
        name = name.removesuffix(comp)
    for ext, builder in _BUILDERS.items():
        if name.endswith(ext):
            return builder
    raise FileError(
        "input:unsupported_file",
        f"{path}: the hf format reads .parquet, .json(l), .csv, .txt or .arrow files "
        "(optionally compressed), or a datasets: spec",
    )


def _import_datasets():
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "the `hf` reader format needs the `datasets` package: pip install 'tokenmill[hf]'"
        ) from e
    datasets.logging.set_verbosity_error()
    return datasets


def _hf_stream(path: str):
    """The IterableDataset an `hf` input names (a datasets spec, or one data file)."""
    datasets = _import_datasets()
    if path.startswith(HF_SPEC_PREFIX):
        spec = parse_hf_spec(path)
        kwargs: dict = {"streaming": True, "split": spec.split}
        if spec.revision:
            kwargs["revision"] = spec.revision
        if spec.data_files:
            kwargs["data_files"] = [local_path(f) for f in spec.data_files]
        ds = datasets.load_dataset(spec.name, spec.config, **kwargs)
        if spec.num_shards is not None:
            ds = ds.shard(num_shards=spec.num_shards, index=spec.shard or 0)
        return ds
    return datasets.load_dataset(
        _builder_for(path), data_files=[local_path(path)], split="train", streaming=True
    )


def expand_hf_spec(spec: str) -> list[str]:
    """One spec per streaming shard of the dataset (the spec itself if it names a shard)."""
    parsed = parse_hf_spec(spec)
    if parsed.num_shards is not None:
        return [spec]
    n = max(1, int(getattr(_hf_stream(spec), "n_shards", 1)))
    return [
        HFSpec(**{**parsed.__dict__, "shard": k, "num_shards": n}).to_string() for k in range(n)
    ]


def _scalar_meta(row: dict, text_key: str) -> dict:
    meta = {}
    top = text_key.split(".", 1)[0]
    for k, v in row.items():
        if k in (top, "url"):
            continue
        if v is None or isinstance(v, (str, int, float, bool)):
            meta[k] = v
        elif isinstance(v, dict):
            try:
                if len(json.dumps(v)) <= 4096:
                    meta[k] = v
            except (TypeError, ValueError, RecursionError):
                pass
    return meta


def _hf_rows(path: str) -> Iterator[dict]:
    """Rows of an hf input; a failure mid-stream becomes a FileError after the rows before it."""
    try:
        it = iter(_hf_stream(path))
    except FileError:
        raise
    except Exception as e:
        raise FileError("input:read_error", f"{path}: {type(e).__name__}: {e}") from e
    while True:
        try:
            row = next(it)
        except StopIteration:
            return
        except _DAMAGE as e:
            raise FileError("input:truncated_file", f"{path}: {type(e).__name__}: {e}") from e
        except Exception as e:  # datasets wraps reader errors in its own types
            reason = "input:truncated_file" if _is_damage(e) else "input:read_error"
            raise FileError(reason, f"{path}: {type(e).__name__}: {e}") from e
        yield row


def _is_damage(e: BaseException | None) -> bool:
    while e is not None:
        if isinstance(e, _DAMAGE):
            return True
        e = e.__cause__ or e.__context__
    return False


def _read_hf(path, text_key, start, stop, max_doc_bytes):
    for i, row in enumerate(_hf_rows(path)):
        if i < start:
            continue
        if stop is not None and i >= stop:
            return
        if not isinstance(row, dict):
            yield i, Bad("input:invalid_json", None, i + 1)
            continue
        url = row.get("url")
        doc = _make_doc(_get(row, text_key), url, _scalar_meta(row, text_key))
        if type(doc) is str:
            doc = Bad(doc, None, i + 1)
        elif doc.nbytes > max_doc_bytes:
            doc = Bad("input:too_large", None, i + 1)
        yield i, doc


def _count_hf(path: str) -> tuple[int, str | None]:
    n = 0
    try:
        if not path.startswith(HF_SPEC_PREFIX) and _builder_for(path) == "parquet":
            return _parquet_file(path).metadata.num_rows, None
        for _ in _hf_rows(path):
            n += 1
    except FileError as e:
        return n, str(e)
    return n, None


# ---- inputs ------------------------------------------------------------------------------------


def expand_inputs(patterns: list[str], source: str) -> list[str]:
    """A source's inputs: local paths and globs, `file://` URLs (given back as local paths),
    fsspec URLs and globs (s3://, gs://, hf://...; given back as URLs) and `datasets:` specs
    (one per streaming shard). In pattern order, each glob sorted, without repeats; a pattern
    that matches nothing is an error."""
    files: list[str] = []
    for pat in patterns:
        if pat.startswith(HF_SPEC_PREFIX):
            hits = expand_hf_spec(pat)
        elif is_url(pat):
            hits = _expand_fsspec(pat)
        else:
            pat = local_path(pat)
            hits = sorted(glob.glob(pat, recursive=True)) if glob.has_magic(pat) else [pat]
            hits = [h for h in hits if os.path.isfile(h)]
        if not hits:
            raise FileNotFoundError(f"source {source!r}: no input files match {pat!r}")
        files.extend(hits)
    seen: set[str] = set()
    return [f for f in files if not (f in seen or seen.add(f))]


def _expand_fsspec(url: str) -> list[str]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    if glob.has_magic(path):
        found = fs.glob(path, detail=True)
        names = sorted(p for p, info in found.items() if info.get("type") == "file")
    else:
        try:
            names = [path] if fs.isfile(path) else []
        except FileNotFoundError:
            names = []
    return [fs.unstrip_protocol(p) for p in names]
