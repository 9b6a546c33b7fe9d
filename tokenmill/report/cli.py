"""`tokenmill stats`: the corpus statistics report of a prepared OUT folder, or of raw corpus
files before any processing. Registered in tokenmill/cli.py as `app.command()(stats)`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tokenmill.console import err as _err
from tokenmill.console import fail as _fail
from tokenmill.console import out as _out

RAW_HTML = "raw-report.html"


def stats(
    targets: Annotated[
        list[str],
        typer.Argument(
            metavar="OUT | CONFIG.yaml | FILES...",
            help="A prepare output folder; or a config (its sources, read raw); or corpus "
            "files, globs or folders.",
            show_default=False,
        ),
    ],
    html: Annotated[
        Path | None,
        typer.Option(
            help=f"Where to write the report (default: OUT/report.html; raw: ./{RAW_HTML})."
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Print stats.json plus the report\'s numbers (key "report") '
            "as JSON on stdout instead of tables.",
        ),
    ] = False,
    budget: Annotated[
        list[str] | None,
        typer.Option(
            help="Token budget for coverage (epochs per source); repeatable "
            "(default: 112B and 350B)."
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="Raw: reader format: c4, pile, oscar2301, oscar2019, "
            "jsonl, parquet... (default: detected per file).",
        ),
    ] = None,
    text_key: Annotated[
        str, typer.Option(help="Raw jsonl/parquet: the text field (dotted for nested).")
    ] = "text",
    name: Annotated[
        str | None,
        typer.Option(help="Raw: one source name for all FILES (default: one source per format)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Raw: filter settings (languages, langid, quality, "
            "max_doc_bytes) from this prepare config (default: prepare's defaults).",
        ),
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            help="Raw: count tokens with this tokenizer.json (token lengths and budget coverage)."
        ),
    ] = None,
    langid: Annotated[
        bool, typer.Option("--langid/--no-langid", help="Raw: run language ID (fastText).")
    ] = True,
    limit: Annotated[
        int | None, typer.Option(help="Raw: read at most N records of each file.", min=1)
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Raw: processes, one file each (default: 1 below 64 MB of input, "
            "else one per core).",
            min=1,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Corpus statistics: a self-contained report.html (tables and plots;
    it opens with no network) and a summary on the terminal.

    OUT, a `tokenmill prepare` folder: from stats.json, manifest.json and
    the shards: documents and tokens through every step, removals by reason,
    lengths, languages and LID scores, duplicate clusters, tokens per shard,
    budget coverage (epochs per source for 112B and 350B tokens), throughput
    per stage, and the config. Every shard is checked on disk (structure and
    sizes, not SHA-256: `tokenmill verify OUT` does that); a damaged or
    missing one is named in the report and the exit status is 1.

    Raw data (files, globs, folders, or a config's sources): streamed once
    with bounded memory, it shows what prepare would see: bad records by
    reason, lengths, languages and LID scores, duplicates, and what the
    filter settings (--config, else the defaults) would remove.

    Examples: tokenmill stats out; tokenmill stats out --json;
    tokenmill stats data/c4/*.json.gz --limit 10000;
    tokenmill stats my.yaml --tokenizer out/tokenizer.json
    """
    from tokenmill.report import summary

    budgets = tuple(budget) if budget else summary.DEFAULT_BUDGETS
    try:
        from tokenmill.shards.plan import parse_count

        for b in budgets:
            parse_count(b)
    except ValueError as e:
        _fail(str(e))
    first = Path(targets[0])
    if len(targets) == 1 and first.name in ("stats.json", "manifest.json"):
        first = first.parent  # the run's folder was meant
    if len(targets) == 1 and first.is_dir() and (first / "stats.json").exists():
        given = [
            o
            for o, v in (
                ("--format", fmt),
                ("--name", name),
                ("--config", config),
                ("--tokenizer", tokenizer),
                ("--limit", limit),
                ("--workers", workers),
            )
            if v is not None
        ]
        if given:
            _fail(f"{', '.join(given)} apply to raw files; {first} is a prepare output folder")
        _run_report(first, html, as_json, budgets)
        return
    if len(targets) == 1 and first.is_dir() and (first / "manifest.json").exists():
        _fail(
            f"{first} has a manifest.json but no stats.json: the run did not finish; run "
            "`tokenmill prepare` again to complete it"
        )
    _raw_report(
        targets,
        html,
        as_json,
        budgets,
        fmt,
        text_key,
        name,
        config,
        tokenizer,
        langid,
        limit,
        workers,
        quiet,
    )


