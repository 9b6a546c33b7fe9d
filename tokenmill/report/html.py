"""report.html: one self-contained page (inline CSS and SVG; no script, nothing fetched; a
Content-Security-Policy forbids loading anything) built from stats.json, the manifest and the
shards. Numbers are in tables, distributions in plots; every section has an id (`#summary`,
`#funnel`, `#lengths`, `#languages`, `#lid`, `#scores`, `#duplicates`, `#shards`, `#budget`,
`#throughput`, `#config`) and every table an id, so tools and tests can find them.

The same page serves a raw-corpus scan (`tokenmill stats FILES...`): sections without data
(shards, budget without token counts) are left out.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

from tokenmill.report import summary as S
from tokenmill.report import svg

# Side-by-side blocks (.grid) are CSS grid columns of a set minimum width, not content-sized
# flex items: a table wider than its column then scrolls inside its own wrapper (.tw) instead
# of running under the next column, at any window width.
_CSS = """
:root{--fg:#1f2328;--muted:#667085;--line:#e6e8eb;--accent:#4c78a8}
*{box-sizing:border-box}
body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:var(--fg);
 background:#fafbfc}
header{background:#1f2937;color:#fff;padding:1.2em 2em}
header h1{margin:0;font-size:1.5em;font-weight:600}
header p{margin:.3em 0 0;color:#cbd5e1}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid var(--line);padding:.5em 2em;
 z-index:1;font-size:13px}
a{color:var(--accent)}
nav a{margin-right:1.1em;color:var(--accent);text-decoration:none}
main{max-width:1280px;margin:0 auto;padding:0 2em 3em}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.4em 1.4em 1.2em;
 margin-top:1.4em}
h2{font-size:1.2em;margin:.7em 0 .3em}h3{font-size:1em;margin:1.1em 0 .3em}
p.note{color:var(--muted);margin:.2em 0 .6em;font-size:13px}
.kpis{display:flex;flex-wrap:wrap;gap:.8em;margin:.8em 0}
.kpi{border:1px solid var(--line);border-radius:6px;padding:.5em .9em;min-width:130px}
.kpi b{display:block;font-size:1.35em;font-variant-numeric:tabular-nums}
.kpi span{color:var(--muted);font-size:12px}
.tw{max-width:100%;overflow-x:auto;margin:.4em 0 .8em}
table{border-collapse:collapse;font-size:13px}
th{font-weight:600;text-align:left;border-bottom:2px solid var(--line);padding:.3em .7em;
 white-space:nowrap}
td{padding:.22em .7em;border-bottom:1px solid var(--line);vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;border-top:2px solid var(--line)}
tr.sub td{color:var(--muted);font-size:12px}
tr.sub td:first-child{padding-left:1.8em}
.grid{display:grid;gap:.5em 1.5em;align-items:start;
 grid-template-columns:repeat(auto-fill,minmax(min(100%,var(--col,340px)),1fr))}
.grid>*{min-width:0}
svg{max-width:100%;height:auto}
.legend{font-size:12px;color:var(--muted);margin:.2em 0}
.key{margin-right:1em}.key i{display:inline-block;width:10px;height:10px;margin-right:4px;
 vertical-align:-1px}
.warn{color:#b54708}.bad{color:#d92d20;font-weight:600}.ok{color:#067647}
details summary{cursor:pointer;color:var(--accent);margin:.4em 0}
pre{background:#f6f8fa;border:1px solid var(--line);border-radius:6px;padding:.8em 1em;
 overflow:auto;font-size:12px;max-height:420px}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

SECTIONS = {
    "summary": "Summary",
    "funnel": "Removals",
    "lengths": "Lengths",
    "languages": "Languages",
    "lid": "LID scores",
    "scores": "Quality scores",
    "duplicates": "Duplicates",
    "decontamination": "Decontamination",
    "shards": "Shards",
    "budget": "Budget coverage",
    "throughput": "Throughput",
    "config": "Config",
}


# ---- formatting -------------------------------------------------------------------------------


def fmt_int(v) -> str:
    return "–" if v is None else f"{int(v):,}"


def fmt_pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def fmt_mb(v) -> str:
    return "–" if v is None else f"{v / 1e6:,.2f}"


def fmt_num(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def fmt_human(v) -> str:
    if v is None:
        return "–"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"


def _e(x) -> str:
    return html.escape(str(x))


Col = tuple[str, Callable[[dict], object], Callable[[object], str] | None]


def table(
    table_id: str,
    cols: list[Col],
    rows: list[dict],
    *,
    total: dict | None = None,
    sub: Callable[[dict], list[dict]] | None = None,
) -> str:
    """A table of `rows` (dicts); each column is (header, getter, formatter or None for text).

    `sub(row)` gives indented detail rows (same columns) under a row; `total` a bold last row."""
    head = "".join(f'<th class="{"n" if f else ""}">{_e(h)}</th>' for h, _, f in cols)

    def tr(row: dict, cls: str = "") -> str:
        cells = []
        for _, get, f in cols:
            v = get(row)
            cells.append(f'<td class="n">{_e(f(v))}</td>' if f else f"<td>{_breakable(v)}</td>")
        return f'<tr class="{cls}">{"".join(cells)}</tr>'

    body = []
    for r in rows:
        body.append(tr(r))
        for s in sub(r) if sub else []:
            body.append(tr(s, "sub"))
    if total is not None:
        body.append(tr(total, "total"))
    return (
        f'<div class="tw"><table id="{_e(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _breakable(text) -> str:
    """Escaped text that may wrap after ':' and '/': long removal reasons
    (quality:bigscience:too_many_special_characters) and paths otherwise set a table's
    narrowest width, too wide for two columns side by side."""
    return _e(text).replace(":", ":<wbr>").replace("/", "/<wbr>")


def _grid(items: list[str], col: int) -> str:
    """Items in columns at least `col` pixels wide (one column when the page is narrower), as
    many as fit; an item's table scrolls inside its own column rather than run under the next."""
    return f'<div class="grid" style="--col:{col}px">' + "".join(items) + "</div>"


def _kpi(value: str, label: str) -> str:
    return f'<div class="kpi"><b>{_e(value)}</b><span>{_e(label)}</span></div>'


def _color(i: int) -> str:
    return svg.PALETTE[i % len(svg.PALETTE)]


# ---- sections ---------------------------------------------------------------------------------


def _summary(stats: dict, rep: dict) -> str:
    """Headline numbers, the per-source table, what went wrong reading the sources, and a
    warning when the counts do not add up."""
    out = [_summary_kpis(stats, rep)]
    if rep.get("shards"):
        out.append(_damaged_note(rep["shards"]))
    rows, total = rep["summary"]["sources"], rep["summary"]["total"]
    out.append(table("summary-table", _summary_columns(rep), rows, total=total))
    out.append(_source_errors(stats))
    out.append(_unaccounted_note(rep))
    return "".join(out)


def _summary_kpis(stats: dict, rep: dict) -> str:
    """The row of headline numbers: documents in and kept, text in, tokens, shards, wall time."""
    t = rep["summary"]["total"]
    kpis = [
        _kpi(fmt_int(t["documents_in"]), "documents in"),
        _kpi(
            fmt_int(t["documents_kept"]),
            "documents kept" if rep["kind"] == "run" else "documents passing the filters",
        ),
        _kpi(fmt_pct(t["kept_fraction"]), "kept"),
        _kpi(f"{t['bytes_in'] / 1e6:,.1f} MB", "text in"),
    ]
    if t.get("tokens") is not None:
        kpis.append(_kpi(fmt_human(t["tokens"]), "tokens"))
    if rep.get("shards"):
        kpis.append(_kpi(fmt_int(len(rep["shards"])), "shards"))
    if stats.get("wall_s") is not None:
        kpis.append(_kpi(f"{stats['wall_s']:,.1f} s", "wall time"))
    return '<div class="kpis">' + "".join(kpis) + "</div>"


def _summary_columns(rep: dict) -> list[Col]:
    """The per-source table's columns: tokens when counted; shards and partitions for a run."""
    cols: list[Col] = [
        ("source", lambda r: r["source"], None),
        ("documents in", lambda r: r["documents_in"], fmt_int),
        ("kept", lambda r: r["documents_kept"], fmt_int),
        ("removed", lambda r: r["removed"], fmt_int),
        ("kept %", lambda r: r["kept_fraction"], fmt_pct),
        ("MB in", lambda r: r["bytes_in"], fmt_mb),
        ("MB kept", lambda r: r["bytes_kept"], fmt_mb),
    ]
    if rep["summary"]["total"].get("tokens") is not None:
        cols.append(("tokens", lambda r: r["tokens"], fmt_int))
    if rep["kind"] == "run":
        cols.append(("shards", lambda r: r["shards"], fmt_int))
        cols.append(("partitions", lambda r: r["partitions"], fmt_int))
    cols.append(("files", lambda r: r["files"], fmt_int))
    return cols


def _source_errors(stats: dict) -> str:
    """Tables of files damaged partway and of the first records set aside per reason ("" when
    there are none)."""
    errors = [(n, e) for n, s in stats["sources"].items() for e in s.get("errors", [])]
    # a source's errors hold files damaged partway and, apart, the first records set aside
    # per reason (those with a `record`): the note on lost file tails fits only the first
    damaged = [{0: n, 1: e} for n, e in errors if "record" not in e]
    examples = [{0: n, 1: e} for n, e in errors if "record" in e]
    out = []
    if damaged:
        out.append(
            "<h3>File errors</h3><p class='note'>Everything readable before the damage "
            "was used; the rest of each file is missing.</p>"
        )
        out.append(
            table(
                "errors-table",
                [
                    ("source", lambda r: r[0], None),
                    ("reason", lambda r: r[1]["reason"], None),
                    ("detail", lambda r: r[1]["detail"], None),
                ],
                damaged,
            )
        )
    if examples:
        out.append(
            "<h3>Records set aside: first examples</h3><p class='note'>The first few records "
            "set aside for each reason, with the file, record number and line they came from; "
            "every one is counted under removed.</p>"
        )
        out.append(
            table(
                "records-table",
                [
                    ("source", lambda r: r[0], None),
                    ("file", lambda r: r[1]["path"], None),
                    ("record", lambda r: r[1]["record"], fmt_int),
                    ("line", lambda r: r[1].get("line"), fmt_int),
                    ("reason", lambda r: r[1]["reason"], None),
                ],
                examples,
            )
        )
    return "".join(out)


def _unaccounted_note(rep: dict) -> str:
    """A warning naming each source whose documents in ≠ kept + removed ("" when all add up)."""
    bad = {n: v for n, v in rep["unaccounted"].items() if v}
    if not bad:
        return ""
    return (
        "<p class='bad'>Counts do not add up (documents in ≠ kept + removed): "
        + ", ".join(f"{_e(n)}: {v:+,}" for n, v in bad.items())
        + "</p>"
    )


def _funnel(stats: dict, rep: dict) -> str:
    """Removed documents by reason, then each source's (and the total's) way through the
    steps, as a chart and a table side by side."""
    blocks = [
        _step_funnel(name, rep["funnel"][name], s)
        for name, s in [*stats["sources"].items(), ("total", stats["totals"])]
    ]
    legend = svg.legend([("left after the step", svg.MUTED), ("removed", svg.REMOVED)])
    return _removals(stats, rep) + _rewrites(stats, rep) + legend + _grid(blocks, 540)


def _rewrites(stats: dict, rep: dict) -> str:
    """The rules that rewrote documents they kept (C4's line filter, pii): documents changed
    per source, bytes before and after, and under each rule its counts by kind ("" when none
    rewrote anything)."""
    rows_in = rep.get("rewrites") or {}
    if not rows_in:
        return ""
    names = list(stats["sources"])
    cols: list[Col] = [("rule", lambda r: r["rule"], None)]
    cols += [(n, (lambda r, n=n: r[n]), fmt_int) for n in names]
    cols += [
        ("total", lambda r: r["total"], fmt_int),
        ("bytes before", lambda r: r.get("bytes_in"), fmt_int),
        ("bytes after", lambda r: r.get("bytes_out"), fmt_int),
    ]
    rows = [
        {
            "rule": rule,
            **{n: v["documents"].get(n, 0) for n in names},
            "total": v["total"],
            "bytes_in": v["bytes_in"],
            "bytes_out": v["bytes_out"],
            "kinds": v["counts"],
        }
        for rule, v in rows_in.items()
    ]
    return (
        "<h3>Rewritten documents by rule</h3>"
        "<p class='note'>Documents a rule kept but changed, counted by each rule that changed "
        "them; indented rows: what the rule changed, by kind (for pii, the addresses "
        "replaced).</p>"
        + table(
            "rewrites-table",
            cols,
            rows,
            sub=lambda r: [
                {"rule": kind, **{n: c.get(n, 0) for n in names}, "total": c["total"]}
                for kind, c in r["kinds"].items()
            ],
        )
    )


def _removals(stats: dict, rep: dict) -> str:
    """The removals table (reason x source, and each reason's share of the input); for a raw
    scan, a note that it is a preview."""
    out = []
    if rep["kind"] == "raw":
        out.append(
            "<p class='note'>A preview: what the filter settings in <a href='#config'>"
            "Config</a> would remove from these files (dedup is estimated separately in "
            "<a href='#duplicates'>Duplicates</a>).</p>"
        )
    if not rep["removals"]:
        out.append("<p class='note'>Nothing was removed.</p>")
        return "".join(out)
    cols: list[Col] = [("reason", lambda r: r["reason"], None)]
    cols += [(n, (lambda r, n=n: r[n]), fmt_int) for n in stats["sources"]]
    cols += [
        ("total", lambda r: r["total"], fmt_int),
        ("% of input", lambda r: r["share"], fmt_pct),
    ]
    din = stats["totals"]["documents_in"]
    rows = [
        {"reason": k, **v, "share": S._ratio(v["total"], din)} for k, v in rep["removals"].items()
    ]
    out.append("<h3>Removed documents by reason</h3>")
    out.append(table("removals-table", cols, rows))
    return "".join(out)


def _step_funnel(name: str, steps: list[dict], s: dict) -> str:
    """One source's block: documents through the steps as bars, the same as a table with
    each step's reasons under it, and its bytes and tokens."""
    extra = ""
    if s.get("tokens") is not None:
        extra = (
            f"<p class='note'>{fmt_int(s['bytes_in'])} bytes in, "
            f"{fmt_int(s['bytes_kept'])} kept; {fmt_int(s['tokens'])} tokens kept.</p>"
        )
    chart = _step_chart(name, steps, s)
    return f"<div><h3>{_e(name)}</h3>{chart}{_step_table(name, steps, s)}{extra}</div>"


def _step_chart(name: str, steps: list[dict], s: dict) -> str:
    """Bars: documents in, then per step those left and those removed, then those kept."""
    rows = [("in", [(s["documents_in"], _color(0), f"in: {s['documents_in']:,}")])]
    text = [fmt_int(s["documents_in"])]
    for st in steps:
        left = (st["documents_out"], svg.MUTED, f"{st['step']}: {st['documents_out']:,} left")
        gone = (st["removed"], svg.REMOVED, f"{st['step']}: {st['removed']:,} removed")
        rows.append((st["step"], [left, gone]))
        text.append(f"−{st['removed']:,}")
    rows.append(("kept", [(s["documents_kept"], _color(2), f"kept: {s['documents_kept']:,}")]))
    text.append(fmt_int(s["documents_kept"]))
    return svg.hbars(
        rows, f"{name}: documents through the steps", width=440, label_width=90, value_text=text
    )


def _step_table(name: str, steps: list[dict], s: dict) -> str:
    """Per step: documents in, removed and out, with the removals by reason (when a step has
    more than its own) under it; documents kept last."""
    cols: list[Col] = [
        ("step", lambda r: r["step"], None),
        ("documents in", lambda r: r["documents_in"], fmt_int),
        ("removed", lambda r: r["removed"], fmt_int),
        ("documents out", lambda r: r["documents_out"], fmt_int),
    ]
    return table(
        f"funnel-{name}",
        cols,
        steps,
        sub=lambda r: [
            {"step": k, "documents_in": None, "removed": v, "documents_out": None}
            for k, v in r["reasons"].items()
            if [k] != [r["step"]]
        ],
        total={
            "step": "kept",
            "documents_in": None,
            "removed": None,
            "documents_out": s["documents_kept"],
        },
    )


def _lengths(stats: dict, rep: dict) -> str:
    labels = S.length_bin_labels()
    out = [
        "<p class='note'>Histograms with log2 bins: a bar counts documents whose length is "
        "between its label and twice that. Hover a bar for its count.</p>"
    ]
    cols: list[Col] = [
        ("source", lambda r: r["source"], None),
        ("bytes/doc in", lambda r: r["bytes_per_document_in"], fmt_num),
        ("bytes/doc kept", lambda r: r["bytes_per_document_kept"], fmt_num),
        ("chars median (in)", lambda r: r.get("chars_in_median") or "–", None),
        ("chars p10–p90 (kept)", lambda r: _range(r, "chars_kept"), None),
    ]
    if any(v.get("tokens_per_document") is not None for v in rep["lengths"].values()):
        cols += [
            ("tokens/doc", lambda r: r["tokens_per_document"], fmt_num),
            ("tokens median", lambda r: r.get("tokens_kept_median") or "–", None),
            ("tokens p10–p90", lambda r: _range(r, "tokens_kept"), None),
            ("bytes/token", lambda r: r["bytes_per_token"], fmt_num),
        ]
    rows = [{"source": n, **v} for n, v in rep["lengths"].items()]
    out.append(table("lengths-table", cols, rows))
    grid = []
    for name, s in stats["sources"].items():
        h = s.get("histograms", {})
        chars = [(k, h[k]) for k in ("chars_in", "chars_kept") if h.get(k)]
        if chars:
            lo, hi = S.trim_range(*[v for _, v in chars])
            series = [
                (k.replace("_", " "), v[lo:hi], svg.MUTED if k == "chars_in" else _color(0))
                for k, v in chars
            ]
            grid.append(svg.histogram(labels[lo:hi], series, f"{name}: characters per document"))
        toks = [(k, h[k]) for k in ("tokens_in", "tokens_kept") if h.get(k)]
        if toks:
            lo, hi = S.trim_range(*[v for _, v in toks])
            series = [
                (k.replace("_", " "), v[lo:hi], svg.MUTED if k == "tokens_in" else _color(1))
                for k, v in toks
            ]
            grid.append(svg.histogram(labels[lo:hi], series, f"{name}: tokens per document"))
    out.append(
        svg.legend(
            [
                ("characters, all documents in", svg.MUTED),
                ("characters, kept", _color(0)),
                ("tokens, kept", _color(1)),
            ]
        )
    )
    out.append(_grid(grid, 340))
    return "".join(out)


def _range(r: dict, name: str) -> str:
    a, b = r.get(f"{name}_p10"), r.get(f"{name}_p90")
    return f"{a} … {b}" if a and b else "–"


def _language_table(table_id: str, rows: list[dict], with_tokens: bool, steps: list[str]) -> str:
    cols: list[Col] = [
        ("language", lambda r: r["language"], None),
        ("documents in", lambda r: r["documents_in"], fmt_int),
        ("kept", lambda r: r["documents_kept"], fmt_int),
        ("kept %", lambda r: r["kept_fraction"], fmt_pct),
        ("MB in", lambda r: r["bytes_in"], fmt_mb),
        ("MB kept", lambda r: r["bytes_kept"], fmt_mb),
    ]
    if with_tokens:
        cols += [
            ("tokens", lambda r: r["tokens"], fmt_int),
            ("token share", lambda r: r["token_share"], fmt_pct),
        ]
    cols += [
        (f"− {st}", (lambda r, st=st: r["removed_by_step"].get(st, 0)), fmt_int) for st in steps
    ]
    return table(table_id, cols, rows)


def _languages(stats: dict, rep: dict) -> str:
    with_tokens = stats["totals"].get("tokens") is not None
    steps = S.ordered_steps(stats["totals"]["removed"])
    allrows = rep["languages"]["all"]
    out = [
        "<p class='note'>Language of each document as identified by fastText lid.176 "
        "(<code>und</code>: records that never reached language ID, such as invalid JSON). "
        "The “−” columns count documents removed at each step.</p>"
    ]
    top = allrows[:25]
    bars = [
        (
            r["language"],
            [
                (r["documents_kept"], _color(0), f"{r['language']}: {r['documents_kept']:,} kept"),
                (r["removed"], svg.REMOVED, f"{r['language']}: {r['removed']:,} removed"),
            ],
        )
        for r in top
    ]
    out.append(svg.legend([("kept", _color(0)), ("removed", svg.REMOVED)]))
    out.append(
        svg.hbars(
            bars,
            "documents per language (all sources)"
            + (f", top {len(top)}" if len(allrows) > len(top) else ""),
            width=620,
            label_width=70,
            value_text=[fmt_int(r["documents_in"]) for r in top],
        )
    )
    out.append("<h3>All sources</h3>")
    out.append(_language_table("languages-all", allrows, with_tokens, steps))
    for name in stats["sources"]:
        rows = rep["languages"][name]
        out.append(f"<details open><summary>{_e(name)}: {len(rows)} languages</summary>")
        out.append(_language_table(f"languages-{name}", rows, with_tokens, steps))
        out.append("</details>")
    return "".join(out)


def _lid(stats: dict, rep: dict) -> str:
    """LID score histograms per source (all languages, then its two largest) and, per
    language, the documents below the threshold."""
    labels = S.score_bin_labels()
    cfg = stats.get("config", {}).get("langid") or {}
    threshold = cfg.get("threshold")
    marker = (threshold * len(labels), f"threshold {threshold:g}") if threshold else None
    grid = [
        _grid(charts, 340)
        for name, s in stats["sources"].items()
        if (charts := _lid_charts(name, s.get("languages", {}), labels, marker))
    ]
    if not grid:
        return "<p class='note'>Language ID was off: no scores.</p>"
    return (
        "<p class='note'>Probability of the top language, 20 bins of 0.05, per source: all "
        "languages, then its two largest. Documents below the threshold (per-language "
        "thresholds may differ) are removed as <code>langid:below_threshold</code>.</p>"
        + "".join(grid)
        + _below_threshold_table(stats, rep)
    )


def _lid_charts(name: str, langs: dict, labels: list[str], marker) -> list[str]:
    """One source's score histograms: all its languages, then its two largest by documents
    ([] when it has no scores)."""
    total = None
    for c in langs.values():
        if c.get("lang_score"):
            total = S.hist.add(total, c["lang_score"])
    if not total:
        return []
    ranked = sorted(
        ((c["documents_in"], lang) for lang, c in langs.items() if c.get("lang_score")),
        reverse=True,
    )
    series = [("documents", total, f"{name}: all languages")]
    series += [(lang, langs[lang]["lang_score"], f"{name}: {lang}") for _, lang in ranked[:2]]
    return [
        svg.histogram(
            labels, [(label, counts, _color(i))], title, width=340, height=170, marker=marker
        )
        for i, (label, counts, title) in enumerate(series)
    ]


def _scores(stats: dict, rep: dict) -> str:
    """The quality classifier's scores (fasttext_quality) per source: a histogram with the
    threshold, and a table of documents scored and removed below it."""
    labels = S.score_bin_labels()
    cfg = (stats.get("config", {}).get("quality") or {}).get("fasttext_quality") or {}
    floor = cfg.get("min_score")
    marker = (floor * len(labels), f"min_score {floor:g}") if floor is not None else None
    rows = [{"source": n, **v} for n, v in rep["quality_scores"].items()]
    charts = [
        svg.histogram(
            labels,
            [("documents", r["histogram"], _color(i))],
            f"{r['source']}: score for {cfg.get('label', 'the label')}",
            width=340,
            height=170,
            marker=marker,
        )
        for i, r in enumerate(rows)
    ]
    cols: list[Col] = [
        ("source", lambda r: r["source"], None),
        ("documents scored", lambda r: r["scored"], fmt_int),
        ("removed (low_score)", lambda r: r["removed"], fmt_int),
        ("share removed", lambda r: S._ratio(r["removed"], r["scored"]), fmt_pct),
    ]
    return (
        "<p class='note'>The fastText classifier's probability for its label "
        "(<code>quality.fasttext_quality</code>), 20 bins of 0.05, over every document it "
        "judged. Documents below <code>min_score</code> are removed as "
        f"<code>{S.LOW_SCORE}</code>; the kept ones carry their score in the shards' "
        "<code>.docs.parquet</code> (<code>quality_score</code>).</p>"
        + _grid(charts, 340)
        + table("scores-table", cols, rows)
    )


def _below_threshold_table(stats: dict, rep: dict) -> str:
    """Per language with any: documents removed as langid:below_threshold and their share of
    its documents ("" when none were)."""
    rows = []
    for r in rep["languages"]["all"]:
        lang = r["language"]
        below = sum(
            s.get("languages", {}).get(lang, {}).get("removed", {}).get("langid:below_threshold", 0)
            for s in stats["sources"].values()
        )
        if below:
            share = S._ratio(below, r["documents_in"])
            rows.append(
                {
                    "language": lang,
                    "documents_in": r["documents_in"],
                    "below": below,
                    "share": share,
                }
            )
    if not rows:
        return ""
    cols: list[Col] = [
        ("language", lambda r: r["language"], None),
        ("documents in", lambda r: r["documents_in"], fmt_int),
        ("below threshold", lambda r: r["below"], fmt_int),
        ("share", lambda r: r["share"], fmt_pct),
    ]
    return "<h3>Below the threshold, per language</h3>" + table("lid-table", cols, rows)


def _decontamination(stats: dict, rep: dict) -> str:
    """Per evaluation set: its items, the documents removed for sharing an n-gram with it,
    and which items they hit."""
    n = stats.get("config", {}).get("decontaminate", {}).get("ngram")
    rows = [{"set": name, **s} for name, s in rep["decontamination"].items()]
    out = [
        "<p class='note'>A document sharing a word n-gram"
        + (f" ({n} words)" if n else "")
        + " with an item of an evaluation set is removed (<code>decontam:SET</code>). Items "
        "with fewer words cannot be found (too short). Item numbers count from 0 in the "
        "file's order.</p>",
        table(
            "decontam-table",
            [
                ("set", lambda r: r["set"], None),
                ("items", lambda r: r["items"], fmt_int),
                ("too short", lambda r: r["too_short"], fmt_int),
                ("n-grams", lambda r: r["ngrams"], fmt_int),
                ("documents removed", lambda r: r["documents_removed"], fmt_int),
                ("items hit", lambda r: r["items_hit"], fmt_int),
                ("first items hit", lambda r: ", ".join(map(str, r["items_hit_first"][:20])), None),
            ],
            rows,
        ),
    ]
    return "".join(out)


def _duplicates(stats: dict, rep: dict) -> str:
    """Duplicate clusters per dedup stage (raw: over all sources, then per source): sizes as
    a chart and a table, and what dedup removed (or would)."""
    if not rep["duplicates"]:
        return "<p class='note'>Deduplication was off.</p>"
    raw = rep["kind"] == "raw"
    out = [
        "<p class='note'>A cluster is a group of documents with the same text (exact) or "
        "near-identical text (MinHash). In each cluster one document is kept.</p>"
    ]
    entries = rep["duplicates"]
    per_source = ""
    if raw:
        out.append(f"<p class='note'>{_e(stats['duplicates']['note'])}</p>")
        entries, rest = entries[:1], entries[1:]
        if rest:
            per_source = "<h3>Per source (duplicates within the source)</h3>" + table(
                "duplicates-sources",
                [
                    ("source", lambda r: r["stage"], None),
                    ("clusters", lambda r: r["clusters"], fmt_int),
                    ("documents in clusters", lambda r: r["documents_in_clusters"], fmt_int),
                    ("extra copies", lambda r: r["removed"], fmt_int),
                ],
                rest,
            )
    out.append(_grid([_duplicate_clusters(d, raw) for d in entries], 380) + per_source)
    return "".join(out)


def _duplicate_clusters(d: dict, raw: bool) -> str:
    """One dedup stage's block: clusters by size as a chart and a table, and a note on what
    was removed (raw: what exact dedup would remove)."""
    name = d["stage"]
    rows = [{"copies": k, "clusters": v, "documents": k * v} for k, v in d["cluster_sizes"].items()]
    head = f"<h3>{_e(name)}</h3>"
    if d.get("note") and not raw:
        head += f"<p class='note'>{_e(d['note'])}</p>"
    if raw:
        removed = (
            f"<p class='note'>{fmt_int(d['clusters'])} clusters: exact dedup would "
            f"remove {fmt_int(d['removed'])} extra copies.</p>"
        )
    else:
        removed = (
            f"<p class='note'>{fmt_int(d['clusters'])} clusters; "
            f"{fmt_int(d['removed'])} documents removed"
            + (f" as <code>{_e(d['reason'])}</code>" if d["reason"] else "")
            + ".</p>"
        )
    cols: list[Col] = [
        ("copies", lambda r: r["copies"], lambda v: v if isinstance(v, str) else fmt_int(v)),
        ("clusters", lambda r: r["clusters"], fmt_int),
        ("documents", lambda r: r["documents"], fmt_int),
    ]
    total = {"copies": "total", "clusters": d["clusters"], "documents": d["documents_in_clusters"]}
    tbl = table(f"duplicates-{name.replace(' ', '-')}", cols, rows, total=total)
    chart = ""
    if rows:
        chart = svg.histogram(
            [str(r["copies"]) for r in rows],
            [("clusters", [r["clusters"] for r in rows], _color(4))],
            f"{name}: clusters by size (copies)",
            width=380,
            height=170,
        )
    return f"<div>{head}{chart}{tbl}{removed}</div>"


def _shards(stats: dict, rep: dict) -> str:
    rows = rep["shards"]
    cap = rep.get("tokens_per_shard")
    sources = list(dict.fromkeys(r["source"] for r in rows))
    color = {s: _color(i) for i, s in enumerate(sources)}
    if len(rows) > MAX_SHARD_ROWS:
        return _many_shards(rows, cap, sources, color)
    bars = [
        (
            r["prefix"].rsplit("/", 1)[-1],
            [(r["tokens"], color[r["source"]], f"{r['prefix']}: {r['tokens']:,} tokens")],
        )
        for r in rows
    ]
    out = [
        f"<p class='note'>{len(rows)} shards"
        + (f", at most {cap:,} tokens each" if cap else "")
        + f". {_SHARD_CHECK}</p>",
        _damaged_note(rows),
    ]
    out.append(svg.legend([(s, color[s]) for s in sources]))
    out.append(
        svg.hbars(
            bars,
            "tokens per shard",
            width=620,
            label_width=120,
            value_text=[fmt_human(r["tokens"]) for r in rows],
        )
    )
    cols: list[Col] = [
        ("prefix", lambda r: r["prefix"], None),
        ("source", lambda r: r["source"], None),
        ("documents", lambda r: r["documents"], fmt_int),
        ("tokens", lambda r: r["tokens"], fmt_int),
        ("fill", lambda r: r["fill"], fmt_pct),
        ("longest doc (tokens)", lambda r: r.get("max_document_tokens"), fmt_int),
        ("check vs .idx", lambda r: "not checked" if r["check"] is None else r["check"], None),
    ]
    total = {
        "prefix": "total",
        "source": "",
        "documents": sum(r["documents"] for r in rows),
        "tokens": sum(r["tokens"] for r in rows),
        "fill": None,
        "check": "",
    }
    out.append(table("shards-table", cols, rows, total=total))
    return "".join(out)


MAX_SHARD_ROWS = 200  # above this, shards are summarized per source
_SHARD_CHECK = (
    "Each is checked on disk: its <code>.idx</code> structure, the <code>.bin</code> size the "
    "index implies, and the counts and file sizes manifest.json records "
    "(<code>tokenmill verify</code> also compares SHA-256)."
)


def _damaged_note(rows: list[dict]) -> str:
    bad = S.damaged_shards({"shards": rows})
    if not bad:
        return ""
    return (
        f"<p class='bad'>{len(bad):,} of {len(rows):,} shards are damaged or missing: "
        + _e(_first([f"{r['prefix']}: {r['check']}" for r in bad]))
        + ". Do not train on this output: see <code>tokenmill verify</code>.</p>"
    )


def _first(items: list[str], n: int = 3) -> str:
    if not items:
        return "–"
    more = f" and {len(items) - n:,} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _many_shards(rows: list[dict], cap, sources: list[str], color: dict) -> str:
    by: dict[str, list[dict]] = {s: [r for r in rows if r["source"] == s] for s in sources}
    out = [
        f"<p class='note'>{len(rows):,} shards"
        + (f", at most {cap:,} tokens each" if cap else "")
        + f"; per source below (every shard is in manifest.json). {_SHARD_CHECK}</p>",
        _damaged_note(rows),
    ]
    if cap:
        labels = [f"{10 * k}%" for k in range(10)]
        series = []
        for s in sources:
            h = [0] * 10
            for r in by[s]:
                h[min(9, int(10 * r["tokens"] / cap))] += 1
            series.append((s, h, color[s]))
        out.append(svg.legend([(s, color[s]) for s in sources]))
        out.append(svg.histogram(labels, series, "shards by fill (tokens / shard size)"))
    summary_rows = [
        {
            "source": s,
            "shards": len(rs),
            "documents": sum(r["documents"] for r in rs),
            "tokens": sum(r["tokens"] for r in rs),
            "min": min(r["tokens"] for r in rs),
            "max": max(r["tokens"] for r in rs),
            "ok": sum(r["check"] == "ok" for r in rs),
            "problems": _first(
                [f"{r['prefix']}: {r['check']}" for r in rs if r["check"] not in ("ok", None)]
            ),
        }
        for s, rs in by.items()
    ]
    cols: list[Col] = [
        ("source", lambda r: r["source"], None),
        ("shards", lambda r: r["shards"], fmt_int),
        ("documents", lambda r: r["documents"], fmt_int),
        ("tokens", lambda r: r["tokens"], fmt_int),
        ("smallest", lambda r: r["min"], fmt_int),
        ("largest", lambda r: r["max"], fmt_int),
        ("match .idx", lambda r: r["ok"], fmt_int),
        ("problems", lambda r: r["problems"], None),
    ]
    out.append(table("shards-sources", cols, summary_rows))
    return "".join(out)


def _budget(stats: dict, rep: dict) -> str:
    out = [
        "<p class='note'>How the prepared tokens cover a training budget: each source "
        "supplies its mixture weight × budget tokens, so it is seen "
        "<i>epochs</i> = weight × budget / tokens times (see <code>tokenmill plan</code>). "
        "More than ~4 epochs means repeating a source a lot: add data or lower its weight."
        "</p>"
    ]
    grid = []
    for name, rows in rep["budgets"].items():
        tid = f"budget-{name}"
        tbl = table(
            tid,
            [
                ("source", lambda r: r["source"], None),
                ("tokens", lambda r: r["tokens"], fmt_int),
                ("weight", lambda r: r["weight"], lambda v: f"{v:.3f}"),
                ("tokens drawn", lambda r: r["share_tokens"], fmt_int),
                ("epochs", lambda r: r["epochs"], _epochs),
            ],
            rows,
        )
        top_epochs = max((r["epochs"] or 0) for r in rows) if rows else 0
        bars = [
            (
                r["source"],
                [(r["epochs"] or 0, _color(i), f"{r['source']}: {(r['epochs'] or 0):,.1f} epochs")],
            )
            for i, r in enumerate(rows)
        ]
        chart = svg.hbars(
            bars,
            f"{name} tokens: epochs per source",
            width=460,
            label_width=90,
            value_text=[_epochs(r["epochs"]) for r in rows],
            marker=(1.0, "1 epoch") if top_epochs < 50 else None,
        )
        many = [r for r in rows if r.get("warning")]
        warns = (
            "<p class='warn'>Repeated more than 4 times: "
            + ", ".join(f"{_e(r['source'])} ({_epochs(r['epochs'])})" for r in many)
            + ". Add data or lower their weights.</p>"
            if many
            else ""
        )
        grid.append(f"<div><h3>{_e(name)} tokens</h3>{chart}{tbl}{warns}</div>")
    out.append(_grid(grid, 460))
    return "".join(out)


def _epochs(v) -> str:
    return "∞" if v is None else f"{v:,.2f}×" if v < 10 else f"{v:,.0f}×"


def _other_counts(r: dict) -> str:
    items = [f"{k.replace('_', ' ')} {fmt_num(v)}" for k, v in r["other"].items()]
    return ", ".join(items) or "–"


def _throughput(stats: dict, rep: dict) -> str:
    rows = rep["stages"]
    if not rows:
        return "<p class='note'>No stage timings.</p>"
    cols: list[Col] = [
        ("stage", lambda r: r["stage"], None),
        ("tasks", lambda r: r.get("tasks"), fmt_int),
        ("skipped", lambda r: r.get("skipped"), fmt_int),
        ("wall s", lambda r: r.get("wall_s"), fmt_num),
        ("task s", lambda r: r.get("task_s"), fmt_num),
        ("in", lambda r: r["in"], fmt_int),
        ("out", lambda r: r["out"], fmt_int),
        ("counted", lambda r: (r["measure"] or "–").replace("_", " "), None),
        ("MB in", lambda r: r["bytes_in"], fmt_mb),
        ("tokens", lambda r: r["tokens"], fmt_int),
        ("in/s", lambda r: r["documents_per_s"], fmt_num),
        ("MB/s", lambda r: r["mb_per_s"], fmt_num),
        ("tokens/s", lambda r: r["tokens_per_s"], fmt_num),
        ("other counts", _other_counts, None),
    ]
    out = [
        "<p class='note'>What each stage took in and gave out (<i>counted</i>: records, "
        "documents or hashes), and rates per second of its wall time, over all workers. "
        "<i>task s</i> sums the time of every task. A resumed stage (skipped tasks) has "
        "no rates.</p>"
    ]
    bars = [
        (r["stage"], [(r.get("wall_s") or 0, _color(0), f"{r['stage']}: {r.get('wall_s')} s")])
        for r in rows
    ]
    out.append(
        svg.hbars(
            bars,
            "wall time per stage (s)",
            width=560,
            label_width=90,
            value_text=[f"{r.get('wall_s') or 0:,.2f} s" for r in rows],
        )
    )
    out.append(table("throughput-table", cols, rows))
    return "".join(out)


def _config(stats: dict, rep: dict) -> str:
    import yaml

    out = []
    if rep.get("tokenizer"):
        t = rep["tokenizer"]
        out.append("<h3>Tokenizer</h3>")
        out.append(
            table(
                "tokenizer-table",
                [("key", lambda r: r[0], None), ("value", lambda r: r[1], None)],
                [{0: k, 1: v} for k, v in t.items()],
            )
        )
    if rep.get("mixture"):
        out.append("<h3>Mixture</h3>")
        out.append(
            table(
                "mixture-table",
                [
                    ("source", lambda r: r[0], None),
                    ("weight", lambda r: r[1], lambda v: f"{v:.4f}"),
                ],
                [{0: k, 1: v} for k, v in rep["mixture"].items()],
            )
        )
    out.append("<h3>Config</h3>")
    text = yaml.safe_dump(stats.get("config", {}), sort_keys=True, allow_unicode=True)
    out.append(f"<pre id='config-yaml'>{_e(text)}</pre>")
    return "".join(out)


_RENDER = {
    "summary": _summary,
    "funnel": _funnel,
    "lengths": _lengths,
    "languages": _languages,
    "lid": _lid,
    "scores": _scores,
    "duplicates": _duplicates,
    "decontamination": _decontamination,
    "shards": _shards,
    "budget": _budget,
    "throughput": _throughput,
    "config": _config,
}


def present_sections(rep: dict) -> list[str]:
    """Section ids the page has for this report (shards and budget need their data)."""
    skip = {"shards"} if not rep.get("shards") else set()
    if not rep.get("decontamination"):
        skip.add("decontamination")
    if not rep.get("quality_scores"):
        skip.add("scores")
    if not rep.get("budgets"):
        skip.add("budget")
    return [s for s in SECTIONS if s not in skip]


def render(stats: dict, manifest: dict | None, rep: dict | None = None) -> str:
    """The whole page as a string (`rep`: summary.build's result, computed when not given)."""
    stats = S.in_config_order(stats)
    rep = rep if rep is not None else S.build(stats, manifest)
    kind = rep["kind"]
    title = "tokenmill report" if kind == "run" else "tokenmill raw corpus report"
    t = rep["summary"]["total"]
    subtitle = (
        f"{len(stats['sources'])} sources · {fmt_int(t['documents_in'])} documents in · "
        f"{fmt_int(t['documents_kept'])} kept"
        + (f" · {fmt_int(t['tokens'])} tokens" if t.get("tokens") is not None else "")
    )
    if kind == "raw":
        subtitle += " (before any processing; kept = would pass the filters)"
    ids = present_sections(rep)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1><p>{_e(subtitle)}</p></header>",
        "<nav>" + "".join(f"<a href='#{s}'>{_e(SECTIONS[s])}</a>" for s in ids) + "</nav><main>",
    ]
    for sid in ids:
        parts.append(f"<section id='{sid}'><h2>{_e(SECTIONS[sid])}</h2>")
        parts.append(_RENDER[sid](stats, rep))
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def write_report(
    stats: dict,
    manifest: dict | None,
    path: Path,
    *,
    out: Path | None = None,
    budgets=S.DEFAULT_BUDGETS,
) -> dict:
    """Write report.html and return the report's data (summary.build).

    Shards are checked against their .idx files under `out` (default: the report's folder when
    it holds the manifest's shards)."""
    from tokenmill.pipelines.engine import atomic_path

    path = Path(path)
    if out is None and manifest and manifest.get("shards"):
        first = manifest["shards"][0]["prefix"]
        if (path.parent / (first + ".idx")).exists():
            out = path.parent
    rep = S.build(stats, manifest, out=out, budget_names=budgets)
    with atomic_path(path) as tmp:
        tmp.write_text(render(stats, manifest, rep), encoding="utf-8")
    return rep


def dumps(stats: dict, rep: dict) -> str:
    """stats.json with the report's derived numbers under "report" (for --json)."""
    return json.dumps({**stats, "report": rep}, indent=1, default=str)
