"""The DeepSpeed trainer on CPU (DS_ACCELERATOR=cpu, gloo), in real subprocesses: the tiny
model learns from a real `prepare` output, a stopped run resumes exactly, ZeRO 1/2/3 work, and
two processes see the same samples as one process with gradient accumulation."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tokenmill.trainer.train import TrainConfig, deepspeed_config, lr_factor, resolve_batch

FP32 = ["--no-bf16", "--lr", "5e-3", "--min-lr", "1e-3", "--warmup", "2"]


def _env() -> dict:
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("RANK", None)
    return env


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(
    args: list[str], nproc: int = 1, launcher: str = "torchrun"
) -> subprocess.CompletedProcess:
    if nproc == 1:
        cmd = [sys.executable, "-m", "tokenmill.trainer"]
    elif launcher == "torchrun":
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc-per-node={nproc}",
            f"--master-port={_port()}",
            "-m",
            "tokenmill.trainer",
        ]
    else:
        cmd = [
            str(Path(sys.executable).parent / "deepspeed"),
            f"--num_gpus={nproc}",
            f"--master_port={_port()}",
            "--module",
            "tokenmill.trainer",
        ]
    p = subprocess.run(cmd + args, env=_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return p


def metrics(folder: Path) -> dict[int, dict]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, lines)}


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
    for step in (21, 30, 40):
        assert abs(ours[step]["loss"] - ref[step]["loss"]) <= 1e-6, step
    assert abs(ours[40]["valid_loss"] - ref[40]["valid_loss"]) <= 1e-6


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
    train([*common, "--log-dir", str(tmp_path / "two")], nproc=2)
    train([*common, "--log-dir", str(tmp_path / "one")])
    two, one = metrics(tmp_path / "two"), metrics(tmp_path / "one")
    for step in range(1, 7):
        assert two[step]["loss"] == pytest.approx(one[step]["loss"], abs=1e-5)
    assert two[6]["valid_loss"] == pytest.approx(one[6]["valid_loss"], abs=1e-5)
    assert two[6]["loss"] < two[1]["loss"]


@pytest.mark.slow
@pytest.mark.parametrize("stage", [0, 3])
def test_deepspeed_launcher_bf16_and_resume(prepared, tmp_path, stage):
    args = [
        "--data",
        str(prepared),
        "--steps",
        "8",
        "--zero-stage",
        str(stage),
        "--bf16",
        "--micro-batch",
        "2",
        "--eval-interval",
        "4",
        "--save",
        str(tmp_path),
        "--lr",
        "5e-3",
        "--warmup",
        "2",
    ]
    train([*args, "--stop-at", "4"], nproc=2, launcher="deepspeed")
    p = train(args, nproc=2, launcher="deepspeed")
    assert "at step 4" in p.stdout + p.stderr
    m = metrics(tmp_path / "logs")
    assert sorted(m) == list(range(1, 9)) and m[8]["loss"] < m[1]["loss"]


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
