"""What a rerun of `prepare` on an existing OUT may reuse, and what it must refuse.

One small corpus (two JSON-lines files of the bundled sample's C4 text) is prepared once; each
test then changes one thing (an input added, removed, rewritten with the same size, only
touched; a second run on the same OUT; a run killed with SIGKILL; a full disk) and checks the
rerun against the first run or against the files themselves. Tests run in any order: each
puts back what it changed, or works on its own OUT.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tmfixtures import sample_docs

from tokenmill.config import load_config
from tokenmill.pipelines.engine import OutputLocked
from tokenmill.pipelines.prepare import InputsChanged, prepare

pytestmark = pytest.mark.distributed

TEMPORARY = re.compile(r"^\..+\.tmp-[0-9a-f]{8}$")


def write_jsonl(path: Path, docs: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": d["text"]}) + "\n" for d in docs))
    return path


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted((out / "shards").rglob("*"))
        if p.is_file()
    }


def work_state(out: Path) -> dict[str, int]:
    """Every file under OUT/work with its modification time: what a refused rerun must not
    touch."""
    return {str(p): p.stat().st_mtime_ns for p in sorted((out / "work").rglob("*")) if p.is_file()}


def temporaries(out: Path) -> list[str]:
    return [str(p) for p in out.rglob("*") if TEMPORARY.match(p.name)]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    docs = sample_docs("c4")
    write_jsonl(root / "data" / "b.jsonl", docs[0:150])  # > 128 KiB: fingerprinted by its ends
    write_jsonl(root / "data" / "c.jsonl", docs[150:210])
    cfg = root / "config.yaml"
    cfg.write_text(
        "sources:\n"
        "  - {name: web, format: jsonl, paths: ['data/*.jsonl']}\n"
        "tokenizer: {train: {vocab_size: 600}}\n"
        "shards: {tokens_per_shard: 30000}\n"
        "dedup: {minhash: {enabled: false}}\n"
    )
    out = root / "out"
    prepare(load_config(cfg), out, workers=2, quiet=True)
    return root, cfg, out, shard_bytes(out)


def _ends_sha256(path: Path) -> str:
    data = path.read_bytes()
    k = 64 << 10
    return hashlib.sha256(data if len(data) <= 2 * k else data[:k] + data[-k:]).hexdigest()


def test_the_first_run_records_each_input_by_identity(base):
    root, _, out, _ = base
    files = [root / "data" / "b.jsonl", root / "data" / "c.jsonl"]
    assert files[0].stat().st_size > 2 * (64 << 10)  # the head + tail case, not the whole file
    recorded = json.loads((out / "work" / "inputs.json").read_text())
    assert recorded == {
        "version": 1,
        "sources": {
            "web": [
                {
                    "path": str(f),
                    "size": f.stat().st_size,
                    "mtime_ns": f.stat().st_mtime_ns,
                    "ends_sha256": _ends_sha256(f),
                }
                for f in files
            ]
        },
    }


def _add(data: Path):
    added = write_jsonl(data / "a.jsonl", sample_docs("c4")[210:270])
    return lambda: added.unlink()


def _remove(data: Path):
    kept = data.parent / "c.jsonl.away"
    (data / "c.jsonl").rename(kept)
    return lambda: kept.rename(data / "c.jsonl")


def _rewrite_same_size(data: Path):
    """Other bytes, same size, and the old modification time put back: only the contents
    fingerprint can tell."""
    f = data / "b.jsonl"
    raw, st = f.read_bytes(), f.stat()
    i = raw.index(b"e", 100)
    f.write_bytes(raw[:i] + b"E" + raw[i + 1 :])
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))

    def undo():
        f.write_bytes(raw)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))

    return undo


def _touch(data: Path):
    f = data / "c.jsonl"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    return lambda: os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_add, r"source 'web': 1 added \(\S*/data/a\.jsonl\)"),
        (_remove, r"source 'web': 1 removed \(\S*/data/c\.jsonl\)"),
        (_rewrite_same_size, r"1 modified \(\S*/data/b\.jsonl: contents changed \(same size\)"),
        (_touch, r"1 modified \(\S*/data/c\.jsonl: modification time only"),
    ],
    ids=["added", "removed", "rewritten-same-size", "mtime-only"],
)
def test_a_rerun_with_changed_inputs_is_refused_before_any_work(base, change, expected):
    root, cfg, out, _ = base
    before = work_state(out)
    undo = change(root / "data")
    try:
        with pytest.raises(InputsChanged, match=expected) as info:
            prepare(load_config(cfg), out, workers=1, quiet=True)
    finally:
        undo()
    assert "--fresh" in str(info.value) and "inputs.json" in str(info.value)
    assert work_state(out) == before


def test_restored_inputs_resume_with_no_work(base):
    """After each change above was undone, the inputs are the recorded ones again."""
    _, cfg, out, shards = base
    stats = prepare(load_config(cfg), out, workers=1, quiet=True)
    assert all(s["ran"] == 0 for s in stats["stages"].values() if "ran" in s)
    assert shard_bytes(out) == shards


def test_a_remote_input_is_known_by_what_fsspec_info_reports(tmp_path):
    """URLs: the size and the version fields fsspec's info gives (here: fsspec's in-memory
    filesystem; an HTTP server's ETag / Last-Modified and S3's ETag are read the same way)."""
    import fsspec

    from tokenmill.pipelines.resume import check_inputs, input_identity

    fs = fsspec.filesystem("memory")
    fs.pipe("/tm-resume/a.jsonl", b'{"text": "one"}\n')
    url = "memory://tm-resume/a.jsonl"
    info = fs.info("/tm-resume/a.jsonl")
    assert input_identity(url) == {"path": url, "size": 16, "created": str(info["created"])}
    work = tmp_path / "work"
    work.mkdir()
    check_inputs({"web": [url]}, work)
    check_inputs({"web": [url]}, work)  # the same: accepted
    fs.pipe("/tm-resume/a.jsonl", b'{"text": "one, two"}\n')
    with pytest.raises(InputsChanged, match=rf"{re.escape(url)}: size 16 -> 21"):
        check_inputs({"web": [url]}, work)
    fs.rm("/tm-resume", recursive=True)


def _cli(cfg: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tokenmill",
        "prepare",
        str(cfg),
        "--out",
        str(out),
        "--workers",
        "2",
        "--quiet",
        *extra,
    ]


def test_a_second_run_on_the_same_out_is_refused_and_fresh_waits_its_turn(base, tmp_path):
    _, cfg, _, shards = base
    out = tmp_path / "out"
    first = subprocess.Popen(_cli(cfg, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # the first run holds the lock once it wrote its pid
            try:
                if json.loads((out / ".lock").read_text())["pid"] == first.pid:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        with pytest.raises(OutputLocked, match=rf"in use by another .*\(pid {first.pid} on "):
            prepare(load_config(cfg), out, workers=1, quiet=True)
        with pytest.raises(OutputLocked, match=rf"\(pid {first.pid} on "):
            prepare(load_config(cfg), out, workers=1, quiet=True, fresh=True)
        assert first.poll() is None, "the first run ended before the second was tried"
        assert (out / "work" / "config.json").exists()  # --fresh deleted nothing
    finally:
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err.decode()
    assert shard_bytes(out) == shards


def test_the_cli_names_the_holder_in_one_line(base, tmp_path):
    from tokenmill.pipelines.engine import output_lock

    _, cfg, _, _ = base
    out = tmp_path / "out"
    (out / "work").mkdir(parents=True)
    (out / "work" / "keep.json").write_text("{}")
    with output_lock(out):
        proc = subprocess.run(
            _cli(cfg, out, "--fresh"), capture_output=True, text=True, timeout=120
        )
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith(f"error: {out} is in use by another tokenmill prepare (pid ")
    assert f"pid {os.getpid()} on " in lines[0]
    assert lines[1].startswith("hint: ")
    assert (out / "work" / "keep.json").exists()


def test_after_kill_9_the_lock_is_free_and_temporaries_are_swept(base, tmp_path):
    _, cfg, _, shards = base
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _cli(cfg, out),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "work" / "docs").rglob("*.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI, the scheduler and every worker
    proc.wait()
    assert not (out / "manifest.json").exists(), "the run finished before it was killed"
    assert json.loads((out / ".lock").read_text())["pid"] == proc.pid
    # what killed writers leave: atomic_path's temporaries, anywhere under OUT
    planted = [
        out / "work" / "docs" / "web" / ".00000-0000.parquet.tmp-0123abcd",
        out / "shards" / "web" / ".web_00000.bin.tmp-89abcdef",
        out / ".manifest.json.tmp-deadbeef",
    ]
    for p in planted:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    users = out / "notes.tmp-0123abcd"  # not a name atomic_path makes: left alone
    users.write_text("mine")

    prepare(load_config(cfg), out, workers=2, quiet=True)
    assert temporaries(out) == []
    assert users.read_text() == "mine"
    assert shard_bytes(out) == shards
    assert json.loads((out / ".lock").read_text())["pid"] == os.getpid()


FINAL = ("tokenizer.json", "manifest.json", "stats.json", "report.html", "config.yaml")


def _limit_file_size(limit: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return apply


def test_a_full_disk_while_writing_outputs_leaves_no_partial_file(base):
    """RLIMIT_FSIZE makes the kernel refuse writes past `limit` bytes (EFBIG), as a full disk
    refuses them (ENOSPC): the tokenizer copy fails halfway. The test ends with the first
    run's outputs back in place."""
    _, cfg, out, shards = base
    for name in FINAL:
        (out / name).unlink()
    tokenizer = (out / "work" / "tokenizer.json").read_bytes()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        _cli(cfg, out),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        preexec_fn=_limit_file_size(len(tokenizer) // 2),
    )
    assert proc.returncode == 1, proc.stderr
    assert "File too large" in proc.stderr and "Traceback" not in proc.stderr
    assert [n for n in FINAL if (out / n).exists()] == []
    assert temporaries(out) == []
    # the same command with room to write finishes the run
    stats = prepare(load_config(cfg), out, workers=2, quiet=True)
    assert all(s["ran"] == 0 for s in stats["stages"].values() if "ran" in s)
    assert (out / "tokenizer.json").read_bytes() == tokenizer
    assert json.loads((out / "stats.json").read_text())["totals"] == stats["totals"]
    assert shard_bytes(out) == shards


