"""A minimal, self-contained report.html (no scripts, no network): the run's numbers as tables
and the removal funnel as CSS bars. The statistics-report issue grows it into the full report."""

from __future__ import annotations

import html
import json
from pathlib import Path

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .7em;border-bottom:1px solid #eee}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{background:#4c78a8;height:.9em;display:inline-block;vertical-align:middle}
.rm{background:#e45756}pre{background:#f6f6f6;padding:1em;overflow:auto}
"""


def _n(x) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:,.3g}" if isinstance(x, float) else str(x)


def _cell(c) -> str:
    """Markup we made (bars) passes; anything else is escaped."""
    return c if isinstance(c, _Html) else html.escape(_n(c))


class _Html(str):
    pass


def _table(headers: list[str], rows: list[list], numeric_from: int = 1) -> str:
    th = "".join(
        f'<th class="{"n" if i >= numeric_from else ""}">{html.escape(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = []
    for r in rows:
        tds = "".join(
            f'<td class="{"n" if i >= numeric_from else ""}">{_cell(c)}</td>'
            for i, c in enumerate(r)
        )
        body.append(f"<tr>{tds}</tr>")
    return f"<table><tr>{th}</tr>{''.join(body)}</table>"


def _bar(value: int, top: int, cls: str = "") -> str:
    width = 0 if not top else max(1, round(300 * value / top)) if value else 0
    return _Html(f'<span class="bar {cls}" style="width:{width}px"></span> {value:,}')


def render(stats: dict, manifest: dict) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>tokenmill report</title>",
        f"<style>{_CSS}</style></head><body><h1>tokenmill report</h1>",
    ]
    t = stats["totals"]
    parts.append("<h2 id='summary'>Summary</h2>")
    parts.append(
        _table(
            ["source", "documents in", "kept", "removed", "MB in", "MB kept", "tokens", "shards"],
            [
                [
                    name,
                    s["documents_in"],
                    s["documents_kept"],
                    sum(s["removed"].values()),
                    round(s["bytes_in"] / 1e6, 2),
                    round(s["bytes_kept"] / 1e6, 2),
                    s["tokens"],
                    s["shards"],
                ]
                for name, s in stats["sources"].items()
            ]
            + [
                [
                    "total",
                    t["documents_in"],
                    t["documents_kept"],
                    sum(t["removed"].values()),
                    round(t["bytes_in"] / 1e6, 2),
                    round(t["bytes_kept"] / 1e6, 2),
                    t["tokens"],
                    "",
                ]
            ],
        )
    )
    parts.append("<h2 id='removals'>Removals by reason</h2>")
    for name, s in stats["sources"].items():
        top = s["documents_in"]
        rows = [["in", _bar(s["documents_in"], top)]]
        rows += [
            [r, _bar(n, top, "rm")] for r, n in sorted(s["removed"].items(), key=lambda x: -x[1])
        ]
        rows += [["kept", _bar(s["documents_kept"], top)]]
        parts.append(f"<h3>{html.escape(name)}</h3>" + _table(["", "documents"], rows, 99))
        if s["errors"]:
            parts.append(
                _table(
                    ["file error", "detail"], [[e["reason"], e["detail"]] for e in s["errors"]], 99
                )
            )
    parts.append("<h2 id='languages'>Languages</h2>")
    for name, s in stats["sources"].items():
        rows = [
            [lang, c["documents_in"], c["documents_kept"], c["tokens"], sum(c["removed"].values())]
            for lang, c in sorted(s["languages"].items(), key=lambda x: -x[1]["documents_in"])
        ]
        parts.append(
            f"<h3>{html.escape(name)}</h3>"
            + _table(["language", "documents in", "kept", "tokens", "removed"], rows)
        )
    parts.append("<h2 id='shards'>Shards</h2>")
    parts.append(
        _table(
            ["prefix", "source", "documents", "tokens"],
            [[s["prefix"], s["source"], s["documents"], s["tokens"]] for s in manifest["shards"]],
            2,
        )
    )
    parts.append("<h2 id='stages'>Stages</h2>")
    parts.append(
        _table(
            ["stage", "tasks", "ran", "skipped", "wall s", "task s"],
            [
                [
                    k,
                    v.get("tasks", ""),
                    v.get("ran", ""),
                    v.get("skipped", ""),
                    v.get("wall_s", ""),
                    v.get("task_s", ""),
                ]
                for k, v in stats["stages"].items()
            ],
        )
    )
    parts.append(
        "<h2 id='config'>Config</h2><pre>"
        + html.escape(json.dumps(stats["config"], indent=1))
        + "</pre>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(stats: dict, manifest: dict, path: Path) -> None:
    from tokenmill.pipelines.engine import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(render(stats, manifest), encoding="utf-8")