def _run_report(out: Path, html: Path | None, as_json: bool, budgets) -> None:
    from tokenmill.report.html import dumps, write_report
    from tokenmill.report.summary import damaged_shards
    from tokenmill.shards.manifest import ManifestError, load_manifest

    try:
        data = json.loads((out / "stats.json").read_text())
    except ValueError as e:
        _fail(f"cannot read {out / 'stats.json'}: {e}")
    try:
        manifest = load_manifest(out) if (out / "manifest.json").exists() else None
    except ManifestError as e:
        _fail(str(e))
    target = html or out / "report.html"
    rep = write_report(data, manifest, target, out=out, budgets=budgets)
    bad = damaged_shards(rep)
    if as_json:
        sys.stdout.write(dumps(data, rep) + "\n")
    else:
        print_report(data, rep, _out)
        _out.print(f"report: [bold]{target}[/]", highlight=False)
    if bad:
        # the report is still written (it shows the damage); the exit status tells scripts
        for r in bad:
            _err.print(
                f"[bold red]damaged shard[/] {r['prefix']}: {r['check'][len('damaged: ') :]}",
                highlight=False,
                soft_wrap=True,
            )
        _fail(
            f"{len(bad)} of {len(rep['shards'])} shards in {out} are damaged or missing; "
            f"run `tokenmill verify {out}` for details and how to rewrite them"
        )


