"""The `fasttext_quality` rule: its scores are the classifier's probabilities for the label
(checked against fastText's own API and, for a unigram model, a NumPy softmax of the model's
matrices), it keeps exactly the documents scoring at least min_score, and in `prepare` the
scores reach the shards' .docs.parquet, stats.json's histogram and report.html."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from tmfixtures import quality_model, sample_docs, shuffled_words

from tokenmill.filters.fasttext_quality import FastTextQuality

HQ, LQ = "__label__hq", "__label__lq"


def _model(path: str):
    from fasttext.FastText import _FastText

    return _FastText(model_path=path)


def _corpus() -> list[str]:
    """C4 documents the test model never saw, and as many of them word-shuffled."""
    c4 = [r["text"] for r in sample_docs("c4")[:240]]
    return [t if i % 2 else shuffled_words(t, i) for i, t in enumerate(c4)]


def _top(path: str, texts: list[str]) -> list[tuple[str, float]]:
    """fastText's public predict on the texts as one line each: (top label, its probability)."""
    labels, probs = _model(path).predict([t.replace("\n", " ").replace("\r", " ") for t in texts])
    return [(lab[0], min(float(p[0]), 1.0)) for lab, p in zip(labels, probs, strict=True)]


def test_scores_are_the_softmax_of_the_models_matrices():
    """A unigram model's score by hand: the mean of the input vectors of the line's words
    (and the end-of-line token), times the output matrix, softmax, plus 1e-5 (fastText
    takes log(p + 1e-5) and reports its exp)."""
    path = quality_model(word_ngrams=1, dim=8)
    m = _model(path)
    inp, outm, labels = m.get_input_matrix(), m.get_output_matrix(), m.get_labels()
    texts = _corpus()[:80] + ["", "line one\nline two\r\nthree"]
    for label in (HQ, LQ):
        got = FastTextQuality(model_path=path, label=label).scores(texts)
        for text, score in zip(texts, got, strict=True):
            words = re.split(r"[ \t\n\v\f\r\x00]+", text) + ["</s>"]  # fastText's spaces
            ids = [i for i in map(m.get_word_id, filter(None, words)) if i >= 0]
            z = outm @ inp[ids].mean(axis=0)
            p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            assert score == pytest.approx(float(p[labels.index(label)]) + 1e-5, abs=1e-6)


@pytest.mark.parametrize("min_score", [0.6, 0.9])
def test_keeps_exactly_the_documents_scoring_at_least_min_score(min_score):
    path = quality_model()
    texts = _corpus()
    top = _top(path, texts)
    # min_score > 0.5: a document reaches it only with hq as its top label
    want = [None if lab == HQ and p >= min_score else "fasttext:low_score" for lab, p in top]
    rule = FastTextQuality(model_path=path, min_score=min_score)
    assert rule(texts, ["en"] * len(texts)) == want
    assert 0 < want.count(None) < len(texts) - 40  # both kinds, in numbers
    reasons: list = [None] * len(texts)
    scores: list = [None] * len(texts)
    rule.apply(texts, ["en"] * len(texts), reasons, scores=scores)
    assert reasons == [None if w is None else "quality:" + w for w in want]
    for (lab, p), s, w in zip(top, scores, want, strict=True):
        assert isinstance(s, float) and 0 <= s <= 1
        if lab == HQ:
            assert s == p  # the very float32 fastText computed
        assert (s >= min_score) == (w is None)


def test_only_the_documents_judged_get_a_score():
    path = quality_model()
    texts = _corpus()[:6]
    rule = FastTextQuality(model_path=path, min_score=0.0, languages=["en"])
    reasons: list = [None, "quality:earlier", None, None, None, None]
    scores: list = [None] * 6
    rule.apply(texts, ["en", "en", "de", "und", "en", "fr"], reasons, scores=scores)
    judged = [0, 3, 4]  # kept so far and in scope (und: language ID off, always judged)
    assert [i for i, s in enumerate(scores) if s is not None] == judged
    assert [scores[i] for i in judged] == rule.scores([texts[i] for i in judged])
    assert reasons == [None, "quality:earlier", None, None, None, None]  # min_score 0


