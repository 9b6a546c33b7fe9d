"""report.html in headless Chromium (Debian's `chromium` package): it renders with no console
errors and nothing fetched, and a screenshot is kept in tests/artifacts/ (git-ignored).

"Nothing fetched" is observed: Chromium writes a NetLog of every URL request it starts (host
names resolve nowhere, so nothing leaves the machine). The page's requests are those with an
initiator origin ("null" for a file: page); Chromium's own background requests (component
updates, network time, accounts), which headless Chromium makes whatever the flags, have
none ("not an origin").

Skipped when chromium is not installed, unless TOKENMILL_REQUIRE_BROWSER=1 (then it fails).
"""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest
from chromium import ARTIFACTS, CHROMIUM, SKIP
from chromium import FLAGS as BROWSER_FLAGS

FLAGS = [
    *BROWSER_FLAGS,
    "--disable-quic",
    "--enable-logging=stderr",  # console messages go to stderr as ...:CONSOLE(...) lines
    "--v=0",
]

pytestmark = SKIP


def screenshot(
    page: Path, png: Path, profile: Path, height: int = 8000
) -> tuple[list[str], list[str]]:
    """Load `page`, write a 1280-wide screenshot to `png`; return the console lines logged and
    the URLs the page asked for."""
    assert CHROMIUM, "chromium not found on PATH: apt-get install -y chromium"
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    netlog = profile.parent / f"{png.stem}.netlog.json"
    proc = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--log-net-log={netlog}",
            f"--screenshot={png}",
            f"--window-size=1280,{height}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert png.exists(), f"no screenshot (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return console, page_requests(netlog)


def page_requests(netlog: Path) -> list[str]:
    """URLs of the NetLog's URL_REQUEST_START_JOB events that a page initiated, sorted."""
    text = netlog.read_text(encoding="utf-8")
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short (Chromium killed) lacks its closing "]}"
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return sorted(
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start and e["params"].get("initiator", "not an origin") != "not an origin"
    )


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.mark.distributed
def test_run_report_renders_with_no_console_errors(prepared, tmp_path):
    png = ARTIFACTS / "report.png"
    console, fetched = screenshot(prepared["out"] / "report.html", png, tmp_path / "profile")
    print(f"\nscreenshot: {png}")
    assert console == []
    assert fetched == []
    assert png_size(png) == (1280, 8000)
    assert png.stat().st_size > 50_000  # tables and plots, not a blank page


def test_raw_report_renders_with_no_console_errors(corpus_config, tmp_path):
    from tokenmill.config import load_config
    from tokenmill.report import raw
    from tokenmill.report.html import write_report

    cfg = load_config(corpus_config)
    data = raw.scan(raw.inputs_from_config(cfg), raw.settings_from_config(cfg, limit=30))
    write_report(data, None, tmp_path / "raw-report.html")
    png = ARTIFACTS / "raw-report.png"
    page = tmp_path / "raw-report.html"
    console, fetched = screenshot(page, png, tmp_path / "profile", height=5000)
    print(f"\nscreenshot: {png}")
    assert console == []
    assert fetched == []
    assert png.stat().st_size > 30_000


def test_the_checks_see_script_errors_and_fetches(tmp_path):
    """The checks above are not vacuous: a script error reaches the console lines, and an
    https stylesheet, an image and a script's fetch() are each seen as asked for."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!doctype html><html><head>"
        "<link rel='stylesheet' href='https://cdn.example.invalid/style.css'></head><body>"
        "<img src='http://example.invalid/x.png'>"
        "<script>fetch('http://api.example.invalid/data.json').catch(() => 0);"
        "undefinedFunction()</script></body></html>"
    )
    console, fetched = screenshot(bad, tmp_path / "bad.png", tmp_path / "profile", height=300)
    assert any("undefinedFunction" in line for line in console), console
    assert fetched == [
        "http://api.example.invalid/data.json",
        "http://example.invalid/x.png",
        "https://cdn.example.invalid/style.css",
    ]
