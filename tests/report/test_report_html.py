"""report.html of a real run: every section is there and its numbers are stats.json's."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from tokenmill.report import summary
from tokenmill.report.html import SECTIONS, write_report
from tokenmill.shards.plan import budget_plan, parse_count

pytestmark = pytest.mark.distributed


def num(cell: str) -> int | None:
    return None if cell == "–" else int(cell.replace(",", ""))


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%"


@pytest.fixture(scope="module")
def report(prepared, tmp_path_factory):
    """The report `tokenmill stats OUT` writes (prepare's own is checked to be identical)."""
    import typer

    from tokenmill.report.cli import stats

    app = typer.Typer()
    app.command()(stats)
    app.command("noop")(lambda: None)  # two commands: `stats` stays a subcommand
    html = tmp_path_factory.mktemp("html") / "report.html"
    res = CliRunner().invoke(app, ["stats", str(prepared["out"]), "--html", str(html)])
    assert res.exit_code == 0, res.output
    return {"html": html, "terminal": res.output}


def test_prepare_writes_the_same_report(prepared, report):
    assert (prepared["out"] / "report.html").read_text() == report["html"].read_text()


def test_every_section_is_present(report, page):
    """Every section, but decontamination (this run has no evaluation sets: its section is
    checked in tests/pipelines/test_decontam_prepare.py) and quality scores (no classifier:
    tests/filters/test_fasttext_quality.py)."""
    p = page(report["html"])
    assert p.sections == [s for s in SECTIONS if s not in ("decontamination", "scores")]


def test_summary_equals_stats(prepared, report, page):
    st = prepared["stats"]
    rows = {r["source"]: r for r in page(report["html"]).rows("summary-table")}
    assert set(rows) == {*st["sources"], "total"}
    for name, s in [*st["sources"].items(), ("total", st["totals"])]:
        r = rows[name]
        assert num(r["documents in"]) == s["documents_in"]
        assert num(r["kept"]) == s["documents_kept"]
        assert num(r["removed"]) == sum(s["removed"].values())
        assert num(r["tokens"]) == s["tokens"]
        assert r["MB in"] == f"{s['bytes_in'] / 1e6:,.2f}"
        assert r["kept %"] == pct(s["documents_kept"], s["documents_in"])
        if name != "total":
            assert num(r["shards"]) == s["shards"]
            assert num(r["files"]) == s["files"]
    assert num(rows["total"]["shards"]) == len(prepared["manifest"]["shards"])


def test_removals_and_funnel_equal_stats(prepared, report, page):
    st = prepared["stats"]
    p = page(report["html"])
    by_reason = {r["reason"]: r for r in p.rows("removals-table")}
    assert set(by_reason) == set(st["totals"]["removed"])
    for reason, r in by_reason.items():
        assert num(r["total"]) == st["totals"]["removed"][reason]
        for name, s in st["sources"].items():
            assert num(r[name]) == s["removed"].get(reason, 0)
    # the funnel: steps in pipeline order, each one's in/out chained, ending at kept
    order = [summary.step_of(r) for r in by_reason]
    assert order.index("input") < order.index("langid") < order.index("dedup:exact")
    for name, s in [*st["sources"].items(), ("total", st["totals"])]:
        rows = p.rows(f"funnel-{name}")
        steps = [r for r in rows if num(r["documents in"]) is not None]
        assert num(steps[0]["documents in"]) == s["documents_in"]
        for a, b in zip(steps, steps[1:], strict=False):
            assert num(a["documents out"]) == num(b["documents in"])
        for r in steps:
            assert num(r["documents in"]) - num(r["removed"]) == num(r["documents out"])
        assert rows[-1]["step"] == "kept"
        assert num(rows[-1]["documents out"]) == s["documents_kept"]
        # every reason appears once, as a step or under one
        shown = {r["step"]: num(r["removed"]) for r in rows if r["step"] in s["removed"]}
        assert shown == s["removed"]


def test_languages_equal_stats(prepared, report, page):
    st = prepared["stats"]
    p = page(report["html"])
    for name, s in st["sources"].items():
        rows = {r["language"]: r for r in p.rows(f"languages-{name}")}
        assert set(rows) == set(s["languages"])
        for lang, c in s["languages"].items():
            assert num(rows[lang]["documents in"]) == c["documents_in"]
            assert num(rows[lang]["kept"]) == c["documents_kept"]
            assert num(rows[lang]["tokens"]) == c["tokens"]
            for step in summary.ordered_steps(st["totals"]["removed"]):
                want = sum(n for r, n in c["removed"].items() if summary.step_of(r) == step)
                assert num(rows[lang][f"− {step}"]) == want
    all_rows = {r["language"]: r for r in p.rows("languages-all")}
    for lang, r in all_rows.items():
        want = sum(
            s["languages"].get(lang, {}).get("documents_in", 0) for s in st["sources"].values()
        )
        assert num(r["documents in"]) == want


def test_duplicates_shards_budget_and_throughput_equal_stats(prepared, report, page):
    st, manifest = prepared["stats"], prepared["manifest"]
    p = page(report["html"])
    dedup_stages = [k for k, v in st["stages"].items() if "cluster_sizes" in v]
    assert "dedup" in dedup_stages
    for stage in dedup_stages:
        rows = p.rows(f"duplicates-{stage}")
        sizes = {str(num(r["copies"])): num(r["clusters"]) for r in rows if r["copies"] != "total"}
        assert sizes == st["stages"][stage]["cluster_sizes"]
    shards = p.rows("shards-table")
    assert [(r["prefix"], num(r["documents"]), num(r["tokens"])) for r in shards[:-1]] == [
        (s["prefix"], s["documents"], s["tokens"]) for s in manifest["shards"]
    ]
    assert all(r["check vs .idx"] == "ok" for r in shards[:-1])
    assert num(shards[-1]["tokens"]) == st["totals"]["tokens"]
    for budget in ("112B", "350B"):
        plan = {r["source"]: r for r in budget_plan(manifest, parse_count(budget))}
        rows = {r["source"]: r for r in p.rows(f"budget-{budget}")}
        assert set(rows) == set(plan)
        for source, r in rows.items():
            assert num(r["tokens"]) == plan[source]["tokens"]
            assert num(r["tokens drawn"]) == plan[source]["share_tokens"]
            assert float(r["epochs"].rstrip("×").replace(",", "")) == pytest.approx(
                plan[source]["epochs"], rel=0.01
            )
    stages = {r["stage"]: r for r in p.rows("throughput-table")}
    assert set(stages) == set(st["stages"])
    for name, r in stages.items():
        assert num(r["tasks"]) == st["stages"][name]["tasks"]
    assert stages["tokenize"]["tokens"] == f"{st['stages']['tokenize']['tokens']:,}"
    assert yaml.safe_load(p.pre["config-yaml"]) == st["config"]


def test_terminal_summary_and_json(prepared, report):
    st = prepared["stats"]
    assert f"{st['totals']['documents_in']:,}" in report["terminal"]
    assert "budget coverage" in report["terminal"] and "112B" in report["terminal"]
    import typer

    from tokenmill.report.cli import stats

    app = typer.Typer()
    app.command()(stats)
    app.command("noop")(lambda: None)
    res = CliRunner().invoke(
        app,
        ["stats", str(prepared["out"]), "--json", "--html", str(prepared["out"] / "again.html")],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["totals"] == st["totals"] and data["sources"] == st["sources"]
    bad = CliRunner().invoke(app, ["stats", str(prepared["out"]), "--limit", "5"])
    assert bad.exit_code == 1 and "raw files" in bad.output  # not silently ignored
    rep = data["report"]
    assert rep["kind"] == "run"
    assert set(rep["budgets"]) == {"112B", "350B"}
    assert rep["funnel"]["total"][-1]["documents_out"] == st["totals"]["documents_kept"]


def test_new_reasons_and_stages_render_generically(prepared, tmp_path, page):
    """Reasons and stages other engineers add appear without changes here."""
    st = json.loads(json.dumps(prepared["stats"]))
    src = next(iter(st["sources"]))
    s = st["sources"][src]
    s["documents_in"] += 7
    s["removed"]["toxicity:flagged"] = 4
    s["removed"]["quality:gopher:too_few_stop_words"] = 3
    st["totals"]["documents_in"] += 7
    st["totals"]["removed"].update({"toxicity:flagged": 4, "quality:gopher:too_few_stop_words": 3})
    st["stages"]["dedup.near"] = {
        "tasks": 2,
        "ran": 2,
        "skipped": 0,
        "wall_s": 1.0,
        "task_s": 1.5,
        "cluster_sizes": {"2": 5, "7": 1},
    }
    rep = write_report(st, prepared["manifest"], tmp_path / "r.html")
    steps = [r["step"] for r in rep["funnel"]["total"]]
    assert steps.index("quality") < steps.index("toxicity") < steps.index("dedup:exact")
    p = page(tmp_path / "r.html")
    assert num(p.rows("removals-table")[-1]["total"]) is not None
    reasons = {r["reason"]: r for r in p.rows("removals-table")}
    assert num(reasons["toxicity:flagged"]["total"]) == 4
    assert {r["copies"] for r in p.rows("duplicates-dedup.near")} == {"2", "7", "total"}
    assert "dedup.near" in {r["stage"] for r in p.rows("throughput-table")}
    assert rep["unaccounted"][src] == 0


@pytest.fixture(scope="module")
def damaged_run(corpus_config, tmp_path_factory) -> dict:
    """A prepare run over the conftest corpus (its bad c4 records) with one pile file cut
    short: stats with both a damaged file and record examples in its errors."""
    import shutil

    from tokenmill.config import load_config
    from tokenmill.pipelines.prepare import prepare

    tmp = tmp_path_factory.mktemp("damaged-run")
    root = tmp / "corpus"
    shutil.copytree(corpus_config.parent, root)
    damaged = root / "pile" / "train" / "01.jsonl.zst"
    whole = damaged.read_bytes()
    damaged.write_bytes(whole[: int(len(whole) * 0.9)])
    cfg = load_config(root / "config.yaml")
    cfg.dedup.minhash.enabled = False
    stats = prepare(cfg, tmp / "out", workers=1, quiet=True)
    return {"out": tmp / "out", "stats": stats, "damaged": str(damaged)}


def test_file_damage_and_record_examples_are_shown_apart(damaged_run, page):
    st = damaged_run["stats"]
    p = page(damaged_run["out"] / "report.html")
    files = [(n, e) for n, s in st["sources"].items() for e in s["errors"] if "record" not in e]
    records = [(n, e) for n, s in st["sources"].items() for e in s["errors"] if "record" in e]
    # what the run met: the cut pile file, and the conftest corpus's three bad c4 records
    assert [(n, e["reason"], e["path"]) for n, e in files] == [
        ("pile", "input:truncated_file", damaged_run["damaged"])
    ]
    c4 = sorted((e["reason"], e["record"], e["line"]) for n, e in records if n == "c4")
    assert c4 == [
        ("input:invalid_json", 60, 61),
        ("input:invalid_utf8", 62, 63),
        ("input:missing_text", 61, 62),
    ]
    assert p.rows("errors-table") == [
        {"source": n, "reason": e["reason"], "detail": e["detail"]} for n, e in files
    ]
    assert p.rows("records-table") == [
        {
            "source": n,
            "file": e["path"],
            "record": f"{e['record']:,}",
            "line": "–" if e["line"] is None else f"{e['line']:,}",
            "reason": e["reason"],
        }
        for n, e in records
    ]
    text = (damaged_run["out"] / "report.html").read_text(encoding="utf-8")
    assert text.count("Everything readable before the damage") == 1
    assert "<h3>Records set aside: first examples</h3>" in text
    # the summary's error count is the damaged files alone
    rep = summary.build(st)
    errors = {r["source"]: r["errors"] for r in rep["summary"]["sources"]}
    assert errors == {"c4": 0, "pile": 1, "oscar": 0}
    assert rep["summary"]["total"]["errors"] == 1
