"""The terminal consoles every command prints through, and how a command fails."""

from __future__ import annotations

import typer
from rich.console import Console

err = Console(stderr=True)  # progress, errors
out = Console()  # results: tables, summaries


def fail(msg: str, code: int = 1) -> None:
    """Print `error: msg` on stderr and leave with `code` (no traceback)."""
    err.print(f"[bold red]error:[/] {msg}", highlight=False)
    raise typer.Exit(code)