def test_fresh_after_an_input_was_added_reads_every_file(base, tmp_path):
    root, cfg, first, _ = base
    out = tmp_path / "out"
    shutil.copytree(first, out)  # its own OUT: the first run's, with its record of inputs
    added = write_jsonl(root / "data" / "a.jsonl", sample_docs("c4")[210:270])
    try:
        with pytest.raises(InputsChanged, match="1 added"):
            prepare(load_config(cfg), out, workers=2, quiet=True)
        stats = prepare(load_config(cfg), out, workers=2, quiet=True, fresh=True)
        lines = sum(len(f.read_text().splitlines()) for f in (root / "data").glob("*.jsonl"))
    finally:
        added.unlink()
    assert stats["sources"]["web"]["documents_in"] == lines == 270
    recorded = json.loads((out / "work" / "inputs.json").read_text())["sources"]["web"]
    assert [Path(i["path"]).name for i in recorded] == ["a.jsonl", "b.jsonl", "c.jsonl"]
    seen = set()
    for shard in json.loads((out / "manifest.json").read_text())["shards"]:
        ids = pq.read_table(out / (shard["prefix"] + ".docs.parquet")).column("id").to_pylist()
        seen |= {i.split("/")[1] for i in ids}
    assert seen == {"a.jsonl", "b.jsonl", "c.jsonl"}


