"""The tokenize stage run here, in this process, on the work files of a real run.

A module fixture runs every stage before `tokenize` in this process (`Engine(None)`) on a small
corpus planted with what each dedup path drops: exact copies, near copies (one word changed),
documents an earlier run (`dedup.against`) holds, and passages repeated across documents
(span dedup: rewritten documents, and documents left empty). The tests then run the stage's
tasks (`TokenizeStage().tasks(run)`, and `tokenize_partition` with other arguments) and check
what they wrote against an oracle of their own: the rows each dedup file names (read with
numpy), the corpus's plan (which document each one is, what span dedup leaves of it), the
tokenizer's own encoding of the kept texts and counts made here from the docs files.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tmfixtures import sample_docs
from tokenizers import Tokenizer

from tokenmill.config import load_config
from tokenmill.pipelines.engine import Engine
from tokenmill.pipelines.prepare import expand_paths
from tokenmill.pipelines.stages import STAGES, Run
from tokenmill.pipelines.stages import tokenize as stage
from tokenmill.pipelines.stages.against import write_index_meta
from tokenmill.pipelines.workdir import WorkDir
from tokenmill.tokenize.bpe import train_bpe

EOD, PAD = "<|endoftext|>", "<|pad|>"
MASK = 0xFFFFFFFF
# two passages of three sentences (one span each): repeated, span dedup removes them
PA = (
    "The committee met again on Tuesday to review the annual budget. "
    "Members asked for a detailed account of every expense in the report. "
    "The chair promised an answer before the end of the month."
)
PB = (
    "Heavy rain closed the mountain road for most of the week. "
    "Crews worked through the night to clear the fallen trees. "
    "The road reopened on Saturday morning to light traffic."
)
ARGS = (  # tokenize_partition's parameters, in the order TokenizeStage.tasks passes them
    "part_key",
    "ordinal",
    "docs_path",
    "bucket_files",
    "near_files",
    "tokenizer_path",
    "eod_token",
    "out_base",
    "split_languages",
    "removed_path",
    "docs_paths",
    "against_file",
    "span_files",
    "span_sentences",
    "backend",
)


@dataclass
class D:
    """A planted document: its text and what the dedup stages make of it. `fate`: keep, exact,
    near, against, or span (left empty by span dedup); `name`: how others refer to it; `of`:
    the kept document an exact or near copy is counted against; `out`: its text after span
    dedup (None: unchanged) and `spans` the duplicate spans that removes."""

    text: str
    fate: str = "keep"
    name: str | None = None
    of: str | None = None
    out: str | None = None
    spans: int = 0


def near(text: str, k: int) -> str:
    """`text` with one word changed (a different one for each k): a near copy."""
    words = text.split(" ")
    words[len(words) // 3 + 5 * k] = f"zebra{k}"
    return " ".join(words)


def plan() -> dict[str, list[list[D]]]:
    """Input file -> its partitions' documents (12 to a partition, `input.partition_docs`),
    with the earlier run's documents under "early"."""
    c = [r["text"] for r in sample_docs("c4")[:300] if 150 <= len(r["text"].split()) <= 400]
    oscar = sample_docs("oscar")

    def lang(code: str) -> list[str]:
        return [
            r["content"]
            for r in oscar
            if r["metadata"]["identification"]["label"] == code
            and 100 <= len(r["content"].split()) <= 400
        ]

    de, fr = lang("de"), lang("fr")
    return {
        "early": [[D(c[0]), D(c[1]), D(c[2])]],
        "web/a.jsonl": [
            [  # ordinal 0: every reason, two of each but near; span dedup empties two
                D(c[10], name="c10"),
                D(c[11] + "\n" + PA, name="c11a"),
                D(c[0], "against", name="c0"),
                D(c[12] + "\n" + PB, name="c12b"),
                D(c[10], "exact", of="c10"),
                D(c[13], name="c13"),
                D(near(c[13], 1), "near", of="c13"),
                D(c[0], "against"),  # an exact copy (and near) of an against document
                D(near(c[2], 1), "against"),  # near one of the earlier run's
                D(PA, "span"),
                D(c[10], "exact", of="c10"),
                D(PB, "span"),
            ],
            [  # ordinal 1: copies of ordinal 0's documents, two rewritten by span dedup
                D(PA + "\n" + c[14], out=c[14], spans=1),  # (the span first)
                D(c[11] + "\n" + PA, "exact", of="c11a"),
                D(near(c[13], 2), "near", of="c13", name="n13"),
                D(near(c[13], 3), "near", of="c13"),
                D(c[15], name="c15"),
                D(c[16] + "\n" + PA + "\n" + PB, out=c[16] + "\n", spans=2),
                D(c[17]),
                D(c[1], "against"),
                # a copy of a near copy: kept instead is the near cluster's survivor
                D(near(c[13], 2), "exact", of="c13"),
                D(c[18]),
                D(c[19]),
                D(c[20]),
            ],
        ],
        "web/b.jsonl": [  # ordinal 2: copies only, nothing kept
            [
                D(c[10], "exact", of="c10"),
                D(c[15], "exact", of="c15"),
                D(c[12] + "\n" + PB, "exact", of="c12b"),
            ]
        ],
        "multi/m1.jsonl": [
            [  # ordinal 3: three languages
                D(de[0], name="de0"),
                D(de[1], name="de1"),
                D(c[22], name="c22"),
                D(de[0], "exact", of="de0"),
                D(fr[0], name="fr0"),
                D(de[0], "exact", of="de0"),
                D(c[23], name="c23"),
                D(fr[1]),
                D(de[2]),
                D(c[22], "exact", of="c22"),
                D(near(de[1], 1), "near", of="de1"),
                D(fr[2]),
            ],
            [D(fr[0], "exact", of="fr0"), D(de[3])],  # ordinal 4: French only dropped
        ],
        "multi/m2.jsonl": [[D(de[1], "exact", of="de1"), D(c[23], "exact", of="c23")]],
    }


