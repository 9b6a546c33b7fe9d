"""Our shards against the reference reader, megatron-core's IndexedDataset."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest

from tokenmill.shards.megatron import ShardReader, ShardWriter, dtype_for_vocab

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from megatron.core.datasets.indexed_dataset import IndexedDataset


@pytest.mark.parametrize("dtype,vocab", [(np.uint16, 50257), (np.int32, 250880)])
def test_megatron_core_reads_what_we_write(tmp_path, dtype, vocab):
    assert dtype_for_vocab(vocab) == np.dtype(dtype)
    rng = np.random.default_rng(0)
    seqs = [
        rng.integers(0, vocab, size=int(n), dtype=np.int64) for n in rng.integers(1, 300, size=57)
    ]
    prefix = tmp_path / "shard_00000"
    with ShardWriter(prefix, dtype) as w:
        w.write(seqs[0])
        flat = np.concatenate(seqs[1:])
        w.write_many(flat, np.array([len(s) for s in seqs[1:]]))
    ds = IndexedDataset(str(prefix))
    assert len(ds) == len(seqs)
    assert ds.index.dtype == dtype
    assert list(ds.document_indices) == list(range(len(seqs) + 1))
    for i, s in enumerate(seqs):
        np.testing.assert_array_equal(ds[i], s)
        np.testing.assert_array_equal(
            ds.get(i, offset=1, length=3) if len(s) > 4 else s[1:4], s[1:4]
        )
    ours = ShardReader(prefix)
    assert len(ours) == len(seqs) and ours.num_tokens == sum(len(s) for s in seqs)
    np.testing.assert_array_equal(ours[10], seqs[10])


def test_index_header_bytes(tmp_path):
    prefix = tmp_path / "s"
    with ShardWriter(prefix, np.uint16) as w:
        w.write(np.array([1, 2, 3]))
        w.write(np.array([4]))
    raw = (tmp_path / "s.idx").read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00"
    version, code, n, d = struct.unpack("<QBQQ", raw[9:34])
    assert (version, code, n, d) == (1, 8, 2, 3)
    assert np.frombuffer(raw[34:42], "<i4").tolist() == [3, 1]
    assert np.frombuffer(raw[42:58], "<i8").tolist() == [0, 6]
    assert np.frombuffer(raw[58:82], "<i8").tolist() == [0, 1, 2]
    assert (tmp_path / "s.bin").read_bytes() == np.array([1, 2, 3, 4], "<u2").tobytes()


def test_failed_write_leaves_no_shard(tmp_path):
    prefix = tmp_path / "s"
    with pytest.raises(RuntimeError):
        with ShardWriter(prefix, np.uint16) as w:
            w.write(np.array([1, 2]))
            raise RuntimeError("worker died")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_copy_many_appends_the_same_bytes_as_write_many(tmp_path, monkeypatch, kernel_copy):
    if not kernel_copy:  # the read/write fallback, as on file systems without copy_file_range
        monkeypatch.delattr("os.copy_file_range", raising=False)
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 50, size=40)
    flat = rng.integers(0, 50000, size=int(sizes.sum())).astype(np.uint16)
    raw = tmp_path / "part.bin"
    raw.write_bytes(flat.tobytes())
    first = int(sizes[:7].sum())
    with ShardWriter(tmp_path / "copied", np.uint16) as w:
        w.write(np.array([5, 6]))
        w.copy_many(raw, first, sizes[7:30])
        w.write(np.array([7]))
    with ShardWriter(tmp_path / "written", np.uint16) as w:
        w.write(np.array([5, 6]))
        w.write_many(flat[first : first + int(sizes[7:30].sum())], sizes[7:30])
        w.write(np.array([7]))
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"copied{ext}").read_bytes() == (tmp_path / f"written{ext}").read_bytes()


def test_copy_many_past_the_end_of_the_token_file_fails(tmp_path):
    raw = tmp_path / "part.bin"
    raw.write_bytes(np.arange(10, dtype=np.uint16).tobytes())
    with pytest.raises(ValueError, match="short"):
        with ShardWriter(tmp_path / "s", np.uint16) as w:
            w.copy_many(raw, 4, np.array([3, 5]))
    assert not (tmp_path / "s.idx").exists()
