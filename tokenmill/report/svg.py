"""Small inline-SVG charts for report.html: no JavaScript, nothing fetched.

Each function returns one `<svg>` element as a string. Hovering a bar shows its exact value
(an SVG `<title>`), so the page stays static and self-contained.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#72b7b2", "#eeca3b", "#9d755d", "#bab0ac"]
REMOVED = "#e45756"
MUTED = "#c9d3df"
_FONT = "font-family:system-ui,sans-serif;font-size:11px;fill:#444"


def _fmt(v: float) -> str:
    """Compact axis numbers: 1.2K, 35M."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}" if isinstance(v, float) and not float(v).is_integer() else f"{int(v)}"


def _nice_ticks(top: float, n: int = 4) -> list[float]:
    if top <= 0:
        return [0.0]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    # up to the first tick at or above `top`: the tallest bar stays inside the plot
    return [i * step for i in range(math.ceil(top / step) + 1)]


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def legend(series: list[tuple[str, str]]) -> str:
    """An HTML legend line for (name, color) pairs."""
    items = "".join(
        f'<span class="key"><i style="background:{c}"></i>{escape(n)}</span>' for n, c in series
    )
    return f'<div class="legend">{items}</div>'


def histogram(
    bins: list[str],
    series: list[tuple[str, list[float], str]],
    title: str,
    *,
    width: int = 520,
    height: int = 200,
    marker: tuple[float, str] | None = None,
) -> str:
    """Vertical bars over labelled bins; several series are drawn side by side in each bin.

    `marker` (bin position, label) draws a dashed vertical line, e.g. a threshold."""
    left, right, top_pad, bottom = 46, 8, 22, 34
    pw, ph = width - left - right, height - top_pad - bottom
    top = max((max(v) if v else 0) for _, v, _ in series) if series else 0
    ticks = _nice_ticks(top)
    ymax = max(ticks[-1], 1)
    nb = max(len(bins), 1)
    slot = pw / nb
    bw = min(36.0, max(1.0, (slot - 2) / max(len(series), 1)))
    inset = (slot - bw * len(series)) / 2  # centre the group in its bin
    out = [f'<text x="{left}" y="14" style="{_FONT};font-weight:600">{escape(title)}</text>']
    for t in ticks:
        y = top_pad + ph - ph * t / ymax
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" style="{_FONT}">'
            f"{_fmt(t)}</text>"
        )
    for si, (name, values, color) in enumerate(series):
        for i, v in enumerate(values):
            if not v:
                continue
            h = ph * v / ymax
            x = left + i * slot + inset + si * bw
            y = top_pad + ph - h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{escape(name)} {escape(bins[i])}: {v:,}</title></rect>"
            )
    every = max(1, math.ceil(nb / (pw / 38)))
    for i, b in enumerate(bins):
        if i % every == 0:
            x = left + i * slot + slot / 2
            out.append(
                f'<text x="{x:.1f}" y="{top_pad + ph + 14}" text-anchor="middle" '
                f'style="{_FONT}">{escape(b)}</text>'
            )
    if marker is not None:
        x = left + marker[0] * slot
        # the label on the line's left when the line is in the plot's right third (no clipping)
        tx, anchor = (x - 3, "end") if x > left + 2 * pw / 3 else (x + 3, "start")
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top_pad}" y2="{top_pad + ph}" '
            f'stroke="{REMOVED}" stroke-dasharray="4 3"/>'
            f'<text x="{tx:.1f}" y="{top_pad + 10}" text-anchor="{anchor}" '
            f'style="{_FONT};fill:{REMOVED}">{escape(marker[1])}</text>'
        )
    out.append(
        f'<line x1="{left}" x2="{left + pw}" y1="{top_pad + ph}" y2="{top_pad + ph}" '
        'stroke="#999"/>'
    )
    return _svg(width, height, title, out)


