"""`tokenmill eval`: the checkpoint's answers to lm-evaluation-harness equal those of the
harness's own `hf` backend on `tokenmill export`'s folder (the independent oracle: transformers'
BloomForCausalLM and the harness's HFLM), item by item, for the three request types, on the
bundled offline tasks.

The model is tiny with random, sharp weights (tests/tmcheckpoints.py) and seq_len 32, so the
paths that differ from a plain forward pass run on most items: contexts cut on the left,
perplexity over several rolling windows, generation that leaves room for its tokens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tmcheckpoints import sharp_gpt, train_tokenizer, write_checkpoint

torch = pytest.importorskip("torch")
pytest.importorskip("lm_eval")
pytest.importorskip("transformers")

from tokenmill.eval.run import TASKS_DIR, EvalError, evaluate, task_manager  # noqa: E402
from tokenmill.trainer.export import export  # noqa: E402
from tokenmill.trainer.model import GPTConfig  # noqa: E402

TASKS = ["tokenmill_cloze", "tokenmill_ppl", "tokenmill_complete"]
SEED = dict(random_seed=0, numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    """(SAVE, its export): a sharp tiny BLOOM-architecture model, seq_len 32."""
    root = tmp_path_factory.mktemp("ckpt")
    tok = train_tokenizer(root / "tokenizer.json")
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tok)).get_vocab_size()
    cfg = GPTConfig(n_layer=2, n_embd=64, n_head=4, seq_len=32, vocab_size=vocab)
    write_checkpoint(root / "save", sharp_gpt(cfg, seed=3), tok)
    export(root / "save", root / "hf")
    return root / "save", root / "hf"


@pytest.fixture(scope="module")
def both(checkpoint):
    """The three tasks through tokenmill eval and through the harness's hf backend."""
    from lm_eval import simple_evaluate

    save, hf = checkpoint
    ours = evaluate(save, TASKS, log_samples=True, batch_size=5)
    theirs = simple_evaluate(
        model="hf",
        model_args=f"pretrained={hf},dtype=float32",
        tasks=TASKS,
        task_manager=task_manager(TASKS, []),
        device="cpu",
        batch_size=1,
        log_samples=True,
        **SEED,
    )
    return ours, theirs


def _by_doc(samples: list[dict]) -> dict[int, dict]:
    return {s["doc_id"]: s for s in samples}


def test_loglikelihoods_equal_the_hf_backends(both):
    ours, theirs = both
    a, b = _by_doc(ours.samples["tokenmill_cloze"]), _by_doc(theirs["samples"]["tokenmill_cloze"])
    assert sorted(a) == sorted(b) == list(range(24))
    diffs, spread = [], []
    for doc in a:
        ll_a = [r[0][0] for r in a[doc]["resps"]]
        ll_b = [r[0][0] for r in b[doc]["resps"]]
        assert [r[0][1] for r in a[doc]["resps"]] == [r[0][1] for r in b[doc]["resps"]]
        diffs += [abs(x - y) for x, y in zip(ll_a, ll_b, strict=True)]
        spread.append(max(ll_a) - min(ll_a))
        assert a[doc]["acc"] == b[doc]["acc"] and a[doc]["acc_norm"] == b[doc]["acc_norm"]
    assert max(diffs) < 1e-3, max(diffs)
    assert min(spread) > 0.1  # the choices are told apart by far more than the tolerance
    for metric in ("acc,none", "acc_norm,none"):
        assert (
            ours.results["results"]["tokenmill_cloze"][metric]
            == theirs["results"]["tokenmill_cloze"][metric]
        )


def test_rolling_loglikelihoods_equal_the_hf_backends(both, checkpoint):
    from tokenizers import Tokenizer

    ours, theirs = both
    a, b = _by_doc(ours.samples["tokenmill_ppl"]), _by_doc(theirs["samples"]["tokenmill_ppl"])
    assert sorted(a) == sorted(b) == list(range(24))
    diffs = [abs(a[d]["resps"][0][0] - b[d]["resps"][0][0]) for d in a]
    assert max(diffs) < 1e-3, max(diffs)
    # most paragraphs take several windows of 32 tokens
    tok = Tokenizer.from_file(str(checkpoint[0] / "step7/tokenizer.json"))
    assert sum(len(tok.encode(a[d]["doc"]["text"]).ids) > 2 * 32 for d in a) >= 12
    for metric in ("word_perplexity,none", "byte_perplexity,none", "bits_per_byte,none"):
        x = ours.results["results"]["tokenmill_ppl"][metric]
        y = theirs["results"]["tokenmill_ppl"][metric]
        assert x == pytest.approx(y, rel=1e-5)


