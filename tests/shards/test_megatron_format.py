"""The Megatron shard format against megatron-core's own writer and reader: the bytes of
PREFIX.bin/.idx, empty and one-sequence shards, the reader's refusals of damaged indexes, and
the file-to-file copy (kernel and read/write paths, short copies, errors)."""

from __future__ import annotations

import errno
import os
import struct
import warnings

import numpy as np
import pytest
import torch

from tokenmill.shards import megatron
from tokenmill.shards.megatron import ShardReader, ShardWriter, dtype_for_vocab

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from megatron.core.datasets.indexed_dataset import (
        DType,
        IndexedDataset,
        IndexedDatasetBuilder,
    )


def _sequences(n: int, vocab: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab, size=int(k)) for k in rng.integers(1, 200, size=n)]


def _megatron_shard(prefix, seqs, dtype) -> None:
    """The shard megatron-core's preprocessor writes: one sequence per document."""
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=dtype)
    for s in seqs:
        builder.add_item(torch.from_numpy(np.asarray(s, dtype=np.int64)))
        builder.end_document()
    builder.finalize(f"{prefix}.idx")


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
@pytest.mark.parametrize("n", [0, 1, 2, 57])
def test_bytes_equal_megatron_cores_builder(tmp_path, dtype, n):
    vocab = 65_000 if dtype is np.uint16 else 250_000
    seqs = _sequences(n, vocab, seed=n)
    _megatron_shard(tmp_path / "theirs", seqs, dtype)
    with ShardWriter(tmp_path / "ours", dtype) as w:
        for s in seqs:
            w.write(s)
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"ours{ext}").read_bytes() == (tmp_path / f"theirs{ext}").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["ours.bin", "ours.idx", "theirs.bin", "theirs.idx"]
    )  # no temporary left behind


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_our_reader_agrees_with_megatron_cores_on_every_array(tmp_path, dtype):
    seqs = _sequences(40, 60_000, seed=3)
    _megatron_shard(tmp_path / "s", seqs, dtype)
    ds, ours = IndexedDataset(str(tmp_path / "s")), ShardReader(tmp_path / "s")
    assert ours.dtype == np.dtype(dtype) == np.dtype(ds.index.dtype)
    assert len(ours) == len(ds) == 40
    assert ours.sizes.tolist() == ds.index.sequence_lengths.tolist()
    assert ours.pointers.tolist() == ds.index.sequence_pointers.tolist()
    assert ours.document_indices.tolist() == ds.document_indices.tolist() == list(range(41))
    for i, s in enumerate(seqs):
        assert ours[i].dtype == np.dtype(dtype)
        assert ours[i].tolist() == ds[i].tolist() == s.tolist()
    assert ours.num_tokens == sum(len(s) for s in seqs)


def test_what_the_reader_returns_cannot_change_the_shard(tmp_path):
    """Arrays are read-only views of the files: a trainer that edits a sample in place must
    not write into the shard."""
    with ShardWriter(tmp_path / "s", np.uint16) as w:
        w.write(np.array([1, 2, 3]))
    before = {ext: (tmp_path / f"s{ext}").read_bytes() for ext in (".bin", ".idx")}
    r = ShardReader(tmp_path / "s")
    for arr in (r[0], r.sizes, r.pointers, r.document_indices):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 9
    del r
    assert {ext: (tmp_path / f"s{ext}").read_bytes() for ext in (".bin", ".idx")} == before


def test_vocab_boundary_of_uint16_is_megatrons():
    for vocab in (1, 50_257, 65_499, 65_500, 65_501, 65_536, 250_880):
        assert dtype_for_vocab(vocab) == np.dtype(DType.optimal_dtype(vocab)), vocab


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_empty_shard_and_shard_of_empty_sequences(tmp_path, dtype):
    with ShardWriter(tmp_path / "none", dtype):
        pass
    raw = (tmp_path / "none.idx").read_bytes()
    assert struct.unpack("<QBQQ", raw[9:34])[2:] == (0, 1)
    assert np.frombuffer(raw[34:], "<i8").tolist() == [0]
    assert (tmp_path / "none.bin").read_bytes() == b""
    r = ShardReader(tmp_path / "none")
    assert len(r) == 0 and r.num_tokens == 0
    assert r.document_indices.tolist() == [0]

    with ShardWriter(tmp_path / "empties", dtype) as w:
        for _ in range(3):
            w.write(np.array([], dtype=np.int64))
    r = ShardReader(tmp_path / "empties")
    assert len(r) == 3 and r.num_tokens == 0
    for i in range(3):
        assert r[i].tolist() == [] and r[i].dtype == np.dtype(dtype)


