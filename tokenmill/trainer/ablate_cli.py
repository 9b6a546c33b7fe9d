"""`tokenmill ablate SPEC.yaml --out DIR`: the paper's ablation (ablate.py). Registered in
tokenmill/cli.py; torch, deepspeed and lm_eval are imported inside the command."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tokenmill.console import err as _err
from tokenmill.console import fail as _fail
from tokenmill.console import out as _out

NEEDS = (
    "tokenmill ablate needs torch and deepspeed (the train extra), and lm-evaluation-harness "
    "(the eval extra) for zero-shot tasks: pip install torch first, then pip install "
    "'tokenmill[train,eval]'"
)


def ablate(
    spec: Annotated[
        Path,
        typer.Argument(
            help="The ablation spec (YAML): base, validation, zero_shot, variants. See "
            "examples/ablation-1b3-112b.yaml.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Folder for the variants' runs, ablation.json and ablation.html."
        ),
    ],
    variant: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only this variant (repeatable): one per job on a cluster "
            "(deploy/ablate.sbatch). Default: every unfinished one, in spec order."
        ),
    ] = None,
    index: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Run only the variant at this position in the spec (0-based): a SLURM array "
            "task's $SLURM_ARRAY_TASK_ID.",
        ),
    ] = None,
    plan_only: Annotated[
        bool,
        typer.Option(
            "--plan",
            help="Print each variant's steps, tokens, GPU-hours and `tokenmill train` command; "
            "train nothing.",
        ),
    ] = False,
    gpu: Annotated[str, typer.Option(help="With --plan: GPU kind for the GPU-hours.")] = (
        "a100-80gb"
    ),
    tflops: Annotated[
        float | None,
        typer.Option(help="With --plan: achieved TFLOP/s per GPU (default: the GPU's)."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Training output to the logs only.")
    ] = False,
) -> None:
    """Train and evaluate the paper's ablation: variants of one base model over corpus,
    position embedding, activation and embedding LayerNorm.

    Every variant trains the same model on the same number of tokens with the same seed and is
    evaluated the same way: validation loss on one held-out mixture and the spec's zero-shot
    tasks. A rerun skips finished variants and resumes a stopped one from its last checkpoint.
    Writes OUT/variants/NAME/ (checkpoints, logs, results), OUT/ablation.json and
    OUT/ablation.html (result table, loss curves).
    """
    try:
        import torch  # noqa: F401

        from tokenmill.trainer.ablate import (
            AblationError,
            gpu_hours,
            load_spec,
            plan,
            run_variant,
            write_outputs,
        )
    except ImportError as e:
        _fail(f"{NEEDS} ({e})")
    try:
        s = load_spec(spec)
        planned = plan(s, out)
        names = [p.name for p in planned]
        unknown = [v for v in variant or [] if v not in names]
        if unknown:
            raise AblationError(
                f"--variant {', '.join(unknown)}: not in the spec (variants: {', '.join(names)})"
            )
        if index is not None:
            if index >= len(names):
                raise AblationError(
                    f"--index {index}: the spec has {len(names)} variants (0-{len(names) - 1})"
                )
            variant = [*(variant or []), names[index]]
        chosen = [p for p in planned if not variant or p.name in variant]
        if plan_only:
            _print_plan(s, chosen, gpu_hours(s, gpu, tflops))
            return
        out.mkdir(parents=True, exist_ok=True)
        for i, p in enumerate(chosen, 1):
            _err.print(f"variant {p.name} ({i}/{len(chosen)})", highlight=False)
            _, ran = run_variant(p, s, quiet)
            if not ran:
                _err.print(f"  finished earlier: skipped ({p.folder / 'result.json'})")
            write_outputs(s, planned, out)  # the page follows the run
    except AblationError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _fail("interrupted", 130, hint="rerun the same command to resume")
    summary = write_outputs(s, planned, out)
    _print_results(summary)
    _err.print(f"wrote {out / 'ablation.json'} and {out / 'ablation.html'}", highlight=False)


def _print_plan(s, planned, hours: dict) -> None:
    from tokenmill.shards.plan import human

    t = Table(
        title=f"{s.name}: {human(_tokens(planned[0]))} tokens per variant, "
        f"{planned[0].settings['steps']:,} steps",
        title_justify="left",
    )
    for col in ("variant", "changes", "parameters", f"{hours['gpu']} GPU-hours"):
        t.add_column(col, justify="left" if col in ("variant", "changes") else "right")
    for p in planned:
        h = hours["variants"][p.name]
        changes = s.variants[p.name].model_dump(exclude_none=True)
        t.add_row(
            p.name,
            ", ".join(f"{k}={v}" for k, v in changes.items()) or "(base)",
            f"{h['params']:,}",
            _hours(h["gpu_hours"]),
        )
    _out.print(t)
    total = sum(hours["variants"][p.name]["gpu_hours"] for p in planned)
    _out.print(
        f"total {_hours(total)} GPU-hours at {hours['achieved_tflops']:g} TFLOP/s per GPU "
        "(6·N·D FLOPs, as `tokenmill plan --gpu-hours`)",
        highlight=False,
    )
    for p in planned:
        # one line each, however narrow the terminal: a command to copy
        _out.print(
            f"{p.name}: {shlex.join(p.command)}", highlight=False, markup=False, soft_wrap=True
        )


def _hours(h: float) -> str:
    return f"{h:,.0f}" if h >= 100 else f"{h:.3g}"


def _tokens(p) -> int:
    from tokenmill.trainer.ablate import _seq_len

    return p.settings["steps"] * p.settings["global_batch"] * _seq_len(p.settings)


def _print_results(summary: dict) -> None:
    t = Table(title=f"{summary['name']}", title_justify="left")
    for col in ("variant", "validation loss", "train loss", "mean accuracy"):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for v in summary["variants"]:
        r = v["result"] or {}
        t.add_row(
            v["name"],
            *(
                "–" if r.get(k) is None else f"{r[k]:.4f}"
                for k in ("valid_loss", "loss", "mean_accuracy")
            ),
        )
    _out.print(t)
