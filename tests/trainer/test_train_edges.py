"""The trainer's rough edges, as a new user meets them, each said in one line before anything
costly happens: a resume with another number of processes or another model shape, token ids
outside the vocabulary, a held-out slice shorter than one sample, a model too big for this CPU
box; and a resumed run logs each step once (metrics.jsonl and TensorBoard)."""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from launch import env, free_port, metrics, shm_left, train, unlink_shm

from tokenmill.shards.megatron import ShardReader
from tokenmill.trainer.data import ManifestData, TokenOutOfRange

FRESH = "or start a fresh run (--no-resume, or another --save than {save})"


def _args(prepared: Path, save: Path) -> list[str]:
    return [
        "--data",
        str(prepared),
        "--steps",
        "12",
        "--save",
        str(save),
        "--save-interval",
        "6",
        "--eval-interval",
        "6",
        "--log-interval",
        "1",
    ]


@pytest.fixture(scope="module")
def saved(prepared, tmp_path_factory) -> Path:
    """12 steps of the tiny model (default settings, one process), checkpoints at 6 and 12."""
    save = tmp_path_factory.mktemp("saved")
    train(_args(prepared, save))
    assert (save / "latest").read_text() == "step12"
    return save


def _ranks(args: list[str], n: int) -> tuple[list[subprocess.Popen], list[tuple], int]:
    """Start `n` ranks as torchrun would (its environment), without it: torchrun SIGTERMs the
    other ranks as soon as one exits non-zero, so their own exit would go unseen."""
    port = free_port()
    procs = []
    for rank in range(n):
        rank_env = dict(
            env(),
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(n),
            LOCAL_WORLD_SIZE=str(n),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        cmd = [sys.executable, "-m", "tokenmill.trainer", *args]
        procs.append(
            subprocess.Popen(
                cmd, env=rank_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    return procs, [p.communicate(timeout=300) for p in procs], port


def test_resume_with_another_number_of_processes_is_refused_before_loading(prepared, saved):
    procs, outs, port = _ranks(_args(prepared, saved), 2)
    error = (
        f"error: {saved}/step12 was written by 1 process and this run has 2 processes: the "
        "checkpoint holds each process's share of the ZeRO state, so resume with 1 process, "
        + FRESH.format(save=saved)
    )
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 1, err[-3000:]
        assert err.splitlines()[-1] == error, err[-3000:]
        assert "Traceback" not in err and "resumed from" not in err
    assert shm_left(port) == []  # torn down
    assert (saved / "latest").read_text() == "step12"
    assert len(metrics(saved / "logs")) == 12  # nothing logged or dropped


def test_resume_with_another_model_shape_is_refused_before_loading(prepared, saved):
    p = train([*_args(prepared, saved), "--activation", "swiglu"], check=False)
    assert p.returncode == 1, p.stderr[-3000:]
    assert p.stderr.splitlines()[-1] == (
        f"error: {saved}/step12: the checkpoint is of another model: activation gelu (this "
        "run: swiglu). Resume with the model flags it was written with, " + FRESH.format(save=saved)
    )
    assert "Traceback" not in p.stderr and "resumed from" not in p.stderr


def _tensorboard_steps(log_dir: Path, tag: str) -> Counter:
    """How many events of `tag` each step has, over every event file in `log_dir`."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    steps = Counter()
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            if any(v.tag == tag for v in event.summary.value):
                steps[event.step] += 1
    return steps


@pytest.mark.slow  # a resumed training run: ~17 s (the default suite's 10 minutes)
def test_a_resumed_run_logs_each_step_once(prepared, saved, tmp_path):
    # as a run killed after logging step 12 but before its checkpoint 12 was complete
    save = tmp_path / "save"
    shutil.copytree(saved, save)
    (save / "latest").write_text("step6")
    assert _tensorboard_steps(save / "logs", "train/loss") == Counter(range(1, 13))
    ref = metrics(saved / "logs")
    # one event per number of a record (loss, lr, grad_norm, tokens/s, ...) past step 6
    events = sum(isinstance(v, int | float) for s in range(7, 13) for v in ref[s].values()) - 6
    p = train(_args(prepared, save))
    assert "at step 6" in p.stderr
    assert f"dropped 6 records and {events} TensorBoard events past step 6" in p.stderr
    lines = (save / "logs" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == list(range(1, 13))
    for tag in ("train/loss", "train/lr", "valid/loss"):
        want = Counter(range(1, 13)) if tag != "valid/loss" else Counter([6, 12])
        assert _tensorboard_steps(save / "logs", tag) == want, tag
    ours = metrics(save / "logs")
    assert [ours[s]["loss"] for s in range(7, 13)] == [ref[s]["loss"] for s in range(7, 13)]


def _out_of_vocabulary(manifest: Path, vocab_size: int) -> Path:
    """The traceable shards (token k of document d is d * 1000 + k) under a manifest that
    claims a smaller vocabulary than their ids."""
    m = json.loads(manifest.read_text())
    m["tokenizer"]["vocab_size"] = vocab_size
    manifest.write_text(json.dumps(m))
    return manifest


def _last_documents(manifest: Path) -> dict[str, int]:
    """Each source's last document length, in manifest order (the held-out slice at 1%)."""
    last = {}
    for shard in json.loads(manifest.read_text())["shards"]:
        reader = ShardReader(manifest.parent / shard["prefix"])
        if len(reader):
            last[shard["source"]] = int(reader.sizes[-1])
    return last


@pytest.mark.parametrize("seq_len", [16, 64, 128, 512])
def test_a_held_out_slice_shorter_than_a_sample_is_named(traceable, seq_len):
    last = _last_documents(traceable)  # 40 and 25 documents: 1% holds out one each
    data = ManifestData(traceable, seq_len, valid_fraction=0.01)
    assert data.short_valid() == {s: n for s, n in last.items() if n < seq_len + 1}
    assert ManifestData(traceable, seq_len, valid_fraction=0.0).short_valid() == {}


def _where(manifest: Path, prefix: str, document: int) -> list[int]:
    return ShardReader(manifest.parent / prefix)[document].tolist()


def test_token_ids_outside_the_vocabulary_name_the_shard(traceable):
    _out_of_vocabulary(traceable, 5000)
    data = ManifestData(traceable, 32, valid_fraction=0.0)
    with pytest.raises(TokenOutOfRange) as e:
        for k in range(len(data.train.sources[0])):
            data.train.sources[0][k]
    pattern = (
        r"(shards/a/a_0000[01]) \(source 'a'\), document (\d+): token id (\d+) is outside the "
        r"manifest's vocab_size 5000\. The shards were written with another tokenizer than the "
        r"manifest's: prepare them again with one tokenizer \(tokenmill prepare --fresh\)"
    )
    match = re.fullmatch(pattern, str(e.value))
    assert match, str(e.value)
    bad = int(match[3])
    assert bad >= 5000 and bad in _where(traceable, match[1], int(match[2]))
    # within the vocabulary: every sample reads
    _out_of_vocabulary(traceable, 70000)
    data = ManifestData(traceable, 32, valid_fraction=0.0)
    assert all(len(s[k]) == 33 for s in data.train.sources for k in range(len(s)))


@pytest.fixture(scope="module")
def traceable_run(tmp_path_factory):
    """`tokenmill train` on the traceable shards with vocab_size 5000 in their manifest."""
    import numpy as np
    from conftest import write_traceable

    root = tmp_path_factory.mktemp("traceable")
    rng = np.random.default_rng(7)
    docs = {
        "a": [int(n) for n in rng.integers(1, 90, size=40)],
        "b": [int(n) for n in rng.integers(1, 300, size=25)],
    }
    manifest = _out_of_vocabulary(write_traceable(root, docs, {"a": 0.75, "b": 0.25}), 5000)
    p = train(["--data", str(manifest), "--steps", "2", "--eval-interval", "1"], check=False)
    return manifest, p


def test_a_run_on_out_of_vocabulary_shards_stops_with_one_line(traceable_run):
    manifest, p = traceable_run
    assert p.returncode == 1, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and "IndexError" not in p.stderr
    last = p.stderr.splitlines()[-1]
    pattern = (
        r"error: (shards/[ab]/[ab]_0000[01]) \(source '[ab]'\), document (\d+): token id (\d+) "
        r"is outside the manifest's vocab_size 5000; the model's vocab_size is 5000 \(5120 "
        r"embedding rows\)\. The shards were written with another tokenizer than the "
        r"manifest's: prepare them again with one tokenizer \(tokenmill prepare --fresh\)"
    )
    match = re.fullmatch(pattern, last)
    assert match, last
    assert int(match[3]) in _where(manifest, match[1], int(match[2]))


def test_a_run_warns_of_a_held_out_slice_shorter_than_a_sample(traceable_run):
    manifest, p = traceable_run
    short = {s: n for s, n in _last_documents(manifest).items() if n < 129}
    assert short  # the fixture's last document of source a is shorter than 129 tokens
    for source, tokens in short.items():
        assert (
            f"validation: the held-out slice of source {source!r} is {tokens} tokens, shorter "
            "than one sample (129): its validation loss reads those tokens over and over. Hold "
            "out more (--valid-fraction) or leave validation out (--eval-interval 0)"
        ) in p.stderr


def _address_space(limit: int):
    """A preexec_fn capping the child's address space: an allocation past it fails in the
    child (an error) instead of growing it until the kernel's OOM killer picks a process."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return cap


def test_1b3_on_cpu_says_its_size_and_memory_before_it_is_built(prepared):
    # the 1b3 preset for the sample's 8000-token vocabulary (padded to 8064), by hand:
    # 24 layers of 12h^2 + 13h, the embedding, two LayerNorms (final, embedding)
    h = 2048
    n = 24 * (12 * h * h + 13 * h) + 8064 * h + 4 * h
    assert n == 1_225_121_792
    gb = (0.5e9 + 32 * n) / 1e9  # bf16, ZeRO-1, one process (see footprint.py)
    port = free_port()
    # 3 GB of address space: the tiny model trains in it, 1b3's fp32 weights (4.9 GB) cannot
    # be built in it, so the build fails right after the lines under test
    p = subprocess.run(
        [sys.executable, "-m", "tokenmill.trainer", "--data", str(prepared), "--model", "1b3"],
        env=dict(env(), MASTER_PORT=str(port)),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_address_space(3 * 10**9),
    )
    unlink_shm(port)
    assert p.returncode == 1, p.stderr[-3000:]
    lines = p.stderr.splitlines()
    model = next(i for i, x in enumerate(lines) if "model 1b3: 1,225" in x)
    assert lines[model].endswith(
        f"model 1b3: {n:,} parameters with vocabulary 8000 (padded to 8064) (the published "
        "1,316,000,000 is for vocab_size=50257, position=learned, embed_ln=False); alibi, gelu, "
        f"embedding LayerNorm on; seq 2048; {6 * n + 12 * 24 * h * 2048:.3g} FLOPs/token"
    )
    memory = lines[model + 1].split(" ", 1)[1]  # after the time stamp
    assert memory.startswith(
        f"model 1b3: {n:,} parameters with vocabulary 8,000; training it on CPU takes about "
        f"{gb:.1f} GB per process (32 bytes per parameter at its peak: bf16, ZeRO-1, 1 process); "
    )
    available = float(re.search(r"; ([\d.]+) GB available", memory)[1]) * 1e9
    assert memory.endswith("choose a smaller --model") == (gb * 1e9 > available)
    # then the build, which the address space refuses
    assert "can't allocate memory" in "\n".join(lines[model + 2 :])
