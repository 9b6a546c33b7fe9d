"""Megatron `MMapIndexedDataset` shards: a streaming writer, a reader, and the format's bytes.

`PREFIX.bin` holds the tokens of every sequence back to back (little-endian, dtype below).
`PREFIX.idx` (all little-endian):

    offset  size        field
    0       9           magic b"MMIDIDX\\x00\\x00"
    9       8  u64      version = 1
    17      1  u8       dtype code: 8 = uint16, 4 = int32 (the only codes every reader agrees on)
    18      8  u64      S, the number of sequences
    26      8  u64      D, the length of the document index (documents + 1)
    34      4*S int32   sizes: tokens in each sequence
    ...     8*S int64   pointers: byte offset of each sequence in .bin (exclusive cumsum)
    ...     8*D int64   document_indices: 0, then the end (in sequences) of each document

One sequence per document here, so document_indices = 0..S. Readable by megatron-core's
`IndexedDataset`, Megatron-DeepSpeed and GPT-NeoX.
"""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

import numpy as np

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4}
CODE_DTYPES = {v: k for k, v in DTYPE_CODES.items()}
HEADER_BYTES = 34
# uint16 when every id fits with room to spare, as Megatron's preprocessor decides.
UINT16_MAX_VOCAB = 65500


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size < UINT16_MAX_VOCAB else np.dtype(np.int32)


class ShardWriter:
    """Streams sequences into PREFIX.bin and writes PREFIX.idx on close.

    Both files are written under temporary names and renamed on a clean close (the .idx
    last), so an existing .idx always means a complete shard.
    """

    def __init__(self, prefix: str | os.PathLike, dtype: np.dtype | type):
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        if self.dtype not in DTYPE_CODES:
            raise ValueError(f"dtype must be uint16 or int32, not {self.dtype}")
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_bin = self.prefix.with_name(self.prefix.name + ".bin.tmp")
        self._bin = open(self._tmp_bin, "wb")
        self._sizes: list[np.ndarray] = []

    def write(self, tokens: np.ndarray) -> None:
        """Append one sequence."""
        self.write_many(np.asarray(tokens, dtype=self.dtype), np.array([len(tokens)]))

    def write_many(self, flat_tokens: np.ndarray, sizes: np.ndarray) -> None:
        """Append several sequences given as their concatenated tokens and their lengths."""
        flat = np.ascontiguousarray(flat_tokens, dtype=self.dtype)
        if int(np.sum(sizes)) != len(flat):
            raise ValueError("sizes do not add up to the number of tokens")
        self._bin.write(memoryview(flat).cast("B"))
        self._sizes.append(np.asarray(sizes, dtype=np.int32))

    def copy_many(
        self, tokens_path: str | os.PathLike, first_token: int, sizes: np.ndarray
    ) -> None:
        """Append several sequences whose tokens lie back to back in a raw token file (this
        shard's dtype, no header) from token `first_token` on: a file-to-file byte copy."""
        sizes = np.asarray(sizes, dtype=np.int64)
        with open(tokens_path, "rb") as src:
            self._bin.flush()
            copy_range(
                src.fileno(),
                self._bin.fileno(),
                first_token * self.dtype.itemsize,
                int(sizes.sum()) * self.dtype.itemsize,
            )
            self._bin.seek(0, os.SEEK_END)  # the buffered writer learns the new end
        self._sizes.append(sizes.astype(np.int32))

    def close(self) -> None:
        self._bin.close()
        sizes = np.concatenate(self._sizes) if self._sizes else np.empty(0, np.int32)
        write_index(self.prefix.with_name(self.prefix.name + ".idx.tmp"), sizes, self.dtype)
        os.replace(self._tmp_bin, self.prefix.with_name(self.prefix.name + ".bin"))
        os.replace(
            self.prefix.with_name(self.prefix.name + ".idx.tmp"),
            self.prefix.with_name(self.prefix.name + ".idx"),
        )

    def abort(self) -> None:
        self._bin.close()
        self._tmp_bin.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


COPY_CHUNK = 16 << 20


def copy_range(src_fd: int, dst_fd: int, offset: int, count: int) -> None:
    """Copy `count` bytes of `src_fd` from `offset` to `dst_fd` at its current position
    (advancing it): `os.copy_file_range` in the kernel where the file systems allow, else
    read/write in 16 MiB chunks."""
    done = 0
    if hasattr(os, "copy_file_range"):
        try:
            while done < count:
                n = os.copy_file_range(src_fd, dst_fd, count - done, offset + done)
                if n == 0:
                    break
                done += n
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
    while done < count:
        chunk = os.pread(src_fd, min(COPY_CHUNK, count - done), offset + done)
        if not chunk:
            raise ValueError(f"token file ends {count - done} bytes short of the range to copy")
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view) :]
        done += len(chunk)


def write_index(path: str | os.PathLike, sizes: np.ndarray, dtype: np.dtype) -> None:
    sizes = np.asarray(sizes, dtype=np.int32)
    n = len(sizes)
    pointers = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(sizes[:-1].astype(np.int64) * np.dtype(dtype).itemsize, out=pointers[1:])
    doc_idx = np.arange(n + 1, dtype=np.int64)
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<Q", VERSION))
        f.write(struct.pack("<B", DTYPE_CODES[np.dtype(dtype)]))
        f.write(struct.pack("<Q", n))
        f.write(struct.pack("<Q", len(doc_idx)))
        f.write(sizes.astype("<i4").tobytes())
        f.write(pointers.astype("<i8").tobytes())
        f.write(doc_idx.astype("<i8").tobytes())


class ShardReader:
    """Random access to the sequences of a shard, memory-mapped."""

    def __init__(self, prefix: str | os.PathLike):
        prefix = str(prefix)
        with open(prefix + ".idx", "rb") as f:
            header = f.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES or header[:9] != MAGIC:
            raise ValueError(f"{prefix}.idx is not a Megatron MMIDIDX index")
        version, code, n, d = struct.unpack("<QBQQ", header[9:])
        if version != VERSION or code not in CODE_DTYPES:
            raise ValueError(f"{prefix}.idx: unsupported version {version} or dtype code {code}")
        self.dtype = CODE_DTYPES[code]
        need = HEADER_BYTES + 12 * n + 8 * d
        if os.path.getsize(prefix + ".idx") != need:
            # a cut .idx would map short arrays and read as fewer documents, silently
            raise ValueError(
                f"{prefix}.idx is {os.path.getsize(prefix + '.idx'):,} bytes but its header "
                f"needs {need:,}: the shard is damaged (`tokenmill verify` checks them all)"
            )
        # plain ndarray views of the maps: indexing a np.memmap goes through slow Python code
        # (2-3x fewer sequences/s); the pages are still mapped, never read whole
        idx = np.memmap(prefix + ".idx", mode="r", dtype=np.uint8).view(np.ndarray)
        o = HEADER_BYTES
        self.sizes = idx[o : o + 4 * n].view("<i4")
        o += 4 * n
        self.pointers = idx[o : o + 8 * n].view("<i8")
        o += 8 * n
        self.document_indices = idx[o : o + 8 * d].view("<i8")
        size = os.path.getsize(prefix + ".bin")
        self._bin = (
            np.memmap(prefix + ".bin", mode="r", dtype=self.dtype).view(np.ndarray)
            if size
            else np.empty(0, self.dtype)
        )

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.pointers[i]) // self.dtype.itemsize
        return self._bin[start : start + int(self.sizes[i])]

    @property
    def num_tokens(self) -> int:
        return int(self.sizes.sum(dtype=np.int64))
