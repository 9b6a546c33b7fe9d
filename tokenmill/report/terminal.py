"""The report's main numbers as terminal tables (rich), as `tokenmill stats` prints them: the
same numbers as report.html (summary.build's result), fewer of them, no plots."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_report(stats: dict, rep: dict, console: Console) -> None:
    """The report's main numbers as terminal tables, then each source's errors, one a line."""
    raw = rep["kind"] == "raw"
    tokens = stats["totals"].get("tokens") is not None
    console.print(_summary_table(rep, raw, tokens))
    if rep["removals"]:
        console.print(_removals_table(list(stats["sources"]), rep["removals"], raw))
    if rep["languages"]["all"]:
        console.print(_languages_table(rep["languages"]["all"], tokens))
    console.print(_lengths_table(rep["lengths"], tokens))
    if rep["duplicates"]:
        console.print(_duplicates_table(rep["duplicates"], raw))
        # a raw scan's duplicates estimated from a hash sample (not exact) say so
        if (
            raw
            and rep["duplicates"][0]["cluster_sizes"] != {}
            and stats["duplicates"].get("exact") is False
        ):
            console.print(f"[dim]{stats['duplicates']['note']}[/]", highlight=False)
    if rep.get("budgets"):
        console.print(_budget_table(rep["budgets"]))
    if rep["stages"]:
        console.print(_throughput_table(rep["stages"]))
    for n, s in stats["sources"].items():
        for e in s.get("errors", []):
            console.print(f"[yellow]{n}: {e['reason']}[/] {e['detail']}", highlight=False)


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


def _summary_table(rep: dict, raw: bool, tokens: bool) -> Table:
    """Per source and in total: documents in, kept and removed, MB in, tokens, shards or files."""
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
    return t


def _removals_table(sources: list[str], removals: dict, raw: bool) -> Table:
    """Documents removed per reason: per source and in total (only the total for one source)."""
    t = _table(
        "would be removed, by reason" if raw else "removed by reason",
        ["reason", *sources, "total"] if len(sources) > 1 else ["reason", "documents"],
    )
    for reason, v in removals.items():
        vals = [v[s] for s in sources] + [v["total"]] if len(sources) > 1 else [v["total"]]
        t.add_row(reason, *map(_n, vals))
    return t


def _languages_table(langs: list[dict], tokens: bool) -> Table:
    """The ten languages with the most documents: documents in and kept, MB in, tokens."""
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
    return t


def _lengths_table(lengths: dict, tokens: bool) -> Table:
    """Per source: mean bytes per document and median characters (and tokens)."""
    t = _table(
        "lengths (medians are log2 bins)",
        ["source", "bytes/doc", "chars median"]
        + (["tokens/doc", "tokens median"] if tokens else []),
    )
    for n, v in lengths.items():
        t.add_row(
            n,
            _n(v["bytes_per_document_in"]),
            v.get("chars_in_median") or "–",
            *([_n(v["tokens_per_document"]), v.get("tokens_kept_median") or "–"] if tokens else []),
        )
    return t


def _duplicates_table(duplicates: list[dict], raw: bool) -> Table:
    """Per dedup stage: clusters, documents in them, and those removed (raw: extra copies)."""
    t = _table(
        "duplicates",
        ["", "clusters", "docs in clusters", "removed" if not raw else "extra copies"],
    )
    for d in duplicates:
        t.add_row(d["stage"], _n(d["clusters"]), _n(d["documents_in_clusters"]), _n(d["removed"]))
    return t


def _budget_table(budgets: dict[str, list[dict]]) -> Table:
    """Epochs per source for each token budget (∞ for a source with no tokens)."""
    names = list(budgets)
    t = _table("budget coverage: epochs per source", ["source", *names])
    by_source: dict[str, list[str]] = {}
    for b in names:
        for r in budgets[b]:
            e = r["epochs"]
            by_source.setdefault(r["source"], []).append("∞" if e is None else f"{e:,.2f}")
    for s, vals in by_source.items():
        t.add_row(s, *vals)
    return t


def _throughput_table(stages: list[dict]) -> Table:
    """Per stage: tasks, wall time, input, and rates per second."""
    t = _table("throughput", ["stage", "tasks", "wall s", "in", "in/s", "MB/s", "tokens/s"])
    for r in stages:
        t.add_row(
            r["stage"],
            _n(r.get("tasks")),
            _n(r.get("wall_s")),
            _n(r["in"]),
            _n(r["documents_per_s"]),
            _n(r["mb_per_s"]),
            _n(r["tokens_per_s"]),
        )
    return t