class _Client:
    """What the near stage asks of a Dask client, answered in this process."""

    def scheduler_info(self) -> dict:
        return {"workers": {}}

    def submit(self, fn, *args, pure=True):
        class Done:
            def result(self):
                return fn(*args)

        return Done()


class _Here:
    """An engine that runs every task in this process (`Engine(None)`)."""

    client = _Client()

    def __init__(self):
        self.engine = Engine(None, quiet=True)

    def run_stage(self, *args, **kwargs):
        return self.engine.run_stage(*args, **kwargs)


def _run(cfg_path: Path, out: Path, until: str) -> Run:
    """The stages of `prepare` before `until`, here."""
    cfg = load_config(cfg_path)
    wd = WorkDir(out.absolute())
    wd.work.mkdir(parents=True)
    run = Run(cfg, wd, _Here(), {s.name: expand_paths(s.paths, s.name) for s in cfg.sources})
    for s in STAGES:
        if s.name == until:
            break
        if s.enabled(run):
            s.run(run)
    return run


def _write(path: Path, docs: list[D]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"text": d.text, "url": f"https://x.org/{i}"}) for i, d in enumerate(docs)]
    path.write_text("".join(line + "\n" for line in lines))


@dataclass
class Prepared:
    tmp: Path
    run: Run
    tok: Tokenizer
    parts: dict[int, list[D]]  # ordinal -> the planted documents
    names: dict[str, tuple[int, int]]  # a planted name -> (ordinal, row)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Prepared:
    tmp = tmp_path_factory.mktemp("tokstage")
    files = plan()
    texts = [d.text for part in files["web/a.jsonl"] for d in part]
    tok = train_bpe(texts, 600, [EOD, PAD])
    tok.save(str(tmp / "tokenizer.json"))
    _write(tmp / "early" / "a.jsonl", files.pop("early")[0])
    (tmp / "early.yaml").write_text(
        "sources: [{name: web, format: jsonl, paths: ['early/*.jsonl']}]\n"
        f"tokenizer: {{path: {tmp / 'tokenizer.json'}}}\n"
    )
    early = _run(tmp / "early.yaml", tmp / "early_out", "spans")
    write_index_meta(early)
    for rel, parts in files.items():
        _write(tmp / rel, [d for part in parts for d in part])
    (tmp / "main.yaml").write_text(
        "sources:\n"
        "  - {name: web, format: jsonl, paths: ['web/*.jsonl']}\n"
        "  - {name: multi, format: jsonl, paths: ['multi/*.jsonl'], split_languages: true}\n"
        "input: {partition_docs: 12}\n"
        f"tokenizer: {{path: {tmp / 'tokenizer.json'}}}\n"
        f"dedup: {{against: [{tmp / 'early_out'}], spans: {{enabled: true}}}}\n"
        "keep_removed: true\n"
    )
    run = _run(tmp / "main.yaml", tmp / "out", "tokenize")
    parts = dict(enumerate(part for rel in files for part in files[rel]))
    names = {d.name: (o, r) for o, docs in parts.items() for r, d in enumerate(docs) if d.name}
    return Prepared(tmp, run, tok, parts, names)