def test_writer_makes_missing_folders(tmp_path):
    prefix = tmp_path / "a" / "b" / "c" / "s"
    with ShardWriter(prefix, np.uint16) as w:
        w.write(np.array([1]))
    assert ShardReader(prefix)[0].tolist() == [1]


def test_writer_refuses_other_dtypes_and_bad_sizes(tmp_path):
    for dtype in (np.int64, np.uint8, np.float32):
        with pytest.raises(
            ValueError, match=f"^dtype must be uint16 or int32, not {np.dtype(dtype)}$"
        ):
            ShardWriter(tmp_path / "s", dtype)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="^sizes do not add up to the number of tokens$"):
        with ShardWriter(tmp_path / "s", np.uint16) as w:
            w.write_many(np.arange(5), np.array([2, 2]))
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_a_listed_id_its_dtype_cannot_hold(tmp_path):
    """A Python int out of the dtype's range is an error, not wrapped into another id."""
    with pytest.raises(OverflowError):
        with ShardWriter(tmp_path / "s", np.uint16) as w:
            w.write([1, 70_000])
    assert list(tmp_path.iterdir()) == []


def test_abort_twice_keeps_the_callers_error(tmp_path):
    """An explicit abort in a failing `with` block: the block's own error comes out."""
    with pytest.raises(RuntimeError, match="the real error"):
        with ShardWriter(tmp_path / "s", np.uint16) as w:
            w.write(np.array([1]))
            w.abort()
            raise RuntimeError("the real error")
    assert list(tmp_path.iterdir()) == []


def test_no_final_file_exists_before_close(tmp_path):
    w = ShardWriter(tmp_path / "s", np.uint16)
    w.write(np.array([1, 2]))
    assert not (tmp_path / "s.bin").exists() and not (tmp_path / "s.idx").exists()
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.bin", "s.idx"]


# -- the reader's refusals ----------------------------------------------------------------


@pytest.fixture
def shard(tmp_path):
    with ShardWriter(tmp_path / "s", np.uint16) as w:
        w.write(np.array([1, 2, 3]))
        w.write(np.array([4]))
    return tmp_path / "s"


