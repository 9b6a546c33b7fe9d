"""`tokenmill contamination OUT --eval FILE`: the documents of a prepared corpus that share an
n-gram with evaluation sets, checked against a plain reading of the same shards (megatron-core's
IndexedDataset, the run's tokenizer, words by a regex, n-grams as tuples)."""

from __future__ import annotations

import json
import random
import re
import unicodedata

import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer
from typer.testing import CliRunner

from tokenmill.cli import app

N = 13


def words(text: str) -> list[str]:
    return re.findall(r"[^\W]+", unicodedata.normalize("NFC", text).casefold())


def grams(ws: list[str]) -> set[tuple[str, ...]]:
    return {tuple(ws[i : i + N]) for i in range(len(ws) - N + 1)}


@pytest.fixture(scope="module")
def corpus(prepared) -> list[dict]:
    """Every document of the run: shard, index, id, source, its words (plain reading)."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    out, manifest = prepared["out"], prepared["manifest"]
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    docs = []
    for shard in manifest["shards"]:
        ds = IndexedDataset(str(out / shard["prefix"]))
        ids = pq.read_table(f"{out / shard['prefix']}.docs.parquet").column("id").to_pylist()
        for i in range(len(ds)):
            text = tok.decode(ds[i].tolist(), skip_special_tokens=True)
            docs.append(
                {
                    "shard": shard["prefix"],
                    "index": i,
                    "id": ids[i],
                    "source": shard["source"],
                    "words": words(text),
                }  # fmt: skip
            )
    return docs


def test_contamination_finds_exactly_the_documents_sharing_an_ngram(prepared, corpus, tmp_path):
    rng = random.Random(7)
    long_docs = [d for d in corpus if len(d["words"]) > 40 and d["source"] != "oscar"]
    items = []
    for d in rng.sample(long_docs, 6):  # a 13-word window of a kept document, framed by noise
        a = rng.randrange(len(d["words"]) - N)
        items.append({"text": "Question: " + " ".join(d["words"][a : a + N]).title() + " ?"})
    d = long_docs[0]
    items.append({"text": " ".join(d["words"][:12])})  # 12 words: too short to be found
    items.append({"text": "zzqx " * 20})  # in no document
    ev = tmp_path / "quiz.jsonl"
    ev.write_text("".join(json.dumps(i) + "\n" for i in items))
    report = tmp_path / "hits.json"
    r = CliRunner().invoke(
        app, ["contamination", str(prepared["out"]), "--eval", str(ev), "--out", str(report), "-q"]
    )
    assert r.exit_code == 0, r.output
    got = json.loads(report.read_text())
    item_grams = [grams(words(i["text"])) for i in items]
    want = []
    for doc in corpus:
        g = grams(doc["words"])
        hit = [k for k, ig in enumerate(item_grams) if ig & g]
        if hit:
            want.append((doc["shard"], doc["index"], doc["id"], hit))
    assert [(h["shard"], h["index"], h["id"], h["sets"]["quiz"]) for h in got["documents"]] == want
    s = got["sets"]["quiz"]
    assert s["items"] == len(items) and s["too_short"] == 1 and s["no_text"] == 0
    assert s["documents"] == len(want)
    assert s["items_hit"] == sorted({k for *_, hit in want for k in hit}) == list(range(6))
    assert "quiz" in r.output and f"{len(want)}" in r.output


def test_contamination_refuses_what_it_cannot_use(prepared, tmp_path):
    run = CliRunner().invoke
    r = run(app, ["contamination", str(tmp_path), "--eval", "x.jsonl"])
    assert r.exit_code == 1 and "manifest.json not found" in r.output
    r = run(app, ["contamination", str(prepared["out"]), "--eval", str(tmp_path / "none.jsonl")])
    assert r.exit_code == 1 and "evaluation file not found" in r.output
    a, b = tmp_path / "a" / "x.jsonl", tmp_path / "b" / "x.jsonl.gz"
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_text('{"text": "t"}\n')
    import gzip

    b.write_bytes(gzip.compress(b'{"text": "t"}\n'))
    r = run(app, ["contamination", str(prepared["out"]), "--eval", str(a), "--eval", str(b)])
    assert r.exit_code == 1 and "same name" in r.output