# ---- the oracle ------------------------------------------------------------------------------


def _rows(keys: np.ndarray, ordinal: int) -> np.ndarray:
    keys = np.asarray(keys, np.int64)
    return keys[(keys >> 32) == ordinal] & MASK


def _pairs(files: list[str], ordinal: int) -> dict[int, int]:
    """{row: key kept instead} of partition `ordinal` in dedup files and their .kept.npy."""
    out = {}
    for f in files:
        keys, kept = np.load(f), np.load(f[: -len(".npy")] + ".kept.npy")
        sel = (keys >> 32) == ordinal
        out.update(zip((keys[sel] & MASK).tolist(), kept[sel].tolist(), strict=True))
    return out


@dataclass
class Want:
    """What the stage must write for one partition: `reason` of each row it drops, the id
    kept instead (`kept_id`), the text of each row it keeps (`text`) and the spans removed
    from the rewritten ones (`spans`)."""

    docs: dict  # the docs file's columns
    reason: dict[int, str]
    kept_id: dict[int, str | None]
    text: dict[int, str]
    spans: dict[int, int]

    def langs(self, rows) -> list[str]:
        return [self.docs["lang"][r] for r in rows]


def want(p: Prepared, ordinal: int, kw: dict) -> Want:
    """The oracle for the arguments `kw` of tokenize_partition on partition `ordinal`: the
    rows the dedup files it is given name (against first, then exact, then near), span
    dedup's rows from its files with the planted outcome, the kept ids from .kept.npy (the
    near cluster's survivor before the exact copy's original)."""
    docs = pq.read_table(kw["docs_path"]).to_pydict()
    plan = p.parts[ordinal]
    assert docs["text"] == [d.text for d in plan]  # (every planted document passed `process`)
    against = set()
    if kw.get("against_file"):
        against = set(_rows(np.load(kw["against_file"]), ordinal).tolist())
    exact, near_ = _pairs(kw["bucket_files"], ordinal), _pairs(kw["near_files"], ordinal)
    reason = {r: "dedup:against" for r in against}
    reason.update({r: "dedup:exact" for r in exact if r not in reason})
    reason.update({r: "dedup:near" for r in near_ if r not in reason})
    edits: dict[int, list[int]] = defaultdict(list)
    for f in kw.get("span_files") or []:
        dups = np.load(f)
        sel = (dups["key"] >> 32) == ordinal
        for k, i in zip(dups["key"][sel].tolist(), dups["idx"][sel].tolist(), strict=True):
            edits[k & MASK].append(i)
    assert not set(edits) & set(reason)  # span dedup never saw the dropped documents
    for r in edits:
        if plan[r].fate == "span":
            reason[r] = "dedup:span"
    ids = {
        pt.ordinal: pq.read_table(p.run.wd.docs(pt.source, pt.key), columns=["id"])
        .column("id")
        .to_pylist()
        for pt in p.run.partitions
    }

    def id_of(key):
        return None if key is None else ids[key >> 32][key & MASK]

    kept_id = {
        r: None if why in ("dedup:against", "dedup:span") else id_of(near_.get(r, exact.get(r)))
        for r, why in reason.items()
    }
    text, spans = {}, {}
    for r, d in enumerate(plan):
        if r in reason:
            continue
        if r in edits:
            assert d.out is not None, f"row {r}: span dedup was not planted here"
            text[r], spans[r] = d.out, len(edits[r])
            assert spans[r] == d.spans
        else:
            text[r] = d.text
    return Want(docs, reason, kept_id, text, spans)


def _hist(values) -> list[int]:
    """log2 bins (32): bin k counts [2^k, 2^(k+1)), bin 0 also 0."""
    out = [0] * 32
    for v in values:
        out[min(max(int(v), 1).bit_length() - 1, 31)] += 1
    return out


