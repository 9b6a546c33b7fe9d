"""The `tokenmill` command. Thin: parse, load the config, call one function, print the result.

Heavy imports (dask, tokenizers, torch) happen inside the commands so `--help` stays instant.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tokenmill.console import err
from tokenmill.console import fail as _fail
from tokenmill.console import out as out_console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Turn public web corpora (OSCAR, C4, the Pile) into Megatron token shards.",
)


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False):
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command()
def prepare(
    config: Annotated[
        Path | None,
        typer.Argument(help="YAML config. Without one, the bundled sample corpus is prepared."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: the config's).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Local Dask worker processes (default: config, else CPU count).", min=1),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Join a running Dask cluster, e.g. tcp://host:8786, instead of starting "
            "local workers. OUT and the inputs must be at the same paths on its workers."
        ),
    ] = None,
    cluster: Annotated[
        Path | None,
        typer.Option(
            help="Run on SLURM: a dask-jobqueue config (see deploy/slurm.yaml). The scheduler "
            "runs here, the workers in --jobs batch jobs, cancelled at the end. Needs "
            "`pip install 'tokenmill\\[slurm]'` and OUT and the inputs on a shared filesystem.",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            help="With --cluster: SLURM jobs to submit (each runs the config's `processes` "
            "workers). Default 1.",
            min=1,
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(help="With --cluster: seconds to wait for the first worker to join.", min=1),
    ] = 1800,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Delete earlier outputs in OUT and start over.")
    ] = False,
    keep_removed: Annotated[
        bool,
        typer.Option(
            "--keep-removed", help="Write removed documents, with reasons, to OUT/removed/."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Read, language-identify, filter, deduplicate and tokenize corpora into shards.

    Writes OUT/manifest.json, stats.json, report.html, tokenizer.json and
    shards/SOURCE/SOURCE_NNNNN.{bin,idx,docs.parquet}. A stopped run (Ctrl-C, kill -9, a lost
    worker) resumes where it stopped when run again with the same command. A rerun whose
    config or input files changed is refused (--fresh starts over); one run at a time may use
    an OUT.

    Where it runs: local worker processes (--workers), a running Dask cluster (--scheduler)
    or SLURM jobs (--cluster deploy/slurm.yaml --jobs 8). See docs/SCALING.md.
    """
    try:
        stats, target = _prepare(
            config, out, workers, scheduler, cluster, jobs, wait, fresh, keep_removed, quiet
        )
    except KeyboardInterrupt:
        if _verbose():
            raise
        _fail(
            "interrupted",
            130,
            hint="rerun the same command to resume (completed work is kept in OUT/work)",
        )
    print_summary(stats, target)


def _verbose() -> bool:
    return logging.getLogger().isEnabledFor(logging.DEBUG)


def _prepare(config, out, workers, scheduler, cluster, jobs, wait, fresh, keep_removed, quiet):
    """The prepare command's work; every error a user can act on ends here in one line and a
    hint (the traceback with -v)."""
    from tokenmill.config import ConfigError, load_config
    from tokenmill.filters.against import AgainstError
    from tokenmill.pipelines.engine import (
        ClusterError,
        OutputLocked,
        TaskFailed,
        slurm_cluster,
    )
    from tokenmill.pipelines.prepare import ConfigMismatch, InputsChanged, expand_paths
    from tokenmill.pipelines.prepare import prepare as run
    from tokenmill.shards.manifest import ShardsChanged

    if cluster is not None and scheduler is not None:
        _fail(
            "--scheduler and --cluster are mutually exclusive: join a running cluster "
            "(--scheduler) or start one on SLURM (--cluster), not both"
        )
    if cluster is not None and workers is not None:
        _fail(
            "--workers is for local runs: with --cluster, use --jobs (workers per job: "
            "`processes` in the cluster config)"
        )
    if jobs is not None and cluster is None:
        _fail("--jobs needs --cluster CONFIG (a dask-jobqueue SLURM config)")
    try:
        cfg = load_config(config)
    except ConfigError as e:
        _fail(str(e), hint="fix the config (README.md, section Config, lists every key)")
    except FileNotFoundError as e:
        _fail(str(e))
    if keep_removed:
        cfg.keep_removed = True
    # --out is relative to the working directory; the config's `output` to its own folder
    # (load_config resolved it)
    target = Path(out or cfg.output)
    if scheduler or cluster:
        target = target.resolve()  # remote workers do not share this process's folder
    resume = f"completed work is kept in {target}/work: rerun the same command to resume"
    try:
        with contextlib.ExitStack() as stack:
            if cluster is not None:
                for s in cfg.sources:  # a typo in a glob must not wait for the queue first
                    if s.paths:
                        expand_paths(s.paths, s.name)
                slurm = stack.enter_context(slurm_cluster(cluster, jobs or 1, wait, err))
                scheduler = slurm.scheduler_address
            stats = run(
                cfg,
                target,
                workers=workers,
                scheduler=scheduler,
                fresh=fresh,
                console=err,
                quiet=quiet,
            )
    except KeyboardInterrupt:
        raise
    except Exception as e:
        if _verbose():
            raise
        if isinstance(e, ConfigMismatch | InputsChanged):
            _fail(str(e), hint="--fresh deletes the earlier outputs in OUT and starts over")
        if isinstance(e, OutputLocked):
            _fail(str(e), hint="one prepare at a time per output folder")
        if isinstance(e, FileNotFoundError):
            _fail(str(e), hint="fix the path or pattern in the config, then rerun")
        if isinstance(e, ClusterError | AgainstError):
            _fail(str(e))
        if isinstance(e, ShardsChanged):  # its message says how to rewrite them
            _fail(str(e), hint=f"`tokenmill verify {target}` checks every shard")
        if isinstance(e, TaskFailed):
            _fail(str(e), hint=f"fix the cause; {resume} (-v shows the traceback)")
        _fail(
            f"{type(e).__name__}: {' '.join(str(e).split())}",
            hint=f"{resume} once the cause is fixed; if it fails the same way again, -v shows "
            "the traceback to report (--fresh starts over)",
        )
    return stats, target


