"""The terminal consoles every command prints through, and how a command fails."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

err = Console(stderr=True)  # progress, errors
out = Console()  # results: tables, summaries


def fail(msg: str, code: int = 1, hint: str | None = None) -> None:
    """Print `error: msg` (one `error:` line per line of `msg`) and `hint: ...` on stderr and
    leave with `code` (no traceback). Both are plain text: brackets in them (paths,
    `pip install 'tokenmill[slurm]'`) are printed as they are."""
    for line in msg.splitlines() or [""]:
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if hint:
        err.print(f"[bold]hint:[/] {escape(hint)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