def check(p: Prepared, ordinal: int, kw: dict, counts: dict, w: Want | None = None) -> Want:
    """Everything tokenize_partition(**kw) wrote and returned for partition `ordinal`."""
    kw = {k: v for k, v in kw.items() if v is not ...}  # (left out: the defaults)
    w = w or want(p, ordinal, kw)
    tok, base = p.tok, kw["out_base"]
    eod = tok.token_to_id(EOD)
    kept = sorted(w.text)
    ids = {r: tok.encode(w.text[r], add_special_tokens=False).ids + [eod] for r in kept}
    split = kw.get("split_languages", False)
    groups = sorted(set(w.langs(kept))) if split else [""]
    # the series: each group's documents in order, decoded back to the kept texts
    for g in groups:
        rows = [r for r in kept if not split or w.docs["lang"][r] == g]
        name = f"{base}.{g}" if g else base
        flat = np.fromfile(name + ".bin", np.uint16)
        assert flat.tolist() == [t for r in rows for t in ids[r]]
        sizes = np.load(name + ".sizes.npy")
        assert sizes.dtype == np.int64 and sizes.tolist() == [len(ids[r]) for r in rows]
        at = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        for k, r in enumerate(rows):
            doc = flat[at[k] : at[k + 1]].tolist()
            assert doc[-1] == eod
            assert tok.decode(doc[:-1], skip_special_tokens=False) == w.text[r]
        side = pq.read_table(name + ".docs.parquet").to_pydict()
        scores = w.docs.get("quality_score", [None] * len(w.docs["id"]))  # (none: null)
        columns = {"id": w.docs["id"], "url": w.docs["url"], "lang": w.docs["lang"]}
        assert side == {
            c: [v[r] for r in rows] for c, v in {**columns, "quality_score": scores}.items()
        }
        assert list(side) == ["id", "url", "lang", "quality_score"]
    written = sorted(  # (the engine's done-mark aside)
        os.path.basename(f) for f in glob.glob(base + ".*") if f != base + ".json"
    )
    want_files = [
        os.path.basename(f"{base}.{g}" if g else base) + ext
        for g in groups
        for ext in (".bin", ".docs.parquet", ".sizes.npy")
    ]
    assert written == sorted(want_files)
    # the duplicates written with keep_removed
    removed = kw.get("removed_path")
    gone = sorted(w.reason)
    if removed is None or not gone:
        assert removed is None or not os.path.exists(removed)
    else:
        f = pq.ParquetFile(removed)
        assert f.metadata.row_group(0).column(0).compression == "ZSTD"
        t = f.read().to_pydict()
        cols = ["id", "url", "lang", "text", "quality_score", "reason", "kept_id"]
        if "quality_score" not in w.docs:
            cols.remove("quality_score")
        assert list(t) == cols
        assert f.schema_arrow.field("kept_id").type == pa.string()
        assert f.schema_arrow.field("reason").type == pa.string()
        row_of = {i: r for r, i in enumerate(w.docs["id"])}
        order = sorted(range(len(t["id"])), key=lambda k: row_of[t["id"][k]])
        assert [row_of[t["id"][k]] for k in order] == gone
        for col in cols[:-2]:
            assert [t[col][k] for k in order] == [w.docs[col][r] for r in gone]
        assert [t["reason"][k] for k in order] == [w.reason[r] for r in gone]
        assert [t["kept_id"][k] for k in order] == [w.kept_id[r] for r in gone]
    # the counts
    reasons = Counter(w.reason.values())
    languages: dict[str, dict] = defaultdict(dict)
    for r, why in sorted(w.reason.items()):
        lang = w.docs["lang"][r]
        languages[lang][why] = languages[lang].get(why, 0) + 1
    for r in kept:
        c = languages[w.docs["lang"][r]]
        c["documents"] = c.get("documents", 0) + 1
        c["tokens"] = c.get("tokens", 0) + len(ids[r])
        c["bytes"] = c.get("bytes", 0) + len(w.text[r].encode())
    rewritten = {}
    if w.spans:
        rewritten = {
            "dedup:span": {
                "documents": len(w.spans),
                "bytes_in": sum(len(w.docs["text"][r].encode()) for r in w.spans),
                "bytes_out": sum(len(w.text[r].encode()) for r in w.spans),
                "counts": {"spans": sum(w.spans.values())},
            }
        }
    hf = kw.get("backend", "auto") == "hf"
    expected = {
        "partition": kw["part_key"],
        "documents": len(kept),
        "tokens": sum(len(ids[r]) for r in kept),
        "bytes_kept": sum(len(w.text[r].encode()) for r in kept),
        "dtype": "uint16",
        "duplicates": reasons["dedup:exact"],
        "near_duplicates": reasons["dedup:near"],
        "groups": groups,
        "languages": dict(languages),
        "histograms": {
            "chars_kept": _hist(len(w.text[r]) for r in kept),
            "tokens_kept": _hist(len(ids[r]) for r in kept),
        },
        "wall_s": counts.get("wall_s"),  # (set by the engine: 0.0 from a direct call)
        "against_duplicates": reasons["dedup:against"],
        "span_removed": reasons["dedup:span"],
        "rewritten": rewritten,
        "encoder": "hf" if hf else "tiktoken",
        "encoder_reason": "tokenizer.backend is hf" if hf else None,
        "encoder_hf_documents": 0,
    }
    assert counts == expected
    assert list(counts) == list(expected)
    return w


