"""The terminal side of a download: one rich byte bar for all files (rate, files done, time
left), fed by the tasks' executor events; a notice (a quick retry's countdown) is printed once
however many tasks send it. Display only: downloads do not depend on it."""

from __future__ import annotations

import threading
from pathlib import Path

from tokenmill.pipelines.download.files import _part_path, safe_join
from tokenmill.pipelines.download.plan import RemoteFile


class _Progress:
    """One byte bar for all files, fed by the tasks' worker events."""

    def __init__(self, files: list[RemoteFile], dest: Path, console, quiet: bool):
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.lock = threading.Lock()
        self.state: dict[str, dict] = {}
        for f in files:
            part = _part_path(safe_join(dest, f.rel))
            have = part.stat().st_size if part.exists() else 0
            total = f.size
            self.state[f.rel] = {"start": have, "have": have, "total": total}
        self.done = 0
        self.n = len(files)
        self.noticed: set[str] = set()
        self.progress = Progress(
            TextColumn("[bold]download"),
            BarColumn(bar_width=24),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[files]}"),
            TimeRemainingColumn(),
            console=console,
            disable=quiet,
            transient=False,
        )
        self.bar = self.progress.add_task("download", total=self._total(), files=self._files())

    def _files(self) -> str:
        return f"{self.done}/{self.n} files"

    def _total(self) -> int | None:
        totals = [s["total"] - s["start"] for s in self.state.values() if s["total"] is not None]
        return sum(totals) if len(totals) == len(self.state) else None

    def _completed(self) -> int:
        return sum(max(0, s["have"] - s["start"]) for s in self.state.values())

    def event(self, event) -> None:
        msg = event[1] if isinstance(event, tuple) else event
        if "notice" in msg:
            with self.lock:
                if msg["notice"] in self.noticed:  # tasks hitting the same dead host
                    return
                self.noticed.add(msg["notice"])
            self.progress.console.print(msg["notice"], markup=False, highlight=False)
            return
        with self.lock:
            s = self.state.get(msg.get("rel"))
            if s is None:
                return
            s.update(start=msg["start"], have=msg["have"], total=msg["total"] or s["total"])
            self.progress.update(self.bar, completed=self._completed(), total=self._total())

    def file_done(self, rel: str) -> None:
        with self.lock:
            self.done += 1
            s = self.state.get(rel)
            if s and s["total"] is not None:
                s["have"] = s["total"]
            self.progress.update(
                self.bar, completed=self._completed(), total=self._total(), files=self._files()
            )
