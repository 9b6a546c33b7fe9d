"""`decontaminate:` in `prepare`: a run with evaluation sets removes exactly the documents that
a plain reading finds sharing an n-gram with them (words by a regex, n-grams as tuples, over
the documents a run without decontamination passed through its rules), counts them as
`decontam:<set>` in stats.json and the report, sets them aside with keep_removed, and refuses
a rerun whose evaluation file changed."""

from __future__ import annotations

import json
import random
import re
import unicodedata
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tokenmill.config import ConfigError, load_config
from tokenmill.pipelines.prepare import InputsChanged, prepare

N = 13


def words(text: str) -> list[str]:
    return re.findall(r"[^\W]+", unicodedata.normalize("NFC", text).casefold())


def grams(text: str) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + N]) for i in range(len(w) - N + 1)}


def passed_rules(out: Path) -> dict[str, str]:
    """id -> text of every document the process stage kept (before dedup)."""
    docs = {}
    for f in sorted((out / "work" / "docs").rglob("*.parquet")):
        t = pq.read_table(f, columns=["id", "text"]).to_pydict()
        docs.update(zip(t["id"], t["text"], strict=True))
    return docs


def with_decontam(config: Path, name: str, evals: list[Path]) -> Path:
    """The corpus config with evaluation sets, written beside it as `name` (its relative
    input paths stay right)."""
    dst = config.parent / name
    raw = yaml.safe_load(config.read_text())
    raw["decontaminate"] = {"eval_files": [str(e) for e in evals], "ngram": N}
    raw["keep_removed"] = True
    dst.write_text(yaml.safe_dump(raw))
    return dst


@pytest.fixture(scope="module")
def baseline(corpus_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("no-decontam") / "out"
    prepare(load_config(corpus_config), out, workers=1, quiet=True)
    return out


def test_decontamination_removes_exactly_the_documents_sharing_an_ngram(
    baseline, corpus_config, tmp_path
):
    docs = passed_rules(baseline)
    rng = random.Random(3)
    candidates = sorted(i for i, t in docs.items() if len(words(t)) > 30)
    items = []
    for doc_id in rng.sample(candidates, 5):  # a window of a document, among other words
        w = words(docs[doc_id])
        a = rng.randrange(len(w) - N)
        items.append({"question": "Q: " + " ".join(w[a : a + N]), "answer": "yes"})
    items.append({"question": "too short to find", "answer": "no"})
    items.append({"question": "made up words that are in no document at all here " * 2})
    ev = tmp_path / "quiz.jsonl"
    ev.write_text("".join(json.dumps(i) + "\n" for i in items))
    cfg_path = with_decontam(corpus_config, "decontam.yaml", [ev])
    cfg = load_config(cfg_path)
    cfg.decontaminate.text_key = ["question", "answer"]
    out = tmp_path / "out"
    stats = prepare(cfg, out, workers=1, quiet=True)

    item_grams = [grams(f"{i['question']}\n{i.get('answer', '')}") for i in items]
    want = {d: [k for k, g in enumerate(item_grams) if g & grams(t)] for d, t in docs.items()}
    want = {d: hit for d, hit in want.items() if hit}
    assert len(want) >= 5
    assert stats["totals"]["removed"]["decontam:quiz"] == len(want)
    assert set(passed_rules(out)) == set(docs) - set(want)
    removed = {}
    for f in (out / "removed").rglob("*.parquet"):
        t = pq.read_table(f, columns=["id", "reason"]).to_pydict()
        removed.update(zip(t["id"], t["reason"], strict=True))
    assert {i for i, r in removed.items() if r == "decontam:quiz"} == set(want)
    d = stats["decontamination"]["quiz"]
    assert d["items"] == 7 and d["too_short"] == 1 and d["no_text"] == 0
    assert d["documents_removed"] == len(want)
    hit_items = sorted({k for hit in want.values() for k in hit})
    assert d["items_hit"] == len(hit_items) and d["items_hit_first"] == hit_items
    page = (out / "report.html").read_text()
    assert "id='decontamination'" in page and "decontam-table" in page

    # the evaluation file is an input: changed, the rerun is refused, naming it
    ev.write_text(ev.read_text() + json.dumps({"question": "one more"}) + "\n")
    with pytest.raises(InputsChanged, match=r"quiz.jsonl"):
        prepare(cfg, out, workers=1, quiet=True)


def test_decontaminate_config_is_checked(tmp_path, corpus_config):
    a = tmp_path / "a" / "set.jsonl"
    b = tmp_path / "b" / "set.json"
    for p in (a, b):
        p.parent.mkdir()
        p.write_text("[]")
    with pytest.raises(ConfigError, match="same name"):
        load_config(with_decontam(corpus_config, "c1.yaml", [a, b]))
    raw = yaml.safe_load(corpus_config.read_text())
    raw["decontaminate"] = {"eval_files": [str(a)], "ngram": 0}
    (corpus_config.parent / "c2.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"decontaminate.ngram: must be >= 1"):
        load_config(corpus_config.parent / "c2.yaml")
    cfg = load_config(with_decontam(corpus_config, "c3.yaml", [tmp_path / "no.jsonl"]))
    with pytest.raises(FileNotFoundError, match=r"decontaminate.eval_files: .*no.jsonl not found"):
        prepare(cfg, tmp_path / "out", workers=1, quiet=True)