def tasks(p: Prepared, run: Run | None = None) -> dict[int, dict]:
    """ordinal -> the keyword arguments of its task from TokenizeStage.tasks."""
    out = {}
    for part, t in zip(p.run.partitions, stage.TokenizeStage().tasks(run or p.run), strict=True):
        assert t.fn is stage.tokenize_partition
        out[part.ordinal] = dict(zip(ARGS, t.args, strict=True))
    return out


def call(kw: dict) -> dict:
    """tokenize_partition on keyword arguments; a value of ... leaves that one out (its
    default)."""
    return stage.tokenize_partition(**{k: v for k, v in kw.items() if v is not ...})


def elsewhere(p: Prepared, kw: dict, name: str, **changes) -> dict:
    """`kw` writing under tmp/NAME instead, with `changes`."""
    d = p.tmp / name / str(kw["ordinal"])
    d.mkdir(parents=True, exist_ok=True)
    kw = {**kw, "out_base": str(d / kw["part_key"])}
    if kw["removed_path"] is not None:
        kw["removed_path"] = str(d / "removed.parquet")
    return {**kw, **changes}


# ---- the plan, as the dedup files have it -------------------------------------------------------


def test_the_dedup_files_name_the_planted_documents(prepared):
    """The fixture's premise, checked on the files alone: each planted copy is in the files of
    its kind, with the planted original kept instead; span dedup names just the planted rows."""
    p, run = prepared, prepared.run
    assert [pt.ordinal for pt in run.partitions] == list(range(6))
    assert [len(d) for d in p.parts.values()] == [12, 12, 3, 12, 2, 2]
    assert run.bucket_files and run.near_files and run.span_files
    assert sorted(run.against_files) == list(range(6))
    for o, plan in p.parts.items():
        exact, near_ = _pairs(run.bucket_files, o), _pairs(run.near_files, o)
        against = set(_rows(np.load(run.against_files[o]), o).tolist())
        fate = {
            r: "against" if r in against else "exact" if r in exact else "near"
            for r in set(exact) | set(near_) | against
        }
        assert fate == {r: d.fate for r, d in enumerate(plan) if d.fate not in ("keep", "span")}
        for r, d in enumerate(plan):
            if d.of is not None:
                assert near_.get(r, exact.get(r)) == (p.names[d.of][0] << 32) | p.names[d.of][1]
        edits = Counter()
        for f in run.span_files:
            dups = np.load(f)
            edits.update((dups["key"][(dups["key"] >> 32) == o] & MASK).tolist())
        planted = {r: d.spans or 1 for r, d in enumerate(plan) if d.spans or d.fate == "span"}
        assert dict(edits) == planted
    # the languages the split groups are made of
    langs = {
        o: pq.read_table(run.wd.docs(pt.source, pt.key)).column("lang").to_pylist()
        for o, pt in enumerate(run.partitions)
    }
    assert set(langs[0]) == set(langs[1]) == {"en"}
    assert langs[3] == ["de", "de", "en", "de", "fr", "de", "en", "fr", "de", "en", "de", "fr"]
    assert langs[4] == ["fr", "de"] and langs[5] == ["de", "en"]


