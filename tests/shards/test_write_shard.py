"""The tokenize stage's files and the shards copied from them: runs across partitions, per
language series, the provenance sidecar."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tmfixtures import sample_docs

from tokenmill.pipelines.stages import tokenize_partition, write_shard
from tokenmill.shards.megatron import ShardReader
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