def test_greedy_generations_equal_the_hf_backends(both):
    ours, theirs = both
    a = _by_doc(ours.samples["tokenmill_complete"])
    b = _by_doc(theirs["samples"]["tokenmill_complete"])
    assert {d: s["resps"] for d, s in a.items()} == {d: s["resps"] for d, s in b.items()}
    assert sum(bool(s["resps"][0][0].strip()) for s in a.values()) >= 12  # not all empty
    assert (
        ours.results["results"]["tokenmill_complete"]["exact_match,remove_whitespace"]
        == theirs["results"]["tokenmill_complete"]["exact_match,remove_whitespace"]
    )


def test_loglikelihood_is_the_models_own(checkpoint):
    """One request computed by hand from tokenmill's GPT: the log-probabilities of the
    continuation's tokens after the context, read at the right positions."""
    import torch.nn.functional as F
    from lm_eval.api.instance import Instance

    from tokenmill.eval.model import TokenmillLM

    save, _ = checkpoint
    lm = TokenmillLM.from_checkpoint(save, batch_size=2)
    context, continuation = "The value may be", " approximated in the case"
    ctx = lm.tokenizer.encode(context).ids
    whole = lm.tokenizer.encode(context + continuation).ids
    cont = whole[len(ctx) :]
    assert whole[: len(ctx)] == ctx and cont
    with torch.no_grad():
        logp = F.log_softmax(lm.model(torch.tensor([whole[:-1]])), -1)[0]
    expected = sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont))
    requests = [
        Instance("loglikelihood", {}, (context, continuation), 0),
        Instance("loglikelihood", {}, ("", context), 1),  # empty context: after the eod token
    ]
    (ll, _), (ll_empty, _) = lm.loglikelihood(requests, disable_tqdm=True)
    assert ll == pytest.approx(expected, abs=1e-4)
    with torch.no_grad():
        logp = F.log_softmax(lm.model(torch.tensor([[lm.eot_token_id, *ctx[:-1]]])), -1)[0]
    assert ll_empty == pytest.approx(sum(logp[i, t].item() for i, t in enumerate(ctx)), abs=1e-4)


