"""ablation.html: `tokenmill ablate`'s page, in report.html's style (inline CSS and SVG, no
script, nothing fetched): the result table (validation loss on the common held-out mixture,
mean zero-shot accuracy, each task's metrics), the training and validation loss curves, and
each variant's settings. Section ids: `#results`, `#curves`, `#tasks`, `#variants`; tables:
`#ablation-results`, `#ablation-tasks`, `#ablation-variants`."""

from __future__ import annotations

import json

from tokenmill.report import svg
from tokenmill.report.html import _CSP, _CSS, _color, _e, _kpi, fmt_human, table

SECTIONS = {
    "results": "Results",
    "curves": "Loss curves",
    "tasks": "Zero-shot tasks",
    "variants": "Variants",
}


def _fmt(v, digits: int = 4) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _changes(v: dict) -> str:
    c = v["changes"]
    if not c:
        return "(base)"
    return ", ".join(f"{k}={json.dumps(x) if not isinstance(x, str) else x}" for k, x in c.items())


def _results(s: dict) -> str:
    done = [v for v in s["variants"] if v["result"]]
    best = min(done, key=lambda v: v["result"]["valid_loss"]) if done else None
    kpis = [
        _kpi(f"{len(done)} / {len(s['variants'])}", "variants finished"),
        _kpi(fmt_human(s["tokens"]), "tokens per variant"),
        _kpi(f"{s['steps']:,}", "steps per variant"),
    ]
    if best:
        kpis.append(_kpi(best["name"], "lowest validation loss"))
    cols = [
        ("variant", lambda v: v["name"], None),
        ("changes", _changes, None),
        ("validation loss", lambda v: (v["result"] or {}).get("valid_loss"), _fmt),
        ("train loss", lambda v: (v["result"] or {}).get("loss"), _fmt),
        ("mean accuracy", lambda v: (v["result"] or {}).get("mean_accuracy"), _fmt),
        ("hours", lambda v: (v["result"] or {}).get("seconds"), _hours),
        ("state", _state, None),
    ]
    return (
        f"<div class='kpis'>{''.join(kpis)}</div>"
        "<p class='note'>Validation loss: the same held-out samples for every variant (the "
        "validation data's held-out slice, one seed). Mean accuracy: the mean of each task's "
        "<code>acc</code>, as the paper's. A variant still running or not started shows –.</p>"
        + table("ablation-results", cols, s["variants"])
    )


def _state(v: dict) -> str:
    if v.get("stale"):
        return "run with other settings (the spec changed): not shown"
    return "finished" if v["result"] else "not finished"


def _hours(v) -> str:
    return "–" if v is None else f"{v / 3600:.2f}"


def _curves(s: dict) -> str:
    train, valid = [], []
    for i, v in enumerate(s["variants"]):
        c = _color(i)
        train.append((v["name"], [(r["step"], r["loss"]) for r in v["curve"] if r["loss"]], c))
        valid.append(
            (v["name"], [(r["step"], r["valid_loss"]) for r in v["curve"] if "valid_loss" in r], c)
        )
    if not any(ps for _, ps, _ in train):
        return "<p class='note'>No variant has logged a step yet.</p>"
    legend = svg.legend([(n, c) for n, _, c in train])
    return (
        legend
        + "<div class='grid' style='--col:520px'>"
        + svg.lines(train, "training loss", x_label="step")
        + svg.lines(valid, "validation loss (common held-out mixture)", x_label="step", dots=True)
        + "</div>"
    )


def _tasks(s: dict) -> str:
    done = [v for v in s["variants"] if v["result"] and v["result"]["zero_shot"]]
    if not done:
        return "<p class='note'>No zero-shot results (no tasks in the spec, or none finished).</p>"
    metrics = sorted(
        {(t, m) for v in done for t, ms in v["result"]["zero_shot"].items() for m in ms}
    )
    rows = [{"task": t, "metric": m} for t, m in metrics]
    cols = [("task", lambda r: r["task"], None), ("metric", lambda r: r["metric"], None)]
    for v in done:
        z = v["result"]["zero_shot"]
        cols.append((v["name"], lambda r, z=z: z.get(r["task"], {}).get(r["metric"]), _fmt))
    return table("ablation-tasks", cols, rows)


def _variants(s: dict) -> str:
    cols = [
        ("variant", lambda v: v["name"], None),
        ("data", lambda v: v["settings"]["data"], None),
        ("sources", lambda v: _mix(v["settings"].get("mixture")), None),
        ("position", lambda v: v["settings"].get("position") or "preset", None),
        ("activation", lambda v: v["settings"].get("activation") or "preset", None),
        ("embed LN", lambda v: _opt(v["settings"].get("embed_ln")), None),
    ]
    spec = json.dumps(s["spec"], indent=1, default=str)
    return (
        table("ablation-variants", cols, s["variants"])
        + f"<details><summary>spec</summary><pre>{_e(spec)}</pre></details>"
    )


def _mix(m) -> str:
    return "the manifest's mixture" if not m else ", ".join(f"{k}={w:g}" for k, w in m.items())


def _opt(v) -> str:
    return "preset" if v is None else ("on" if v else "off")


_RENDER = {"results": _results, "curves": _curves, "tasks": _tasks, "variants": _variants}


def render(summary: dict) -> str:
    """The whole page for ablation.json's content."""
    title = f"tokenmill ablation: {summary['name']}"
    sub = (
        f"{len(summary['variants'])} variants · {fmt_human(summary['tokens'])} tokens each · "
        f"model {summary['spec']['base']['model']}"
    )
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1><p>{_e(sub)}</p></header>",
        "<nav>" + "".join(f"<a href='#{k}'>{_e(v)}</a>" for k, v in SECTIONS.items()) + "</nav>",
        "<main>",
    ]
    for sid, name in SECTIONS.items():
        parts += [f"<section id='{sid}'><h2>{_e(name)}</h2>", _RENDER[sid](summary), "</section>"]
    parts.append("</main></body></html>")
    return "\n".join(parts)
