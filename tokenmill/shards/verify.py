"""Shard integrity: is every shard of a `prepare` output whole and the one the manifest lists?

Two depths of checking:

- structural (cheap: reads the .idx, stats the other files; what `plan`, `inspect`, `stats`
  and `train` run before using shards): the .idx header (magic, version, dtype code, and the
  dtype the manifest's tokenizer needs), its length against the counts in its header, sizes
  non-negative, pointers the exclusive running sum of sizes x itemsize, the document index
  running from 0 to the sequence count without going back, the .bin exactly as long as the
  sizes say, the sequence and token counts the manifest records, and every file's size
  against the manifest's record.
- full (`tokenmill verify`, without --quick): the above, the .docs.parquet row count, and the
  SHA-256 of every file against the manifest. Only the checksum catches damage that keeps a
  file's size (a flipped byte in .bin).
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokenmill.shards.megatron import CODE_DTYPES, HEADER_BYTES, MAGIC, VERSION

HASH_CHUNK = 1 << 20
REWRITE_HINT = (
    "to rewrite a shard, delete its done marker OUT/work/shards/SOURCE/NAME.json and rerun the "
    "same `tokenmill prepare` (it resumes from OUT/work), or rerun it with --fresh"
)


def default_jobs() -> int:
    # hashlib releases the GIL on large updates: threads hash files in parallel
    return max(1, min(8, os.cpu_count() or 1))


def sha256_file(path: str | os.PathLike, on_bytes: Callable[[int], None] | None = None) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces (constant memory)."""
    h = hashlib.sha256()
    buf = bytearray(HASH_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            if on_bytes is not None:
                on_bytes(n)
    return h.hexdigest()


def shard_files(prefix: str | os.PathLike) -> dict[str, Path]:
    """The files of a shard by suffix: bin, idx, docs.parquet."""
    from tokenmill.shards.manifest import SHARD_FILES

    p = str(prefix)
    return {s: Path(f"{p}.{s}") for s in SHARD_FILES}


def shard_file_records(prefix: str | os.PathLike) -> dict[str, dict]:
    """{suffix: {"bytes", "sha256"}} for a shard's .bin, .idx and (when present) .docs.parquet,
    as the manifest records them."""
    out = {}
    for suffix, path in shard_files(prefix).items():
        if suffix in ("bin", "idx") or path.exists():
            out[suffix] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return out


def file_records(prefixes: Iterable[str], jobs: int | None = None) -> dict[str, dict]:
    """shard_file_records for many shards, hashed in parallel threads."""
    prefixes = list(prefixes)
    if not prefixes:
        return {}
    with ThreadPoolExecutor(jobs or default_jobs()) as pool:
        return dict(zip(prefixes, pool.map(shard_file_records, prefixes), strict=True))


@dataclass
class ShardStatus:
    """What one check of one shard found; `problems` is empty for an intact shard."""

    prefix: str  # as the manifest gives it (relative to OUT), or the path checked
    source: str | None = None
    problems: list[str] = field(default_factory=list)
    sequences: int | None = None
    tokens: int | None = None
    max_sequence: int | None = None
    bytes: int = 0  # bytes on disk over the shard's files
    hashed: bool = False  # every recorded checksum was compared

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        return f"{self.prefix}: {'; '.join(self.problems)}"


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def check_index(prefix: str | os.PathLike, status: ShardStatus, want_dtype: str | None = None):
    """Structural checks of PREFIX.idx and of PREFIX.bin against it; problems go to `status`.
    Returns the index's dtype when the .idx is readable, else None."""
    files = shard_files(prefix)
    idx, bin_ = files["idx"], files["bin"]
    size = _size(idx)
    if size is None:
        status.problems.append(".idx is missing")
        return None
    if size < HEADER_BYTES:
        status.problems.append(
            f".idx is {size:,} bytes, shorter than the {HEADER_BYTES}-byte header (truncated)"
        )
        return None
    with open(idx, "rb") as f:
        header = f.read(HEADER_BYTES)
    if header[:9] != MAGIC:
        status.problems.append(".idx does not start with Megatron's MMIDIDX magic")
        return None
    version, code, n, d = struct.unpack("<QBQQ", header[9:])
    if version != VERSION:
        status.problems.append(f".idx format version is {version}, not {VERSION}")
        return None
    if code not in CODE_DTYPES:
        status.problems.append(f".idx dtype code is {code}, not 8 (uint16) or 4 (int32)")
        return None
    dtype = CODE_DTYPES[code]
    if want_dtype is not None and dtype.name != want_dtype:
        status.problems.append(
            f".idx says {dtype.name} tokens but the manifest's tokenizer needs {want_dtype}"
        )
    need = HEADER_BYTES + 12 * n + 8 * d
    if size != need:
        what = "truncated" if size < need else "extra bytes at the end"
        status.problems.append(
            f".idx is {size:,} bytes but its header ({n:,} sequences, {d:,} document-index "
            f"entries) needs {need:,} ({what})"
        )
        return None
    status.sequences = n
    raw = np.memmap(idx, mode="r", dtype=np.uint8).view(np.ndarray) if n or d else None
    sizes = raw[HEADER_BYTES : HEADER_BYTES + 4 * n].view("<i4") if n else np.empty(0, "<i4")
    o = HEADER_BYTES + 4 * n
    pointers = raw[o : o + 8 * n].view("<i8") if n else np.empty(0, "<i8")
    doc_idx = raw[o + 8 * n : o + 8 * n + 8 * d].view("<i8") if d else np.empty(0, "<i8")
    lengths = sizes.astype(np.int64)
    if n and int(lengths.min()) < 0:
        first = int(np.argmax(lengths < 0))
        status.problems.append(f".idx has a negative size at sequence {first:,}")
        return dtype
    expected = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(lengths[:-1] * dtype.itemsize, out=expected[1:])
    wrong = np.flatnonzero(pointers != expected)
    if len(wrong):
        i = int(wrong[0])
        status.problems.append(
            f".idx pointers are not the running sum of its sizes ({len(wrong):,} wrong, "
            f"the first at sequence {i:,}: {int(pointers[i]):,}, expected {int(expected[i]):,})"
        )
    if d == 0 or doc_idx[0] != 0 or doc_idx[-1] != n or (d > 1 and (np.diff(doc_idx) < 0).any()):
        status.problems.append(
            f".idx document index does not run from 0 to its {n:,} sequences in order"
        )
    tokens = int(lengths.sum())
    status.tokens = tokens
    status.max_sequence = int(lengths.max()) if n else 0
    bin_size = _size(bin_)
    if bin_size is None:
        status.problems.append(".bin is missing")
    elif bin_size != tokens * dtype.itemsize:
        what = "truncated" if bin_size < tokens * dtype.itemsize else "extra bytes at the end"
        status.problems.append(
            f".bin is {bin_size:,} bytes but the index's sizes add up to {tokens:,} "
            f"{dtype.name} tokens = {tokens * dtype.itemsize:,} bytes ({what})"
        )
    return dtype


def check_shard(
    root: str | os.PathLike,
    entry: dict,
    dtype: str | None = None,
    *,
    sidecar: bool = False,
    checksums: bool = False,
    on_bytes: Callable[[int], None] | None = None,
) -> ShardStatus:
    """Check one manifest shard entry under OUT `root` (see the module docstring). `sidecar`
    adds the .docs.parquet row count; `checksums` the SHA-256 of every recorded file."""
    status = ShardStatus(entry["prefix"], entry.get("source"))
    # absolute: a relative OUT means the folder the command was started in, whichever
    # thread or later step opens the files
    prefix = Path(root).resolve() / entry["prefix"]
    check_index(prefix, status, dtype)
    if status.sequences is not None and status.sequences != entry["documents"]:
        status.problems.append(
            f".idx holds {status.sequences:,} documents, the manifest says {entry['documents']:,}"
        )
    if status.tokens is not None and status.tokens != entry["tokens"]:
        status.problems.append(
            f".idx holds {status.tokens:,} tokens, the manifest says {entry['tokens']:,}"
        )
    files = shard_files(prefix)
    recorded = entry.get("files") or {}
    flagged = {s for s in files if any(p.startswith(f".{s} ") for p in status.problems)}
    sizes_ok: dict[str, bool] = {}
    for suffix, rec in recorded.items():
        size = _size(files[suffix])
        if size is not None:
            status.bytes += size
        if size is None:
            if suffix not in flagged:
                status.problems.append(f".{suffix} is missing")
            sizes_ok[suffix] = False
        elif size != rec["bytes"]:
            sizes_ok[suffix] = False
            if suffix not in flagged:
                status.problems.append(
                    f".{suffix} is {size:,} bytes, the manifest records {rec['bytes']:,}"
                )
        else:
            sizes_ok[suffix] = True
    side = files["docs.parquet"]
    if (
        sidecar
        and side.exists()
        and "docs.parquet" not in flagged | {s for s, ok in sizes_ok.items() if not ok}
    ):
        try:
            import pyarrow.parquet as pq

            rows = pq.ParquetFile(side).metadata.num_rows
            if rows != entry["documents"]:
                status.problems.append(
                    f".docs.parquet has {rows:,} rows, the manifest says "
                    f"{entry['documents']:,} documents"
                )
        except Exception as e:  # pyarrow raises several kinds on a damaged footer
            status.problems.append(f".docs.parquet is unreadable ({type(e).__name__}: {e})")
    if checksums and recorded:
        for suffix, rec in recorded.items():
            if not sizes_ok.get(suffix) or suffix in flagged:
                if on_bytes is not None:
                    on_bytes(rec["bytes"])  # not read: the damage is already named
                continue
            if sha256_file(files[suffix], on_bytes) != rec["sha256"]:
                status.problems.append(
                    f".{suffix} does not match its SHA-256 in the manifest (same size: "
                    "its bytes changed)"
                )
        status.hashed = True
    return status


def check_prefix(prefix: str | os.PathLike) -> ShardStatus:
    """Structural checks of a shard that no manifest lists (its .idx and .bin alone)."""
    status = ShardStatus(str(prefix))
    check_index(prefix, status)
    return status


def check_shards(
    root: str | os.PathLike,
    manifest: dict,
    *,
    sidecar: bool = False,
    checksums: bool = False,
    jobs: int | None = None,
    on_shard: Callable[[ShardStatus], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> list[ShardStatus]:
    """check_shard over every shard of a (loaded, checked) manifest, in manifest order, on
    `jobs` threads."""
    dtype = (manifest.get("tokenizer") or {}).get("dtype")

    def one(entry: dict) -> ShardStatus:
        s = check_shard(root, entry, dtype, sidecar=sidecar, checksums=checksums, on_bytes=on_bytes)
        if on_shard is not None:
            on_shard(s)
        return s

    shards = manifest["shards"]
    if len(shards) <= 1 or (jobs or default_jobs()) == 1:
        return [one(e) for e in shards]
    with ThreadPoolExecutor(jobs or default_jobs()) as pool:
        return list(pool.map(one, shards))


class DamagedShards(ValueError):
    """Shards that failed their check, named in the message (one line)."""

    def __init__(self, root, bad: list[ShardStatus], total: int):
        self.bad = bad
        shown = "; ".join(f"{s.prefix}: {s.problems[0]}" for s in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        super().__init__(
            f"{len(bad)} of {total} shards in {root} are damaged or missing: {shown}{more}. "
            f"Run `tokenmill verify {root}` for every problem and how to rewrite them"
        )


def require_intact(root: str | os.PathLike, manifest: dict) -> None:
    """Structural checks of every shard before use; DamagedShards names the bad ones."""
    statuses = check_shards(root, manifest)
    bad = [s for s in statuses if not s.ok]
    if bad:
        raise DamagedShards(root, bad, len(statuses))
