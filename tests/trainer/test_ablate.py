"""`tokenmill ablate`: a spec is checked whole before any variant trains (types, names, train
options, manifests, sources, tokenizers); every variant trains on the same tokens with the same
seed and is validated on the same held-out samples; a rerun skips finished variants, a killed
one resumes, a changed spec or a busy variant is refused.

The fast tests check specs and plans; the real runs (tiny models on the bundled sample through
`tokenmill train` subprocesses, DeepSpeed on CPU, and the harness on a bundled task) are slow."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tokenmill.cli import app
from tokenmill.trainer.ablate import AblationError, load_spec, plan
from tokenmill.trainer.cli import parse_mixture

TRAIN = {"bf16": False, "zero_stage": 0, "log_interval": 5}


def write_spec(folder: Path, data: Path, **over) -> Path:
    spec = {
        "name": "tiny-sample",
        "base": {"data": str(data), "model": "tiny", "tokens": "10K", "seed": 7, "train": TRAIN},
        "validation": {"fraction": 0.05, "samples": 8, "interval": 5},
        "variants": {"c4": {"sources": ["c4"]}, "learned": {"position": "learned"}},
    }
    for key, value in over.items():
        section, _, field = key.partition("__")
        if field:
            spec[section][field] = value
        else:
            spec[section] = value
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def test_a_plan_gives_every_variant_the_same_tokens_seed_and_validation(prepared, tmp_path):
    spec = load_spec(write_spec(tmp_path, prepared.parent))
    planned = plan(spec, tmp_path / "out")
    assert [p.name for p in planned] == ["c4", "learned"]
    # 10K tokens at the tiny preset's 4 sequences of 128 tokens: ceil(10000 / 512) = 20 steps
    for p in planned:
        s = p.settings
        assert (s["steps"], s["global_batch"], s["seed"], s["model"]) == (20, 4, 7, "tiny")
        assert s["valid_data"] == str(prepared) and s["valid_fraction"] == 0.05
        assert s["save"] == str((tmp_path / "out" / "variants" / p.name / "ckpt").resolve())
        assert p.command[1:4] == ["-m", "tokenmill", "train"]
    c4, learned = (p.settings for p in planned)
    assert c4["mixture"] == {"c4": 1.0} and learned["mixture"] is None
    assert c4["position"] is None and learned["position"] == "learned"
    # the command carries the mixture and the switches as `tokenmill train` flags
    cmd = planned[0].command
    assert cmd[cmd.index("--mixture") + 1] == "c4=1.0"
    assert "--no-bf16" in cmd and cmd[cmd.index("--zero-stage") + 1] == "0"
    assert planned[1].command[planned[1].command.index("--position") + 1] == "learned"


def test_yaml_numbers_without_a_dot_are_numbers_for_train_options(prepared, tmp_path):
    # PyYAML reads 3e-3 as the string "3e-3"; a float option takes it as the number
    train = {**TRAIN, "lr": "3e-3", "warmup_tokens": "1K"}
    spec = load_spec(write_spec(tmp_path, prepared.parent, base__train=train))
    p = plan(spec, tmp_path / "out")[0]
    assert p.settings["lr"] == 0.003 and p.settings["warmup_tokens"] == "1K"


@pytest.mark.parametrize(
    "over, message",
    [
        ({"base__tokens": 0}, "not one step"),
        ({"base__model": "2b"}, "unknown model '2b'"),
        ({"base__processes": "2"}, r"base\.processes: Input should be a valid integer"),
        ({"base__tokens": True}, r"base\.tokens"),
        ({"base__train": {"lr": "fast"}}, r"base\.train\.lr: 'fast' is not a valid value"),
        ({"base__train": {"bf16": 1}}, r"base\.train\.bf16: 1 is not a valid value"),
        ({"base__train": {"zero_stage": 1.5}}, r"base\.train\.zero_stage: 1\.5"),
        ({"base__train": {"steps": 10}}, "steps are the spec's own"),
        ({"base__train": {"learning_rate": 1.0}}, "unknown `tokenmill train` option"),
        ({"base__train": {"zero_stage": 5}}, "variant c4: --zero-stage: must be 0, 1, 2 or 3"),
        ({"variants": {}}, "give at least one variant"),
        ({"variants": {"a/b": {}}}, "names a folder"),
        ({"variants": {"x": {"sourcs": ["c4"]}}}, r"variants\.x\.sourcs: Extra inputs"),
        ({"variants": {"x": {"sources": []}}}, "at least one source"),
        ({"variants": {"x": {"position": "sinusoid"}}}, r"variants\.x\.position"),
        ({"variants": {"x": {"sources": ["c4", "wiki"]}}}, "variant x: .*no source 'wiki'"),
        ({"variants": {"x": {"data": "nowhere"}}}, "variant x: .*nowhere"),
        ({"validation": {"fraction": 0}}, r"validation\.fraction"),
        ({"validation": {"data": "nowhere"}}, "validation data: .*nowhere"),
        ({"zero_shot": {"dtype": "int8"}}, r"zero_shot\.dtype"),
    ],
)
def test_a_bad_spec_is_refused_before_anything_runs(prepared, tmp_path, over, message):
    with pytest.raises(AblationError, match=message):
        plan(load_spec(write_spec(tmp_path, prepared.parent, **over)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_variant_on_shards_of_another_tokenizer_is_refused(prepared, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(prepared.parent, other, ignore=shutil.ignore_patterns("work"))
    tok = json.loads((other / "tokenizer.json").read_text())
    tok["added_tokens"][0]["content"] = "<|other|>"
    (other / "tokenizer.json").write_text(json.dumps(tok))
    path = write_spec(tmp_path, prepared.parent, variants={"pile": {"data": str(other)}})
    with pytest.raises(AblationError, match="variant pile: .*written with another tokenizer"):
        plan(load_spec(path), tmp_path / "out")


def test_spec_paths_are_relative_to_the_spec(prepared, tmp_path):
    here = tmp_path / "specs"
    here.mkdir()
    rel = os.path.relpath(prepared.parent, here)
    spec = load_spec(write_spec(here, Path(rel)))
    assert spec.base.data == str(prepared.resolve())


def test_plan_prints_gpu_hours_from_the_models_size(prepared, tmp_path):
    from tokenmill.shards.plan import GPUS
    from tokenmill.trainer.model import count_params
    from tokenmill.trainer.presets import preset

    path = write_spec(tmp_path, prepared.parent, base__tokens="112B", base__model="1b3")
    got = CliRunner().invoke(app, ["ablate", str(path), "--out", str(tmp_path / "o"), "--plan"])
    assert got.exit_code == 0, got.output
    vocab = json.loads(prepared.read_text())["tokenizer"]["vocab_size"]
    n = count_params(preset("1b3", vocab_size=vocab, position="learned"))
    hours = 6 * n * 112e9 / (GPUS["a100-80gb"]["achieved_tflops"] * 1e12) / 3600
    assert f"{hours:,.0f}" in got.output
    assert "--position learned" in got.output and "--mixture c4=1.0" in got.output
    assert not (tmp_path / "o").exists(), "--plan trains nothing"


def test_unknown_variant_and_mixture_text_are_refused(prepared, tmp_path):
    path = write_spec(tmp_path, prepared.parent)
    got = CliRunner().invoke(
        app, ["ablate", str(path), "--out", str(tmp_path / "o"), "--variant", "gelu"]
    )
    assert got.exit_code == 1 and "--variant gelu: not in the spec" in got.output
    assert parse_mixture("oscar=0.5, c4") == {"oscar": 0.5, "c4": 1.0}
    for bad in ("c4=x", "=1", "c4=1,c4=2", ","):
        with pytest.raises(ValueError, match="--mixture"):
            parse_mixture(bad)


# ---- real runs ---------------------------------------------------------------------------------


def _ablate(spec: Path, out: Path, *extra: str, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "tokenmill", "ablate", str(spec), "--out", str(out), "-q"]
    return subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=900, **kw)


@pytest.fixture(scope="module")
def ablation(prepared, tmp_path_factory):
    """Two variants of the tiny model on 10K tokens of the bundled sample (c4 alone; learned
    positions), validated every 5 steps, scored on tokenmill_cloze."""
    root = tmp_path_factory.mktemp("ablate")
    spec = write_spec(
        root,
        prepared.parent,
        base__train={**TRAIN, "lr": 3e-3},
        zero_shot={"tasks": ["tokenmill_cloze"], "batch_size": 8},
    )
    got = _ablate(spec, root / "out")
    assert got.returncode == 0, got.stdout + got.stderr
    return spec, root / "out", got


def _valid_loss(ckpt: Path, batch: np.ndarray) -> float:
    """Mean next-token loss of the checkpoint's fp32 weights on `batch` (seq + 1 tokens)."""
    import torch

    from tokenmill.eval.model import TokenmillLM

    model = TokenmillLM.from_checkpoint(ckpt, None, "cpu", 8, "float32").model
    x = torch.from_numpy(batch)
    with torch.no_grad():
        return model(x[:, :-1], x[:, 1:]).item()


