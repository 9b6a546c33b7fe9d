"""The tokenize stage's files and the shards copied from them: runs across partitions, per
language series, the provenance sidecar."""

from __future__ import annotations

import hashlib
import os
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tmfixtures import sample_docs

from tokenmill.pipelines.stages import tokenize_partition, write_shard
from tokenmill.shards.megatron import ShardReader
from tokenmill.shards.write import cut_into_shards
from tokenmill.tokenize.bpe import train_bpe
from tokenmill.tokenize.encode import encode_documents

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from megatron.core.datasets.indexed_dataset import IndexedDataset

EOD = "<|endoftext|>"


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Two tokenized partitions of 300 and 200 documents in two languages."""
    tmp = tmp_path_factory.mktemp("tok")
    texts = [r["text"] for r in sample_docs("c4")[:500]]
    tok = train_bpe(texts, 1000, [EOD, "<|pad|>"])
    tok.save(str(tmp / "tokenizer.json"))
    out = []
    for p, (a, b) in enumerate([(0, 300), (300, 500)]):
        n = b - a
        table = pa.table(
            {
                "id": [f"d{i}" for i in range(a, b)],
                "url": [f"u{i}" for i in range(a, b)],
                "lang": ["en" if i % 3 else "de" for i in range(a, b)],
                "text": texts[a:b],
            }
        )
        pq.write_table(table, tmp / f"{p}.parquet")
        counts = tokenize_partition(
            str(p),
            p,
            str(tmp / f"{p}.parquet"),
            [],
            [],
            str(tmp / "tokenizer.json"),
            EOD,
            str(tmp / "tok" / str(p)),
            split_languages=True,
        )
        assert counts["documents"] == n and counts["groups"] == ["de", "en"]
        out.append((str(tmp / "tok" / str(p)), counts))
    return tmp, tok, texts, out


def test_tokenize_files_hold_encode_documents_output(parts):
    tmp, tok, texts, out = parts
    eod = tok.token_to_id(EOD)
    base, counts = out[0]
    for lang in ("de", "en"):
        mine = [i for i in range(300) if (lang == "en") == bool(i % 3)]
        flat, sizes = encode_documents(tok, [texts[i] for i in mine], eod, np.dtype(np.uint16))
        assert np.fromfile(f"{base}.{lang}.bin", np.uint16).tolist() == flat.tolist()
        assert np.load(f"{base}.{lang}.sizes.npy").tolist() == sizes.tolist()
        docs = pq.read_table(f"{base}.{lang}.docs.parquet")
        assert docs.column_names == ["id", "url", "lang", "quality_score"]
        assert docs.column("id").to_pylist() == [f"d{i}" for i in mine]
        # the fixture's documents have no quality_score column (work files of an older
        # tokenmill, or no scoring rule): null
        assert docs.column("quality_score").null_count == len(mine)
    assert counts["dtype"] == "uint16"
    assert counts["tokens"] == sum(
        len(np.fromfile(f"{base}.{lang}.bin", np.uint16)) for lang in ("de", "en")
    )


def test_shard_from_runs_across_partitions(parts):
    tmp, tok, texts, out = parts
    eod = tok.token_to_id(EOD)
    (b0, _), (b1, _) = out
    # the tail of partition 0's English documents, then the head of partition 1's
    runs = [(f"{b0}.en", 150, 200), (f"{b1}.en", 0, 60)]
    prefix = str(tmp / "shards" / "s_00000")
    counts = write_shard(prefix, runs, "c4", "uint16", "en")
    en = [i for i in range(500) if i % 3]
    chosen = [i for i in en if i < 300][150:200] + [i for i in en if i >= 300][:60]
    assert counts["documents"] == len(chosen) == 110
    ds, ours = IndexedDataset(prefix), ShardReader(prefix)
    assert len(ds) == len(ours) == 110 and counts["tokens"] == ours.num_tokens
    for k, i in enumerate(chosen):
        ids = ds[k].tolist()
        assert ids[-1] == eod
        assert tok.decode(ids[:-1], skip_special_tokens=False) == texts[i]
        assert ours[k].tolist() == ids
    docs = pq.read_table(prefix + ".docs.parquet")
    assert docs.column("id").to_pylist() == [f"d{i}" for i in chosen]
    assert set(docs.column("lang").to_pylist()) == {"en"}


def test_scores_follow_their_documents_and_old_series_read_as_null(tmp_path):
    """A docs file with quality_score keeps each document's score through the tokenize stage
    (split by language) and the shard; a series written before the column existed (an older
    OUT/work) is copied into a shard with nulls."""
    texts = [r["text"] for r in sample_docs("c4")[:40]]
    tok = train_bpe(texts, 600, [EOD, "<|pad|>"])
    tok.save(str(tmp_path / "tokenizer.json"))
    scores = [None if i % 5 == 0 else i / 40 for i in range(40)]
    table = pa.table(
        {
            "id": [f"d{i}" for i in range(40)],
            "url": [None] * 40,
            "lang": ["en" if i % 3 else "de" for i in range(40)],
            "text": texts,
            "quality_score": pa.array(scores, pa.float32()),
            "hash_lo": pa.array(range(40), pa.uint64()),
        }
    )
    pq.write_table(table, tmp_path / "docs.parquet")
    base = str(tmp_path / "tok" / "0")
    counts = tokenize_partition(
        "0",
        0,
        str(tmp_path / "docs.parquet"),
        [],
        [],
        str(tmp_path / "tokenizer.json"),
        EOD,
        base,
        True,
    )
    assert counts["groups"] == ["de", "en"]
    f32 = [None if s is None else float(np.float32(s)) for s in scores]
    for lang in ("de", "en"):
        side = pq.read_table(f"{base}.{lang}.docs.parquet").to_pydict()
        want = [i for i in range(40) if (lang == "en") == bool(i % 3)]
        assert side["id"] == [f"d{i}" for i in want]
        assert side["quality_score"] == [f32[i] for i in want]
    prefix = str(tmp_path / "shards" / "s_00000")
    write_shard(prefix, [(f"{base}.en", 2, 20)], "c4", "uint16", "en")
    side = pq.read_table(prefix + ".docs.parquet").to_pydict()
    en = [i for i in range(40) if i % 3][2:20]
    assert side["id"] == [f"d{i}" for i in en] and side["quality_score"] == [f32[i] for i in en]

    # the series as an older tokenmill wrote it: id, url, lang only
    old = pq.read_table(f"{base}.de.docs.parquet").select(["id", "url", "lang"])
    pq.write_table(old, f"{base}.de.docs.parquet")
    prefix = str(tmp_path / "shards" / "s_00001")
    write_shard(prefix, [(f"{base}.de", 0, old.num_rows)], "c4", "uint16", "de")
    side = pq.read_table(prefix + ".docs.parquet")
    assert side.column_names == ["id", "url", "lang", "quality_score"]
    assert side.column("id").to_pylist() == old.column("id").to_pylist()
    assert side.column("quality_score").null_count == old.num_rows


# --- shards from hand-made series: exact cuts, runs and the files they give -----------------


def _series(base, sizes: list[int]) -> np.ndarray:
    """A token series as the tokenize stage leaves it (BASE.bin raw uint16, BASE.sizes.npy
    int64, BASE.docs.parquet), written here with numpy and pyarrow: document i is called d{i}
    and its tokens continue a count mod 65521. Returns all the tokens."""
    os.makedirs(os.path.dirname(base), exist_ok=True)
    n = len(sizes)
    tokens = (np.arange(sum(sizes)) % 65521).astype(np.uint16)
    tokens.tofile(base + ".bin")
    np.save(base + ".sizes.npy", np.array(sizes, dtype=np.int64))
    docs = {
        "id": [f"d{i}" for i in range(n)],
        "url": [f"u{i}" for i in range(n)],
        "lang": ["de"] * n,
        "quality_score": pa.array([i / 4 for i in range(n)], pa.float32()),
    }
    pq.write_table(pa.table(docs), base + ".docs.parquet")
    return tokens


def _docs_of(tokens: np.ndarray, sizes: list[int]) -> list[list[int]]:
    ends = np.cumsum(sizes)
    return [tokens[e - s : e].tolist() for s, e in zip(sizes, ends, strict=True)]


def _sizes_files(tmp_path, parts: list[list[int]]) -> list[str]:
    paths = []
    for i, sizes in enumerate(parts):
        np.save(tmp_path / f"{i}.sizes.npy", np.array(sizes, dtype=np.int64))
        paths.append(str(tmp_path / f"{i}.sizes.npy"))
    return paths


@pytest.mark.parametrize(
    ("parts", "budget", "want"),
    [
        # a budget at a document boundary (3 + 4 = 7), one below and one above it
        ([[3, 4, 2]], 7, [[(0, 0, 2)], [(0, 2, 3)]]),
        ([[3, 4, 2]], 6, [[(0, 0, 1)], [(0, 1, 3)]]),
        ([[3, 4, 2]], 8, [[(0, 0, 2)], [(0, 2, 3)]]),
        ([[3, 4, 2]], 9, [[(0, 0, 3)]]),
        # the same boundaries across partitions
        ([[3], [4, 2]], 7, [[(0, 0, 1), (1, 0, 1)], [(1, 1, 2)]]),
        ([[3], [4, 2]], 6, [[(0, 0, 1)], [(1, 0, 2)]]),
        # one token of room left when a partition ends: the next partition's 1-token document
        # still fits
        ([[3, 4], [1, 5]], 8, [[(0, 0, 2), (1, 0, 1)], [(1, 1, 2)]]),
        ([[3, 4], [2, 5]], 8, [[(0, 0, 2)], [(1, 0, 2)]]),
        # empty partitions: no runs, and they do not close a shard
        ([[2, 2], [], [3], []], 4, [[(0, 0, 2)], [(2, 0, 1)]]),
        ([[2], [], [1]], 4, [[(0, 0, 1), (2, 0, 1)]]),
        ([[], []], 4, []),
        ([], 4, []),
        # a document bigger than a shard gets a shard of its own, wherever it lies
        ([[10]], 5, [[(0, 0, 1)]]),
        ([[2, 10, 2]], 5, [[(0, 0, 1)], [(0, 1, 2)], [(0, 2, 3)]]),
        ([[5, 6], [1]], 5, [[(0, 0, 1)], [(0, 1, 2)], [(1, 0, 1)]]),
        # a budget of one token: every (1-token) document alone
        ([[1, 1, 1]], 1, [[(0, 0, 1)], [(0, 1, 2)], [(0, 2, 3)]]),
    ],
)
def test_cut_into_shards_exact_split(tmp_path, parts, budget, want):
    assert cut_into_shards(_sizes_files(tmp_path, parts), budget) == want


def _file_records(prefix: str) -> dict:
    out = {}
    for suffix in ("bin", "idx", "docs.parquet"):
        data = open(f"{prefix}.{suffix}", "rb").read()
        out[suffix] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return out


def test_cut_then_written_shards_hold_the_series_with_a_huge_document_alone(tmp_path):
    """Sizes 2, 10, 2 at 5 tokens a shard: three shards, the middle one the 10-token document
    alone; each shard's counts are exactly its documents, tokens and files."""
    sizes = [2, 10, 2]
    base = str(tmp_path / "tok" / "0.de")
    tokens = _series(base, sizes)
    docs = _docs_of(tokens, sizes)
    cuts = cut_into_shards([base + ".sizes.npy"], 5)
    assert cuts == [[(0, 0, 1)], [(0, 1, 2)], [(0, 2, 3)]]
    for k, runs in enumerate(cuts):
        prefix = str(tmp_path / "shards" / f"web_de_{k:05d}")
        counts = write_shard(prefix, [(base, a, b) for _, a, b in runs], "web", "uint16", "de")
        assert counts == {
            "prefix": prefix,
            "source": "web",
            "lang": "de",
            "documents": 1,
            "tokens": sizes[k],
            "files": _file_records(prefix),
        }
        ds = IndexedDataset(prefix)
        assert len(ds) == 1 and ds[0].tolist() == docs[k]
        side = pq.read_table(prefix + ".docs.parquet").to_pydict()
        assert side == {"id": [f"d{k}"], "url": [f"u{k}"], "lang": ["de"], "quality_score": [k / 4]}
        # the sidecar is zstd-compressed, as the tokenize stage's series are
        meta = pq.ParquetFile(prefix + ".docs.parquet").metadata
        assert {
            meta.row_group(g).column(c).compression
            for g in range(meta.num_row_groups)
            for c in range(meta.num_columns)
        } == {"ZSTD"}