def test_a_batch_judges_as_its_parts_do():
    path = quality_model()
    texts = _corpus()[:50]
    rule = FastTextQuality(model_path=path, min_score=0.7)
    langs = ["en"] * 50
    assert rule(texts, langs) == rule(texts[:17], langs[:17]) + rule(texts[17:], langs[17:])
    assert rule.scores(texts) == rule.scores(texts[:17]) + rule.scores(texts[17:])


def test_the_rule_pickles_small_after_use():
    rule = FastTextQuality(model_path=quality_model(), min_score=0.7)
    texts = _corpus()[:10]
    before = rule(texts, ["en"] * 10)
    blob = pickle.dumps(rule)
    assert len(blob) < 5_000  # the model stays in the process, not in what Dask ships
    assert pickle.loads(blob)(texts, ["en"] * 10) == before


def test_parameter_errors_name_the_key(tmp_path):
    path = quality_model()
    with pytest.raises(FileNotFoundError) as e:
        FastTextQuality(model_path=str(tmp_path / "nope.bin"))
    assert str(e.value) == f"quality.fasttext_quality.model_path: {tmp_path / 'nope.bin'} not found"
    with pytest.raises(ValueError, match=r"^quality.fasttext_quality.model_path is not set: "):
        FastTextQuality()
    rule = FastTextQuality(model_path=path, label="__label__good")
    with pytest.raises(ValueError) as e:
        rule(["some text"], ["en"])
    assert str(e.value) == (
        f"quality.fasttext_quality.label: '__label__good' is not a label of {path} "
        f"(it has {HQ}, {LQ})"
    )
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"^quality.fasttext_quality.model_path: .* is not a "):
        FastTextQuality(model_path=str(junk))(["some text"], ["en"])
    for bad in ({"min_score": 1.5}, {"min_score": -0.1}, {"label": "two words"}, {"label": ""}):
        with pytest.raises(ValidationError):
            FastTextQuality(model_path=path, **bad)


def test_model_path_resolves_against_the_config_folder_and_is_an_input(tmp_path):
    import shutil

    from tokenmill.config import load_config

    (tmp_path / "models").mkdir()
    shutil.copy(quality_model(), tmp_path / "models" / "q.bin")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "sources: [{name: web, format: jsonl, paths: ['data/*.jsonl']}]\n"
        "quality:\n"
        "  fasttext_quality: {model_path: models/q.bin, min_score: 0.25}\n"
        "  filter_sets: {web: [fasttext_quality]}\n"
    )
    q = load_config(cfg).quality
    assert q.fasttext_quality.model_path == str(tmp_path / "models" / "q.bin")
    assert (q.fasttext_quality.label, q.fasttext_quality.min_score) == (HQ, 0.25)
    assert q.files(["fasttext_quality"]) == [str(tmp_path / "models" / "q.bin")]
    assert q.files(["basic"]) == []


# ---- in prepare ------------------------------------------------------------------------------

CONFIG = (
    "sources: [{name: web, format: jsonl, paths: ['data/*.jsonl']}]\n"
    "langid: {enabled: false}\n"
    "keep_removed: true\n"
    "quality:\n"
    "  fasttext_quality: {model_path: MODEL, min_score: 0.8}\n"
    "  filter_sets: {web: [fasttext_quality]}\n"
    "tokenizer: {train: {vocab_size: 600}}\n"
    "dedup: {exact: false, minhash: {enabled: false}}\n"
    "input: {partition_docs: 70}\n"
)


