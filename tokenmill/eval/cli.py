"""`tokenmill eval CKPT --tasks T1,T2`: lm-evaluation-harness on a checkpoint (run.py).
Registered in tokenmill/cli.py as `eval`; torch and lm_eval are imported inside the command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tokenmill.console import err as _err
from tokenmill.console import fail as _fail
from tokenmill.console import out as _out

DTYPES = ("float32", "bfloat16", "float16")
NEEDS = (
    "tokenmill eval needs lm-evaluation-harness (the eval extra) and torch: pip install torch "
    "first, then pip install 'tokenmill[train,eval]'"
)


def eval_(
    ckpt: Annotated[
        Path,
        typer.Argument(
            help="A `tokenmill train --save` folder (its latest step) or one step folder in it.",
            show_default=False,
        ),
    ],
    tasks: Annotated[
        str,
        typer.Option(
            help="Comma-separated harness tasks or groups: the harness's own (e.g. "
            "arc_easy,piqa), tokenmill's (bigscience-zero-shot: the paper's; tokenmill-sample: "
            "three offline tasks on bundled text) or --include-path ones.",
            show_default=False,
        ),
    ],
    include_path: Annotated[
        list[Path] | None,
        typer.Option(
            help="A folder of task YAMLs (repeatable). Data from local files works offline: "
            "`dataset_path: json` with `dataset_kwargs: {data_files: ...}` (relative paths "
            "resolve against the working directory) or `custom_dataset: !function mod.fn`."
        ),
    ] = None,
    limit: Annotated[
        float | None,
        typer.Option(help="Items per task (below 1: a share of them). For quick looks only."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Sequences per forward pass.")] = 16,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    dtype: Annotated[
        str, typer.Option(help="float32 (the fp32 master weights), bfloat16 or float16.")
    ] = "float32",
    num_fewshot: Annotated[
        int | None, typer.Option(min=0, help="Few-shot examples (default: the task's, 0 here).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the harness's results JSON here.")
    ] = None,
    log_samples: Annotated[
        bool,
        typer.Option(
            "--log-samples",
            help="With --out: every item's requests and answers, per task "
            "(samples_TASK.jsonl beside it).",
        ),
    ] = False,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            help="The run's tokenizer.json (or OUT/manifest.json), for checkpoints written "
            "before steps carried a copy of it."
        ),
    ] = None,
) -> None:
    """Evaluate a checkpoint with EleutherAI's lm-evaluation-harness, zero-shot by default.

    The checkpoint's model (fp32 master weights) answers the harness's log-likelihood,
    rolling log-likelihood (perplexity) and greedy generation requests, batched, with the
    run's own tokenizer; the numbers equal the harness's `hf` backend on `tokenmill export`'s
    folder. Prints the task table; --out writes the harness's results JSON.
    """
    try:
        import lm_eval  # noqa: F401
        import torch  # noqa: F401

        from tokenmill.eval.run import EvalError, evaluate, write_results
        from tokenmill.trainer.weights import CheckpointError
    except ImportError as e:
        _fail(f"{NEEDS} ({e})")
    if log_samples and out is None:
        _fail("--log-samples writes files beside --out: give --out results.json")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            _fail(f"--device {device}: this torch has no CUDA device (use --device cpu)")
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    if not names:
        _fail("--tasks: give at least one task")
    if limit is not None and limit <= 0:
        _fail(f"--limit must be > 0 (a count of items, or below 1 a share of them): {limit}")
    if limit is not None and limit >= 1:
        limit = int(limit)
    if dtype not in DTYPES:
        _fail(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    try:
        done = evaluate(
            ckpt,
            names,
            include_path or [],
            limit=limit,
            batch_size=batch_size,
            device=device,
            dtype=dtype,
            num_fewshot=num_fewshot,
            log_samples=log_samples,
            tokenizer=tokenizer,
        )
    except (EvalError, CheckpointError, FileNotFoundError, KeyError) as e:
        _fail(str(e).strip("'\""))
    _out.print(done.table, highlight=False, markup=False, soft_wrap=True)
    if out is not None:
        for path in write_results(done, out):
            _err.print(f"wrote {path}", highlight=False, soft_wrap=True)
