"""report.html's layout in headless Chromium (Debian's `chromium` package) at several window
widths: the per-source funnel tables, laid out side by side, never overlap one another, and
every table's cells stay inside the table and the table inside its column.

The boxes are read from the rendered page through Chromium's DevTools protocol over
`--remote-debugging-pipe` (JSON messages on fds 3 and 4; no websocket library needed).
`Runtime.evaluate` runs the measuring script from outside the page, so the report's
Content-Security-Policy, which forbids scripts, stays in force. Screenshots of the funnel
section go to tests/artifacts/ (git-ignored) to look at.

Skipped when chromium is not installed, unless TOKENMILL_REQUIRE_BROWSER=1 (then it fails).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from chromium import ARTIFACTS, CHROMIUM, SKIP
from chromium import FLAGS as BROWSER_FLAGS

FLAGS = [
    *BROWSER_FLAGS,
    "--remote-debugging-pipe",
]
# boxes are fractional CSS pixels; a shared edge is not an overlap
EPS = 0.5

pytestmark = SKIP

# Every table in the funnel section: its box, its cells' boxes, the box of the grid column
# (`.grid > div`) it sits in, and the section's box; coordinates are the document's.
MEASURE = """JSON.stringify((() => {
  const box = e => { const r = e.getBoundingClientRect();
    return {left: r.left + scrollX, top: r.top + scrollY, right: r.right + scrollX,
            bottom: r.bottom + scrollY}; };
  const sec = document.getElementById('funnel');
  return {
    width: innerWidth,
    section: box(sec),
    tables: [...sec.querySelectorAll('table[id]')].map(t => ({
      id: t.id,
      box: box(t),
      column: t.closest('.grid > div') ? box(t.closest('.grid > div')) : null,
      cells: [...t.querySelectorAll('th, td')].map(c => ({text: c.textContent, box: box(c)})),
    })),
  };
})())"""


class Chromium:
    """One headless Chromium driven over the DevTools pipe, attached to its first page."""

    def __init__(self, width: int, height: int, profile: Path):
        assert CHROMIUM, "chromium not found on PATH: apt-get install -y chromium"
        to_chrome, self._out = os.pipe()
        self._in, from_chrome = os.pipe()
        # Chromium reads commands on fd 3 and answers on fd 4: a Python exec-wrapper moves the
        # pipes there (preexec_fn is unsafe with threads about, and sh takes one-digit fds only)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
                "os.execv(sys.argv[3], sys.argv[3:])",
                str(to_chrome),
                str(from_chrome),
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            pass_fds=(to_chrome, from_chrome),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome)
        os.close(from_chrome)
        self._buf = b""
        self._id = 0
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable", session=True)

    def _recv(self) -> dict:
        while b"\0" not in self._buf:
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise RuntimeError(f"chromium closed the DevTools pipe (exit {self.proc.poll()})")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, session: bool = False, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._recv()
            if m.get("id") == self._id:
                assert "error" not in m, f"{method}: {m['error']}"
                return m["result"]

    def load(self, page: Path) -> None:
        self.call("Page.navigate", session=True, url=page.resolve().as_uri())
        while self._recv().get("method") != "Page.loadEventFired":
            pass

    def evaluate(self, expression: str):
        r = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in r, r["exceptionDetails"]
        return r["result"]["value"]

    def screenshot(self, png: Path, clip: dict) -> None:
        shot = self.call(
            "Page.captureScreenshot",
            session=True,
            format="png",
            captureBeyondViewport=True,
            clip={
                "x": clip["left"],
                "y": clip["top"],
                "width": clip["right"] - clip["left"],
                "height": clip["bottom"] - clip["top"],
                "scale": 1,
            },
        )
        png.parent.mkdir(parents=True, exist_ok=True)
        png.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self._in)
            os.close(self._out)


def measure(page: Path, width: int, profile: Path, png: Path | None = None) -> dict:
    """The funnel section's boxes with `page` loaded in a window `width` pixels wide."""
    browser = Chromium(width, 900, profile)
    try:
        browser.load(page)
        boxes = json.loads(browser.evaluate(MEASURE))
        if png is not None:
            browser.screenshot(png, boxes["section"])
    finally:
        browser.close()
    return boxes


