#!/usr/bin/env python3
"""Build tests/data/lid_multilingual.jsonl.gz: real text in languages the bundled sample lacks,
for the language-ID tests (15+ languages together with the sample).

Source: translated man pages from Debian's manpages-l10n packages (GPL-3+, (c) the
manpages-l10n translators; Debian bookworm 4.18.1-1). Install them, then run:

    apt-get install -y manpages-cs manpages-da manpages-fi manpages-hu manpages-ro \
        manpages-sv manpages-uk manpages-vi manpages-el manpages-nb manpages-mk manpages-sr
    python scripts/make_lid_fixture.py

Each record is {"folder": the man page folder's language, "page": ..., "text": one paragraph
of 200+ characters}; 12 per language, deterministic (pages in sorted order).
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
import subprocess
from pathlib import Path

LANGS = ["cs", "da", "fi", "hu", "ro", "sv", "uk", "vi", "el", "nb", "mk", "sr", "tr", "hr", "sl"]
PER_LANG = 12
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "lid_multilingual.jsonl.gz"


def paragraphs(page: str) -> list[str]:
    env = {**os.environ, "MANWIDTH": "2000", "MAN_KEEP_FORMATTING": "0", "LC_ALL": "C.UTF-8"}
    out = subprocess.run(["man", "-l", page], capture_output=True, text=True, env=env,
                         check=False).stdout
    out = re.sub(r".\x08", "", out)  # overstrike bold/underline
    paras = []
    for block in re.split(r"\n\s*\n", out):
        text = " ".join(block.split())
        if len(text) >= 200 and not text.isupper():
            paras.append(text)
    return paras


def main() -> None:
    records = []
    for lang in LANGS:
        got = []
        for page in sorted(glob.glob(f"/usr/share/man/{lang}/man1/*.1.gz")):
            for p in paragraphs(page)[1:3]:  # skip NAME/SYNOPSIS-like first blocks
                got.append({"folder": lang, "page": os.path.basename(page), "text": p})
            if len(got) >= PER_LANG:
                break
        records.extend(got[:PER_LANG])
        print(lang, len(got[:PER_LANG]))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(OUT, "wb", mtime=0) as f:
        for r in records:
            f.write((json.dumps(r, ensure_ascii=False) + "\n").encode())
    print(OUT, len(records))


if __name__ == "__main__":
    main()