def _patch(path, offset: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    path.write_bytes(bytes(raw))


def test_reader_refuses_a_wrong_magic_or_a_short_header(shard):
    idx = shard.with_name("s.idx")
    good = idx.read_bytes()
    _patch(idx, 0, b"MMIDIDY")
    with pytest.raises(ValueError, match=r"s\.idx is not a Megatron MMIDIDX index"):
        ShardReader(shard)
    idx.write_bytes(good[:20])  # the magic, then the header cut short
    with pytest.raises(ValueError, match=r"s\.idx is not a Megatron MMIDIDX index"):
        ShardReader(shard)


def test_reader_refuses_another_version_or_dtype_code(shard):
    idx = shard.with_name("s.idx")
    good = idx.read_bytes()
    _patch(idx, 9, struct.pack("<Q", 2))
    with pytest.raises(ValueError, match="unsupported version 2 or dtype code 8"):
        ShardReader(shard)
    for code in (5, 200):  # int64 (megatron knows it, we do not) and garbage
        idx.write_bytes(good)
        _patch(idx, 17, bytes([code]))
        with pytest.raises(ValueError, match=f"unsupported version 1 or dtype code {code}$"):
            ShardReader(shard)


@pytest.mark.parametrize("change", [-1, -8, +8])
def test_reader_refuses_an_index_of_the_wrong_size(shard, change):
    idx = shard.with_name("s.idx")
    good = idx.read_bytes()
    need = 34 + 12 * 2 + 8 * 3
    assert len(good) == need
    idx.write_bytes(good[:change] if change < 0 else good + b"\0" * change)
    with pytest.raises(
        ValueError,
        match=f"s\\.idx is {need + change:,} bytes but its header needs {need:,}: the shard "
        r"is damaged \(`tokenmill verify` checks them all\)",
    ):
        ShardReader(shard)


# -- copy_many: the file-to-file copy -----------------------------------------------------


@pytest.fixture
def preads(monkeypatch) -> list[tuple]:
    """The read/write path's os.pread calls (the real ones), failing a copy that loops."""
    real, calls = os.pread, []

    def counted(*args):
        calls.append(args)
        assert len(calls) < 1000, "the copy does not progress"
        return real(*args)

    monkeypatch.setattr(os, "pread", counted)
    return calls


@pytest.fixture
def token_file(tmp_path):
    flat = np.random.default_rng(5).integers(0, 60_000, size=1000).astype(np.uint16)
    path = tmp_path / "part.bin"
    path.write_bytes(flat.tobytes())
    return path, flat


def _copied(tmp_path, path, first, sizes) -> list[int]:
    with ShardWriter(tmp_path / "out", np.uint16) as w:
        w.write(np.array([7, 7]))
        w.copy_many(path, first, sizes)
    r = ShardReader(tmp_path / "out")
    assert r.sizes.tolist() == [2, *sizes]
    return np.concatenate([r[i] for i in range(len(r))]).tolist()


@pytest.mark.skipif(not hasattr(os, "copy_file_range"), reason="no copy_file_range here")
def test_copy_many_copies_in_the_kernel_and_takes_short_copies(tmp_path, monkeypatch, token_file):
    """copy_file_range may copy fewer bytes than asked: the copy goes on from there."""
    path, flat = token_file
    real, calls = os.copy_file_range, []

    def short_copy(src, dst, count, offset_src=None, *args):
        calls.append(count)
        assert len(calls) < 1000, "the copy does not progress"
        return real(src, dst, min(count, 7), offset_src, *args)

    monkeypatch.setattr(os, "copy_file_range", short_copy)
    sizes = [5, 30, 1, 64]
    assert _copied(tmp_path, path, 100, sizes) == [7, 7, *flat[100 : 100 + 100].tolist()]
    assert len(calls) >= 200 // 7 and calls[0] == 200  # bytes: 100 uint16 tokens


@pytest.mark.skipif(not hasattr(os, "copy_file_range"), reason="no copy_file_range here")
@pytest.mark.parametrize("code", [errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP])
def test_copy_many_falls_back_where_the_kernel_cannot_copy(tmp_path, monkeypatch, token_file, code):
    """Across file systems (EXDEV on older kernels) and where the call is missing."""
    path, flat = token_file

    def refuse(*args):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "copy_file_range", refuse)
    assert _copied(tmp_path, path, 3, [10, 20]) == [7, 7, *flat[3:33].tolist()]


@pytest.mark.skipif(not hasattr(os, "copy_file_range"), reason="no copy_file_range here")
def test_copy_many_raises_other_kernel_errors(tmp_path, monkeypatch, token_file):
    path, _ = token_file

    def broken(*args):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "copy_file_range", broken)
    with pytest.raises(OSError, match="I/O error"):
        _copied(tmp_path, path, 3, [10, 20])
    assert not (tmp_path / "out.idx").exists()


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_copy_many_in_small_chunks(tmp_path, monkeypatch, token_file, preads, kernel_copy):
    """The read/write path in chunks smaller than the range (a range ending mid-chunk)."""
    if not kernel_copy:
        monkeypatch.delattr("os.copy_file_range", raising=False)
    monkeypatch.setattr(megatron, "COPY_CHUNK", 7)
    path, flat = token_file  # 15 tokens = 30 bytes: four chunks of 7, then 2 bytes
    assert _copied(tmp_path, path, 11, [4, 9, 2]) == [7, 7, *flat[11:26].tolist()]
    assert [c[1] for c in preads] == ([] if kernel_copy else [7, 7, 7, 7, 2])


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_copy_many_past_the_end_says_how_much_is_missing(
    tmp_path, monkeypatch, token_file, preads, kernel_copy
):
    if not kernel_copy:
        monkeypatch.delattr("os.copy_file_range", raising=False)
    else:
        real, calls = os.copy_file_range, []

        def counted(*args):
            calls.append(args)
            assert len(calls) < 1000, "the copy does not stop at the end of the file"
            return real(*args)

        monkeypatch.setattr(os, "copy_file_range", counted)
    monkeypatch.setattr(megatron, "COPY_CHUNK", 6)
    path, _ = token_file  # 1000 tokens: from token 990, 10 are there, 14 asked
    with pytest.raises(ValueError, match="token file ends 8 bytes short of the range to copy"):
        _copied(tmp_path, path, 990, [9, 5])
    assert not (tmp_path / "out.idx").exists()
