"""`tokenmill verify OUT`: check every shard of a prepare output against its manifest.
Registered in tokenmill/cli.py as `app.command()(verify)`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tokenmill.console import err as _err
from tokenmill.console import fail as _fail
from tokenmill.console import out as _out

if TYPE_CHECKING:
    from tokenmill.shards.verify import ShardStatus


def verify(
    out: Annotated[
        Path,
        typer.Argument(help="A prepare output folder (or its manifest.json).", show_default=False),
    ],
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Structure and sizes only, no SHA-256 (reads the .idx files, not the .bin).",
        ),
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(help="Shards checked at once (threads; default: cores, at most 8).", min=1),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Check every shard of OUT: whole, and the one manifest.json lists.

    Per shard: the .idx structure (magic, version, dtype code, its length against its counts,
    pointers the running sum of sizes, the document index from 0 to the count), the .bin size
    the index implies, the documents and tokens the manifest records, the .docs.parquet row
    count, and the size and SHA-256 of every file against the manifest (a changed byte keeps
    the size: only the checksum sees it). Each damaged shard is named with what is wrong.

    Exit 0 when every shard is intact, 1 when any is damaged or missing (or the manifest is
    unreadable). `plan`, `inspect`, `stats` and `train` run the structural part (no SHA-256)
    before they use shards.
    """
    from tokenmill.shards.manifest import ManifestError, load_manifest, manifest_path

    try:
        manifest = load_manifest(out)
    except ManifestError as e:
        _fail(str(e))
    root = manifest_path(out).parent
    checksums = not quick and manifest["version"] >= 2
    statuses = _check_with_progress(root, manifest, checksums, jobs, show=not (quiet or as_json))
    if as_json:
        _print_json(root, statuses, checksums)
    else:
        _print_text(root, statuses, _what_was_checked(checksums, quick))
    if any(not s.ok for s in statuses):
        raise typer.Exit(1)


def _check_with_progress(
    root: Path, manifest: dict, checksums: bool, jobs: int | None, show: bool
) -> list[ShardStatus]:
    """check_shards with a progress bar on stderr: bytes hashed when `checksums`, else shards
    checked."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from tokenmill.shards.verify import check_shards

    shards = manifest["shards"]
    if checksums:
        total = sum(r["bytes"] for s in shards for r in (s.get("files") or {}).values())
        columns = [
            TextColumn("verifying"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        ]
    else:
        total = len(shards)
        columns = [TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TextColumn("shards")]
    with Progress(*columns, console=_err, transient=True, disable=not show) as progress:
        task = progress.add_task("", total=total)
        return check_shards(
            root,
            manifest,
            sidecar=True,
            checksums=checksums,
            jobs=jobs,
            on_shard=None if checksums else lambda s: progress.advance(task),
            on_bytes=(lambda n: progress.advance(task, n)) if checksums else None,
        )


def _what_was_checked(checksums: bool, quick: bool) -> str:
    """The checks run, in words, for the summary line."""
    if checksums:
        return "structure, sizes and SHA-256"
    return "structure and sizes" + (
        "" if quick else " (manifest version 1 records no checksums: rerun prepare for them)"
    )


def _print_json(root: Path, statuses: list[ShardStatus], checksums: bool) -> None:
    """The result as one JSON object on stdout (`--json`)."""
    bad = [s for s in statuses if not s.ok]
    result = {
        "out": str(root),
        "ok": not bad,
        "shards": len(statuses),
        "damaged": [{"prefix": s.prefix, "problems": s.problems} for s in bad],
        "checksums": checksums,
        "bytes": sum(s.bytes for s in statuses),
    }
    sys.stdout.write(json.dumps(result, indent=1) + "\n")


def _print_text(root: Path, statuses: list[ShardStatus], what: str) -> None:
    """Each damaged shard with its problems, then one summary line (and, on damage, how to
    rewrite a shard)."""
    from tokenmill.shards.verify import REWRITE_HINT

    bad = [s for s in statuses if not s.ok]
    for s in bad:
        _out.print(f"[bold red]DAMAGED[/] {s.prefix}", highlight=False, soft_wrap=True)
        for p in s.problems:
            _out.print(f"  {p}", markup=False, highlight=False, soft_wrap=True)
    if bad:
        _out.print(
            f"[bold red]{len(bad)} of {len(statuses)} shards damaged or missing[/] in {root} "
            f"({what} checked)",
            highlight=False,
            soft_wrap=True,
        )
        _out.print(REWRITE_HINT, markup=False, highlight=False, soft_wrap=True)
        return
    checked = sum(s.bytes for s in statuses)
    _out.print(
        f"[green]ok[/]: {len(statuses)} shards, {checked / 1e6:,.1f} MB in {root}: {what} "
        "match the manifest",
        highlight=False,
        soft_wrap=True,
    )