@pytest.mark.distributed
def test_prepare_keeps_scores_in_the_sidecar_stats_and_report(tmp_path):
    from tokenizers import Tokenizer

    from tokenmill.config import load_config
    from tokenmill.hist import score_hist
    from tokenmill.pipelines.prepare import prepare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import IndexedDataset
    from test_rule_plugin import _Rows

    path = quality_model()
    texts = _corpus()
    (tmp_path / "data").mkdir()
    lines = [json.dumps({"text": t}) for t in texts]
    lines.insert(5, '{"text": "broken')  # a bad record: never scored
    (tmp_path / "data" / "a.jsonl").write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.replace("MODEL", path))
    out = tmp_path / "out"
    stats = prepare(load_config(cfg), out, workers=1, quiet=True)

    # the oracle: fastText's own predictions on the documents (record 5 is the bad one)
    top = _top(path, texts)
    kept = {i if i < 5 else i + 1: p for i, (lab, p) in enumerate(top) if lab == HQ and p >= 0.8}
    # a two-label softmax: p(hq) = 1 - p(lq), each reported plus 1e-5 (see the first test)
    hq = [p if lab == HQ else 1 - p + 2e-5 for lab, p in top]
    web = json.loads((out / "stats.json").read_text())["sources"]["web"]
    assert web == stats["sources"]["web"]
    assert web["removed"] == {
        "input:invalid_json": 1,
        "quality:fasttext:low_score": len(texts) - len(kept),
    }
    assert web["documents_in"] == len(texts) + 1 and web["documents_kept"] == len(kept)
    assert web["histograms"]["quality_score"] == score_hist(hq)
    assert sum(web["histograms"]["quality_score"]) == len(texts)  # every document scored
    assert "quality_score" not in json.dumps(web["languages"])

    # the shards (megatron-core) and their sidecars: each kept document with its score
    manifest = json.loads((out / "manifest.json").read_text())
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    seen = {}
    for shard in manifest["shards"]:
        prefix = str(out / shard["prefix"])
        side = pq.read_table(prefix + ".docs.parquet")
        assert side.schema.field("quality_score").type == "float"
        ds = IndexedDataset(prefix)
        assert len(ds) == side.num_rows
        for j, (doc_id, score) in enumerate(
            zip(
                side.column("id").to_pylist(),
                side.column("quality_score").to_pylist(),
                strict=True,
            )
        ):
            rec = int(doc_id.rsplit("/", 1)[1])
            text = texts[rec if rec < 5 else rec - 1]
            assert tok.decode(ds[j][:-1].tolist(), skip_special_tokens=False) == text
            seen[rec] = score
    assert seen == {rec: float(np.float32(p)) for rec, p in kept.items()}

    # what it removed, with the score that removed it (keep_removed)
    removed = [
        r
        for f in sorted((out / "removed").rglob("*.parquet"))
        for r in pq.read_table(f).to_pylist()
    ]
    low = [r for r in removed if r["reason"] == "quality:fasttext:low_score"]
    assert len(low) == len(texts) - len(kept)
    for r in low:
        rec = int(r["id"].rsplit("/", 1)[1])
        assert r["quality_score"] == pytest.approx(hq[rec if rec < 5 else rec - 1], abs=1e-6)
        assert r["quality_score"] < 0.8
    (bad,) = [r for r in removed if r["reason"] == "input:invalid_json"]
    assert bad["quality_score"] is None

    # the report: its section and the table's numbers
    page = (out / "report.html").read_text()
    assert "<section id='scores'>" in page and "min_score 0.8" in page
    parser = _Rows()
    parser.feed(page)
    row = next(r for r in parser.rows if r and r[0] == "web" and len(r) == 4)
    assert row[1:3] == [f"{len(texts):,}", f"{len(texts) - len(kept):,}"]


def test_a_run_without_the_rule_has_a_null_column_and_no_histogram(tmp_path):
    """Scores are null where no scoring rule ran, and the stats and report say nothing."""
    from tokenmill.pipelines.stages.process import DOC_SCHEMA

    assert DOC_SCHEMA.field("quality_score").nullable
    from tokenmill.report.summary import quality_scores

    assert (
        quality_scores({"sources": {"web": {"histograms": {"chars_in": [1]}, "removed": {}}}}) == {}
    )


def _prepare_cli(cfg, out) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tokenmill", "prepare", str(cfg), "--out", str(out), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_prepare_refuses_a_missing_or_unset_model_in_one_line(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.jsonl").write_text('{"text": "a document"}\n')
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.replace("MODEL", "models/missing.bin"))
    proc = _prepare_cli(cfg, tmp_path / "out")
    assert proc.returncode == 1
    missing = tmp_path / "models" / "missing.bin"
    assert proc.stderr.splitlines()[0] == (
        f"error: quality.fasttext_quality.model_path: {missing} not found"
    )
    cfg.write_text(CONFIG.replace("model_path: MODEL, ", ""))
    proc = _prepare_cli(cfg, tmp_path / "out2")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].startswith(
        "error: ValueError: quality.fasttext_quality.model_path is not set: train a classifier "
    )
    assert (
        not (tmp_path / "out" / "shards").exists() and not (tmp_path / "out2" / "shards").exists()
    )
