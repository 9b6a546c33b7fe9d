"""The terminal consoles every command prints through, and how a command fails."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

err = Console(stderr=True)  # progress, errors
out = Console()  # results: tables, summaries


def fail(msg: str, code: int = 1) -> None:
    """Print `error: msg` on stderr and leave with `code` (no traceback). `msg` is plain text:
    brackets in it (paths, `pip install 'tokenmill[slurm]'`) are printed as they are."""
    err.print(f"[bold red]error:[/] {escape(msg)}", highlight=False)
    raise typer.Exit(code)