# ---- the stage ---------------------------------------------------------------------------------


def test_the_stage_run_here_writes_each_partitions_kept_documents_and_duplicates(prepared):
    """`TokenizeStage.run` (its tasks run in this process): for every partition, the series
    decode to the documents the dedup files leave (span dedup's edits applied), one per
    language for the source with split_languages, and OUT/removed holds what was dropped with
    its reason and the id kept instead; the counts, the stage's totals and its encoders."""
    p, run = prepared, prepared.run
    stage.TokenizeStage().run(run)
    kws = tasks(p)
    totals = Counter()
    for o, counts in enumerate(run.counts["tokenize"]):
        c = counts.to_json()
        assert c["wall_s"] > 0
        w = check(p, o, kws[o], c)
        totals.update(documents=len(w.text), tokens=c["tokens"], bytes_in=c["bytes_kept"])
        totals.update(duplicates=sum(why == "dedup:exact" for why in w.reason.values()))
    summary = run.stages["tokenize"]
    assert (summary["tasks"], summary["ran"], summary["skipped"]) == (6, 6, 0)
    assert {k: summary[k] for k in totals} == dict(totals)
    assert totals["documents"] == 4 + 7 + 0 + 8 + 1 + 0  # (the plan's kept documents)
    assert summary["encoders"] == {"partitions": {"tiktoken": 6}, "reasons": {}, "hf_documents": 0}
    # the three things each reason path left in partition 0 and 1 (the plan, spelled out)
    c0, c1 = (run.counts["tokenize"][o] for o in (0, 1))
    for c, dropped in ((c0, (2, 1, 3, 2)), (c1, (2, 2, 1, 0))):
        assert (c.duplicates, c.near_duplicates, c.against_duplicates, c.span_removed) == dropped
    assert c0.rewritten == {} and c1.rewritten["dedup:span"]["counts"] == {"spans": 3}
    groups = [run.counts["tokenize"][o].groups for o in range(6)]
    assert groups == [[""], [""], [""], ["de", "en", "fr"], ["de"], []]
    assert run.counts["tokenize"][4].languages["fr"] == {"dedup:exact": 1}


def test_the_tasks_pass_each_partitions_files_and_the_configs_settings(prepared):
    p, run = prepared, prepared.run
    out = run.wd.out
    keys = [("web", "00000-0000"), ("web", "00000-0001"), ("web", "00001-0000")]
    keys += [("multi", "00000-0000"), ("multi", "00000-0001"), ("multi", "00001-0000")]
    docs = {o: str(out / "work" / "docs" / s / f"{k}.parquet") for o, (s, k) in enumerate(keys)}
    planned = stage.TokenizeStage().tasks(run)
    assert [t.key for t in planned] == [f"{s}-{k}" for s, k in keys]
    assert [t.done for t in planned] == [out / "work" / "tokens" / s / f"{k}.json" for s, k in keys]
    assert [t.nbytes for t in planned] == [pt.nbytes for pt in run.partitions]
    assert all(t.nbytes > 0 for t in planned)
    for o, (t, (source, key)) in enumerate(zip(planned, keys, strict=True)):
        assert t.fn is stage.tokenize_partition
        assert t.args == (
            key,
            o,
            docs[o],
            run.bucket_files,
            run.near_files,
            str(out / "work" / "tokenizer.json"),
            EOD,
            f"{out}/work/tokens/{source}/{key}",
            source == "multi",
            str(out / "removed" / source / f"{key}.dedup.parquet"),
            docs,
            str(out / "work" / "against" / source / f"{key}.npy"),
            run.span_files,
            3,
            "auto",
        )
    # other settings: no keep_removed, no dedup.against, span length, end token, backend
    cfg = run.cfg.model_copy(deep=True)
    cfg.keep_removed = False
    cfg.dedup.spans.sentences = 5
    cfg.tokenizer.eod_token = PAD
    cfg.tokenizer.backend = "hf"
    other = dataclasses.replace(run, cfg=cfg, against_files={}, span_files=[])
    for o, kw in tasks(p, other).items():
        assert (kw["removed_path"], kw["docs_paths"], kw["against_file"]) == (None, None, None)
        assert (kw["span_files"], kw["span_sentences"], kw["eod_token"]) == ([], 5, PAD)
        assert kw["backend"] == "hf" and kw["split_languages"] is (o >= 3)


