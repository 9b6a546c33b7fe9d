"""`tokenmill stats` on raw corpus files: the same counts `prepare` finds, bounded memory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from tokenmill.config import load_config
from tokenmill.report import raw
from tokenmill.report.cli import stats as stats_command


@pytest.fixture(scope="module")
def scanned(corpus_config):
    cfg = load_config(corpus_config)
    return raw.scan(raw.inputs_from_config(cfg), raw.settings_from_config(cfg))


@pytest.mark.distributed
def test_raw_counts_equal_what_prepare_counted(prepared, scanned):
    """Reading, language ID and quality give the same numbers as in the real run."""
    run = prepared["stats"]
    assert set(scanned["sources"]) == set(run["sources"])
    for name, s in scanned["sources"].items():
        r = run["sources"][name]
        assert s["documents_in"] == r["documents_in"]
        assert s["bytes_in"] == r["bytes_in"]
        assert s["files"] == r["files"]
        before_dedup = {k: v for k, v in r["removed"].items() if not k.startswith("dedup:")}
        assert s["removed"] == before_dedup
        assert s["histograms"]["chars_in"] == r["histograms"]["chars_in"]
        assert s["documents_in"] == s["documents_kept"] + sum(s["removed"].values())
        for lang, c in r["languages"].items():
            assert scanned["sources"][name]["languages"][lang]["documents_in"] == c["documents_in"]
            if "lang_score" in c:
                assert s["languages"][lang]["lang_score"] == c["lang_score"]
    # exact duplicates among the valid documents: at least those dedup removed after filtering
    assert scanned["duplicates"]["exact"] is True
    assert scanned["duplicates"]["duplicates_estimate"] >= run["totals"]["removed"]["dedup:exact"]


def test_formats_are_detected_from_files(corpus_config):
    root = corpus_config.parent
    inputs = raw.collect_inputs([str(root / "c4"), str(root / "pile"), str(root / "oscar")])
    assert {i.source: i.fmt for i in inputs} == {
        "c4": "c4",
        "pile": "pile",
        "oscar2301": "oscar2301",
    }
    with pytest.raises(FileNotFoundError):
        raw.collect_inputs([str(root / "nothing-here" / "*.json.gz")])


def test_paths_expand_as_a_sources_paths_do_and_folders_are_searched(tmp_path, request):
    """Globs and URLs go through the readers' expand_inputs (an fsspec glob is listed, not
    passed on as a pattern); a folder is searched for the formats' file endings."""
    import fsspec

    fs = fsspec.filesystem("memory")  # one per process: removed at the end
    for name in ("b.jsonl", "a.jsonl", "notes.md"):
        fs.pipe(f"/rawtest/{name}", b'{"text": "t"}\n')
    request.addfinalizer(lambda: fs.rm("/rawtest", recursive=True))
    (tmp_path / "sub").mkdir()
    for name in ("x.json.gz", "y.parquet", "z.csv"):
        (tmp_path / "sub" / name).write_bytes(b"")
    local = str(tmp_path / "sub" / "x.json.gz")
    got = raw.expand(["memory://rawtest/*.jsonl", f"file://{local}", str(tmp_path)])
    assert got == [
        "memory:///rawtest/a.jsonl",
        "memory:///rawtest/b.jsonl",
        local,
        str(tmp_path / "sub" / "y.parquet"),
    ]
    with pytest.raises(FileNotFoundError, match=r"^no corpus files at 'memory://rawtest/\*.txt'$"):
        raw.expand(["memory://rawtest/*.txt"])
    with pytest.raises(FileNotFoundError, match=r"^no corpus files at '.*/nothing'$"):
        raw.expand([f"file://{tmp_path}/nothing"])