def hbars(
    rows: list[tuple[str, list[tuple[float, str, str]]]],
    title: str,
    *,
    width: int = 520,
    label_width: int = 150,
    value_text: list[str] | None = None,
    marker: tuple[float, str] | None = None,
) -> str:
    """Horizontal bars, one row per label; each row is a stack of (value, color, tooltip)
    segments. `value_text` is printed after each bar; `marker` (value, label) draws a dashed
    reference line (e.g. 1 epoch)."""
    row_h, top_pad = 20, 22
    height = top_pad + row_h * len(rows) + (22 if marker else 8)
    pw = width - label_width - 70
    top = max([sum(v for v, _, _ in segs) for _, segs in rows] + [marker[0] if marker else 0])
    top = top or 1
    out = [f'<text x="0" y="14" style="{_FONT};font-weight:600">{escape(title)}</text>']
    for i, (label, segs) in enumerate(rows):
        y = top_pad + i * row_h
        short = label if len(label) <= 24 else label[:23] + "…"
        out.append(
            f'<text x="{label_width - 6}" y="{y + 13}" text-anchor="end" style="{_FONT}">'
            f"<title>{escape(label)}</title>{escape(short)}</text>"
        )
        x = float(label_width)
        for v, color, tip in segs:
            w = pw * v / top
            if w > 0:
                out.append(
                    f'<rect x="{x:.1f}" y="{y + 3}" width="{max(w, 0.8):.1f}" height="{row_h - 6}" '
                    f'fill="{color}"><title>{escape(tip)}</title></rect>'
                )
            x += w
        if value_text is not None:
            out.append(
                f'<text x="{x + 4:.1f}" y="{y + 13}" style="{_FONT}">{escape(value_text[i])}</text>'
            )
    if marker is not None:
        x = label_width + pw * marker[0] / top
        y2 = top_pad + row_h * len(rows)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top_pad - 2}" y2="{y2 + 2}" stroke="#333" '
            f'stroke-dasharray="3 3"/><text x="{x:.1f}" y="{y2 + 14}" text-anchor="middle" '
            f'style="{_FONT}">{escape(marker[1])}</text>'
        )
    return _svg(width, height, title, out)


def lines(
    series: list[tuple[str, list[tuple[float, float]], str]],
    title: str,
    *,
    width: int = 560,
    height: int = 240,
    x_label: str = "",
    dots: bool = False,
) -> str:
    """Line plot of (x, y) points per series (name, points, color): loss curves. The y axis
    spans the data's range (losses do not start at 0); `dots` marks each point (sparse series,
    e.g. validation every N steps). Hovering a point shows its values."""
    left, right, top_pad, bottom = 46, 10, 22, 34
    pw, ph = width - left - right, height - top_pad - bottom
    pts = [p for _, ps, _ in series for p in ps]
    out = [f'<text x="{left}" y="14" style="{_FONT};font-weight:600">{escape(title)}</text>']
    if not pts:
        return _svg(width, height, title, out)
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    pad = (y1 - y0) * 0.05 or abs(y1) * 0.05 or 1.0
    y0, y1 = y0 - pad, y1 + pad
    x1 = x1 if x1 > x0 else x0 + 1

    def sx(x: float) -> float:
        return left + pw * (x - x0) / (x1 - x0)

    def sy(y: float) -> float:
        return top_pad + ph - ph * (y - y0) / (y1 - y0)

    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{sy(y) + 4:.1f}" text-anchor="end" style="{_FONT}">'
            f"{y:.3g}</text>"
        )
    for i in range(5):
        x = x0 + (x1 - x0) * i / 4
        out.append(
            f'<text x="{sx(x):.1f}" y="{top_pad + ph + 14}" text-anchor="middle" '
            f'style="{_FONT}">{_fmt(round(x))}</text>'
        )
    if x_label:
        out.append(
            f'<text x="{left + pw}" y="{height - 4}" text-anchor="end" style="{_FONT}">'
            f"{escape(x_label)}</text>"
        )
    for name, ps, color in series:
        if not ps:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ps)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5">'
            f"<title>{escape(name)}</title></polyline>"
        )
        if dots or len(ps) == 1:
            for x, y in ps:
                out.append(
                    f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}">'
                    f"<title>{escape(name)} step {x:g}: {y:.4f}</title></circle>"
                )
    out.append(
        f'<line x1="{left}" x2="{left + pw}" y1="{top_pad + ph}" y2="{top_pad + ph}" '
        'stroke="#999"/>'
    )
    return _svg(width, height, title, out)