@pytest.mark.parametrize("ordinal", range(6))
def test_split_languages_the_other_way_and_no_removed_file(prepared, ordinal):
    """Each partition with split_languages the other way from its source's, without
    keep_removed: one series or one per language, and no OUT/removed file."""
    p = prepared
    kw = tasks(p)[ordinal]
    kw = elsewhere(p, kw, "toggled", split_languages=not kw["split_languages"])
    kw.update(removed_path=None, docs_paths=None)
    check(p, ordinal, kw, call(kw))


@pytest.mark.parametrize("ordinal", [0, 3])
def test_the_hf_backend_writes_the_same_series_and_says_so(prepared, ordinal):
    p = prepared
    kw = elsewhere(p, tasks(p)[ordinal], "hf", backend="hf")
    check(p, ordinal, kw, call(kw))


@pytest.mark.parametrize("ordinal", [0, 1, 3])
def test_small_batches_drop_and_count_across_batches(prepared, ordinal, monkeypatch):
    """Five documents a batch: rows are numbered across batches, and what each batch drops
    (a batch of partition 0 loses every document) is counted and kept across them."""
    p = prepared
    reads = []

    class Spy(pq.ParquetFile):
        def iter_batches(self, **kw):
            reads.append(kw)
            return super().iter_batches(**kw)

    monkeypatch.setattr(stage, "BATCH_DOCS", 5)
    # the module's pq, with its ParquetFile recording how the docs file is read
    monkeypatch.setattr(stage, "pq", SimpleNamespace(**{**vars(pq), "ParquetFile": Spy}))
    kw = elsewhere(p, tasks(p)[ordinal], "batches", split_languages=True)
    counts = call(kw)
    monkeypatch.undo()
    check(p, ordinal, kw, counts)
    assert reads == [{"batch_size": 5, "columns": ["id", "url", "lang", "text", "quality_score"]}]


@pytest.mark.parametrize("ordinal", [0, 1])
def test_span_dedup_alone_with_the_defaults(prepared, ordinal):
    """Only span dedup's files (no other duplicates), the default span length (3), one series
    and the auto backend: partition 0 loses the two documents left empty, partition 1 keeps
    all and writes no OUT/removed file."""
    p = prepared
    kw = elsewhere(p, tasks(p)[ordinal], "spans_only", bucket_files=[], near_files=[])
    kw.update(against_file=None, span_sentences=..., split_languages=..., backend=...)
    counts = call(kw)
    w = check(p, ordinal, kw, counts)
    assert set(w.reason.values()) == ({"dedup:span"} if ordinal == 0 else set())


@pytest.mark.parametrize(
    "ordinal, which",
    [(0, "exact"), (1, "exact"), (0, "near"), (1, "near"), (0, "against"), (1, "against")],
)
def test_one_kind_of_duplicates_alone(prepared, ordinal, which):
    """The stage given one kind of dedup file: exact copies then count as exact against the
    copy's original (no near cluster to defer to), or as near with near files alone; what
    an earlier corpus holds is dropped with no id kept instead."""
    p = prepared
    kw = tasks(p)[ordinal]
    keep = {
        "bucket_files": kw["bucket_files"] if which == "exact" else [],
        "near_files": kw["near_files"] if which == "near" else [],
        "against_file": kw["against_file"] if which == "against" else None,
    }
    kw = elsewhere(p, kw, f"only_{which}", span_files=None, **keep)
    w = check(p, ordinal, kw, call(kw))
    assert set(w.reason.values()) == {f"dedup:{which}"}
    if which == "exact" and ordinal == 1:  # the copy of a near copy: its original is kept
        assert w.kept_id[8] == w.docs["id"][2]


