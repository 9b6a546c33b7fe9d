"""The compression layer on its own (readers/compression.py): what each failure becomes
(`file_error`), file names and URLs (`compression_of`, `open_binary`), the raw stream
(`Decompressed`), and damage in a stream that cannot seek, each against the codec's own
decoder (zlib, zstandard, bz2, lzma) or a plain reading."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib

import pytest
import zstandard
from tmfixtures import dumps, sample_docs

from tokenmill.pipelines.readers import compression
from tokenmill.pipelines.readers.compression import (
    Damage,
    Decompressed,
    compression_of,
    file_error,
    inflate,
    open_binary,
    read_chunks,
)
from tokenmill.pipelines.readers.records import FileError

LOST = "every record before it was read, the rest of the file is lost"

# a mutant that stops a decoding loop from advancing fails here instead of hanging
pytestmark = pytest.mark.timeout(60)


def _compress(raw: bytes, kind: str) -> bytes:
    if kind == "gz":
        return gzip.compress(raw, mtime=0)
    if kind == "zst":  # with its checksum: a flipped byte in a block's data is found
        return zstandard.ZstdCompressor(level=3, write_checksum=True).compress(raw)
    return bz2.compress(raw) if kind == "bz2" else lzma.compress(raw)


def _decoder(kind: str):
    if kind == "gz":
        return zlib.decompressobj(wbits=31)
    if kind == "zst":
        return zstandard.ZstdDecompressor().decompressobj()
    return bz2.BZ2Decompressor() if kind == "bz2" else lzma.LZMADecompressor()


@pytest.fixture(scope="module")
def raw() -> bytes:
    return b"".join(dumps(r) + b"\n" for r in sample_docs("c4")[:200])


# -- file_error: one FileError per way a read fails ---------------------------------------


def test_damage_says_where_and_what_is_lost():
    e = file_error("d/x.json.gz", Damage("compressed stream ends (truncated)", 1_234_567, True))
    assert (e.reason, e.detail) == (
        "input:truncated_file",
        f"d/x.json.gz: compressed stream ends (truncated) at compressed byte 1,234,567; {LOST}",
    )
    e = file_error("x.zst", Damage("corrupt data (ZstdError: bad)", 12, False))
    assert (e.reason, e.detail) == (
        "input:corrupt_file",
        f"x.zst: corrupt data (ZstdError: bad) at compressed byte 12; {LOST}",
    )
    d = Damage("w", 5, True)
    assert isinstance(d, EOFError) and (d.offset, d.truncated) == (5, True)
    assert str(d) == "w at compressed byte 5"


@pytest.mark.parametrize(
    "exc",
    [
        FileNotFoundError(2, "No such file or directory"),
        PermissionError(13, "Permission denied"),
        IsADirectoryError(21, "Is a directory"),
        NotADirectoryError(20, "Not a directory"),
    ],
)
def test_a_file_that_cannot_be_opened(exc):
    e = file_error("p.jsonl", exc)
    assert (e.reason, e.detail) == (
        "input:unreadable_file",
        f"p.jsonl: cannot be opened ({type(exc).__name__}: {exc})",
    )


def test_other_errors_while_reading():
    e = file_error("p.jsonl", EOFError("ran out"))
    assert (e.reason, e.detail) == ("input:truncated_file", "p.jsonl: EOFError: ran out")
    e = file_error("p.jsonl", OSError(5, "Input/output error"))
    assert (e.reason, e.detail) == (
        "input:read_error",
        "p.jsonl: OSError: [Errno 5] Input/output error",
    )
    e = file_error("p.jsonl", zlib.error("bad"))
    assert (e.reason, e.detail) == ("input:read_error", "p.jsonl: error: bad")
    same = FileError("input:read_error", "as it was")
    assert file_error("other", same) is same


# -- names, URLs and streams ---------------------------------------------------------------


def test_compression_of_a_name():
    for name, kind in [
        ("a.json.gz", "gz"),
        ("a.jsonl.zst", "zst"),
        ("a.jsonl.zstd", "zst"),
        ("a.jsonl.bz2", "bz2"),
        ("a.jsonl.xz", "xz"),
        ("a.jsonl", None),
        ("a.parquet", None),
        ("gz", None),
        ("a.gz.jsonl", None),
        ("s3://b/a.json.gz?versionId=3", "gz"),  # a URL's query is not its name
        ("https://h/a.jsonl.zst?x=1.gz", "zst"),
        ("https://h/a.jsonl?x=1.gz", None),
        ("dir/a.gz?x", None),  # a local name may hold "?"
    ]:
        assert compression_of(name) == kind, name


@pytest.mark.parametrize("kind", ["gz", "zst", "bz2", "xz", None])
def test_open_binary_and_read_chunks_give_the_plain_bytes(tmp_path, raw, kind, monkeypatch):
    monkeypatch.setattr(compression, "READ_BUFFER", 1000)
    path = tmp_path / (f"x.jsonl.{kind}" if kind else "x.jsonl")
    path.write_bytes(_compress(raw, kind) if kind else raw)
    with open_binary(str(path)) as f:
        assert isinstance(f, io.BufferedReader)
        assert f.readline() == raw[: raw.index(b"\n") + 1]
        assert f.read() == raw[raw.index(b"\n") + 1 :]
    url = f"file://{path}"
    with open_binary(url) as f:
        assert f.read() == raw
    pieces = list(read_chunks(str(path)))
    assert b"".join(pieces) == raw
    if kind is None:
        assert [len(p) for p in pieces] == [1000] * (len(raw) // 1000) + [len(raw) % 1000]


def test_decompressed_hands_out_every_byte_in_any_read_sizes(tmp_path, raw, monkeypatch):
    monkeypatch.setattr(compression, "ZSTD_PIECE", 777)  # pieces longer and shorter than reads
    data = _compress(raw, "zst")
    for size in (1, 100, 1000, 5000):
        stream = Decompressed(io.BytesIO(data), "zst")
        assert stream.readable()
        out, buf = [], bytearray(size)
        for _ in range(len(raw) // size + len(raw) // 777 + 3):  # every read gives bytes
            if not (n := stream.readinto(buf)):
                break
            assert 0 < n <= size
            out.append(bytes(buf[:n]))
        else:
            pytest.fail("readinto does not reach the end")
        assert b"".join(out) == raw
        assert stream.readinto(buf) == 0  # and stays at its end
    path = tmp_path / "x.zst"
    path.write_bytes(data)
    stream = Decompressed(str(path), "zst")  # a path: opened, and closed with the stream
    raw_file = stream._raw
    stream.close()
    assert raw_file.closed and stream.closed


# -- damage in a stream that cannot seek ----------------------------------------------------


class _Unseekable(io.RawIOBase):
    """A pipe-like reader (download.check_file's reader has no seekable() either)."""

    def __init__(self, data: bytes, has_seekable: bool):
        self._f = io.BytesIO(data)
        if not has_seekable:
            self.seekable = None  # type: ignore[assignment]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # type: ignore[override]
        return False

    def readinto(self, b) -> int:
        return self._f.readinto(b)


@pytest.mark.parametrize("has_seekable", [True, False])
@pytest.mark.parametrize("kind", ["bz2", "xz"])
def test_corrupt_data_in_a_stream_that_cannot_seek(raw, kind, has_seekable, monkeypatch):
    """Without seeking, the decoder's state cannot be rebuilt to find the exact byte: the
    output of the calls before the failing chunk comes out, and the damage is reported at
    that chunk's start."""
    chunk = 2048
    monkeypatch.setattr(compression, "READ_BUFFER", chunk)
    data = bytearray(_compress(raw, kind))
    data[len(data) // 2] ^= 0xFF
    data = bytes(data)
    want, obj = [], _decoder(kind)
    for at in range(0, len(data), chunk):
        try:
            want.append(obj.decompress(data[at : at + chunk]))
        except (OSError, lzma.LZMAError):
            failed_at = at
            break
    got = []
    with pytest.raises(Damage) as e:
        for piece in inflate(_Unseekable(data, has_seekable), kind):
            got.append(piece)
    assert b"".join(got) == b"".join(want)
    assert e.value.offset == failed_at and not e.value.truncated
    assert str(e.value).startswith("corrupt data (")


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zst"])
def test_members_one_after_another_and_zero_padding(raw, kind, monkeypatch):
    """Several members (frames) are read to the end; zeros after the last one are padding."""
    monkeypatch.setattr(compression, "READ_BUFFER", 1500)
    parts = [raw[:5000], raw[5000:5001], raw[5001:]]
    data = b"".join(_compress(p, kind) for p in parts)
    assert b"".join(inflate(io.BytesIO(data), kind)) == raw
    # zeros to the end of the file, within a chunk and across several
    for n in (700, 3000):
        assert b"".join(inflate(io.BytesIO(data + b"\0" * n), kind)) == raw
    # not padding: zeros, then other bytes (in the same chunk or the next), are a member that
    # does not decode
    to_chunk_end = -len(data) % 1500 or 1500
    for tail in (b"\0" * 10 + b"junk", b"\0" * 10 + b"XX", b"\0" * to_chunk_end + b"junk"):
        with pytest.raises(Damage):
            b"".join(inflate(io.BytesIO(data + tail), kind))


class _ReadOnly:
    """A reader with only `read` (no seekable, seek or close), as a download check uses."""

    def __init__(self, data: bytes):
        self._f = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)


def test_gz_damage_is_exact_without_seeking(raw, monkeypatch):
    """gzip's decoder state is copied before each call, so a stream that cannot seek still
    gives every decodable byte and the exact offset, as zlib fed one byte at a time does."""
    monkeypatch.setattr(compression, "READ_BUFFER", 2048)
    data = bytearray(_compress(raw, "gz"))
    data[len(data) // 2] ^= 0xFF
    data = bytes(data)
    obj, want = zlib.decompressobj(wbits=31), []
    for at in range(len(data)):
        try:
            want.append(obj.decompress(data[at : at + 1]))
        except zlib.error:
            break
    for reader in (_Unseekable(data, True), _ReadOnly(data)):
        got = []
        with pytest.raises(Damage) as e:
            for piece in inflate(reader, "gz"):
                got.append(piece)
        assert b"".join(got) == b"".join(want)
        assert e.value.offset == at and e.value.truncated is False
        assert str(e.value).startswith("corrupt data (error: Error -3 while decompressing")
        assert str(e.value).endswith(f") at compressed byte {at:,}")


@pytest.mark.parametrize(
    "kind,error", [("gz", "error"), ("bz2", "OSError"), ("xz", "LZMAError"), ("zst", "ZstdError")]
)
def test_damage_messages(raw, kind, error, monkeypatch):
    monkeypatch.setattr(compression, "READ_BUFFER", 4096)
    data = _compress(raw, kind)
    cut = data[: len(data) * 2 // 3]
    with pytest.raises(Damage) as e:
        b"".join(inflate(io.BytesIO(cut), kind))
    assert str(e.value) == (
        f"compressed stream ends before its end marker (truncated) at compressed byte {len(cut):,}"
    )
    assert e.value.truncated is True and e.value.offset == len(cut)
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(Damage) as e:
        b"".join(inflate(io.BytesIO(bytes(bad)), kind))
    assert str(e.value).startswith(f"corrupt data ({error}: ")
    assert e.value.truncated is False
    assert str(e.value).endswith(f" at compressed byte {e.value.offset:,}")


def test_a_gz_file_holding_a_zlib_stream_is_not_gzip(raw):
    data = zlib.compress(raw)
    obj = zlib.decompressobj(wbits=31)  # gzip only, as .gz promises
    for at in range(len(data)):
        try:
            obj.decompress(data[at : at + 1])
        except zlib.error:
            break
    with pytest.raises(Damage) as e:
        b"".join(inflate(io.BytesIO(data), "gz"))
    assert e.value.offset == at < 2 and e.value.truncated is False


@pytest.mark.parametrize("kind", ["bz2", "xz", "zst"])
def test_damage_in_a_later_member_is_found_exactly_whatever_the_chunks(raw, kind, monkeypatch):
    """Rebuilding the decoder's state replays the damaged member from its start: checked
    with chunk sizes that put the damage's chunk anywhere, one of them one byte past the
    first member's end."""
    first = _compress(raw[:3000], kind)
    second = bytearray(_compress(raw[3000:], kind))
    second[len(second) // 2] ^= 0xFF
    data = first + bytes(second)
    want, obj = [], None
    for at in range(len(data)):  # the oracle: the codec's decoder, one byte at a time
        if obj is None or obj.eof:
            obj = _decoder(kind)
        try:
            want.append(obj.decompress(data[at : at + 1]))
        except (OSError, lzma.LZMAError, zstandard.ZstdError):
            break
    for chunk in (len(first) + 1, 1000, 333):
        monkeypatch.setattr(compression, "READ_BUFFER", chunk)
        got = []
        with pytest.raises(Damage) as e:
            for piece in inflate(io.BytesIO(data), kind):
                got.append(piece)
        assert b"".join(got) == b"".join(want), chunk
        assert e.value.offset == at, chunk


def _zstd_stream(data: bytes, read_size: int, piece: int):
    """zstandard's own stream reader over `data`: (output, error or None, bytes it read)."""
    src = io.BytesIO(data)
    reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(
        src, read_size=read_size, read_across_frames=True
    )
    out, error = [], None
    try:
        while p := reader.read(piece):
            out.append(p)
    except zstandard.ZstdError as e:
        error = e
    return b"".join(out), error, src.tell()


@pytest.mark.parametrize("seekable", ["none", "false"])
def test_zstd_damage_in_a_stream_that_cannot_seek(raw, monkeypatch, seekable):
    """Without seeking, what zstandard's stream reader gave before the damage comes out, and
    the offset is what it had read; a cut stream is reported truncated at its end."""
    monkeypatch.setattr(compression, "READ_BUFFER", 1024)
    monkeypatch.setattr(compression, "ZSTD_PIECE", 4096)
    c = zstandard.ZstdCompressor(level=3, write_checksum=True)
    data = b"".join(c.compress(raw[i : i + 20_000]) for i in range(0, len(raw), 20_000))
    wrap = _ReadOnly if seekable == "none" else (lambda d: _Unseekable(d, True))
    cut = data[: len(data) // 2]
    got = []
    with pytest.raises(Damage) as e:
        for piece in inflate(wrap(cut), "zst"):
            got.append(piece)
    out, error, _ = _zstd_stream(cut, 1024, 4096)
    assert error is None and b"".join(got) == out and raw.startswith(out)
    assert str(e.value) == (
        f"compressed stream ends before its end marker (truncated) at compressed byte {len(cut):,}"
    )
    assert e.value.truncated is True
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    got = []
    with pytest.raises(Damage) as e:
        for piece in inflate(wrap(bytes(bad)), "zst"):
            got.append(piece)
    out, error, read = _zstd_stream(bytes(bad), 1024, 4096)
    assert error is not None and b"".join(got) == out
    assert e.value.offset == read and e.value.truncated is False
    assert str(e.value) == f"corrupt data ({error}) at compressed byte {read:,}"


def test_a_damaged_zstd_file_never_reads_as_a_clean_end(tmp_path, raw):
    """Through open_binary (a raw stream): the bytes before the damage, then an error, never
    a short read that looks like the end of the file."""
    c = zstandard.ZstdCompressor(level=3, write_checksum=True)
    frames = [c.compress(raw[i : i + 15_000]) for i in range(0, len(raw), 15_000)]
    bad = bytearray(frames[2])
    bad[len(bad) // 2] ^= 0xFF
    path = tmp_path / "x.jsonl.zst"
    path.write_bytes(b"".join(frames[:2]) + bytes(bad) + b"".join(frames[3:]))
    with open_binary(str(path)) as f, pytest.raises(EOFError):
        f.read()


# -- the zstd frame follower: a whole frame told from a cut one, for every header layout ----


def _frame_layouts(raw: bytes) -> list[bytes]:
    """Frames with each Frame_Header layout (RFC 8878 3.1.1.1): single segment with a 1, 2
    or 4 byte content size, a window byte with no content size, with a 2 byte and (rewritten
    by hand) an 8 byte one, a checksum, raw and RLE blocks, and a skippable frame."""

    def z(data, **kw):
        return zstandard.ZstdCompressor(level=3, **kw).compress(data)

    frames = [
        z(raw[:100]),  # single segment, 1-byte size
        z(raw[:300]),  # 2-byte size
        z(b"x" * 70_000, write_checksum=True),  # 4-byte size, RLE block, checksum
        z(raw[:200], write_content_size=False),  # window byte, no size
        bytes(range(256)) and z(bytes(range(256)) * 3, write_content_size=False),
        b"\x5f\x2a\x4d\x18\x04\x00\x00\x00skip",  # a skippable frame (last magic of 16)
    ]
    # the 2-byte-size frame again, as a window byte and a 2-byte size, then an 8-byte size
    f = frames[1]
    assert f[4] >> 5 & 1 and f[4] >> 6 == 1  # single segment, FCS flag 1
    size = int.from_bytes(f[5:7], "little") + 256
    frames.append(f[:4] + bytes([0x40]) + b"\x58" + f[5:7] + f[7:])
    frames.append(f[:4] + bytes([0xC0]) + b"\x58" + size.to_bytes(8, "little") + f[7:])
    # a Dictionary_ID field of 1, 2 and 4 bytes (flag 1, 2, 3), after the window byte: ID 0
    # means no dictionary (RFC 8878 3.1.1.1.3), so libzstd decodes these without one
    g = frames[3]
    assert g[4] == 0  # window byte, no content size, no dictionary ID
    for flag, n in ((1, 1), (2, 2), (3, 4)):
        frames.append(g[:4] + bytes([flag]) + g[5:6] + bytes(n) + g[6:])
    return frames


def _frames_decoded(data: bytes) -> tuple[bytes, bool]:
    """(output, damaged): a zstandard decompressobj per frame over `data`."""
    out, obj = [], zstandard.ZstdDecompressor().decompressobj()
    try:
        while data:
            if obj.eof:
                obj = zstandard.ZstdDecompressor().decompressobj()
            out.append(obj.decompress(data))
            data = obj.unused_data if obj.eof else b""
    except zstandard.ZstdError:
        return b"".join(out), True
    return b"".join(out), not obj.eof


def test_zstd_end_of_frame_is_told_for_every_header_layout(raw, monkeypatch):
    frames = _frame_layouts(raw)
    for f in frames:  # each layout decodes on its own
        assert not _frames_decoded(f)[1]
    data = b"".join(frames)
    for buffer in (5, 1 << 20):
        monkeypatch.setattr(compression, "READ_BUFFER", buffer)
        for cut in range(len(data) + 1):
            out, damaged = [], False
            try:
                out.extend(inflate(io.BytesIO(data[:cut]), "zst"))
            except Damage:
                damaged = True
            assert (b"".join(out), damaged) == _frames_decoded(data[:cut]), (buffer, cut)


def test_count_until_damage():
    def items(n, error):
        yield from range(n)
        raise error

    assert compression.count_until_damage("p", iter(range(4))) == (4, None)
    e = FileError("input:missing_metadata", "p: no metadata file m")
    assert compression.count_until_damage("p", items(3, e)) == (
        3,
        "input:missing_metadata: p: no metadata file m",
    )
    d = Damage("compressed stream ends before its end marker (truncated)", 1234, True)
    assert compression.count_until_damage("d/p.gz", items(2, d)) == (
        2,
        "input:truncated_file: d/p.gz: compressed stream ends before its end marker "
        f"(truncated) at compressed byte 1,234; {LOST}",
    )


def test_the_zstd_follower_reads_like_a_file(raw):
    """`_ZstdInput.read(n)` as a file's: at most n bytes, none for 0, the rest for -1, each
    byte once and in order, b"" at the end (zstandard's reader asks whole chunks, so only a
    direct read tells a short read from a long one)."""
    data = zstandard.ZstdCompressor(level=3).compress(raw[:5000])
    src = compression._ZstdInput(io.BytesIO(data))
    assert src.read(0) == b""
    got = [src.read(1), src.read(0), src.read(7), src.read(100)]
    assert [len(g) for g in got] == [1, 0, 7, 100]
    got.append(src.read())
    assert b"".join(got) == data and src.read(5) == b"" and src.read() == b""
    assert src.consumed == len(data) and src.complete


def test_decompressed_opens_a_path_itself(tmp_path, raw):
    for kind in ("gz", "zst", "bz2", "xz"):
        path = tmp_path / f"x.{kind}"
        path.write_bytes(_compress(raw, kind))
        with Decompressed(str(path), kind) as f:
            assert f.read() == raw


def test_a_url_query_is_not_part_of_the_name():
    # only the first "?" starts the query: a later one is part of it
    assert compression_of("https://h/d/a.jsonl.gz?sig=1?x.zst") == "gz"
    assert compression_of("https://h/d/a.jsonl?x=a.gz") is None


@pytest.mark.parametrize("buffer", [1 << 20, 4096])
def test_damage_right_after_a_whole_frame_is_not_an_end(tmp_path, raw, monkeypatch, buffer):
    """The stream reader hands out the first frame whole, then meets the damage in the
    second: the replay's first piece is exactly what was handed out, and must not come back
    as an empty piece (a raw stream would read it as the end of the file)."""
    monkeypatch.setattr(compression, "READ_BUFFER", buffer)
    monkeypatch.setattr(compression, "ZSTD_PIECE", 20_000)  # the first read: frame one, whole
    c = zstandard.ZstdCompressor(level=3, write_checksum=True)
    first, second = c.compress(raw[:20_000]), bytearray(c.compress(raw[20_000:40_000]))
    second[len(second) // 2] ^= 0xFF
    path = tmp_path / "x.jsonl.zst"
    path.write_bytes(first + bytes(second))
    pieces = []
    with pytest.raises(Damage) as e:
        pieces.extend(inflate(open(path, "rb"), "zst"))
    assert all(pieces) and b"".join(pieces).startswith(raw[:20_000])
    assert e.value.truncated is False
    with open_binary(str(path)) as f, pytest.raises(EOFError):
        f.read()


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz"])
def test_corrupt_data_is_damage_not_truncation(raw, kind):
    """Seekable or not (a stream that cannot seek cannot be replayed byte by byte)."""
    data = bytearray(_compress(raw, kind))
    data[len(data) // 2] ^= 0xFF

    class Stream(io.RawIOBase):  # no seek
        def __init__(self, b):
            self.b = io.BytesIO(b)

        def readable(self):
            return True

        def readinto(self, buf):
            return self.b.readinto(buf)

    for stream in (io.BytesIO(bytes(data)), Stream(bytes(data))):
        with pytest.raises(Damage) as e:
            b"".join(inflate(stream, kind))
        assert e.value.truncated is False and str(e.value).startswith("corrupt data")