def overlap(a: dict, b: dict) -> bool:
    return (
        min(a["right"], b["right"]) - max(a["left"], b["left"]) > EPS
        and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > EPS
    )


def inside(inner: dict, outer: dict) -> bool:
    return (
        inner["left"] >= outer["left"] - EPS
        and inner["top"] >= outer["top"] - EPS
        and inner["right"] <= outer["right"] + EPS
        and inner["bottom"] <= outer["bottom"] + EPS
    )


def layout_problems(boxes: dict) -> list[str]:
    """Every overlap or overflow among the funnel section's tables, one line each."""
    problems = []
    tables = boxes["tables"]
    for i, a in enumerate(tables):
        for b in tables[i + 1 :]:
            if overlap(a["box"], b["box"]):
                problems.append(f"{a['id']} {a['box']} overlaps {b['id']} {b['box']}")
        outer = a["column"] or boxes["section"]
        if not inside(a["box"], outer):
            problems.append(f"{a['id']} {a['box']} spills out of its column {outer}")
        for c in a["cells"]:
            if not inside(c["box"], a["box"]):
                problems.append(f"{a['id']}: cell {c['text']!r} {c['box']} outside the table")
    return problems


def funnel_ids(stats: dict) -> list[str]:
    return sorted(f"funnel-{n}" for n in [*stats["sources"], "total"])


@pytest.mark.distributed
@pytest.mark.parametrize("width", [800, 1024, 1200, 1400, 1920])
def test_run_report_funnel_tables_never_overlap(prepared, tmp_path, width):
    png = ARTIFACTS / f"report-funnel-{width}.png" if width in (800, 1400) else None
    boxes = measure(prepared["out"] / "report.html", width, tmp_path / "profile", png)
    assert boxes["width"] == width
    # every per-source funnel table (and the total's) was measured, with all its cells
    ids = sorted(t["id"] for t in boxes["tables"] if t["id"].startswith("funnel-"))
    assert ids == funnel_ids(prepared["stats"])
    assert all(t["column"] is not None for t in boxes["tables"] if t["id"] in ids)
    assert layout_problems(boxes) == []


def test_raw_report_funnel_tables_never_overlap(corpus_config, tmp_path):
    from tokenmill.config import load_config
    from tokenmill.report import raw
    from tokenmill.report.html import write_report

    cfg = load_config(corpus_config)
    data = raw.scan(raw.inputs_from_config(cfg), raw.settings_from_config(cfg, limit=30))
    page = tmp_path / "raw-report.html"
    write_report(data, None, page)
    for width in (800, 1400):
        boxes = measure(page, width, tmp_path / f"profile-{width}")
        assert boxes["width"] == width
        ids = sorted(t["id"] for t in boxes["tables"] if t["id"].startswith("funnel-"))
        assert ids == funnel_ids(data)
        assert layout_problems(boxes) == [], width


def test_the_check_sees_overlapping_and_spilling_tables(tmp_path):
    """layout_problems is not vacuous: two wide tables in narrow side-by-side columns (the
    report's old layout) are reported as overlapping and spilling out of their columns."""
    rows = "".join(f"<tr><td>step {i}</td><td>{'9' * 40}</td></tr>" for i in range(3))
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><html><head><style>.grid{display:flex;gap:1em}"
        ".grid>div{max-width:200px}</style></head><body><section id='funnel'>"
        "<div class='grid'>"
        f"<div><table id='funnel-a'>{rows}</table></div>"
        f"<div><table id='funnel-b'>{rows}</table></div>"
        "</div></section></body></html>"
    )
    problems = layout_problems(measure(page, 800, tmp_path / "profile"))
    assert problems[0].startswith("funnel-a ") and " overlaps funnel-b " in problems[0]
    assert [p.split(" ")[0] for p in problems[1:]] == ["funnel-a", "funnel-b"]
    assert all(" spills out of its column " in p for p in problems[1:])
