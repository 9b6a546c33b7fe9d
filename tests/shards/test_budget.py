"""Budget and compute planning against hand calculations."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tokenmill.shards.plan import budget_plan, compute_plan, parse_count

MANIFEST = {
    "mixture": {"web": 0.75, "books": 0.25},
    "shards": [
        {
            "prefix": "shards/web/web_00000",
            "source": "web",
            "documents": 1,
            "tokens": 30_000_000_000,
        },
        {
            "prefix": "shards/web/web_00001",
            "source": "web",
            "documents": 1,
            "tokens": 30_000_000_000,
        },
        {
            "prefix": "shards/books/books_00000",
            "source": "books",
            "documents": 1,
            "tokens": 7_000_000_000,
        },
    ],
    "data_path": "x",
}


@pytest.mark.parametrize(
    "text,value",
    [
        ("112B", 112 * 10**9),
        ("350e9", 350 * 10**9),
        ("1.5T", 1_500_000_000_000),
        ("500M", 500_000_000),
        ("2k", 2000),
        (1e6, 1_000_000),
    ],
)
def test_parse_count(text, value):
    assert parse_count(text) == value


def test_parse_count_rejects_nonsense():
    with pytest.raises(ValueError, match="112B"):
        parse_count("lots")


def test_epochs_and_shards_for_112b_and_350b():
    rows = {r["source"]: r for r in budget_plan(MANIFEST, parse_count("112B"), max_epochs=3)}
    # web: 0.75 * 112B = 84B drawn from 60B -> 1.4 epochs; books: 28B from 7B -> 4 epochs
    assert rows["web"]["share_tokens"] == 84_000_000_000
    assert rows["web"]["epochs"] == pytest.approx(1.4)
    assert rows["books"]["epochs"] == pytest.approx(4.0)
    assert (rows["web"]["shards"], rows["books"]["shards"]) == (2, 1)
    assert rows["web"]["warning"] is None and "books" in rows["books"]["warning"]
    rows = {r["source"]: r for r in budget_plan(MANIFEST, parse_count("350B"), max_epochs=3)}
    assert rows["web"]["epochs"] == pytest.approx(262.5 / 60)
    assert rows["books"]["epochs"] == pytest.approx(87.5 / 7)


def test_compute_plan_for_a_million_a100_hours():
    plan = compute_plan(1e6, "a100-80gb", params=[1.3e9, 176e9])
    flops = 1e6 * 3600 * 150e12  # 5.4e23
    assert plan["flops"] == pytest.approx(flops)
    small, bloom = plan["models"]
    assert small["tokens_6nd"] == pytest.approx(flops / (6 * 1.3e9))
    assert bloom["tokens_6nd"] == pytest.approx(511.36e9, rel=1e-3)
    assert bloom["tokens_8nd"] == pytest.approx(383.5e9, rel=1e-3)  # BLOOM saw 366B
    assert plan["mfu"] == pytest.approx(150 / 312)


def test_plan_command_json(prepared_out):
    """On a real prepare output (plan checks its shards before planning)."""
    manifest = json.loads((prepared_out / "manifest.json").read_text())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenmill",
            "plan",
            str(prepared_out),
            "--budget",
            "112B",
            "--gpu-hours",
            "1e6",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["budgets"]["112B"] == budget_plan(manifest, parse_count("112B"))
    assert data["data_path"] == manifest["data_path"]
    assert data["compute"]["gpu_hours"] == 1e6