def _raw_report(
    targets,
    html,
    as_json,
    budgets,
    fmt,
    text_key,
    name,
    config,
    tokenizer,
    langid,
    limit,
    workers,
    quiet,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tokenmill.config import load_config
    from tokenmill.pipelines.readers import FORMATS
    from tokenmill.report import raw
    from tokenmill.report.html import dumps, write_report

    if fmt is not None and fmt not in FORMATS:
        _fail(f"unknown --format {fmt!r}; one of {', '.join(FORMATS)}")
    cfg = None
    single = targets[0] if len(targets) == 1 else ""
    try:
        if single.endswith((".yaml", ".yml")) and os.path.isfile(single):
            cfg = load_config(single)
            inputs = raw.inputs_from_config(cfg)
        else:
            inputs = raw.collect_inputs(targets, fmt, text_key, name)
        if config is not None:
            cfg = load_config(config)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    if tokenizer is not None and not tokenizer.exists():
        _fail(f"tokenizer not found: {tokenizer}")
    extra = {"tokenizer": str(tokenizer) if tokenizer else None, "limit": limit}
    if not langid:
        extra["langid"] = None
    settings = raw.settings_from_config(cfg, **extra)
    if workers is None:
        size = sum(os.path.getsize(i.path) for i in inputs if os.path.isfile(i.path))
        workers = 1 if size < 64 << 20 else min(os.cpu_count() or 1, len(inputs))
    show = not quiet and not as_json
    with Progress(
        TextColumn("scanning {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files, {task.fields[docs]:,} records"),
        console=_err,
        transient=True,
        disable=not show,
    ) as progress:
        task = progress.add_task(f"{len(inputs)} files", total=len(inputs), docs=0)
        seen = {"docs": 0}

        def on_file(r: dict) -> None:
            seen["docs"] += r["documents_in"]
            progress.update(task, advance=1, docs=seen["docs"])

        try:
            data = raw.scan(inputs, settings, workers=workers, on_file=on_file)
        except (ValueError, FileNotFoundError, RuntimeError) as e:
            _fail(str(e))
    weights = (
        {s.name: s.weight for s in cfg.sources}
        if cfg and single.endswith((".yaml", ".yml"))
        else None
    )
    target = html or Path(RAW_HTML)
    rep = write_report(data, raw.budget_manifest(data, weights), target, budgets=budgets)
    if as_json:
        sys.stdout.write(dumps(data, rep) + "\n")
    else:
        print_report(data, rep, _out)
        _out.print(f"report: [bold]{target}[/]", highlight=False)


# ---- terminal tables --------------------------------------------------------------------------


def _n(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}"


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _table(title: str, cols: list[str]) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold")
    for i, c in enumerate(cols):
        t.add_column(c, justify="left" if i == 0 else "right")
    return t


def print_report(stats: dict, rep: dict, console: Console) -> None:
    """The report's main numbers as terminal tables."""
    raw = rep["kind"] == "raw"
    tokens = stats["totals"].get("tokens") is not None
    cols = ["source", "docs in", "kept", "removed", "kept %", "MB in"]
    cols += ["tokens"] if tokens else []
    cols += ["files"] if raw else ["shards"]
    t = _table("raw corpus (kept: would pass the filters)" if raw else "summary", cols)
    rows = rep["summary"]["sources"] + [rep["summary"]["total"]]
    for r in rows:
        cells = [
            r["source"],
            _n(r["documents_in"]),
            _n(r["documents_kept"]),
            _n(r["removed"]),
            _pct(r["kept_fraction"]),
            f"{r['bytes_in'] / 1e6:,.1f}",
        ]
        cells += [_n(r["tokens"])] if tokens else []
        cells += [_n(r["files"] if raw else r["shards"])]
        t.add_row(*cells, style="bold" if r is rows[-1] else None)
    console.print(t)
    if rep["removals"]:
        sources = list(stats["sources"])
        t = _table(
            "would be removed, by reason" if raw else "removed by reason",
            ["reason", *sources, "total"] if len(sources) > 1 else ["reason", "documents"],
        )
        for reason, v in rep["removals"].items():
            vals = [v[s] for s in sources] + [v["total"]] if len(sources) > 1 else [v["total"]]
            t.add_row(reason, *map(_n, vals))
        console.print(t)
    langs = rep["languages"]["all"]
    if langs:
        t = _table(
            f"languages (top {min(10, len(langs))} of {len(langs)})",
            ["language", "docs in", "kept", "kept %", "MB in"] + (["tokens"] if tokens else []),
        )
        for r in langs[:10]:
            t.add_row(
                r["language"],
                _n(r["documents_in"]),
                _n(r["documents_kept"]),
                _pct(r["kept_fraction"]),
                f"{r['bytes_in'] / 1e6:,.2f}",
                *([_n(r["tokens"])] if tokens else []),
            )
        console.print(t)
    t = _table(
        "lengths (medians are log2 bins)",
        ["source", "bytes/doc", "chars median"]
        + (["tokens/doc", "tokens median"] if tokens else []),
    )
    for n, v in rep["lengths"].items():
        t.add_row(
            n,
            _n(v["bytes_per_document_in"]),
            v.get("chars_in_median") or "–",
            *([_n(v["tokens_per_document"]), v.get("tokens_kept_median") or "–"] if tokens else []),
        )
    console.print(t)
    if rep["duplicates"]:
        t = _table(
            "duplicates",
            ["", "clusters", "docs in clusters", "removed" if not raw else "extra copies"],
        )
        for d in rep["duplicates"]:
            t.add_row(
                d["stage"], _n(d["clusters"]), _n(d["documents_in_clusters"]), _n(d["removed"])
            )
        console.print(t)
        if (
            raw
            and not rep["duplicates"][0]["cluster_sizes"] == {}
            and stats["duplicates"].get("exact") is False
        ):
            console.print(f"[dim]{stats['duplicates']['note']}[/]", highlight=False)
    if rep.get("budgets"):
        names = list(rep["budgets"])
        t = _table("budget coverage: epochs per source", ["source", *names])
        by_source: dict[str, list[str]] = {}
        for b in names:
            for r in rep["budgets"][b]:
                e = r["epochs"]
                by_source.setdefault(r["source"], []).append("∞" if e is None else f"{e:,.2f}")
        for s, vals in by_source.items():
            t.add_row(s, *vals)
        console.print(t)
    if rep["stages"]:
        t = _table("throughput", ["stage", "tasks", "wall s", "in", "in/s", "MB/s", "tokens/s"])
        for r in rep["stages"]:
            t.add_row(
                r["stage"],
                _n(r.get("tasks")),
                _n(r.get("wall_s")),
                _n(r["in"]),
                _n(r["documents_per_s"]),
                _n(r["mb_per_s"]),
                _n(r["tokens_per_s"]),
            )
        console.print(t)
    for n, s in stats["sources"].items():
        for e in s.get("errors", []):
            console.print(f"[yellow]{n}: {e['reason']}[/] {e['detail']}", highlight=False)
