"""The command line: help everywhere, the bundled-sample demo, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

CMD = [sys.executable, "-m", "tokenmill"]


def run(*args, check=True):
    proc = subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.mark.parametrize("command", [[], ["prepare"], ["stats"], ["inspect"], ["verify"]])
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


# ---- how prepare stops: Ctrl-C, a failing task, user errors ---------------------------------


def _user_env() -> dict:
    """The environment of a user's shell: without the test suite's Dask log settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}


def _shards(out) -> dict:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted((out / "shards").rglob("*"))
        if p.is_file()
    }


def _as_from_a_terminal() -> None:
    """In the child before exec: SIGINT as a shell gives a foreground command (default
    action, not blocked), whatever this test process's libraries did to its own."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_masks(pid: int) -> str:
    """The blocked and ignored signal masks of a process (for a failure message)."""
    try:
        status = open(f"/proc/{pid}/status").read().splitlines()
    except OSError as e:
        return str(e)
    wanted = ("SigBlk", "SigIgn")
    return " ".join(line.replace("\t", "") for line in status if line.startswith(wanted))


@pytest.mark.distributed
def test_ctrl_c_prints_one_line_and_the_same_command_resumes(corpus_config, tmp_path):
    from tokenmill.config import load_config
    from tokenmill.pipelines.prepare import prepare

    # small partitions: about 120 process tasks, so the run is still far from its end when
    # the first one is done (with the corpus' own 25 it had ~3 s left, and on a loaded
    # machine the interrupt sometimes came after the end)
    config = tmp_path / "config.yaml"
    config.write_text(corpus_config.read_text().replace("partition_docs: 25", "partition_docs: 5"))
    assert config.read_text() != corpus_config.read_text()
    config_dir = corpus_config.parent
    for entry in config_dir.iterdir():  # the config's relative globs
        if entry.is_dir():
            (tmp_path / entry.name).symlink_to(entry)
    prepare(load_config(config), tmp_path / "ref", workers=2, quiet=True)
    cmd = [*CMD, "prepare", str(config), "--out", "run", "--workers", "2", "-q"]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,  # --out is relative to the working directory
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_user_env(),
        preexec_fn=_as_from_a_terminal,
    )
    signals = _signal_masks(proc.pid)
    docs = tmp_path / "run" / "work" / "docs"
    deadline = time.time() + 120
    while time.time() < deadline and not list(docs.rglob("*.json")):
        time.sleep(0.05)
    sent = time.time()
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole process group
    _, stderr = proc.communicate(timeout=120)
    what = (
        f"exit {proc.returncode} {time.time() - sent:.1f} s after SIGINT; stderr: {stderr!r}; "
        f"at its start: {signals}"
    )
    assert not (tmp_path / "run" / "manifest.json").exists(), f"ran to the end: {what}"
    assert proc.returncode == 130, what
    assert stderr.splitlines() == [
        "error: interrupted",
        "hint: rerun the same command to resume (completed work is kept in OUT/work)",
    ]
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["stages"]["process"]["skipped"] >= 1
    assert _shards(tmp_path / "run") == _shards(tmp_path / "ref")


@pytest.mark.distributed
def test_a_failing_task_is_one_line_and_its_traceback_only_with_v(tmp_path):
    from tmfixtures import sample_docs
    from tokenizers import Tokenizer

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.jsonl").write_text(
        "".join(json.dumps({"text": d["text"]}) + "\n" for d in sample_docs("c4")[:30])
    )
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"not": "a tokenizer"}')
    with pytest.raises(Exception) as load_error:  # what the tokenizers library says about it
        Tokenizer.from_file(str(bad))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "sources: [{name: web, format: jsonl, paths: ['data/*.jsonl']}]\n"
        "tokenizer: {path: tokenizer.json}\n"
        "dedup: {minhash: {enabled: false}}\n"
    )
    out = tmp_path / "out"
    cmd = [*CMD, "prepare", str(cfg), "--out", str(out), "--workers", "1", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_user_env())
    assert proc.returncode == 1
    assert "Compute Failed" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: tokenize task web-00000-0000 failed: Exception: {load_error.value}",
        f"hint: fix the cause; completed work is kept in {out}/work: rerun the same command to "
        "resume (-v shows the traceback)",
    ]
    verbose = [*CMD, "-v", *cmd[len(CMD) :]]
    proc = subprocess.run(verbose, capture_output=True, text=True, timeout=300, env=_user_env())
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "Compute Failed" not in proc.stderr

    # the same OUT with another config, or with other inputs: one line and what to do
    cfg.write_text(cfg.read_text() + "langid: {threshold: 0.9}\n")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_user_env())
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: {out} holds a run made with a different config (changed: langid). Rerun with "
        "--fresh to start over, or use another --out.",
        "hint: --fresh deletes the earlier outputs in OUT and starts over",
    ]
    cfg.write_text(cfg.read_text().replace("langid: {threshold: 0.9}\n", ""))
    (tmp_path / "data" / "b.jsonl").write_text('{"text": "one more"}\n')
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_user_env())
    assert proc.returncode == 1
    first, hint = proc.stderr.splitlines()
    assert first.startswith(
        f"error: the inputs changed since the first run in {out}: source 'web': 1 added "
        f"({tmp_path / 'data' / 'b.jsonl'})."
    )
    assert hint == "hint: --fresh deletes the earlier outputs in OUT and starts over"


def test_inputs_that_match_nothing_are_one_line_and_a_hint(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sources: [{name: web, format: jsonl, paths: ['nothing/*.jsonl']}]\n")
    proc = run("prepare", str(cfg), "--out", str(tmp_path / "o"), check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: source 'web': no input files match '{tmp_path / 'nothing' / '*.jsonl'}'",
        "hint: fix the path or pattern in the config, then rerun",
    ]


@pytest.mark.distributed
def test_a_shard_damaged_after_its_run_is_one_line_naming_it(tmp_path):
    from tmfixtures import sample_docs

    from tokenmill.config import load_config
    from tokenmill.pipelines.prepare import prepare

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.jsonl").write_text(
        "".join(json.dumps({"text": d["text"]}) + "\n" for d in sample_docs("c4")[:30])
    )
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "sources: [{name: web, format: jsonl, paths: ['data/*.jsonl']}]\n"
        "tokenizer: {train: {vocab_size: 400}}\ndedup: {minhash: {enabled: false}}\n"
    )
    out = tmp_path / "out"
    prepare(load_config(cfg), out, workers=1, quiet=True)
    n = len(json.loads((out / "manifest.json").read_text())["shards"])
    shard = out / "shards" / "web" / "web_00000.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    proc = run("prepare", str(cfg), "--out", str(out), "--workers", "1", "-q", check=False)
    assert proc.returncode == 1
    first, hint = proc.stderr.splitlines()
    assert first.startswith(
        f"error: 1 of {n} shards in {out} no longer match what the shard stage wrote: "
        "shards/web/web_00000: "
    )
    assert hint == f"hint: `tokenmill verify {out}` checks every shard"
