"""Issue 18's done-when, as a user runs it: prepare the bundled sample, train `tiny` (the
defaults: 100 steps, loss down by 10% or more), export it, and evaluate it on the bundled
offline tasks both with `tokenmill eval` on the checkpoint and with the harness's own CLI
(`lm-eval run --model hf`) on the export: the same accuracy, per-item log-likelihoods within
1e-3, the same generations. Also the paper's baseline architecture (learned positions, no
embedding LayerNorm), exported as GPT-2. Slow: a prepare and two training runs (~4 min)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("lm_eval")
pytest.importorskip("transformers")

from tokenmill.eval.run import TASKS_DIR  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

TASKS = ("tokenmill_cloze", "tokenmill_ppl", "tokenmill_complete")


def _run(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env["HF_DATASETS_OFFLINE"] = "1"
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=cwd)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return p


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    from tokenmill.config import load_config
    from tokenmill.pipelines.prepare import prepare

    out = tmp_path_factory.mktemp("sample")
    prepare(load_config(), out, workers=1, quiet=True)
    return out / "manifest.json"


def _samples(path: Path) -> dict[int, dict]:
    return {r["doc_id"]: r for r in map(json.loads, path.read_text().splitlines())}


@pytest.mark.parametrize(
    "variant, flags, steps, architecture",
    [
        ("default", [], 100, "BloomForCausalLM"),
        ("baseline", ["--position", "learned", "--no-embed-ln"], 40, "GPT2LMHeadModel"),
    ],
)
def test_train_export_evaluate_two_ways(sample, tmp_path, variant, flags, steps, architecture):
    save, hf = tmp_path / "save", tmp_path / "hf"
    tm = [sys.executable, "-m", "tokenmill"]
    _run(*tm, "train", "--data", str(sample), "--steps", str(steps), "--save", str(save), *flags)
    losses = [json.loads(line)["loss"] for line in (save / "logs/metrics.jsonl").open()]
    assert len(losses) == steps
    if variant == "default":  # the issue's: the loss falls by 10% or more in 100 steps
        first, last = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
        assert last < 0.9 * first, (first, last)

    p = _run(*tm, "export", str(save), "--out", str(hf))
    assert architecture in p.stdout

    ours = tmp_path / "ours" / "results.json"
    p = _run(
        *tm, "eval", str(save), "--tasks", "tokenmill-sample", "--batch-size", "8",
        "--out", str(ours), "--log-samples",
    )  # fmt: skip
    assert "tokenmill_cloze" in p.stdout

    theirs = tmp_path / "theirs"
    _run(
        sys.executable, "-m", "lm_eval", "run", "--model", "hf",
        "--model_args", f"pretrained={hf},dtype=float32", "--tasks", "tokenmill-sample",
        "--include_path", str(TASKS_DIR), "--device", "cpu", "--batch_size", "4",
        "--log_samples", "--output_path", str(theirs), "--seed", "0",
    )  # fmt: skip
    (their_results,) = theirs.rglob("results_*.json")
    a_res = json.loads(ours.read_text())["results"]
    b_res = json.loads(their_results.read_text())["results"]
    assert a_res["tokenmill_cloze"]["acc,none"] == b_res["tokenmill_cloze"]["acc,none"]
    assert a_res["tokenmill_cloze"]["acc_norm,none"] == b_res["tokenmill_cloze"]["acc_norm,none"]

    worst = {}
    for task in TASKS:
        a = _samples(ours.parent / f"samples_{task}.jsonl")
        (b_path,) = theirs.rglob(f"samples_{task}_*.jsonl")
        b = _samples(b_path)
        assert sorted(a) == sorted(b) == list(range(24)), task
        if task == "tokenmill_complete":
            assert {d: s["resps"] for d, s in a.items()} == {d: s["resps"] for d, s in b.items()}
            continue
        # both write responses as strings: [[ll, is_greedy]] per choice, [ll] per text
        pairs = [(x, y) for d in a for x, y in zip(a[d]["resps"], b[d]["resps"], strict=True)]
        if task == "tokenmill_cloze":
            assert all(x[0][1] == y[0][1] for x, y in pairs)  # is_greedy
            pairs = [(x[0], y[0]) for x, y in pairs]
        worst[task] = max(abs(float(x[0]) - float(y[0])) for x, y in pairs)
    assert worst["tokenmill_cloze"] < 1e-3 and worst["tokenmill_ppl"] < 1e-3, worst
    print(f"{variant}: accuracy {a_res['tokenmill_cloze']['acc,none']:.4f}, worst |dLL| {worst}")
