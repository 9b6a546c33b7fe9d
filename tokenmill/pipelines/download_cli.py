"""`tokenmill download`: the typer command, kept as a plain function so cli.py registers it with
`app.command()(download)`. Heavy imports (dask, httpx) happen inside it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# The command's arguments and options, one alias each, so the signature reads at a glance.
Source = Annotated[
    str | None,
    typer.Argument(help="Catalog source: c4, pile or oscar. Without one, list the catalog."),
]
VariantOpt = Annotated[
    str | None,
    typer.Option(
        "--variant",
        help="c4: en, en.noblocklist, realnewslike, en.noclean, multilingual; "
        "pile: uncopyrighted, original; oscar: 2019, 21.09, 22.01, 23.01. "
        "Default: the source's first.",
    ),
]
LangOpt = Annotated[
    str | None,
    typer.Option("--lang", help="Language(s) for mC4 and OSCAR, e.g. fr or fr,de."),
]
FilesOpt = Annotated[
    str | None,
    typer.Option(
        "--files",
        help='Which files of the split, as Python slices: "0:8", "5", "10:", "0:4,9". '
        "Default: all of them.",
    ),
]
SplitOpt = Annotated[
    str, typer.Option("--split", help="train, validation or test, where the source has it.")
]
DestOpt = Annotated[
    Path | None,
    typer.Option(
        "--dest",
        "-d",
        help="Folder to write into, in the published layout (default: data/SOURCE/VARIANT).",
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="A mirror with the published layout; replaces the hub repository root "
        "(C4 en: BASE/en/c4-train.00000-of-01024.json.gz). HF_TOKEN is never sent to it; "
        "its own credentials come from TOKENMILL_MIRROR_TOKEN or ~/.netrc (see above).",
    ),
]
WorkersOpt = Annotated[
    int | None, typer.Option(min=1, help="Parallel downloads (local Dask worker processes).")
]
SchedulerOpt = Annotated[
    str | None, typer.Option(help="Run the downloads on a running Dask cluster instead.")
]
VerifyOpt = Annotated[
    bool, typer.Option("--verify", help="Re-check complete files first (offline).")
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Print the files and URLs; download nothing.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def download(
    source: Source = None,
    variant: VariantOpt = None,
    lang: LangOpt = None,
    files: FilesOpt = None,
    split: SplitOpt = "train",
    dest: DestOpt = None,
    base_url: BaseUrlOpt = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    verify: VerifyOpt = False,
    dry_run: DryRunOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Download a corpus from the catalog, in parallel, resumable and verified.

    Files keep the published layout under --dest. Partial files resume with HTTP Range
    requests; timeouts, dropped connections, 429 and 5xx are retried with backoff; a refused
    connection or a failed DNS lookup gets 3 quick retries (0.5, 1, 2 s, each announced on
    stderr), then an error naming the host. Each file's size, SHA-256 (where published) and a
    full decompression pass are checked before it gets its final name, so a rerun fetches
    only what is missing.

    Credentials go only to the host (and port) they belong to, never to a host a redirect
    leads to. Gated datasets on the hub (OSCAR 21.09 onward) need HF_TOKEN, a token whose
    account accepted their terms: it is sent to huggingface.co / hf.co (or $HF_ENDPOINT)
    only, never to a --base-url mirror. A mirror that needs credentials gets them from
    TOKENMILL_MIRROR_TOKEN (sent as 'Authorization: Bearer' to the --base-url host and port
    only) or from the netrc entry for its host (~/.netrc, or the file $NETRC names:
    'machine HOST login USER password SECRET', sent as Basic auth).

    Examples: `tokenmill download c4 --files 0:8`,
    `tokenmill download oscar --variant 23.01 --lang fr --dest data/oscar`,
    `tokenmill download pile --variant original --base-url https://mirror.example/pile`.
    """
    from rich.markup import escape

    from tokenmill.console import err, out
    from tokenmill.pipelines.catalog import CatalogError, load_catalog
    from tokenmill.pipelines.download import DownloadError, default_dest, fetch, plan_source

    cat = load_catalog()
    if source is None:
        _print_catalog(out, cat)
        return
    try:
        v = cat.variant(source, variant)
        target = dest if dest is not None else default_dest(source, v.name, cat)
        if dry_run:
            plan = plan_source(source, variant, lang, files, target, base_url, split=split)
            for f in plan.files:
                out.print(f"{f.url}  ->  {target / f.rel}", soft_wrap=True)
            return
        run = {"workers": workers, "scheduler": scheduler, "verify": verify, "quiet": quiet}
        result = fetch(
            source, variant, lang, files, target, base_url, split=split, console=err, **run
        )
    except (CatalogError, DownloadError, FileNotFoundError) as e:
        # one line however narrow the terminal; brackets in it ('[::1]:8080') are not markup
        err.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    if not quiet:
        _print_summary(err, result, target, source, v.format or "jsonl")


def _print_summary(err, result, target: Path, source: str, fmt: str) -> None:
    """What was fetched, and the config line that reads the downloaded inputs."""
    n = len(result.files)
    err.print(
        f"[bold]{n}[/] files in {target}: {result.downloaded} downloaded "
        f"({result.bytes_fetched / 1e6:,.1f} MB), {n - result.downloaded} already complete",
        soft_wrap=True,
    )
    paths = result.paths
    if paths:
        err.print(
            f"config source: {{name: {source}, format: {fmt}, paths: [{_common_glob(paths)!r}]}}",
            soft_wrap=True,
        )


def _common_glob(paths: list[str]) -> str:
    """A glob for the config that matches the downloaded inputs (their folder + suffix)."""
    import os

    folder = os.path.commonpath([os.path.dirname(p) for p in paths])
    names = [os.path.basename(p) for p in paths]
    suffix = os.path.commonprefix([n[::-1] for n in names])[::-1]
    suffix = suffix[suffix.find(".") :] if "." in suffix else suffix
    deep = any(os.path.dirname(p) != folder for p in paths)
    return os.path.join(folder, "**", f"*{suffix}") if deep else os.path.join(folder, f"*{suffix}")


def _print_catalog(out, cat) -> None:
    from rich.table import Table

    table = Table(title="tokenmill download: the source catalog", show_lines=False)
    for col in ("source", "variant", "format", "files", "host", "gated"):
        table.add_column(col)
    for name, src in cat.sources.items():
        for vname in src.variants:
            v = cat.variant(name, vname)
            counts = []
            for split, fs in v.splits.items():
                if fs.template is None:
                    counts.append(f"{split}: listed")
                elif fs.count is not None:
                    counts.append(f"{split}: {fs.count}")
                else:
                    counts.append(f"{split}: per --lang")
            host = v.repo or (v.base_url or "")
            default = " (default)" if vname == src.default_variant else ""
            table.add_row(
                name,
                vname + default,
                v.format or "",
                ", ".join(counts),
                host,
                "HF_TOKEN" if v.gated else "",
            )
    out.print(table)
