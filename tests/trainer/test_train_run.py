"""The DeepSpeed trainer on CPU (DS_ACCELERATOR=cpu, gloo), in real subprocesses: the tiny
model learns from a real `prepare` output, a stopped run resumes exactly, ZeRO 1/2/3 work, and
two processes see the same samples as one process with gradient accumulation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from launch import deepspeed_launcher as _launcher
from launch import env as _env
from launch import free_port as _port
from launch import metrics, train
from launch import shm_left as _shm_left
from launch import unlink_shm as _unlink_shm

from tokenmill.trainer.train import TrainConfig, deepspeed_config, lr_factor, resolve_batch

FP32 = ["--no-bf16", "--lr", "5e-3", "--min-lr", "1e-3", "--warmup", "2"]


@pytest.fixture(scope="module")
def uninterrupted(prepared, tmp_path_factory) -> Path:
    """40 steps of the tiny model, ZeRO-1, fp32, validation every 20 steps."""
    save = tmp_path_factory.mktemp("run")
    train(
        [
            "--data",
            str(prepared),
            "--steps",
            "40",
            "--zero-stage",
            "1",
            "--eval-interval",
            "20",
            "--save",
            str(save),
            *FP32,
        ]
    )
    return save


def test_tiny_model_learns_from_prepared_shards(uninterrupted):
    m = metrics(uninterrupted / "logs")
    assert sorted(m) == list(range(1, 41))
    first = sum(m[s]["loss"] for s in range(1, 6)) / 5
    last = sum(m[s]["loss"] for s in range(36, 41)) / 5
    assert first - last > 0.5, (first, last)
    assert m[40]["valid_loss"] < m[20]["valid_loss"] < 8.9  # ln(8064) = 8.995 at the start
    assert m[40]["tokens_per_s"] > 0 and m[40]["tflops_per_device"] > 0
    assert (uninterrupted / "latest").read_text().strip() == "step40"
    assert list((uninterrupted / "logs").glob("events.out.tfevents.*")), "TensorBoard log"


@pytest.mark.slow  # two training runs: ~22 s
def test_stopped_run_resumes_to_the_same_loss(prepared, uninterrupted, tmp_path):
    args = [
        "--data",
        str(prepared),
        "--steps",
        "40",
        "--zero-stage",
        "1",
        "--eval-interval",
        "20",
        "--save",
        str(tmp_path),
        *FP32,
    ]
    train([*args, "--stop-at", "20"])
    assert (tmp_path / "latest").read_text().strip() == "step20"
    p = train(args)
    assert "resumed from" in p.stderr and "at step 20" in p.stderr
    ours, ref = metrics(tmp_path / "logs"), metrics(uninterrupted / "logs")
    assert sorted(ours) == list(range(1, 41))  # the resumed run appended steps 21..40
    for step in range(21, 41):  # deterministic on CPU: exactly equal (see the slow test)
        for k in ("loss", "lr", "grad_norm", "batch"):
            assert ours[step][k] == ref[step][k], (step, k)
    assert ours[40]["valid_loss"] == ref[40]["valid_loss"]


@pytest.mark.slow  # a 2-rank and a 1-rank run: ~19 s
def test_two_processes_zero2_equal_one_process_with_accumulation(prepared, tmp_path):
    # Every rank takes its micro-batches of the same global batch: 2 processes x micro 2 see
    # the samples of 1 process x micro 2 x 2 accumulation steps, in the same order.
    common = [
        "--data",
        str(prepared),
        "--steps",
        "6",
        "--zero-stage",
        "2",
        "--micro-batch",
        "2",
        "--global-batch",
        "4",
        "--eval-interval",
        "3",
        "--log-interval",
        "1",
        *FP32,
    ]
    port = _port()
    p = train([*common, "--log-dir", str(tmp_path / "two")], nproc=2, port=port)
    # both ranks tore down (engine, barrier, process groups) and removed DeepSpeed's buffers
    assert _shm_left(port) == [] and "terminate called" not in p.stderr
    train([*common, "--log-dir", str(tmp_path / "one")])
    two, one = metrics(tmp_path / "two"), metrics(tmp_path / "one")
    for step in range(1, 7):
        assert two[step]["loss"] == pytest.approx(one[step]["loss"], abs=1e-5)
    assert two[6]["valid_loss"] == pytest.approx(one[6]["valid_loss"], abs=1e-5)
    assert two[6]["loss"] < two[1]["loss"]


def _group_alive(pgid: int) -> list[int]:
    """Processes of process group `pgid` that are not zombies."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def _checkpoint(folder: Path) -> dict:
    """Every file of a checkpoint tag, loaded: module weights, the fp32 master partitions
    and Adam moments of every rank, LR scheduler, step, data position."""
    import torch

    return {
        f.name: torch.load(f, map_location="cpu", weights_only=False)
        for f in sorted(folder.glob("*.pt"))
    }


