"""`dedup.spans` in `prepare`: the shards of a run with span dedup equal a plain span dedup
(tests/filters/test_spans.py's sentence walk, first occurrences in a dict) of the shards of
the same run without it, read by megatron-core and decoded with the run's tokenizer."""

from __future__ import annotations

import json
import random

import pytest
from tmfixtures import sample_docs
from tokenizers import Tokenizer

from tokenmill.config import load_config
from tokenmill.pipelines.prepare import prepare

pytestmark = pytest.mark.distributed

PASSAGE = (
    "The committee met again on Tuesday to review the annual budget. "
    "Members asked for a detailed account of every expense in the report. "
    "The chair promised an answer before the end of the month."
)


def _plain():
    """tests/filters/test_spans.py's plain reading (a module of its own name)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "filters" / "test_spans.py"
    spec = importlib.util.spec_from_file_location("plain_spans", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def shard_texts(out):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    manifest = json.loads((out / "manifest.json").read_text())
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    texts = []
    for shard in manifest["shards"]:
        ds = IndexedDataset(str(out / shard["prefix"]))
        texts += [tok.decode(ds[i].tolist(), skip_special_tokens=True) for i in range(len(ds))]
    return texts


def test_span_dedup_keeps_only_first_occurrences(tmp_path):
    plain = _plain()
    norm, plain_sentences = plain.norm, plain.plain_sentences
    rng = random.Random(4)
    docs = [d["text"] for d in sample_docs("c4")[200:300]]
    long = [j for j in range(10, 100) if len(docs[j].split()) > 300]  # (not near copies)
    for j in rng.sample(long, 12):  # a repeated passage inside documents
        docs[j] = docs[j] + "\n" + PASSAGE
    docs.insert(max(long[:6]) + 1, PASSAGE)  # the passage alone, later: nothing new is left
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    base = (
        "sources: [{name: web, format: jsonl, paths: ['d/*.jsonl']}]\n"
        "tokenizer: {train: {vocab_size: 600}}\n"
    )
    (tmp_path / "a.yaml").write_text(base)
    (tmp_path / "b.yaml").write_text(base + "dedup: {spans: {enabled: true, sentences: 3}}\n")
    prepare(load_config(tmp_path / "a.yaml"), tmp_path / "out_a", workers=1, quiet=True)
    stats = prepare(load_config(tmp_path / "b.yaml"), tmp_path / "out_b", workers=2, quiet=True)

    seen, want, changed, emptied = set(), [], 0, 0
    for text in shard_texts(tmp_path / "out_a"):
        sents = plain_sentences(text)
        n = [norm(s) for s in sents]
        gone = set()
        for i in range(len(sents) - 2):
            span = tuple(n[i : i + 3])
            if span in seen:
                gone |= {i, i + 1, i + 2}
            seen.add(span)
        kept = "".join(s for k, s in enumerate(sents) if k not in gone)
        if gone and not kept.strip():
            emptied += 1
        else:
            want.append(kept if gone else text)
            changed += bool(gone)
    assert changed >= 10 and emptied == 1
    assert shard_texts(tmp_path / "out_b") == want
    assert stats["totals"]["removed"]["dedup:span"] == emptied
    assert stats["totals"]["rewritten"]["dedup:span"]["documents"] == changed
    s = stats["sources"]["web"]
    assert s["documents_in"] == s["documents_kept"] + sum(s["removed"].values())
