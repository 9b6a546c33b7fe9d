"""`tokenmill stats`: the corpus statistics report of a prepared OUT folder, or of raw corpus
files before any processing. Registered in tokenmill/cli.py as `app.command()(stats)`.

This module parses and checks the options, runs one of the two reports and prints the result;
the terminal tables are `report.terminal`, the page `report.html`."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tokenmill.console import err as _err
from tokenmill.console import fail as _fail
from tokenmill.console import out as _out
from tokenmill.report.terminal import print_report

if TYPE_CHECKING:
    from tokenmill.config import Config
    from tokenmill.report.raw import RawInput, ScanSettings

RAW_HTML = "raw-report.html"

# ---- options ----------------------------------------------------------------------------------

Targets = Annotated[
    list[str],
    typer.Argument(
        metavar="OUT | CONFIG.yaml | FILES...",
        help="A prepare output folder; or a config (its sources, read raw); or corpus "
        "files, globs or folders.",
        show_default=False,
    ),
]
HtmlOption = Annotated[
    Path | None,
    typer.Option(help=f"Where to write the report (default: OUT/report.html; raw: ./{RAW_HTML})."),
]
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help='Print stats.json plus the report\'s numbers (key "report") '
        "as JSON on stdout instead of tables.",
    ),
]
BudgetOption = Annotated[
    list[str] | None,
    typer.Option(
        help="Token budget for coverage (epochs per source); repeatable (default: 112B and 350B)."
    ),
]
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help="Raw: reader format: c4, pile, oscar2301, oscar2019, "
        "jsonl, parquet... (default: detected per file).",
    ),
]
TextKeyOption = Annotated[
    str, typer.Option(help="Raw jsonl/parquet: the text field (dotted for nested).")
]
NameOption = Annotated[
    str | None,
    typer.Option(help="Raw: one source name for all FILES (default: one source per format)."),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Raw: filter settings (languages, langid, quality, "
        "max_doc_bytes) from this prepare config (default: prepare's defaults).",
    ),
]
TokenizerOption = Annotated[
    Path | None,
    typer.Option(
        help="Raw: count tokens with this tokenizer.json (token lengths and budget coverage)."
    ),
]
LangidOption = Annotated[
    bool, typer.Option("--langid/--no-langid", help="Raw: run language ID (fastText).")
]
LimitOption = Annotated[
    int | None, typer.Option(help="Raw: read at most N records of each file.", min=1)
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        help="Raw: processes, one file each (default: 1 below 64 MB of input, else one per core).",
        min=1,
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


@dataclass(frozen=True)
class RawOptions:
    """The options for raw files; a prepare output folder takes none of them."""

    fmt: str | None
    text_key: str
    name: str | None
    config: Path | None
    tokenizer: Path | None
    langid: bool
    limit: int | None
    workers: int | None

    def given(self) -> list[str]:
        """The flags given on the command line among those with no default value."""
        flags = (
            ("--format", self.fmt),
            ("--name", self.name),
            ("--config", self.config),
            ("--tokenizer", self.tokenizer),
            ("--limit", self.limit),
            ("--workers", self.workers),
        )
        return [flag for flag, v in flags if v is not None]


# ---- the command ------------------------------------------------------------------------------


def stats(
    targets: Targets,
    html: HtmlOption = None,
    as_json: JsonOption = False,
    budget: BudgetOption = None,
    fmt: FormatOption = None,
    text_key: TextKeyOption = "text",
    name: NameOption = None,
    config: ConfigOption = None,
    tokenizer: TokenizerOption = None,
    langid: LangidOption = True,
    limit: LimitOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
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
    budgets = _checked_budgets(budget)
    opts = RawOptions(fmt, text_key, name, config, tokenizer, langid, limit, workers)
    out = _prepared_folder(targets)
    if out is None:
        _raw_report(targets, opts, html, as_json, budgets, quiet)
        return
    if given := opts.given():
        _fail(f"{', '.join(given)} apply to raw files; {out} is a prepare output folder")
    _run_report(out, html, as_json, budgets)


def _checked_budgets(budget: list[str] | None) -> tuple[str, ...]:
    """The --budget values (default: summary.DEFAULT_BUDGETS), each a valid token count."""
    from tokenmill.report import summary
    from tokenmill.shards.plan import parse_count

    budgets = tuple(budget) if budget else summary.DEFAULT_BUDGETS
    try:
        for b in budgets:
            parse_count(b)
    except ValueError as e:
        _fail(str(e))
    return budgets


def _prepared_folder(targets: list[str]) -> Path | None:
    """The prepare output folder when the one target is one (or its stats.json or
    manifest.json); None for raw files. A folder whose run did not finish is an error."""
    first = Path(targets[0])
    if len(targets) == 1 and first.name in ("stats.json", "manifest.json"):
        first = first.parent  # the run's folder was meant
    if len(targets) != 1 or not first.is_dir():
        return None
    if (first / "stats.json").exists():
        return first
    if (first / "manifest.json").exists():
        _fail(
            f"{first} has a manifest.json but no stats.json: the run did not finish; run "
            "`tokenmill prepare` again to complete it"
        )
    return None


def _print_result(data: dict, rep: dict, target: Path, as_json: bool) -> None:
    """stats.json plus the report's numbers as JSON on stdout, or the terminal tables and
    where the page is."""
    from tokenmill.report.html import dumps

    if as_json:
        sys.stdout.write(dumps(data, rep) + "\n")
    else:
        print_report(data, rep, _out)
        _out.print(f"report: [bold]{target}[/]", highlight=False)


# ---- a prepare output folder ------------------------------------------------------------------


def _run_report(out: Path, html: Path | None, as_json: bool, budgets) -> None:
    """Write and print the report of a prepare run; exit 1 after it when a shard is damaged."""
    from tokenmill.report.html import write_report
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
    _print_result(data, rep, target, as_json)
    if bad := damaged_shards(rep):
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


# ---- raw files --------------------------------------------------------------------------------


def _raw_report(
    targets: list[str],
    opts: RawOptions,
    html: Path | None,
    as_json: bool,
    budgets,
    quiet: bool,
) -> None:
    """Scan raw files (or a config's sources), write their report and print it."""
    from tokenmill.report import raw
    from tokenmill.report.html import write_report

    cfg, inputs = _raw_inputs(targets, opts)
    settings = _scan_settings(cfg, opts)
    workers = opts.workers if opts.workers is not None else _default_workers(inputs)
    data = _scan_with_progress(inputs, settings, workers, show=not quiet and not as_json)
    weights = _source_weights(cfg, targets)
    target = html or Path(RAW_HTML)
    rep = write_report(data, raw.budget_manifest(data, weights), target, budgets=budgets)
    _print_result(data, rep, target, as_json)


def _raw_inputs(targets: list[str], opts: RawOptions) -> tuple[Config | None, list[RawInput]]:
    """The files to scan (a config's sources when the one target is a config file, else the
    targets) and the config whose filter settings apply (--config first; None: defaults)."""
    from tokenmill.config import load_config
    from tokenmill.pipelines.readers import FORMATS
    from tokenmill.report import raw

    if opts.fmt is not None and opts.fmt not in FORMATS:
        _fail(f"unknown --format {opts.fmt!r}; one of {', '.join(FORMATS)}")
    cfg = None
    single = targets[0] if len(targets) == 1 else ""
    try:
        if single.endswith((".yaml", ".yml")) and os.path.isfile(single):
            cfg = load_config(single)
            inputs = raw.inputs_from_config(cfg)
        else:
            inputs = raw.collect_inputs(targets, opts.fmt, opts.text_key, opts.name)
        if opts.config is not None:
            cfg = load_config(opts.config)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    return cfg, inputs


def _scan_settings(cfg: Config | None, opts: RawOptions) -> ScanSettings:
    """The config's filter settings with --tokenizer, --limit and --no-langid on top."""
    from tokenmill.report import raw

    if opts.tokenizer is not None and not opts.tokenizer.exists():
        _fail(f"tokenizer not found: {opts.tokenizer}")
    extra = {"tokenizer": str(opts.tokenizer) if opts.tokenizer else None, "limit": opts.limit}
    if not opts.langid:
        extra["langid"] = None
    return raw.settings_from_config(cfg, **extra)


def _default_workers(inputs: list[RawInput]) -> int:
    # below 64 MB, starting processes costs more than it saves
    size = sum(os.path.getsize(i.path) for i in inputs if os.path.isfile(i.path))
    return 1 if size < 64 << 20 else min(os.cpu_count() or 1, len(inputs))


def _scan_with_progress(
    inputs: list[RawInput], settings: ScanSettings, workers: int, show: bool
) -> dict:
    """raw.scan with a progress bar on stderr (files done, records read)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tokenmill.report import raw

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
            return raw.scan(inputs, settings, workers=workers, on_file=on_file)
        except (ValueError, FileNotFoundError) as e:
            _fail(str(e))
        except Exception as e:  # a scan's own error, or its worker lost (out of memory?)
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            _fail(
                f"{type(e).__name__}: {' '.join(str(e).split())}",
                hint=(
                    "a worker process died (out of memory?): try fewer --workers; "
                    if type(e).__name__ == "KilledWorker"
                    else ""
                )
                + "-v shows the traceback",
            )


def _source_weights(cfg: Config | None, targets: list[str]) -> dict[str, float] | None:
    """Each source's mixture weight for budget coverage, when the target is a config file."""
    single = targets[0] if len(targets) == 1 else ""
    if cfg and single.endswith((".yaml", ".yml")):
        return {s.name: s.weight for s in cfg.sources}
    return None