@pytest.mark.slow
def test_every_variant_is_validated_on_the_same_held_out_samples(ablation, prepared):
    from tokenmill.trainer.data import ManifestData

    _, out, _ = ablation
    common = ManifestData(prepared, 128, seed=7, valid_fraction=0.05).valid_batch(8)
    c4_only = ManifestData(prepared, 128, 7, 0.05, weights={"c4": 1.0}).valid_batch(8)
    assert not np.array_equal(common, c4_only)
    summary = json.loads((out / "ablation.json").read_text())
    for v in summary["variants"]:
        r = v["result"]
        ckpt = out / "variants" / v["name"] / "ckpt"
        # the trainer's last validation loss is the checkpoint's loss on the common samples
        assert r["valid_loss"] == pytest.approx(_valid_loss(ckpt, common), abs=1e-4)
        curve = [json.loads(x) for x in (ckpt / "logs" / "metrics.jsonl").open()]
        assert [c["step"] for c in curve] == list(range(1, 21)), "20 steps, each once"
        assert [c["step"] for c in curve if "valid_loss" in c] == [5, 10, 15, 20]
        assert r["tokens"] == 20 * 4 * 128 and r["steps"] == 20
    c4 = _valid_loss(out / "variants" / "c4" / "ckpt", c4_only)
    assert summary["variants"][0]["result"]["valid_loss"] != pytest.approx(c4, abs=1e-4)