def test_a_local_json_task_runs_offline(checkpoint, tmp_path, monkeypatch):
    """A task of the user's: `dataset_path: json` with an absolute `data_files` path, found
    through --include-path, with the Hub switched off."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    items = [
        {"q": "Flat is better than", "choices": ["nested", "ugly", "never"], "gold": 0},
        {"q": "Beautiful is better than", "choices": ["dense", "ugly", "implicit"], "gold": 1},
        {"q": "Simple is better than", "choices": ["nested", "never", "complex"], "gold": 2},
    ]
    data = tmp_path / "zen.jsonl"
    data.write_text("".join(json.dumps(i) + "\n" for i in items))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "zen.yaml").write_text(
        "task: zen_cloze\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n  cache_dir: {tmp_path / 'cache'}\n"
        "output_type: multiple_choice\n"
        "test_split: test\n"
        'doc_to_text: "{{q}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{gold}}"\n'
        "metric_list:\n  - metric: acc\n"
    )
    save, _ = checkpoint
    done = evaluate(save, ["zen_cloze"], [tasks], log_samples=True)
    samples = done.samples["zen_cloze"]
    assert [s["doc"]["q"] for s in sorted(samples, key=lambda s: s["doc_id"])] == [
        i["q"] for i in items
    ]
    # acc is the share of items whose gold choice has the highest log-likelihood
    right = [max(range(3), key=lambda c: s["resps"][c][0][0]) == s["doc"]["gold"] for s in samples]
    assert done.results["results"]["zen_cloze"]["acc,none"] == pytest.approx(sum(right) / 3)


@pytest.mark.slow  # indexes the harness's ~10,000 task YAMLs: ~19 s
def test_task_names_resolve_locally_or_in_the_harness():
    # the bundled tasks need no index of the harness's own
    assert "arc_easy" not in task_manager(["tokenmill-sample"], []).task_index
    # the paper's group: every member is a task of the installed harness
    manager = task_manager(["bigscience-zero-shot"], [])
    group = manager.task_index["bigscience-zero-shot"].cfg
    assert len(group["task"]) == 28 and len(set(group["task"])) == 28
    for name in group["task"]:
        assert name in manager.task_index, name
        assert manager.task_index[name].kind.name in ("TASK", "PY_TASK", "GROUP"), name
    with pytest.raises(EvalError, match="unknown tasks: no_such_task, nor_this"):
        task_manager(["arc_easy", "no_such_task", "nor_this"], [])
    with pytest.raises(EvalError, match="no such folder"):
        task_manager(["arc_easy"], [Path("/nonexistent/tasks")])


def test_bundled_tasks_ship_with_the_package():
    names = {p.name for p in (TASKS_DIR / "tokenmill_sample").iterdir()}
    assert {"python_reference.jsonl", "sample_items.py", "tokenmill_sample.yaml"} <= names
    rows = [
        json.loads(line) for line in (TASKS_DIR / "tokenmill_sample/python_reference.jsonl").open()
    ]
    assert len(rows) == 24
    for r in rows:
        assert r["choices"][r["label"]] == r["ending"] and len(set(r["choices"])) == 4
        assert f"{r['context']} {r['ending']}." in r["text"]


# --- the command ---------------------------------------------------------------------------


def _tokenmill(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tokenmill", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_command_prints_the_table_and_writes_the_harness_json(checkpoint, tmp_path):
    save, _ = checkpoint
    out = tmp_path / "res" / "results.json"
    p = _tokenmill(
        "eval", str(save / "step7"), "--tasks", "tokenmill_cloze", "--limit", "6",
        "--batch-size", "4", "--out", str(out), "--log-samples",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    assert "|tokenmill_cloze" in p.stdout and "acc_norm" in p.stdout
    results = json.loads(out.read_text())
    samples = [json.loads(line) for line in (out.parent / "samples_tokenmill_cloze.jsonl").open()]
    assert sorted(s["doc_id"] for s in samples) == list(range(6))
    right = [
        max(range(4), key=lambda c: float(s["resps"][c][0][0])) == s["doc"]["label"]
        for s in samples
    ]
    assert results["results"]["tokenmill_cloze"]["acc,none"] == pytest.approx(sum(right) / 6)
    assert results["n-samples"]["tokenmill_cloze"] == {"original": 24, "effective": 6}
    assert results["config"]["model"] == "TokenmillLM"


def test_command_errors_are_one_line(checkpoint, tmp_path):
    save, _ = checkpoint
    cases = [
        (["eval", str(save), "--tasks", "tokenmill_cloze", "--log-samples"], "give --out"),
        (["eval", str(tmp_path), "--tasks", "tokenmill_cloze"], "is not a tokenmill checkpoint"),
        (["eval", str(save), "--tasks", " , "], "at least one task"),
        (["eval", str(save), "--tasks", "tokenmill_cloze", "--limit", "0"], "--limit must be"),
        (["eval", str(save), "--tasks", "tokenmill_cloze", "--dtype", "fp8"], "--dtype must be"),
    ]
    for args, said in cases:
        p = _tokenmill(*args)
        assert p.returncode == 1, args
        assert said in p.stderr and "Traceback" not in p.stderr, p.stderr


@pytest.mark.gpu
def test_cuda_answers_equal_cpu(checkpoint):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    save, _ = checkpoint
    cpu = evaluate(save, ["tokenmill_cloze", "tokenmill_ppl"], log_samples=True)
    gpu = evaluate(save, ["tokenmill_cloze", "tokenmill_ppl"], log_samples=True, device="cuda")
    for task in ("tokenmill_cloze", "tokenmill_ppl"):
        a, b = _by_doc(cpu.samples[task]), _by_doc(gpu.samples[task])
        for d in a:
            for x, y in zip(a[d]["resps"], b[d]["resps"], strict=True):
                first_x = x[0][0] if isinstance(x[0], list | tuple) else x[0]
                first_y = y[0][0] if isinstance(y[0], list | tuple) else y[0]
                assert abs(first_x - first_y) < 1e-3


def test_help_imports_neither_torch_nor_the_harness():
    code = (
        "import sys; from typer.testing import CliRunner; from tokenmill.cli import app; "
        "r = CliRunner(); a = r.invoke(app, ['eval', '--help']); "
        "b = r.invoke(app, ['export', '--help']); "
        "assert a.exit_code == b.exit_code == 0, (a.output, b.output); "
        "heavy = [m for m in ('torch', 'lm_eval', 'transformers', 'deepspeed') "
        "if m in sys.modules]; assert not heavy, heavy; print(a.output + b.output)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "--include-path" in p.stdout and "--dtype" in p.stdout
