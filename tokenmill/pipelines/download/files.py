"""Where a downloaded file lands and whether it is whole. `safe_join` refuses a remote file
name that would write outside --dest; a download is written to a hidden `.NAME.part` beside its
final path (`_part_path`); `check_file` says, in one read, whether a file has its size, its
SHA-256 and (for .gz, .zst, .bz2, .xz) a full decompression pass. Local files only."""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from pathlib import Path, PurePosixPath

import zstandard

from tokenmill.pipelines.download.errors import UnsafePathError

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")

# ---- paths ------------------------------------------------------------------------------------


def safe_join(dest: str | os.PathLike, rel: str) -> Path:
    """`dest/rel`, refusing any `rel` that could write outside `dest`: absolute paths, drive
    letters, backslashes, `..` or empty segments, and symlinks inside `dest` that lead out."""
    bad = (
        not rel
        or "\x00" in rel
        or "\\" in rel
        or rel.startswith("/")
        or re.match(r"^[A-Za-z]:", rel) is not None
        or any(seg in ("", ".", "..") for seg in rel.split("/"))
    )
    if bad:
        raise UnsafePathError(f"refusing remote file name {rel!r}: it would write outside --dest")
    root = Path(dest).resolve()
    target = (root / PurePosixPath(rel)).resolve()
    if target != root and root not in target.parents:
        raise UnsafePathError(f"refusing remote file name {rel!r}: it resolves outside {root}")
    return root / PurePosixPath(rel)


def _part_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.part")


# ---- integrity --------------------------------------------------------------------------------


class _Hashing:
    """A raw file that hashes what is read from it."""

    def __init__(self, raw, h):
        self._raw, self._h = raw, h

    def read(self, n: int = -1) -> bytes:
        b = self._raw.read(n)
        if self._h is not None:
            self._h.update(b)
        return b

    def close(self) -> None:
        self._raw.close()


def check_file(
    path: str | os.PathLike,
    size: int | None = None,
    sha256: str | None = None,
    name: str | None = None,
) -> str | None:
    """None if the file is whole, else what is wrong: its size, its SHA-256, or (for a name
    the readers decompress: .gz, .zst, .bz2, .xz, by `name` or the path's name) a full
    decompression pass. One read of the file."""
    from tokenmill.pipelines.readers import READ_BUFFER, Decompressed, compression_of

    path = Path(path)
    name = name or path.name
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"size is {actual:,} bytes, expected {size:,}"
    h = hashlib.sha256() if sha256 else None
    kind = compression_of(name)  # what prepare's readers will decompress, checked the same way
    src = _Hashing(open(path, "rb"), h)
    try:
        if kind:
            stream = Decompressed(src, kind)
            buf = bytearray(READ_BUFFER)
            while stream.readinto(buf):
                pass
        else:
            while src.read(READ_BUFFER):
                pass
            if name.endswith(".parquet") and actual >= 8:
                with open(path, "rb") as f:
                    head = f.read(4)
                    f.seek(-4, os.SEEK_END)
                    if head != b"PAR1" or f.read(4) != b"PAR1":
                        return "not a whole Parquet file (no PAR1 magic at both ends)"
    except (EOFError, zlib.error, zstandard.ZstdError) as e:
        return f"decompression failed ({type(e).__name__}: {e})"
    finally:
        src.close()
    if h is not None and h.hexdigest() != sha256.lower():
        return f"SHA-256 is {h.hexdigest()}, expected {sha256.lower()}"
    return None