def test_an_edited_rule_file_refuses_the_rerun(tmp_path):
    """The files rules read (here the url rule's UT1-style block list and C4's bad words,
    given relative to the config's folder) are inputs too: edited, the rerun is refused,
    naming them, instead of reusing work filtered with the old list."""
    write_jsonl(tmp_path / "data" / "a.jsonl", sample_docs("c4")[:40])
    lists = tmp_path / "lists" / "adult"
    lists.mkdir(parents=True)
    (lists / "domains").write_text("example.org\n")
    (tmp_path / "bad.txt").write_text("zzzz\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "sources:\n"
        "  - {name: web, format: jsonl, paths: ['data/*.jsonl']}\n"
        "quality:\n"
        "  url: {block_domains_files: [lists]}\n"
        "  c4: {bad_words_path: bad.txt}\n"
        "  filter_sets: {web: [basic, url, c4]}\n"
        "tokenizer: {train: {vocab_size: 400}}\n"
        "dedup: {minhash: {enabled: false}}\n"
    )
    loaded = load_config(cfg)
    assert loaded.quality.c4.bad_words_path == str(tmp_path / "bad.txt")
    # in the rule table's order (c4 before url), a folder as its files
    assert loaded.quality.files(["url", "c4"]) == [
        str(tmp_path / "bad.txt"),
        str(lists / "domains"),
    ]
    out = tmp_path / "out"
    prepare(loaded, out, workers=1, quiet=True)
    recorded = json.loads((out / "work" / "inputs.json").read_text())["sources"]
    assert [i["path"] for i in recorded["quality (files the rules read)"]] == [
        str(tmp_path / "bad.txt"),
        str(lists / "domains"),
    ]
    (lists / "domains").write_text("example.org\nexample.net\n")
    with pytest.raises(InputsChanged, match=r"lists/adult/domains: size 12 -> 24"):
        prepare(load_config(cfg), out, workers=1, quiet=True)


def test_an_out_from_before_new_config_sections_still_resumes(base, tmp_path):
    """OUT/work/config.json written before a section or rule existed (here without
    `decontaminate` and the `pii` rule's parameters) resumes: the new defaults are added to
    the recorded config before comparing. A value it set differently is still refused."""
    root, cfg, out, first = base
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    saved = copy / "work" / "config.json"
    old = json.loads(saved.read_text())
    del old["decontaminate"], old["quality"]["pii"]
    saved.write_text(json.dumps(old))
    prepare(load_config(cfg), copy, workers=1, quiet=True)
    assert shard_bytes(copy) == first
    old["shards"]["tokens_per_shard"] += 1
    saved.write_text(json.dumps(old))
    with pytest.raises(Exception, match=r"different config \(changed: shards\)"):
        prepare(load_config(cfg), copy, workers=1, quiet=True)


def test_the_tokenizer_backend_may_change_between_runs_other_tokenizer_keys_may_not(tmp_path):
    # tiktoken and HF tokenizers write the same ids: the backend is how a run is executed
    from tokenmill.config import load_config
    from tokenmill.pipelines.resume import ConfigMismatch, check_config

    work = tmp_path / "out" / "work"
    work.mkdir(parents=True)
    cfg = load_config()
    check_config(cfg, work)
    hf = cfg.model_copy(deep=True)
    hf.tokenizer.backend = "hf"
    check_config(hf, work)  # accepted
    other = cfg.model_copy(deep=True)
    other.tokenizer.pad_token = "<|padding|>"
    with pytest.raises(ConfigMismatch, match=r"changed: tokenizer\)"):
        check_config(other, work)