def test_empty_runs_are_skipped_and_a_shard_of_none_is_refused(tmp_path):
    sizes = [3, 1, 4, 1, 5]
    base = str(tmp_path / "tok" / "0.de")
    tokens = _series(base, sizes)
    docs = _docs_of(tokens, sizes)
    prefix = str(tmp_path / "shards" / "s_00000")
    counts = write_shard(
        prefix, [(base, 1, 1), (base, 0, 2), (base, 2, 2), (base, 3, 5)], "web", "uint16"
    )
    assert counts["documents"] == 4 and counts["tokens"] == 3 + 1 + 1 + 5 and counts["lang"] is None
    ds = IndexedDataset(prefix)
    assert [ds[k].tolist() for k in range(len(ds))] == [docs[i] for i in (0, 1, 3, 4)]
    assert pq.read_table(prefix + ".docs.parquet").column("id").to_pylist() == [
        "d0",
        "d1",
        "d3",
        "d4",
    ]

    empty = str(tmp_path / "empty" / "s_00000")
    with pytest.raises(ValueError, match=f"^shard {empty} has no documents$"):
        write_shard(empty, [(base, 0, 0), (base, 4, 4)], "web", "uint16")
    with pytest.raises(ValueError, match=f"^shard {empty} has no documents$"):
        write_shard(empty, [], "web", "uint16")
    # nothing left behind, not even a temporary file
    assert os.listdir(tmp_path / "empty") == []