def test_limit_reads_at_most_n_records_per_file(corpus_config):
    root = corpus_config.parent
    inputs = raw.collect_inputs([str(root / "pile")])
    data = raw.scan(inputs, raw.ScanSettings(langid=None, limit=7))
    assert data["totals"]["documents_in"] == 7 * len(inputs)
    assert set(data["sources"]["pile"]["languages"]) == {"und"}  # language ID off


def _without_timings(data):
    if isinstance(data, dict):
        return {k: _without_timings(v) for k, v in data.items() if k not in ("wall_s", "task_s")}
    if isinstance(data, list):
        return [_without_timings(v) for v in data]
    return data


@pytest.mark.distributed
def test_files_scanned_on_workers_give_what_one_process_gives(corpus_config, scanned):
    """Parallel files run as executor calls on a local cluster; the merge sees them in input
    order, whatever order they finish in."""
    cfg = load_config(corpus_config)
    inputs = raw.inputs_from_config(cfg)
    seen = []
    on_workers = raw.scan(
        inputs, raw.settings_from_config(cfg), workers=2, on_file=lambda r: seen.append(r["path"])
    )
    # as JSON: the order of sources, languages and errors counts too
    assert json.dumps(_without_timings(on_workers)) == json.dumps(_without_timings(scanned))
    assert sorted(seen) == sorted(i.path for i in inputs)


def test_hash_sample_is_exact_below_its_cap_and_estimates_above():
    rng = np.random.default_rng(0)
    distinct = rng.integers(0, 2**63, 20_000, dtype=np.uint64) * np.uint64(2)
    # 1,000 texts appear 3 times, 2,000 twice, the rest once
    hashes = np.concatenate([distinct, distinct[:1000], distinct[:1000], distinct[1000:3000]])
    rng.shuffle(hashes)
    exact = raw.HashSample(cap=1 << 20)
    for part in np.array_split(hashes, 7):
        exact.add(part)
    r = exact.result()
    assert r["exact"] and r["cluster_sizes"] == {"2": 2000, "3": 1000}
    assert r["duplicates_estimate"] == 4000
    small = raw.HashSample(cap=2_000)  # memory bound: holds at most ~2 x cap hashes
    for part in np.array_split(hashes, 50):
        small.add(part)
        assert len(small.values) <= 2_000
    est = small.result()
    assert not est["exact"]
    assert est["duplicates_estimate"] == pytest.approx(4000, rel=0.35)
    # merging samples of parts equals sampling the whole
    a, b = raw.HashSample(cap=2_000), raw.HashSample(cap=2_000)
    a.add(hashes[: len(hashes) // 2])
    b.add(hashes[len(hashes) // 2 :])
    a.merge(b)
    assert a.result() == est


def test_cli_raw_files_json_and_html(corpus_config, tmp_path, page):
    app = typer.Typer()
    app.command()(stats_command)
    app.command("noop")(lambda: None)
    root = corpus_config.parent
    html = tmp_path / "raw.html"
    res = CliRunner().invoke(
        app,
        [
            "stats",
            str(root / "c4"),
            "--name",
            "web",
            "--limit",
            "62",
            "--json",
            "--html",
            str(html),
            "--no-langid",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["kind"] == "raw" and list(data["sources"]) == ["web"]
    web = data["sources"]["web"]
    # conftest's first c4 file: 60 documents, then bad records; --limit 62 reads two of them
    assert web["removed"] == {"input:invalid_json": 1, "input:missing_text": 1} | {
        k: v for k, v in web["removed"].items() if k.startswith("quality:")
    }
    assert web["documents_in"] == 62 + 60
    p = page(html)
    assert {"summary", "funnel", "lengths", "languages", "duplicates", "config"} <= set(p.sections)
    assert "shards" not in p.sections  # nothing prepared yet
    rows = {r["source"]: r for r in p.rows("summary-table")}
    assert int(rows["web"]["documents in"]) == 122
    bad = CliRunner().invoke(app, ["stats", str(root / "c4"), "--format", "nope"])
    assert bad.exit_code == 1 and "unknown --format" in bad.output