@pytest.mark.slow
def test_zero_shot_results_and_the_page(ablation):
    from tokenmill.eval.run import evaluate

    _, out, got = ablation
    summary = json.loads((out / "ablation.json").read_text())
    page = (out / "ablation.html").read_text()
    for v in summary["variants"]:
        r = v["result"]
        # the harness on the variant's checkpoint, run here again, gives its numbers
        again = evaluate(out / "variants" / v["name"] / "ckpt", ["tokenmill_cloze"], batch_size=4)
        acc = again.results["results"]["tokenmill_cloze"]["acc,none"]
        assert r["zero_shot"]["tokenmill_cloze"]["acc"] == acc == r["mean_accuracy"]
        harness = json.loads((out / "variants" / v["name"] / "zero_shot.json").read_text())
        assert harness["results"]["tokenmill_cloze"]["acc,none"] == acc
        assert f"{r['valid_loss']:.4f}" in page and f"{r['valid_loss']:.4f}" in got.stdout
    assert page.count("<polyline") == 4, "training and validation curves of two variants"
    assert "Content-Security-Policy" in page and "<script" not in page
    assert page.count("<tr") - 1 >= 2 and 'id="ablation-results"' in page


@pytest.mark.slow
def test_a_rerun_skips_finished_variants_and_a_changed_spec_is_refused(ablation, tmp_path):
    spec, out, _ = ablation
    before = {p: p.stat().st_mtime_ns for p in out.glob("variants/*/result.json")}
    t0 = time.time()
    again = _ablate(spec, out)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("finished earlier: skipped") == 2
    assert {p: p.stat().st_mtime_ns for p in out.glob("variants/*/result.json")} == before
    assert time.time() - t0 < 60, "nothing trained again"
    changed = yaml.safe_load(spec.read_text())
    changed["base"]["seed"] = 8
    other = tmp_path / "changed.yaml"
    other.write_text(yaml.safe_dump(changed))
    refused = _ablate(other, out, "--variant", "c4")
    assert refused.returncode == 1
    assert "variant c4 in" in refused.stderr and "other settings" in refused.stderr