@app.command("cluster-script")
def cluster_script(
    config: Annotated[
        Path, typer.Argument(help="A dask-jobqueue SLURM config, e.g. deploy/slurm.yaml.")
    ],
) -> None:
    """Print the SLURM job script that `prepare --cluster CONFIG` submits, without submitting.

    Each job runs `processes` Dask workers of one thread each. The scheduler address in the
    printed script is this preview's; `prepare` puts the address of its own scheduler there.
    """
    from tokenmill.pipelines.engine import ClusterError, slurm_cluster

    try:
        with slurm_cluster(config, jobs=0) as cluster:
            script = cluster.job_script()
    except ClusterError as e:
        _fail(str(e))
    sys.stdout.write(script if script.endswith("\n") else script + "\n")


def print_summary(stats: dict, out: Path) -> None:
    table = Table(title="tokenmill prepare: summary", title_justify="left")
    for col in ("source", "docs in", "kept", "removed", "MB in", "tokens", "shards"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for name, s in stats["sources"].items():
        table.add_row(
            name,
            f"{s['documents_in']:,}",
            f"{s['documents_kept']:,}",
            f"{sum(s['removed'].values()):,}",
            f"{s['bytes_in'] / 1e6:,.1f}",
            f"{s['tokens']:,}",
            str(s["shards"]),
        )
    t = stats["totals"]
    table.add_row(
        "total",
        f"{t['documents_in']:,}",
        f"{t['documents_kept']:,}",
        f"{sum(t['removed'].values()):,}",
        f"{t['bytes_in'] / 1e6:,.1f}",
        f"{t['tokens']:,}",
        "",
        style="bold",
    )
    out_console.print(table)
    if t["removed"]:
        reasons = Table(title="removed by reason", title_justify="left")
        reasons.add_column("reason")
        reasons.add_column("documents", justify="right")
        for r, n in sorted(t["removed"].items(), key=lambda x: -x[1]):
            reasons.add_row(r, f"{n:,}")
        out_console.print(reasons)
    for name, s in stats["sources"].items():
        for e in s["errors"]:
            out_console.print(f"[yellow]{name}: {e['reason']}[/] {e['detail']}")
    out_console.print(
        f"outputs in [bold]{out}[/]: manifest.json, stats.json, report.html, tokenizer.json, "
        f"shards/  ({stats['wall_s']:.1f} s)"
    )


@app.command()
def plan(
    out: Annotated[
        Path | None, typer.Argument(help="A prepare output folder (reads its manifest.json).")
    ] = None,
    budget: Annotated[
        list[str] | None,
        typer.Option(help="Token budget(s): 112B, 350e9, 1.5T. Repeat for several."),
    ] = None,
    max_epochs: Annotated[
        float, typer.Option(help="Warn when a source would repeat more often than this.")
    ] = 4.0,
    gpu_hours: Annotated[
        float | None, typer.Option(help="Compute budget in GPU-hours, e.g. 1e6.")
    ] = None,
    gpu: Annotated[str, typer.Option(help="GPU kind: a100-80gb, a100-40gb, h100-80gb...")] = (
        "a100-80gb"
    ),
    tflops: Annotated[
        float | None, typer.Option(help="Achieved TFLOP/s per GPU (default: the GPU's).")
    ] = None,
    params: Annotated[
        list[str] | None, typer.Option(help="Model sizes to plan for, e.g. 1.3B (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Plan a run: tokens, epochs and shards per source for a budget; tokens per GPU-hour.

    With OUT: per source, the tokens a budget draws with the mixture weights, the epochs that
    implies and its shards. With --gpu-hours: the tokens each model size can see (6·N·D, and
    8·N·D as Megatron counts with recomputation).

    Every shard OUT lists is checked first (structure and sizes against the manifest, not
    SHA-256: `tokenmill verify OUT` does that): a damaged or missing one is named and stops
    the plan, so the printed --data-path only lists whole shards.

    Example: tokenmill plan out --budget 112B --budget 350B; tokenmill plan --gpu-hours 1e6
    """
    if out is None and gpu_hours is None:
        _fail("give an OUT folder with --budget, and/or --gpu-hours")
    try:
        result = _plan(out, budget or ["112B"], max_epochs, gpu_hours, gpu, tflops, params)
    except ValueError as e:
        _fail(str(e))
    if as_json:
        sys.stdout.write(json.dumps(result, indent=1, default=str) + "\n")
        return
    print_plan(result)


def _plan(out, budgets, max_epochs, gpu_hours, gpu, tflops, params) -> dict:
    """The plan command's numbers: `budgets` and `data_path` with OUT (its shards checked
    first), `compute` with --gpu-hours. ValueError for a damaged OUT or a bad number."""
    from tokenmill.shards.manifest import load_manifest, manifest_path
    from tokenmill.shards.plan import budget_plan, compute_plan, parse_count
    from tokenmill.shards.verify import require_intact

    result: dict = {}
    if out is not None:
        manifest = load_manifest(out)  # ManifestError, DamagedShards: ValueErrors
        require_intact(manifest_path(out).parent, manifest)
        result["budgets"] = {b: budget_plan(manifest, parse_count(b), max_epochs) for b in budgets}
        result["data_path"] = manifest["data_path"]
    if gpu_hours is not None:
        sizes = [parse_count(p) for p in params] if params else None
        result["compute"] = compute_plan(gpu_hours, gpu, tflops, sizes)
    return result


def print_plan(result: dict) -> None:
    """The plan as tables: one per budget (with its warnings), the --data-path string, and
    the tokens each model size can see in the compute budget."""
    for b, rows in result.get("budgets", {}).items():
        _print_budget(b, rows)
    if "data_path" in result:
        out_console.print("Megatron-DeepSpeed --data-path (prefixes relative to OUT):")
        out_console.print(result["data_path"], markup=False, highlight=False, soft_wrap=True)
    if "compute" in result:
        _print_compute(result["compute"])


def _print_budget(budget: str, rows: list[dict]) -> None:
    from tokenmill.shards.plan import human, parse_count

    t = Table(title=f"budget {budget} ({human(parse_count(budget))} tokens)", title_justify="left")
    for col in ("source", "tokens", "weight", "drawn", "epochs", "shards"):
        t.add_column(col, justify="left" if col == "source" else "right")
    for r in rows:
        t.add_row(
            r["source"],
            human(r["tokens"]),
            f"{r['weight']:.3f}",
            human(r["share_tokens"]),
            f"{r['epochs']:.2f}",
            str(r["shards"]),
        )
    out_console.print(t)
    for r in rows:
        if r["warning"]:
            out_console.print(f"[yellow]warning:[/] {r['warning']}")


def _print_compute(c: dict) -> None:
    from tokenmill.shards.plan import human

    t = Table(
        title=(
            f"{c['gpu_hours']:.3g} {c['gpu']} GPU-hours at "
            f"{c['achieved_tflops']:.0f} TFLOP/s ({c['mfu']:.0%} of peak): "
            f"{c['flops']:.3g} FLOPs"
        ),
        title_justify="left",
    )
    for col in ("params", "tokens (6ND)", "tokens (8ND)", "tokens/param", "20 x params"):
        t.add_column(col, justify="right")
    for r in c["models"]:
        t.add_row(
            human(r["params"]),
            human(r["tokens_6nd"]),
            human(r["tokens_8nd"]),
            f"{r['tokens_per_param']:.0f}",
            human(r["chinchilla_tokens"]),
        )
    out_console.print(t)
    out_console.print(
        "6ND: FLOPs without recomputation; 8ND: Megatron's count with "
        "activation recomputation (what BigScience sized with)."
    )


@app.command()
def inspect(
    prefix: Annotated[str, typer.Argument(help="Shard prefix, e.g. out/shards/c4/c4_00000")],
    doc: Annotated[int | None, typer.Option("--doc", help="Print only document N.")] = None,
    limit: Annotated[int, typer.Option(help="How many documents to print.")] = 3,
    tokenizer: Annotated[
        Path | None, typer.Option(help="tokenizer.json (default: OUT/tokenizer.json)")
    ] = None,
) -> None:
    """Decode and print documents from a shard, with their provenance id.

    The shard is checked first (structure and sizes, against OUT/manifest.json when it lists
    the shard; not SHA-256: `tokenmill verify OUT` does that): a damaged one is refused.
    """
    import pyarrow.parquet as pq

    from tokenmill.shards.megatron import ShardReader
    from tokenmill.tokenize.bpe import load_tokenizer

    p = Path(prefix.removesuffix(".bin").removesuffix(".idx").removesuffix(".docs.parquet"))
    status = _check_inspected(p)
    if not status.ok:
        _fail(
            f"{p} is damaged: {'; '.join(status.problems)}. Run `tokenmill verify OUT` to check "
            "every shard"
        )
    tok_path = tokenizer or p.absolute().parent.parent.parent / "tokenizer.json"
    if not tok_path.exists():
        _fail(f"{tok_path} not found: pass --tokenizer")
    reader = ShardReader(p)
    tok = load_tokenizer(str(tok_path))
    side = p.with_name(p.name + ".docs.parquet")
    ids = pq.read_table(side, columns=["id"]).column("id").to_pylist() if side.exists() else None
    which = [doc] if doc is not None else list(range(min(limit, len(reader))))
    out_console.print(
        f"{p}: {len(reader):,} documents, {reader.num_tokens:,} tokens ({reader.dtype})"
    )
    for i in which:
        if not 0 <= i < len(reader):
            _fail(f"--doc {i} is out of range: the shard has {len(reader)} documents")
        ids_i = reader[i].tolist()
        out_console.rule(f"doc {i}  {ids[i] if ids else ''}  ({len(ids_i)} tokens)")
        out_console.print(
            tok.decode(ids_i, skip_special_tokens=True), markup=False, highlight=False
        )


def _check_inspected(p: Path):
    """The structural check of the shard `inspect` was given: against its entry in
    OUT/manifest.json (OUT = three folders up, as prepare lays shards out) when there is one,
    else its .idx and .bin alone."""
    from tokenmill.shards.manifest import ManifestError, load_manifest
    from tokenmill.shards.verify import check_prefix, check_shard

    root = p.absolute().parent.parent.parent  # `inspect c4/c4_00000` from inside OUT/shards too
    if (root / "manifest.json").exists():
        try:
            manifest = load_manifest(root)
        except ManifestError as e:
            _fail(str(e))
        for entry in manifest["shards"]:
            if (root / entry["prefix"]).resolve() == p.resolve():
                return check_shard(root, entry, manifest["tokenizer"]["dtype"], sidecar=True)
    if not p.with_name(p.name + ".idx").exists():
        _fail(f"{p}.idx not found: give a shard prefix such as out/shards/c4/c4_00000")
    return check_prefix(p)


def _register_parts() -> None:
    """Commands that live with their part of the package (their heavy imports are inside)."""
    from tokenmill.eval.cli import eval_
    from tokenmill.pipelines.download_cli import download
    from tokenmill.quality_cli import app as quality
    from tokenmill.report.cli import stats
    from tokenmill.report.contamination import contamination
    from tokenmill.shards.cli import verify
    from tokenmill.trainer.ablate_cli import ablate
    from tokenmill.trainer.cli import train
    from tokenmill.trainer.export_cli import export

    app.command()(download)
    app.command()(stats)
    app.command()(contamination)
    app.command()(verify)
    app.command()(train)
    app.command("eval")(eval_)
    app.command()(export)
    app.command()(ablate)
    app.add_typer(quality, name="quality")


_register_parts()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
