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


def _compress(raw: bytes, kind: str) -> bytes:
    if kind == "gz":
        return gzip.compress(raw, mtime=0)
    if kind == "zst":
        return zstandard.ZstdCompressor(level=3).compress(raw)
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
        while n := stream.readinto(buf):
            assert 0 < n <= size
            out.append(bytes(buf[:n]))
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
    assert b"".join(inflate(io.BytesIO(data + b"\0" * 700), kind)) == raw
    # not padding: zeros, then more bytes, are a member that does not decode
    with pytest.raises(Damage):
        b"".join(inflate(io.BytesIO(data + b"\0" * 10 + b"junk"), kind))