# more rows than one pyarrow batch of _copy_docs (65536) holds: three batches
BIG_ROWS = 2 * 65536 + 100


@pytest.fixture(scope="module")
def big_series(tmp_path_factory):
    sizes = [1 + i % 3 for i in range(BIG_ROWS)]
    base = str(tmp_path_factory.mktemp("big") / "tok" / "0.de")
    return base, sizes, _series(base, sizes)


def test_runs_across_docs_batches_copy_exactly_their_rows(big_series, tmp_path):
    """Runs that cross the first 65536-row batch boundary, start exactly on it, lie inside the
    third batch and inside the first: the shard holds exactly those rows, in order, with their
    tokens (megatron-core's reader; the .bin byte for byte), and no empty row group."""
    base, sizes, tokens = big_series
    runs = [(65530, 65540), (65536, 65538), (131072 + 10, 131072 + 50), (100, 103)]
    rows = [r for a, b in runs for r in range(a, b)]
    prefix = str(tmp_path / "s_00000")
    counts = write_shard(prefix, [(base, a, b) for a, b in runs], "web", "uint16", "de")
    want_sizes = [sizes[r] for r in rows]
    assert counts["documents"] == len(rows) == 55 and counts["tokens"] == sum(want_sizes)

    side = pq.read_table(prefix + ".docs.parquet").to_pydict()
    assert side["id"] == [f"d{r}" for r in rows]
    assert side["url"] == [f"u{r}" for r in rows]
    assert side["quality_score"] == [r / 4 for r in rows]
    meta = pq.ParquetFile(prefix + ".docs.parquet").metadata
    assert all(meta.row_group(g).num_rows > 0 for g in range(meta.num_row_groups))

    starts = np.concatenate([[0], np.cumsum(sizes)])
    raw = tokens.tobytes()
    want_bin = b"".join(raw[2 * starts[a] : 2 * starts[b]] for a, b in runs)
    assert open(prefix + ".bin", "rb").read() == want_bin
    ds = IndexedDataset(prefix)
    assert ds.sequence_lengths.tolist() == want_sizes
    assert [ds[k].tolist() for k in range(len(ds))] == [
        tokens[starts[r] : starts[r + 1]].tolist() for r in rows
    ]