def _differences(a, b, where: str = "") -> list[str]:
    """Where two loaded checkpoints differ: tensors bit for bit (dtype and shape too)."""
    import torch

    if torch.is_tensor(a) or torch.is_tensor(b):
        same = (
            torch.is_tensor(a)
            and torch.is_tensor(b)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
        return [] if same else [where]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} != {len(b)}"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _differences(x, y, f"{where}/{i}")
        ]
    if hasattr(a, "__dict__") and type(a) is type(b) and not isinstance(a, type):
        return _differences(vars(a), vars(b), where)  # e.g. DeepSpeed's LossScaler
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("stage", [2, 3])
def test_killed_run_resumes_exactly(prepared, tmp_path, stage):
    """2 ranks (the deepspeed launcher), ZeRO-2 or 3, bf16, checkpoints every 4 of 12 steps. Run B
    is SIGKILLed, its whole process group, inside step 6 (after checkpoint 4), then resumed:
    every step's loss, LR, grad norm, batch and validation loss, and the final weights and
    optimizer state, equal the uninterrupted run A's bit for bit. The runs are deterministic
    (same ops in the same order on the same CPU, a two-rank sum is commutative), so exact
    is what a correct resume gives; a tolerance would hide a wrong sample or a lost Adam step."""
    steps, every, killed_in = 12, 4, 6
    args = [
        "--data",
        str(prepared),
        "--steps",
        str(steps),
        "--save-interval",
        str(every),
        "--zero-stage",
        str(stage),
        "--bf16",
        "--micro-batch",
        "2",
        "--grad-accum",
        "2",
        "--eval-interval",
        "4",
        "--eval-samples",
        "8",
        "--log-interval",
        "1",
        "--lr",
        "5e-3",
        "--warmup",
        "2",
    ]
    a, b = tmp_path / "a", tmp_path / "b"
    train([*args, "--save", str(a)], nproc=2, launcher="deepspeed")
    ref = metrics(a / "logs")
    assert sorted(ref) == list(range(1, steps + 1))
    # a step's compute time (8 samples of 128 tokens); the kill lands a quarter of one after
    # step killed_in - 1 is logged
    step_s = sorted(8 * 128 / ref[s]["tokens_per_s"] for s in ref)[steps // 2]

    port = _port()
    log = open(tmp_path / "b_killed.log", "w")
    proc = subprocess.Popen(
        _launcher(2, port) + [*args, "--save", str(b)],
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the launcher and both ranks
    )
    try:
        mjson = b / "logs" / "metrics.jsonl"
        deadline = time.monotonic() + 300
        while not (mjson.exists() and f'"step": {killed_in - 1},' in mjson.read_text()):
            assert proc.poll() is None, (tmp_path / "b_killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "run B did not reach the kill point"
            time.sleep(0.005)
        time.sleep(step_s / 4)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
        deadline = time.monotonic() + 30
        while _group_alive(proc.pid):
            assert time.monotonic() < deadline, f"still alive: {_group_alive(proc.pid)}"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        _unlink_shm(port)
    killed = metrics(b / "logs")
    # the kill fell inside step killed_in: logged up to the step before, checkpoint 4 written
    assert sorted(killed) == list(range(1, killed_in)), sorted(killed)
    assert (b / "latest").read_text() == f"step{every}"
    assert not (b / f"step{2 * every}").exists()

    p = train([*args, "--save", str(b)], nproc=2, launcher="deepspeed")
    assert f"at step {every}" in p.stdout + p.stderr
    lines = [json.loads(x) for x in (b / "logs" / "metrics.jsonl").read_text().splitlines()]
    # the killed run's record of step 5 (past its checkpoint) was dropped and written again
    assert [r["step"] for r in lines] == list(range(1, steps + 1))
    ours = metrics(b / "logs")
    keys = ("loss", "lr", "grad_norm", "batch", "valid_loss")
    for step in range(1, steps + 1):
        for k in keys:
            assert ours[step].get(k) == ref[step].get(k), (
                step,
                k,
                ours[step].get(k),
                ref[step].get(k),
            )
    assert len({ref[s]["batch"] for s in ref}) == steps  # each step drew other samples
    assert sum("valid_loss" in ref[s] for s in ref) == steps // every
    assert ref[steps]["loss"] < ref[1]["loss"]
    for tag in (f"step{2 * every}", f"step{steps}"):
        mine, theirs = _checkpoint(b / tag), _checkpoint(a / tag)
        assert sorted(mine) == sorted(theirs), sorted(mine)
        assert sum("optim_states" in f for f in mine) == 2, sorted(mine)  # one per rank
        assert _differences(mine, theirs) == [], tag


def test_an_error_after_start_still_tears_down(prepared, tmp_path):
    # fp16 is refused after the process group is up: both ranks report it in one line, exit 1
    # (not an abort at exit) and tear down (DeepSpeed's shared-memory buffers removed). The
    # ranks are started as torchrun would (same environment) but without it: torchrun
    # SIGTERMs the other ranks as soon as one exits non-zero, so their own exit is unseen.
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({"fp16": {"enabled": True}}))
    port = _port()
    args = ["--data", str(prepared), "--deepspeed", str(ds), "--no-bf16", "--steps", "2"]
    procs = []
    for rank in range(2):
        env = dict(
            _env(),
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE="2",
            LOCAL_WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        cmd = [sys.executable, "-m", "tokenmill.trainer", *args]
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outs = [p.communicate(timeout=300) for p in procs]
    error = "error: fp16 is not supported on CPU: use --bf16 or --no-bf16 (fp32)"
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 1, err[-3000:]  # -6 would be SIGABRT
        assert error in err.splitlines() and "terminate called" not in err, err[-3000:]
    assert _shm_left(port) == []


def test_batch_sizes_resolve_or_fail_clearly():
    assert resolve_batch(None, None, None, 2) == (4, 8, 1)
    assert resolve_batch(2, 16, None, 2) == (2, 16, 4)
    assert resolve_batch(None, 16, 2, 2) == (4, 16, 2)
    assert resolve_batch(3, None, 2, 2) == (3, 12, 2)
    with pytest.raises(ValueError, match="pick sizes that divide"):
        resolve_batch(3, 16, None, 2)


def test_deepspeed_json_then_flags(tmp_path):
    ds = tmp_path / "ds.json"
    ds.write_text(
        json.dumps(
            {
                "train_batch_size": 32,
                "train_micro_batch_size_per_gpu": 8,
                "zero_optimization": {"stage": 2, "overlap_comm": True},
                "gradient_clipping": 0.5,
            }
        )
    )
    cfg = deepspeed_config(TrainConfig(data="x", deepspeed_config=str(ds)), world=2)
    assert cfg["gradient_accumulation_steps"] == 2 and cfg["zero_optimization"]["stage"] == 2
    assert cfg["gradient_clipping"] == 0.5 and cfg["bf16"] == {"enabled": True}
    cfg = deepspeed_config(
        TrainConfig(data="x", deepspeed_config=str(ds), zero_stage=1, bf16=False, micro_batch=4),
        world=2,
    )
    assert cfg["zero_optimization"] == {"stage": 1, "overlap_comm": True}
    assert cfg["gradient_accumulation_steps"] == 4 and cfg["bf16"] == {"enabled": False}
    ds.write_text(json.dumps({"optimizer": {"type": "Adam"}}))
    with pytest.raises(ValueError, match="remove the 'optimizer' section"):
        deepspeed_config(TrainConfig(data="x", deepspeed_config=str(ds)), world=1)


def test_lr_warms_up_then_follows_the_cosine():
    lrs = [2e-4 * lr_factor(s, 10, 110, 2e-4, 1e-5) for s in range(120)]
    assert lrs[0] == pytest.approx(2e-5) and lrs[9] == pytest.approx(2e-4)
    assert lrs[60] == pytest.approx((2e-4 + 1e-5) / 2)
    assert lrs[110] == pytest.approx(1e-5) and lrs[119] == pytest.approx(1e-5)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))


def test_command_help_does_not_import_torch():
    code = (
        "import sys, typer; from tokenmill.trainer.cli import train; "
        "assert 'torch' not in sys.modules and 'deepspeed' not in sys.modules; "
        "sys.argv = ['train', '--help']; typer.run(train)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "--deepspeed" in p.stdout and "--zero-stage" in p.stdout


def test_token_counts_parse():
    from tokenmill.trainer.cli import parse_count

    assert parse_count("375M") == 375_000_000 and parse_count("112B") == 112 * 10**9
    assert parse_count("4096") == 4096 and parse_count("1.5k") == 1500