@pytest.mark.parametrize("column", ["scored", "missing"])
def test_quality_scores_follow_their_documents(prepared, column):
    """A docs file whose documents have scores: kept ones carry theirs into the series, dropped
    ones into OUT/removed; a docs file without the column (an older OUT/work): null scores in
    the series, no such column in OUT/removed."""
    p = prepared
    kw = tasks(p)[3]
    table = pq.read_table(kw["docs_path"])
    at = table.schema.get_field_index("quality_score")
    if column == "scored":
        scores = pa.array([k / 16 for k in range(table.num_rows)], pa.float32())
        table = table.set_column(at, "quality_score", scores)
    else:
        table = table.remove_column(at)
    path = p.tmp / f"docs_{column}.parquet"
    pq.write_table(table, path)
    kw = elsewhere(p, kw, f"quality_{column}", docs_path=str(path))
    kw["docs_paths"] = {**kw["docs_paths"], 3: str(path)}
    w = check(p, 3, kw, call(kw))
    assert ("quality_score" in w.docs) is (column == "scored")


def test_documents_holding_a_special_tokens_text_go_to_hf(prepared):
    """With the auto backend, the documents whose text holds an added token's (<|pad|>) are
    encoded by HF (as that token), and counted."""
    p = prepared
    kw = tasks(p)[3]
    table = pq.read_table(kw["docs_path"])
    texts = table.column("text").to_pylist()
    for r in (2, 7):
        texts[r] = texts[r][:40] + PAD + texts[r][40:]
    table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts))
    pq.write_table(table, p.tmp / "docs_pad.parquet")
    kw = elsewhere(p, kw, "pad", docs_path=str(p.tmp / "docs_pad.parquet"), span_files=None)
    kw.update(bucket_files=[], near_files=[], against_file=None, split_languages=False)
    counts = call(kw)
    eod, pad = p.tok.token_to_id(EOD), p.tok.token_to_id(PAD)
    ids = [p.tok.encode(t, add_special_tokens=False).ids + [eod] for t in texts]
    assert np.fromfile(kw["out_base"] + ".bin", np.uint16).tolist() == sum(ids, [])
    assert [r for r, x in enumerate(ids) if pad in x] == [2, 7]
    assert (counts["encoder"], counts["encoder_reason"]) == ("tiktoken", None)
    assert counts["encoder_hf_documents"] == 2 and counts["documents"] == 12


def test_collect_counts_the_encoders_sorted(prepared):
    """The stage's `encoders`: partitions per encoder, the reasons for hf, and the documents
    tiktoken's partitions gave to hf, each sorted by name."""
    base = dict(
        partition="p", documents=1, tokens=2, bytes_kept=3, dtype="uint16", duplicates=0,
        near_duplicates=0, groups=[""], languages={}, histograms={},
    )  # fmt: skip
    made = [
        stage.TokenizeCounts(**base, encoder="tiktoken", encoder_hf_documents=3),
        stage.TokenizeCounts(**base, encoder="hf", encoder_reason="tokenizer.backend is hf"),
        stage.TokenizeCounts(**base, encoder="hf", encoder_reason="normalizer Lowercase"),
        stage.TokenizeCounts(**base, encoder="tiktoken", encoder_hf_documents=4),
        stage.TokenizeCounts(**base, encoder="hf", encoder_reason="normalizer Lowercase"),
    ]
    run = dataclasses.replace(prepared.run, stages={"tokenize": {"tasks": 5}})
    stage.TokenizeStage().collect(run, None, made)
    enc = run.stages["tokenize"]["encoders"]
    assert list(run.stages["tokenize"]) == ["tasks", "encoders"]
    assert list(enc.items()) == [
        ("partitions", {"hf": 3, "tiktoken": 2}),
        ("reasons", {"normalizer Lowercase": 2, "tokenizer.backend is hf": 1}),
        ("hf_documents", 7),
    ]
    assert list(enc["partitions"]) == ["hf", "tiktoken"]
    assert list(enc["reasons"]) == ["normalizer Lowercase", "tokenizer.backend is hf"]


def test_counts_of_an_older_out_read_back():
    """A done-JSON written before bytes_kept (bytes_in), the encoder and span fields."""
    old = dict(
        partition="p", documents=1, tokens=2, bytes_in=3, dtype="uint16", duplicates=4,
        near_duplicates=5, groups=[""], languages={}, histograms={}, wall_s=0.5,
    )  # fmt: skip
    c = stage.TokenizeCounts.from_json(old)
    assert (c.bytes_kept, c.against_duplicates, c.span_removed, c.rewritten) == (3, 0, 0, {})
    assert (c.encoder, c.encoder_reason, c.encoder_hf_documents) == ("hf", None, 0)
