"""The command line: help everywhere, the bundled-sample demo, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CMD = [sys.executable, "-m", "tokenmill"]


def run(*args, check=True):
    proc = subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.mark.parametrize("command", [[], ["prepare"], ["stats"], ["inspect"]])
def test_every_command_has_help(command):
    out = run(*command, "--help").stdout
    assert "Usage" in out and "--help" in out


@pytest.mark.distributed
def test_prepare_without_config_runs_the_bundled_sample(tmp_path):
    out = tmp_path / "out"
    proc = run("prepare", "--out", str(out), "--workers", "2")
    assert "summary" in proc.stdout and "oscar" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert {s["source"] for s in manifest["shards"]} == {"c4", "pile", "oscar"}
    stats = json.loads((out / "stats.json").read_text())
    assert len(stats["sources"]["oscar"]["languages"]) >= 10
    # inspect decodes a shard and shows each document's provenance id
    shown = run("inspect", str(out / manifest["shards"][0]["prefix"]), "--doc", "0").stdout
    assert manifest["shards"][0]["source"] + "/" in shown
    again = run("stats", str(out), "--json").stdout
    assert json.loads(again)["totals"] == stats["totals"]


def test_bad_config_gets_a_clear_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "sources: [{name: x, format: c4, paths: [nothing/*.gz]}]\nlangid: {treshold: 1}\n"
    )
    proc = run("prepare", str(cfg), "--out", str(tmp_path / "o"), check=False)
    assert proc.returncode != 0
    assert "treshold" in proc.stderr and "Traceback" not in proc.stderr
    cfg.write_text("sources: [{name: x, format: c4, paths: [nothing/*.gz]}]\n")
    proc = run("prepare", str(cfg), "--out", str(tmp_path / "o"), check=False)
    assert proc.returncode != 0 and "no input files match" in proc.stderr
