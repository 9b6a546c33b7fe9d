"""The compression layer: opening a local file, `file://` or fsspec URL (`open_raw`,
`open_binary`, `read_chunks`), gzip / zstd / bzip2 / xz decompression that yields every
decodable byte before it reports damage at its exact compressed offset (`inflate`,
`Decompressed`), the zstd frame follower that tells a truncated zstd stream from a whole one,
and the mapping of what goes wrong reading a file to a `FileError` (`file_error`).

READ_BUFFER and ZSTD_PIECE are read from this module at each use (set them here, or on the
package, to change them; tests do).
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Iterator
from typing import IO

import zstandard

from tokenmill.pipelines.readers.inputs import is_url, local_path
from tokenmill.pipelines.readers.records import FileError

READ_BUFFER = 1 << 20
# decompressed bytes per zstd piece: bounded, so a highly compressed stretch (one input chunk can
# hold tens of MB) never sits in memory whole nor leaves the CPU cache before it is split
ZSTD_PIECE = 1 << 18


class Damage(EOFError):
    """Damage in a compressed stream, found at compressed byte `offset`."""

    def __init__(self, what: str, offset: int, truncated: bool):
        super().__init__(f"{what} at compressed byte {offset:,}")
        self.offset = offset
        self.truncated = truncated


def file_error(path: str, e: BaseException) -> FileError:
    """The FileError for an exception met reading `path`."""
    if isinstance(e, FileError):
        return e
    if isinstance(e, Damage):
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


def inflate(raw: IO[bytes], kind: str) -> Iterator[bytes]:
    """The decompressed bytes of a gzip (`kind` "gz"), zstd ("zst"), bzip2 ("bz2") or xz
    ("xz") stream, piece by piece.

    Every byte that can be decompressed is yielded before a truncated or corrupt stream raises
    `Damage` (an EOFError naming the compressed offset), so no complete record before the
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
        raise Damage(f"corrupt data ({error})", source.consumed, False) from error
    raise Damage("compressed stream ends before its end marker (truncated)", source.consumed, True)


def _decompressor(kind: str):
    """A fresh decompressobj for one member of a `kind` stream."""
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
    """`inflate` with the decoders' decompressobj API, READ_BUFFER compressed bytes per call
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
                raise Damage("compressed stream ends before its end marker (truncated)", pos, True)
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
                    raise Damage(what, pos, False) from e
                if saved is None:
                    saved = _replay(raw, kind, begin, pos, end_of_chunk)
                    if saved is None:
                        raise Damage(what, pos, False) from e
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


class Decompressed(io.RawIOBase):
    """A compressed file decompressed chunk by chunk (see `inflate`), as a raw stream."""

    def __init__(self, source: str | IO[bytes], kind: str):
        self._raw = open(source, "rb") if isinstance(source, str) else source
        self._pieces = inflate(self._raw, kind)
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


def open_raw(path: str) -> IO[bytes]:
    """The file's bytes as stored (not decompressed): unbuffered for a local file, fsspec's
    READ_BUFFER-sized blocks for a URL."""
    if is_url(path):
        import fsspec

        fs, p = fsspec.core.url_to_fs(path)
        return fs.open(p, "rb", block_size=READ_BUFFER)
    return open(local_path(path), "rb", buffering=0)


_SUFFIXES = ((".gz", "gz"), (".zst", "zst"), (".zstd", "zst"), (".bz2", "bz2"), (".xz", "xz"))


def compression_of(path: str) -> str | None:
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
    kind = compression_of(path)
    if kind:
        return io.BufferedReader(Decompressed(open_raw(path), kind), READ_BUFFER)
    raw = open_raw(path)
    return raw if is_url(path) else io.BufferedReader(raw, READ_BUFFER)


DAMAGE = (EOFError, zlib.error, zstandard.ZstdError, OSError, lzma.LZMAError)


def read_chunks(path: str) -> Iterator[bytes]:
    """The bytes of a local file, file:// or fsspec URL, decompressed if compressed, in pieces
    (damage raises as in `inflate`). The file is closed when the iterator is."""
    kind = compression_of(path)
    with open_raw(path) as raw:
        if kind:
            yield from inflate(raw, kind)
        else:
            while chunk := raw.read(READ_BUFFER):
                yield chunk


def count_until_damage(path: str, items: Iterator) -> tuple[int, str | None]:
    """`(items, None)`, or with the count so far the error (`reason: detail`, naming `path`)
    that stopped the iteration: what the record counters return."""
    n = 0
    try:
        for _ in items:
            n += 1
    except FileError as e:
        return n, str(e)
    except DAMAGE as e:
        return n, str(file_error(path, e))
    return n, None