@pytest.mark.slow
def test_a_busy_variant_is_refused_and_a_killed_one_resumes(prepared, tmp_path):
    import fcntl

    spec = write_spec(
        tmp_path,
        prepared.parent,
        base__tokens="20K",
        base__processes=2,  # under torchrun, killed as a process group
        base__train={**TRAIN, "save_interval": 10},
        variants={"c4": {"sources": ["c4"]}},
    )
    out = tmp_path / "out"
    lock = out / "variants" / "c4" / "lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "a+") as held:
        held.write("pid 1 on a node\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = _ablate(spec, out)
    assert busy.returncode == 1 and "variant c4 is being run by pid 1 on a node" in busy.stderr
    # killed after its first checkpoint (step 10 of 40), then run again
    cmd = [sys.executable, "-m", "tokenmill", "ablate", str(spec), "--out", str(out), "-q"]
    proc = subprocess.Popen(cmd, start_new_session=True)
    ckpt = out / "variants" / "c4" / "ckpt"
    deadline = time.time() + 300
    while not (ckpt / "latest").exists() and time.time() < deadline:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (ckpt / "latest").read_text().strip() in ("step10", "step20", "step30")
    assert not (out / "variants" / "c4" / "result.json").exists()
    resumed = _ablate(spec, out)
    assert resumed.returncode == 0, resumed.stderr
    log = (out / "variants" / "c4" / "train.log").read_text()
    assert "resumed from" in log
    curve = [json.loads(x) for x in (ckpt / "logs" / "metrics.jsonl").open()]
    assert [c["step"] for c in curve] == list(range(1, 41)), "each step logged once"
    assert json.loads((out / "variants" / "c4" / "result.json").read_text())["steps"] == 40
    assert "--nproc-per-node=2" in (out / "variants" / "c4" / "command.txt").read_text()


def test_the_papers_example_spec_plans_and_its_comment_tells_its_cost(prepared, tmp_path):
    from tokenmill.trainer.ablate import gpu_hours

    example = Path(__file__).parents[2] / "examples" / "ablation-1b3-112b.yaml"
    raw = yaml.safe_load(example.read_text())
    raw["base"]["data"] = str(prepared.parent)  # the bundled sample has oscar, c4 and pile
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = load_spec(path)
    planned = plan(spec, tmp_path / "out")
    assert len(planned) == 7 and {p.settings["steps"] for p in planned} == {106_812}
    assert {p.settings["global_batch"] for p in planned} == {512}
    assert all(p.command[2:4] == ["torch.distributed.run", "--standalone"] for p in planned)
    # the comment's figures: ~1,640 A100-hours per variant at 150 TFLOP/s with GPT-2's
    # vocabulary (the sample's is smaller), ~11,500 for all
    text = example.read_text()
    assert "about 1,640 A100-hours" in text and "~11,500" in text
    hours = gpu_hours(spec, "a100-80gb", None)
    per_param = 6 * 112e9 / 150e12 / 3600
    assert list(hours["variants"]) == [p.name for p in planned]
    for row in hours["variants"].values():
        assert row["gpu_hours"] == pytest.approx(row["params"] * per_param)
    from tokenmill.trainer.model import count_params
    from tokenmill.trainer.presets import preset

    n = count_params(preset("1b3", vocab_size=50257, position="learned", embed_ln=False))
    assert round(n * per_param, -1) == 1640 and round(7 * n * per_param, -2) == 11500


@pytest.mark.slow
def test_the_slurm_script_runs_the_array_tasks_variant(prepared, tmp_path):
    script = Path(__file__).parents[2] / "deploy" / "ablate.sbatch"
    spec = write_spec(tmp_path, prepared.parent)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run = [
        "bash", str(script), str(spec), str(tmp_path / "out"), "--plan"
    ]  # fmt: skip
    got = subprocess.run(
        run, env={**env, "SLURM_ARRAY_TASK_ID": "1"}, capture_output=True, text=True
    )
    assert got.returncode == 0, got.stderr
    assert "learned:" in got.stdout and "c4:" not in got.stdout  # variant 1 of [c4, learned]
    beyond = subprocess.run(
        run, env={**env, "SLURM_ARRAY_TASK_ID": "2"}, capture_output=True, text=True
    )
    assert beyond.returncode == 1 and "--index 2: the spec has 2 variants (0-1)" in beyond.stderr
    env.pop("SLURM_ARRAY_TASK_ID", None)
    alone = subprocess.run(run, env=env, capture_output=True, text=True)
    assert alone.returncode != 0 and "submit as an array job" in alone.stderr


def test_a_key_given_twice_is_refused(prepared, tmp_path):
    path = write_spec(tmp_path, prepared.parent)
    text = path.read_text().replace("variants:\n", "variants:\n  c4: {sources: [pile]}\n", 1)
    path.write_text(text)
    with pytest.raises(AblationError, match="key 'c4' given twice"):
        load_spec(path)


def test_the_page_leaves_out_a_result_of_other_settings(prepared, tmp_path):
    from tokenmill.trainer.ablate import summarize, variant_key

    spec = load_spec(write_spec(tmp_path, prepared.parent))
    planned = plan(spec, tmp_path / "out")
    for p, key in zip(planned, [variant_key(planned[0], spec), "from-another-spec"], strict=True):
        p.folder.mkdir(parents=True)
        result = {"digest": key, "valid_loss": 7.5, "loss": 7.0, "zero_shot": {}}
        (p.folder / "result.json").write_text(json.dumps(result))
    s = summarize(spec, planned)
    assert [v["result"] is not None for v in s["variants"]] == [True, False]
    assert [v["stale"] for v in s["variants"]] == [False, True]
    from tokenmill.report.ablation import render

    page = render(s)
    assert page.count("7.5000") == 1 and "run with other settings" in page
