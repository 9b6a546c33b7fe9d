"""What the browser tests share: the headless Chromium to run (Debian's `chromium` package),
the flags every run needs, where screenshots go, and the skip when it is missing.

Skipped when chromium is not installed, unless TOKENMILL_REQUIRE_BROWSER=1 (then the tests
fail, as in CI).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# screenshots to look at (git-ignored)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in CI containers
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",  # the viewport is then exactly the window width
    "--host-resolver-rules=MAP * ~NOTFOUND",  # the page must need no network at all
]
# a module's `pytestmark`
SKIP = (
    [pytest.mark.skip(reason="chromium not installed (apt-get install -y chromium)")]
    if CHROMIUM is None and os.environ.get("TOKENMILL_REQUIRE_BROWSER") != "1"
    else []
)
