#!/usr/bin/env python3
# Debian packages this script reads (Debian 12 "bookworm" versions; licenses as stated in
# /usr/share/doc/PKG/copyright). Install them with:
#
#   apt-get update && apt-get install -y --no-install-recommends man-db groff-base \
#     debian-reference-en debian-reference-fr debian-reference-de debian-reference-es \
#     debian-reference-it debian-reference-ja debian-reference-pt debian-reference-id \
#     debian-reference-zh-cn manpages manpages-dev manpages-de manpages-fr manpages-es \
#     manpages-it manpages-pl manpages-ru manpages-pt-br manpages-nl fortunes fortunes-de \
#     fortunes-es fortunes-it fortunes-ru fortunes-pl fortunes-br
#
#   debian-reference-{en,fr,de,es,it,ja,pt,id,zh-cn} 2.100  GPL-2+, (c) 2007-2013 Osamu Aoki
#                                      (translators license their work under the same terms)
#   manpages, manpages-dev 6.03-2      Linux man-pages project: per-page free licenses
#                                      (GPL-2+, Linux-man-pages-copyleft, BSD-2/3/4-clause,
#                                      Expat, ...), (c) Michael Kerrisk, Alejandro Colomar et al.
#   manpages-{de,fr,es,it,pl,ru,pt-br,nl} 4.18.1-1 (pl: 1:4.18.1-1)  manpages-l10n, GPL-3+,
#                                      (c) Tobias Quathamer, Helge Kreutzmann
#   fortunes 1:1.99.1-7.3              fortune-mod data, BSD-3-clause (Regents of the
#                                      University of California)
#   fortunes-de 0.35-1                 GPL-2+, (c) 1999-2012 Andreas Tille
#   fortunes-es 1.36                   GPL-2+ (quotes presumed public domain),
#                                      (c) Agustin Martin Domingo, Javier Fernandez-Sanguino
#   fortunes-it 1.99-4.1               public domain ("consider this package freeware (public
#                                      domain)"), fortune-it project / Andrea Balestrero
#   fortunes-ru 1.52-3.1               GPL-2, (c) 2003 Pavel Maryanov
#   fortunes-pl 0.0.20130525-3         GPL-2+, (c) 2000-2010 LinuxPL and PLD teams
#   fortunes-br 20220821               GPL-2+, (c) Eduardo Marcel Macan, Guilherme de S.
#                                      Pastore, Breno Leitao
#   man-db 2.11.2-2, groff-base 1.22.4-10  tools only (render man pages to text)
"""Build tokenmill's bundled sample corpus from real, freely licensed text in Debian packages.

Usage: python scripts/make_sample.py [--out tokenmill/data]

Sources (all installed Debian packages, read from their installed files; see the comment at
the top of this file and tokenmill/data/README.md for versions, licenses and copyright
holders):

* debian-reference-{en,fr,de,es,it,ja,pt,id,zh-cn} (GPL-2+): the HTML chapters of the Debian
  Reference, tags stripped (navigation and tables of contents dropped), split at section
  headings and packed into documents.
* manpages, manpages-dev (Linux man-pages project, per-page free licenses) and
  manpages-{de,fr,es,it,pl,ru,pt-br,nl} (manpages-l10n, GPL-3+): man pages rendered to plain
  text with `man -l` (one paragraph per line), one page per document; a few English pages are
  also used as raw roff source.
* fortunes (fortune-mod, BSD-3-clause), fortunes-de, -es, -pl, -br (GPL-2+), fortunes-ru
  (GPL-2), fortunes-it (public domain): fortune files split at lines holding only '%', hard
  line wraps undone, grouped into quote pages, and single fortunes as short documents.

Documents are mostly 300-5000 characters with paragraphs joined by '\n' (target lengths are
log-normal, median ~1200, ~6% above 5000); a man page is one document (pages over 12000
characters are skipped).

Outputs, each in the corpus's real on-disk format:

* c4/en/c4-train.0000{0,1}-of-01024.json.gz: gzip'd JSON lines
  {"text","timestamp","url"} with the real files' compact separators and ASCII escaping.
  English only: Debian Reference sections and English fortunes, put through C4's line rules
  (keep lines ending in terminal punctuation with >= 5 words, drop "javascript"/policy lines,
  drop pages with "{" or "lorem ipsum", pages need >= 3 sentences). Timestamps fall in April
  2019 like the real en split.
* pile/train/0{0,1}.jsonl.zst: zstd JSON lines {"text", "meta": {"pile_set_name"}} written
  with json.dumps defaults like the real files. English. The subset labels are
  illustrative, not a claim about the real Pile: rendered English man pages are "Pile-CC",
  raw roff man sources are "Github", English fortune pages are "OpenWebText2".
* oscar/LANG_meta/LANG_meta_part_1.jsonl.zst for fr de es it pt ru pl nl ja zh id: OSCAR 23.01
  records (content, warc_headers, metadata) written compactly with raw UTF-8 like ungoliant's
  serde_json output. Computed from the content: warc-block-digest (sha1, base32),
  content-length, metadata.tlsh (TLSH 256 buckets / 3-byte checksum, as ungoliant 23.01 uses;
  the implementation matches the reference library), quality_warnings (ungoliant's tiny,
  short_sentences, header, footer and noisy annotators with their default thresholds),
  sentence_identifications (one entry per line, null below 0.8) and the document
  identification (length-weighted). The per-line language ID is a small stopword/script
  heuristic standing in for fastText, so labels and probabilities are plausible, not
  fastText's. Synthetic but deterministic: warc-record-id / warc-refers-to (uuid5), warc-date
  (the CC-MAIN-2022-49 crawl window), warc-target-uri (debian.org, manpages.debian.org and
  sources.debian.org addresses of where the text lives), harmful_pp (log-normal pseudo value
  from the content hash); categories is always null. Documents whose identified language is
  not the file's language are dropped, as in OSCAR.

Planted for the filtering pipeline:

* short documents: about 6% of each corpus/language are short (a single fortune, a heading
  with one paragraph, or the NAME section of a man page; some under 50 characters), for
  quality filters to remove; C4's ">= 3 sentences" rule is deliberately not applied to them.
* exact duplicates: 20 C4 documents are copied verbatim into the Pile (as Pile-CC), and 2
  documents per OSCAR language appear twice in their file (same content, another URL).

Deterministic: every random choice comes from random.Random seeded with a fixed string, gzip is
written with mtime=0 and no file name, zstd as one frame at a fixed level, and the man pages
are rendered with a fixed environment, so two runs on the same package versions give
byte-identical files. The script needs python3 (stdlib) and zstandard only, plus man-db and
groff-base to render man pages. tokenmill/data/README.md is generated by this script too.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import math
import random
import re
import struct
import subprocess
import sys
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from statistics import NormalDist

import zstandard

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tokenmill" / "data"
SEED = "tokenmill-sample-v1"

DEBREF_DIR = Path("/usr/share/debian-reference")
DPKG_INFO = Path("/var/lib/dpkg/info")
DEBREF_PAGES = ["pr01"] + [f"ch{i:02d}" for i in range(1, 13)] + ["apa"]

# package -> (version, license, copyright holders), as in /usr/share/doc/PKG/copyright
_DEBREF = ("2.100", "GPL-2+", "2007-2013 Osamu Aoki (translators under the same license)")
_L10N = ("4.18.1-1", "GPL-3+", "2010-2020 Tobias Quathamer, 2021-2023 Helge Kreutzmann "
         "(manpages-l10n); original pages keep their upstream free licenses")
_MANPAGES = ("6.03-2", "GPL-2+, Linux-man-pages-copyleft, BSD-2/3/4-clause, Expat (per page)",
             "2005-2021 Michael Kerrisk, 2022-2023 Alejandro Colomar and the page authors")
PACKAGES = {
    **{f"debian-reference-{c}": _DEBREF for c in ("en", "fr", "de", "es", "it", "ja", "pt",
                                                 "id", "zh-cn")},
    "manpages": _MANPAGES,
    "manpages-dev": _MANPAGES,
    **{f"manpages-{c}": _L10N for c in ("de", "fr", "es", "it", "ru", "pt-br", "nl")},
    "manpages-pl": ("1:4.18.1-1",) + _L10N[1:],
    "fortunes": ("1:1.99.1-7.3", "BSD-3-clause",
                 "1991 The Regents of the University of California (fortune-mod)"),
    "fortunes-de": ("0.35-1", "GPL-2+", "1999-2012 Andreas Tille"),
    "fortunes-es": ("1.36", "GPL-2+ (quotes presumed public domain)",
                    "1999 Agustin Martin Domingo, 2000 Javier Fernandez-Sanguino Pena"),
    "fortunes-it": ("1.99-4.1", "public domain (\"freeware (public domain)\")",
                    "fortune-it project (Andrea 'Zuse' Balestrero et al.)"),
    "fortunes-ru": ("1.52-3.1", "GPL-2", "2003 Pavel Maryanov"),
    "fortunes-pl": ("0.0.20130525-3", "GPL-2+", "2000-2010 LinuxPL and PLD teams"),
    "fortunes-br": ("20220821", "GPL-2+",
                    "2000-2003 Eduardo Marcel Macan, 2006-2008 Guilherme de S. Pastore, "
                    "2016-2022 Breno Leitao"),
}
TOOLS = ["man-db", "groff-base"]
FORTUNE_SOURCE = {"fortunes": "fortune-mod"}  # binary -> source package, where they differ
# fortune files left out: ASCII art / banners, untranslated stubs, and two files of
# ethnic and gender jokes
FORTUNE_SKIP = {"ascii-art", "translate-me", "ethnic", "men-women", "asciiart", "banner"}

# OSCAR: language -> (debian-reference code, manpages package, fortunes package)
OSCAR_LANGS = {
    "fr": ("fr", "manpages-fr", None),
    "de": ("de", "manpages-de", "fortunes-de"),
    "es": ("es", "manpages-es", "fortunes-es"),
    "it": ("it", "manpages-it", "fortunes-it"),
    "pt": ("pt", "manpages-pt-br", "fortunes-br"),
    "ru": (None, "manpages-ru", "fortunes-ru"),
    "pl": (None, "manpages-pl", "fortunes-pl"),
    "nl": (None, "manpages-nl", None),
    "ja": ("ja", None, None),
    "zh": ("zh-cn", None, None),
    "id": ("id", None, None),
}
LANG_NAMES = {"fr": "French", "de": "German", "es": "Spanish", "it": "Italian",
              "pt": "Portuguese", "ru": "Russian", "pl": "Polish", "nl": "Dutch",
              "ja": "Japanese", "zh": "Chinese", "id": "Indonesian"}
ISO639_3 = {"en": "eng", "fr": "fra", "de": "deu", "es": "spa", "it": "ita", "pt": "por",
            "ru": "rus", "pl": "pol", "nl": "nld", "ja": "jpn", "zh": "zho", "id": "ind"}

C4_BUDGET = 1_000_000  # characters of text per corpus / language
PILE_BUDGET = {"Pile-CC": 600_000, "Github": 100_000, "OpenWebText2": 300_000}
OSCAR_BUDGET = 230_000
OSCAR_BUDGET_CJK = 110_000  # ~3 bytes a character in UTF-8
SOURCE_WEIGHTS = {"debref": 0.5, "man": 0.3, "fortune": 0.2}
SHORT_FRACTION = 0.06
C4_TO_PILE_DUPS = 20
OSCAR_DUPS = 2
MAX_MAN_CHARS = 12_000


# --------------------------------------------------------------------------- text helpers

_WS = re.compile(r"\s+")


def norm(s: str) -> str:
    return _WS.sub(" ", s).strip()


def rng_for(*parts: str) -> random.Random:
    return random.Random(":".join((SEED,) + parts))  # str seeds hash with sha512: stable


def target_length(rng: random.Random) -> int:
    return int(min(15_000, max(300, rng.lognormvariate(math.log(1200), 0.8))))


def package_files(pkg: str) -> list[Path]:
    listing = DPKG_INFO / f"{pkg}.list"
    if not listing.exists():
        sys.exit(f"package {pkg} is not installed: apt-get install {pkg} (see {__file__})")
    return sorted(Path(p) for p in listing.read_text().splitlines() if p.strip())


def check_versions() -> list[str]:
    warnings = []
    for pkg, (version, _, _) in sorted(PACKAGES.items()):
        package_files(pkg)  # exits when missing
        try:
            got = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg],
                                 capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            continue
        if got != version:
            warnings.append(f"{pkg} is {got}, the sample was made with {version}: "
                            "output will differ from the committed files")
    return warnings


# --------------------------------------------------------------------------- Debian Reference

class _DocbookText(HTMLParser):
    """Plain text of a DocBook XHTML chapter, as sections [(anchor, [lines])]."""

    BLOCK = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "pre", "tr",
             "table", "br", "blockquote", "ul", "ol", "dl", "caption", "hr", "title"}
    SKIP = {"navheader", "navfooter", "toc", "list-of-tables", "list-of-figures"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections: list[tuple[str | None, list[str]]] = [(None, [])]
        self.buf: list[str] = []
        self.divs: list[bool] = []
        self.skip = 0
        self.head = False
        self.pre = 0
        self.want_anchor = False

    def flush(self):
        text = "".join(self.buf)
        self.buf = []
        lines = self.sections[-1][1]
        if self.pre:
            lines.extend(ln.rstrip() for ln in text.split("\n") if ln.strip())
        elif norm(text):
            lines.append(norm(text))

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "head":
            self.head = True
        if tag == "div":
            skip = bool(set((a.get("class") or "").split()) & self.SKIP)
            self.divs.append(skip)
            self.skip += skip
        if tag in ("td", "th"):
            self.buf.append(" ")
        if tag in self.BLOCK:
            self.flush()
        if tag in ("h1", "h2", "h3") and not self.skip and not self.head:
            self.sections.append((None, []))
            self.want_anchor = True
        if tag == "a" and self.want_anchor and a.get("id"):
            self.sections[-1] = (a["id"], self.sections[-1][1])
            self.want_anchor = False
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag):
        if tag in self.BLOCK:
            self.flush()
        if tag == "pre":
            self.pre -= 1
        if tag == "head":
            self.head = False
        if tag == "div" and self.divs:
            self.skip -= self.divs.pop()
        if tag in ("h1", "h2", "h3"):
            self.want_anchor = False

    def handle_data(self, data):
        if not self.skip and not self.head:
            self.buf.append(data)


def debref_units(code: str) -> list[tuple[str, list[str]]]:
    """[(url, lines)] per section of the Debian Reference in language `code`."""
    units = []
    for page in DEBREF_PAGES:
        path = DEBREF_DIR / f"{page}.{code}.html"
        parser = _DocbookText()
        parser.feed(path.read_text("utf-8"))
        parser.close()
        base = f"https://www.debian.org/doc/manuals/debian-reference/{page}.{code}.html"
        for anchor, lines in parser.sections:
            if lines:
                units.append((f"{base}#{anchor}" if anchor else base, lines))
    return units


# --------------------------------------------------------------------------- man pages

_MAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "MANWIDTH": "4000", "GROFF_NO_SGR": "1", "MAN_DISABLE_SECCOMP": "1"}


def man_pages(pkg: str) -> list[Path]:
    pages = []
    for p in package_files(pkg):
        if "/man/" in str(p) and p.name.endswith(".gz") and p.is_file() and not p.is_symlink():
            pages.append(p)
    return pages


def man_source(path: Path) -> str:
    return gzip.decompress(path.read_bytes()).decode("utf-8", "replace")


def man_info(path: Path) -> tuple[str, str]:
    """(name, section) from .../man1/ls.1.gz"""
    stem = path.name[:-3]
    name, _, sec = stem.rpartition(".")
    return name, sec


_BOX = re.compile("[\u2500-\u257f]")


def render_man(path: Path) -> list[str]:
    """The page as text, one paragraph per line, without the running header and footer."""
    out = subprocess.run(["man", "-l", "-E", "UTF-8", "--nh", "--nj", str(path)],
                         env=_MAN_ENV, capture_output=True, timeout=120).stdout
    text = re.sub(r".\x08", "", out.decode("utf-8", "replace"))
    lines = []
    for ln in text.split("\n"):
        if len(_BOX.findall(ln)) > 0.3 * len(ln.strip()):
            continue  # table rules, which the wide page makes thousands of characters long
        ln = norm(_BOX.sub(" ", ln))
        if ln:
            lines.append(ln)
    return lines[1:-1]


def man_url(pkg: str, path: Path, lang: str) -> str:
    name, sec = man_info(path)
    return f"https://manpages.debian.org/bookworm/{pkg}/{name}.{sec}.{lang}.html"


def man_docs(pkg: str, lang: str, rng: random.Random, budget: int, accept=None) -> list[dict]:
    """Rendered pages in a seeded random order until `budget` characters."""
    pages = man_pages(pkg)
    rng.shuffle(pages)
    docs, total = [], 0
    for p in pages:
        if total >= budget:
            break
        if man_source(p).lstrip().startswith(".so "):
            continue
        lines = render_man(p)
        text = "\n".join(lines)
        if not 300 <= len(text) <= MAX_MAN_CHARS or (accept and not accept(text)):
            continue
        docs.append({"text": text, "url": man_url(pkg, p, lang), "path": p})
        total += len(text)
    return docs


def man_stubs(pkg: str, lang: str, rng: random.Random, n: int, exclude) -> list[dict]:
    """Short documents: the NAME section (heading and one line) of pages not used whole."""
    pages = [p for p in man_pages(pkg) if p not in exclude]
    rng.shuffle(pages)
    docs = []
    for p in pages:
        if len(docs) >= n:
            break
        if man_source(p).lstrip().startswith(".so "):
            continue
        lines = render_man(p)
        if len(lines) >= 2:
            docs.append({"text": "\n".join(lines[:2]), "url": man_url(pkg, p, lang),
                         "short": True})
    return docs


# --------------------------------------------------------------------------- fortunes

def fortune_files(pkg: str) -> list[Path]:
    out = []
    for p in package_files(pkg):
        if (p.is_file() and not p.is_symlink() and "/games/fortunes/" in str(p)
                and p.suffix not in (".dat", ".u8") and "/off/" not in str(p)
                and p.name.split(".")[0] not in FORTUNE_SKIP):
            out.append(p)
    return out


_STRUCTURED = re.compile(r"^(--|<|>|\*|-|•|\d+[.)]|[A-Z][\w .'-]{0,20}:\s)")


def unwrap(lines: list[str]) -> list[str]:
    """Undo hard line wrapping of prose; keep the breaks of verse, dialogue and attributions."""
    out: list[str] = []
    prev_raw = ""
    for raw in lines:
        line = norm(raw)
        if not line:
            prev_raw = ""
            out.append("")
            continue
        joinable = (out and out[-1] and len(prev_raw.rstrip()) >= 50
                    and not _STRUCTURED.match(line) and not raw.startswith(("\t", "    ")))
        if joinable:
            out[-1] = out[-1] + " " + line
        else:
            out.append(line)
        prev_raw = raw
    return [ln for ln in out if ln]


def read_fortunes(path: Path) -> list[tuple[int, list[str]]]:
    """[(first line number, lines)] of one fortune file."""
    out, cur, start = [], [], 1
    for i, line in enumerate(path.read_text("utf-8").split("\n"), 1):
        if line.strip() == "%":
            if cur:
                out.append((start, cur))
            cur, start = [], i + 1
        else:
            cur.append(line)
    if cur:
        out.append((start, cur))
    result = []
    for start, lines in out:
        lines = unwrap(lines)
        if lines:
            result.append((start, lines))
    return result


def fortune_url(pkg: str, path: Path, line: int) -> str:
    version = PACKAGES[pkg][0].split(":")[-1].rsplit("-", 1)[0]
    rel = str(path).split("/games/fortunes/", 1)[1]
    return f"https://sources.debian.org/src/{FORTUNE_SOURCE.get(pkg, pkg)}/{version}/{rel}/#L{line}"


def fortune_units(pkg: str, files: list[Path]) -> list[tuple[str, list[str]]]:
    units = []
    for f in files:
        for line, lines in read_fortunes(f):
            units.append((fortune_url(pkg, f, line), lines))
    return units


# --------------------------------------------------------------------------- packing

def pack(units, rng: random.Random, split_units: bool) -> list[dict]:
    """Consecutive units (url, lines) packed into documents of seeded target lengths.
    With split_units a long unit may be cut at a line; otherwise units stay whole."""
    docs: list[dict] = []
    cur: list[str] = []
    url, size, target = None, 0, target_length(rng)

    def emit():
        nonlocal cur, url, size, target
        if cur:
            docs.append({"text": "\n".join(cur), "url": url})
        cur, url, size, target = [], None, 0, target_length(rng)

    for unit_url, lines in units:
        if url is None:
            url = unit_url
        if split_units:
            for line in lines:
                if url is None:
                    url = unit_url
                cur.append(line)
                size += len(line) + 1
                if size >= target:
                    emit()
            if size >= 0.6 * target:  # prefer ending a document at a section boundary
                emit()
        else:
            cur.extend(lines)
            size += sum(len(ln) + 1 for ln in lines)
            if size >= target:
                emit()
    emit()
    return docs


def take(docs: list[dict], budget: int, accept=None) -> list[dict]:
    out, total = [], 0
    for d in docs:
        if total >= budget:
            break
        if accept and not accept(d["text"]):
            continue
        out.append(d)
        total += len(d["text"])
    return out


def add_query(url: str, query: str) -> str:
    base, sep, frag = url.partition("#")
    return f"{base}{'&' if '?' in base else '?'}{query}{sep}{frag}"


def unique_urls(docs: list[dict]) -> list[dict]:
    """Documents cut from one section (or sharing a first fortune) get ?page=N addresses."""
    seen: dict[str, int] = {}
    for d in docs:
        seen[d["url"]] = k = seen.get(d["url"], 0) + 1
        if k > 1:
            d["url"] = add_query(d["url"], f"page={k}")
    return docs


def short_fortunes(units, rng: random.Random, n: int, max_len: int = 90) -> list[dict]:
    """Single fortunes as documents, alternating ones of <= 50 and of 51-`max_len` chars."""
    tiny, small = [], []
    for u, lines in units:
        text = "\n".join(lines)
        if len(text) <= max_len:
            (tiny if len(text) <= 50 else small).append({"text": text, "url": u, "short": True})
    rng.shuffle(tiny)
    rng.shuffle(small)
    mixed = [d for pair in zip(tiny, small, strict=False) for d in pair]
    rest = tiny[len(small):] + small[len(tiny):]
    return (mixed + rest)[:n]


def short_sections(units, rng: random.Random, n: int) -> list[dict]:
    """A heading with its first paragraph: a page with next to nothing on it."""
    cands = []
    for u, lines in units:
        if len(lines) >= 2 and len(lines[0]) < 80 and 20 <= len(lines[1]) <= 120:
            cands.append((u, lines[0] + "\n" + lines[1]))
    rng.shuffle(cands)
    return [{"text": t, "url": u, "short": True} for u, t in cands[:n]]


# --------------------------------------------------------------------------- C4

_END_MARKS = (".", "?", "!", '"')
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
           "use cookies")
_CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
_SENTENCE = re.compile(r"[.!?]+[\"')\]]*(?:\s+|$)")


def c4_clean(text: str) -> tuple[str | None, int]:
    """C4's line rules; (None, 0) when the page would be dropped whole."""
    kept, sentences = [], 0
    for line in text.split("\n"):
        line = _CITATION.sub("", line).strip()
        if not line.endswith(_END_MARKS) or line.endswith("..."):
            continue
        if len(line.split()) < 5:
            continue
        low = line.lower()
        if "lorem ipsum" in low or "{" in line:
            return None, 0
        if "javascript" in low or any(p in low for p in _POLICY):
            continue
        sentences += max(1, len(_SENTENCE.findall(line)))
        kept.append(line)
    return "\n".join(kept), sentences


def c4_timestamp(rng: random.Random) -> str:
    t = datetime(2019, 4, 18, tzinfo=UTC) + timedelta(seconds=rng.randrange(9 * 86400))
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_c4() -> list[dict]:
    rng = rng_for("c4")
    docs = []
    for d in pack(debref_units("en"), rng, split_units=True):
        text, n = c4_clean(d["text"])
        if text and n >= 3:
            docs.append({"text": text, "url": d["url"]})
    files = fortune_files("fortunes")[0::2]  # the other half goes to the Pile
    units = fortune_units("fortunes", files)
    pages = []
    for d in pack(units, rng, split_units=False):
        text, n = c4_clean(d["text"])
        if text and n >= 3:
            pages.append({"text": text, "url": d["url"]})
    rng.shuffle(pages)
    docs += take(pages, C4_BUDGET - sum(len(d["text"]) for d in docs))
    shorts = []
    for d in short_fortunes(units, rng, 10 * len(docs)):
        text, n = c4_clean(d["text"])
        if text and len(shorts) < round(SHORT_FRACTION * len(docs)):
            shorts.append({"text": text, "url": d["url"], "short": True})
    docs += shorts
    rng.shuffle(docs)
    unique_urls(docs)
    for d in docs:
        d["timestamp"] = c4_timestamp(rng)
    return docs


# --------------------------------------------------------------------------- Pile

def build_pile(c4_docs: list[dict]) -> list[dict]:
    rng = rng_for("pile")
    docs = []
    for pkg in ("manpages", "manpages-dev"):
        share = PILE_BUDGET["Pile-CC"] // 2
        for d in man_docs(pkg, "en", rng_for("pile", pkg), share):
            docs.append({"text": d["text"], "meta": "Pile-CC", "path": d["path"]})
    used = {d["path"] for d in docs}
    roff = [p for pkg in ("manpages", "manpages-dev") for p in man_pages(pkg) if p not in used]
    rng.shuffle(roff)
    total = 0
    for p in roff:
        if total >= PILE_BUDGET["Github"]:
            break
        src = man_source(p)
        if src.lstrip().startswith(".so ") or not 1000 <= len(src) <= 12_000:
            continue
        docs.append({"text": src, "meta": "Github"})
        total += len(src)
    files = fortune_files("fortunes")[1::2]
    units = fortune_units("fortunes", files)
    pages = pack(units, rng, split_units=False)
    rng.shuffle(pages)
    docs += [{"text": d["text"], "meta": "OpenWebText2"}
             for d in take(pages, PILE_BUDGET["OpenWebText2"])]
    docs += [{"text": d["text"], "meta": "OpenWebText2", "short": True}
             for d in short_fortunes(units, rng, round(SHORT_FRACTION * len(docs)))]
    rng.shuffle(docs)
    dups = [d for d in c4_docs if not d.get("short") and len(d["text"]) >= 500]
    for d in rng.sample(dups, C4_TO_PILE_DUPS):
        docs.insert(rng.randrange(len(docs) + 1),
                    {"text": d["text"], "meta": "Pile-CC", "dup_of": "c4"})
    return docs


# --------------------------------------------------------------------------- language ID

_STOP = {
    "en": "the and of to is in that it for you with on are this be as not or by can your if "
          "from have was an at will which but all they we when do does there what one has "
          "would should these other only into must used more also than",
    "fr": "le la les de des du un une et est pour que qui dans en pas sur par au aux avec ce "
          "cette sont il elle vous nous ne ou plus peut être été sans mais leur tout comme "
          "fichier fichiers utiliser",
    "de": "der die das und ist nicht ein eine zu den dem mit von für auf sich es im sie wird "
          "werden oder auch als bei wenn kann nur wie dass sind aus einer des diese werden "
          "datei dateien wurde",
    "es": "el la los las de del y que en un una es por para con no se su al lo como más o "
          "pero sus si este esta son puede cuando sobre también archivo archivos entre",
    "it": "il lo la gli le di del della e è che in un una per con non si da al dei delle "
          "sono come più ma se questo questa anche nel nella essere può viene file",
    "pt": "o a os as de do da dos das e é que em um uma para com não no na se por mais ao "
          "como você seu sua ser pode são pelo pela arquivo arquivos também",
    "nl": "de het een en van is dat niet in op te met voor zijn die er aan om ook als bij of "
          "door kan wordt naar dan maar deze dit worden bestand",
    "pl": "i w z na się nie do to że jest o jak a co po ale czy tak od dla przez jego być "
          "może tylko są przy już lub który pliku plik",
    "id": "yang dan di ini itu dengan untuk dari dalam tidak akan pada adalah atau ke anda "
          "dapat juga oleh bisa sebagai ada kita karena lebih jika seperti telah berkas",
}
STOPWORDS = {lang: frozenset(words.split()) for lang, words in _STOP.items()}
_WORD = re.compile(r"[^\W\d_]+")


def _script_counts(line: str) -> tuple[int, int, int, int]:
    letters = kana = han = cyr = 0
    for ch in line:
        if not ch.isalpha():
            continue
        letters += 1
        o = ord(ch)
        if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9D:
            kana += 1
        elif 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF:
            han += 1
        elif 0x0400 <= o <= 0x04FF:
            cyr += 1
    return letters, kana, han, cyr


def f32(x: float) -> float:
    """x as the shortest decimal that round-trips through f32, as serde_json prints f32."""
    y = struct.unpack("<f", struct.pack("<f", x))[0]
    for p in range(1, 10):
        s = float(f"{y:.{p}g}")
        if struct.unpack("<f", struct.pack("<f", s))[0] == y:
            return s
    return y


def _jitter(line: str) -> float:
    return int.from_bytes(hashlib.sha1(line.encode()).digest()[:4], "big") / 2**32


def identify_line(line: str, doc_lang: str) -> dict | None:
    """A stand-in for fastText lid.176 on one line: {label, prob} or None below 0.8."""
    letters, kana, han, cyr = _script_counts(line)
    if letters < 8:
        return None
    if kana + han >= max(4, 0.3 * letters):
        label = "ja" if kana else "zh"
        strength = (kana + han) / letters - 0.2
    elif cyr >= 0.5 * letters:
        label, strength = "ru", cyr / letters - 0.3
    else:
        words = _WORD.findall(line.lower())
        if len(words) < 3:
            return None
        scores = sorted(((sum(w in STOPWORDS[lg] for w in words), lg == doc_lang, lg)
                         for lg in STOPWORDS), reverse=True)
        (best, _, label), (second, _, _) = scores[0], scores[1]
        if best == 0 or (best == second and label != doc_lang):
            return None
        strength = 0.12 * (best - second) + 0.6 * best / len(words) - 0.2
    if strength < 0:
        return None
    prob = 1 - 0.2 * math.exp(-5 * strength) * (0.7 + 0.6 * _jitter(line))
    return {"label": label, "prob": f32(min(max(prob, 0.8), 0.99999))}


def identify(content: str, doc_lang: str):
    """(sentence identifications, document identification, [labels by share])."""
    sents = [identify_line(ln, doc_lang) for ln in content.split("\n")]
    weight: dict[str, float] = {}
    share: dict[str, int] = {}
    total = 0
    for ln, s in zip(content.split("\n"), sents, strict=True):
        if s:
            n = len(ln)
            weight[s["label"]] = weight.get(s["label"], 0.0) + s["prob"] * n
            share[s["label"]] = share.get(s["label"], 0) + n
            total += n
    if not total:
        return sents, None, []
    label = max(sorted(weight), key=lambda k: weight[k])
    langs = sorted((lg for lg in share if share[lg] >= 0.1 * total or lg == label),
                   key=lambda k: (-share[k], k))[:3]
    return sents, {"label": label, "prob": f32(weight[label] / total)}, langs


# --------------------------------------------------------------------------- OSCAR metadata

_PEARSON = [  # TLSH's Pearson table (tlsh_impl.cpp, Apache-2.0 / BSD, Trend Micro)
    1, 87, 49, 12, 176, 178, 102, 166, 121, 193, 6, 84, 249, 230, 44, 163,
    14, 197, 213, 181, 161, 85, 218, 80, 64, 239, 24, 226, 236, 142, 38, 200,
    110, 177, 104, 103, 141, 253, 255, 50, 77, 101, 81, 18, 45, 96, 31, 222,
    25, 107, 190, 70, 86, 237, 240, 34, 72, 242, 20, 214, 244, 227, 149, 235,
    97, 234, 57, 22, 60, 250, 82, 175, 208, 5, 127, 199, 111, 62, 135, 248,
    174, 169, 211, 58, 66, 154, 106, 195, 245, 171, 17, 187, 182, 179, 0, 243,
    132, 56, 148, 75, 128, 133, 158, 100, 130, 126, 91, 13, 153, 246, 216, 219,
    119, 68, 223, 78, 83, 88, 201, 99, 122, 11, 92, 32, 136, 114, 52, 10,
    138, 30, 48, 183, 156, 35, 61, 26, 143, 74, 251, 94, 129, 162, 63, 152,
    170, 7, 115, 167, 241, 206, 3, 150, 55, 59, 151, 220, 90, 53, 23, 131,
    125, 173, 15, 238, 79, 95, 89, 16, 105, 137, 225, 224, 217, 160, 37, 123,
    118, 73, 2, 157, 46, 116, 9, 145, 134, 228, 207, 212, 202, 215, 69, 229,
    27, 188, 67, 124, 168, 252, 42, 4, 29, 108, 21, 247, 19, 205, 39, 203,
    233, 40, 186, 147, 198, 192, 155, 33, 164, 191, 98, 204, 165, 180, 117, 76,
    140, 36, 210, 172, 41, 54, 159, 8, 185, 232, 113, 196, 231, 47, 146, 120,
    51, 65, 28, 144, 254, 221, 93, 189, 194, 139, 112, 43, 71, 109, 184, 209,
]
_TOPVAL = [  # TLSH's l_capturing() table (tlsh_util.cpp)
    1, 2, 3, 5, 7, 11, 17, 25, 38, 57, 86, 129, 194, 291, 437, 656, 854, 1110, 1443, 1876, 2439,
    3171, 3475, 3823, 4205, 4626, 5088, 5597, 6157, 6772, 7450, 8195, 9014, 9916, 10907, 11998,
    13198, 14518, 15970, 17567, 19323, 21256, 23382, 25720, 28292, 31121, 34233, 37656, 41422,
    45564, 50121, 55133, 60646, 66711, 73382, 80721, 88793, 97672, 107439, 118183, 130002,
    143002, 157302, 173032, 190335, 209369, 230306, 253337, 278670, 306538, 337191, 370911,
    408002, 448802, 493682, 543050, 597356, 657091, 722800, 795081, 874589, 962048, 1058252,
    1164078, 1280486, 1408534, 1549388, 1704327, 1874759, 2062236, 2268459, 2495305, 2744836,
    3019320, 3321252, 3653374, 4018711, 4420582, 4862641, 5348905, 5883796, 6472176, 7119394,
    7831333, 8614467, 9475909, 10423501, 11465851, 12612437, 13873681, 15261050, 16787154,
    18465870, 20312458, 22343706, 24578077, 27035886, 29739474, 32713425, 35984770, 39583245,
    43541573, 47895730, 52685306, 57953837, 63749221, 70124148, 77136564, 84850228, 93335252,
    102668779, 112935659, 124229227, 136652151, 150317384, 165349128, 181884040, 200072456,
    220079703, 242087671, 266296456, 292926096, 322218735, 354440623, 389884688, 428873168,
    471760495, 518936559, 570830240, 627913311, 690704607, 759775136, 835752671, 919327967,
    1011260767, 1112386880, 1223623232, 1345985727, 1480584256, 1628642751, 1791507135,
    1970657856, 2167723648, 2384496256, 2622945920, 2885240448, 3173764736, 3491141248,
    3840255616, 4224281216,
]


def _l_capturing(n: int) -> int:
    bottom, top, idx = 0, 170, 85
    while idx:
        if _TOPVAL[idx - 1] < n <= _TOPVAL[idx]:
            return idx
        if n < _TOPVAL[idx]:
            top = idx - 1
        else:
            bottom = idx + 1
        idx = (bottom + top) // 2
    return 0


def tlsh(data: bytes, buckets: int = 256, checksum_len: int = 3) -> str | None:
    """TLSH digest ("T1" + hex), as the reference implementation built with BUCKETS_256 and
    CHECKSUM_3B (ungoliant 23.01's settings); None where TLSH gives no hash."""
    v = _PEARSON
    n = len(data)
    if n < 50:
        return None
    a = [0] * 256
    cs = [0] * checksum_len
    for i in range(4, n):
        c0, c1, c2, c3, c4 = data[i], data[i - 1], data[i - 2], data[i - 3], data[i - 4]
        cs[0] = v[v[v[1 ^ c0] ^ c1] ^ cs[0]]
        for k in range(1, checksum_len):
            cs[k] = v[v[v[v[cs[k - 1]] ^ c0] ^ c1] ^ cs[k]]
        a[v[v[v[49 ^ c0] ^ c1] ^ c2]] += 1
        a[v[v[v[12 ^ c0] ^ c1] ^ c3]] += 1
        a[v[v[v[178 ^ c0] ^ c2] ^ c3]] += 1
        a[v[v[v[166 ^ c0] ^ c2] ^ c4]] += 1
        a[v[v[v[84 ^ c0] ^ c1] ^ c4]] += 1
        a[v[v[v[230 ^ c0] ^ c3] ^ c4]] += 1
    s = sorted(a[:buckets])
    q1, q2, q3 = s[buckets // 4 - 1], s[buckets // 2 - 1], s[buckets - buckets // 4 - 1]
    if q3 == 0 or sum(1 for x in a[:buckets] if x) <= buckets // 2:
        return None
    code = []
    for i in range(buckets // 4):
        h = 0
        for j in range(4):
            k = a[4 * i + j]
            h += (3 if q3 < k else 2 if q2 < k else 1 if q1 < k else 0) << (2 * j)
        code.append(h)

    def swap(b):
        return ((b & 15) << 4) | (b >> 4)

    qb = ((q1 * 100 // q3) % 16) | (((q2 * 100 // q3) % 16) << 4)
    out = [swap(c) for c in cs] + [swap(_l_capturing(n)), swap(qb)] + code[::-1]
    return "T1" + "".join(f"{b:02X}" for b in out)


def quality_warnings(content: str) -> list[str] | None:
    """ungoliant's annotators with default settings: tiny, short_sentences, header/footer,
    noisy."""
    lines = content.split("\n")
    n = len(lines)
    out = []
    if n < 5:
        out.append("tiny")
    if sum(1 for ln in lines if len(ln) < 100) > int(0.5 * n):
        out.append("short_sentences")
    head = math.floor(n * 0.2)
    limit = math.floor(head * 0.5)
    if sum(1 for ln in lines[:head] if len(ln.encode()) < 100) > limit:
        out.append("header")
    if head and sum(1 for ln in lines[n - head:] if len(ln.encode()) < 100) > limit:
        out.append("footer")
    nonletters = sum(1 for ch in content if unicodedata.category(ch)[0] not in "LM")
    if nonletters > len(content) // 2:
        out.append("noisy")
    return out or None


def harmful_pp(content: str) -> float:
    u = int.from_bytes(hashlib.sha256(content.encode()).digest()[:6], "big") / 2**48
    u = min(max(u, 1e-9), 1 - 1e-9)
    return f32(math.exp(7.3 + 0.9 * NormalDist().inv_cdf(u)))


def _uuid(*parts: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, '|'.join((SEED,) + parts))}>"


def oscar_record(content: str, url: str, lang: str, rng: random.Random, key: str) -> dict | None:
    sents, ident, langs = identify(content, lang)
    if not ident or ident["label"] != lang:
        return None
    data = content.encode("utf-8")
    date = datetime(2022, 11, 26, tzinfo=UTC) + timedelta(
        seconds=rng.randrange(15 * 86400))
    digest = base64.b32encode(hashlib.sha1(data).digest()).decode()
    digest_tlsh = tlsh(data)
    return {
        "content": content,
        "warc_headers": {
            "warc-identified-content-language": ",".join(ISO639_3[lg] for lg in langs),
            "warc-target-uri": url,
            "warc-record-id": _uuid(lang, key, url, "conversion"),
            "warc-type": "conversion",
            "content-length": str(len(data)),
            "warc-refers-to": _uuid(lang, key, url, "response"),
            "warc-block-digest": f"sha1:{digest}",
            "warc-date": date.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "content-type": "text/plain",
        },
        "metadata": {
            "identification": ident,
            "harmful_pp": harmful_pp(content),
            "tlsh": f"tlsh:{digest_tlsh}" if digest_tlsh else None,
            "quality_warnings": quality_warnings(content),
            "categories": None,
            "sentence_identifications": sents,
        },
    }


def build_oscar_lang(lang: str) -> list[dict]:
    code, man_pkg, fortune_pkg = OSCAR_LANGS[lang]
    rng = rng_for("oscar", lang)
    budget = OSCAR_BUDGET_CJK if lang in ("ja", "zh") else OSCAR_BUDGET
    avail = {"debref": code, "man": man_pkg, "fortune": fortune_pkg}
    weights = {k: w for k, w in SOURCE_WEIGHTS.items() if avail[k]}
    scale = budget / sum(weights.values())
    docs: list[dict] = []

    def accept(text: str) -> bool:  # OSCAR keeps a document only in its identified language
        return (identify(text, lang)[1] or {}).get("label") == lang

    units = funits = None
    if code:
        units = debref_units(code)
        chunks = pack(units, rng, split_units=True)
        rng.shuffle(chunks)
        docs += take(chunks, int(weights["debref"] * scale), accept)
    if man_pkg:
        docs += man_docs(man_pkg, lang, rng_for("oscar", lang, "man"),
                         int(weights["man"] * scale), accept)
    if fortune_pkg:
        funits = fortune_units(fortune_pkg, fortune_files(fortune_pkg))
        pages = pack(funits, rng, split_units=False)
        rng.shuffle(pages)
        docs += take(pages, int(weights["fortune"] * scale), accept)
    n_short = max(3, round(SHORT_FRACTION * len(docs)))
    if funits:
        shorts = short_fortunes(funits, rng, 20 * n_short)
    elif units:
        shorts = short_sections(units, rng, 20 * n_short)
    else:  # man pages only: stub pages holding just the NAME section of other pages
        shorts = man_stubs(man_pkg, lang, rng, 3 * n_short, {d["path"] for d in docs})
    docs += [d for d in shorts if accept(d["text"])][:n_short]
    rng.shuffle(docs)
    unique_urls(docs)
    records = []
    for i, d in enumerate(docs):
        rec = oscar_record(d["text"], d["url"], lang, rng, str(i))
        if rec:
            records.append(rec)
    # exact duplicates: the same page under another address
    picks = rng.sample([r for r in records if len(r["content"]) >= 500], OSCAR_DUPS)
    for j, r in enumerate(picks):
        url = r["warc_headers"]["warc-target-uri"]
        url = url.replace("https://", "http://", 1) if j % 2 == 0 else add_query(url, "print=1")
        dup = oscar_record(r["content"], url, lang, rng, f"dup{j}")
        records.insert(rng.randrange(len(records) + 1), dup)
    return records


# --------------------------------------------------------------------------- writing

def write_gz(path: Path, payload: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        f.write(payload)
    path.write_bytes(buf.getvalue())


def write_zst(path: Path, payload: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor(level=19).compress(payload))  # one frame


def jsonl(records, **kw) -> bytes:
    return "".join(json.dumps(r, **kw) + "\n" for r in records).encode("utf-8")


def read_back(path: Path) -> list[dict]:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    else:
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    return [json.loads(ln) for ln in raw.decode("utf-8").split("\n") if ln]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: tokenmill/data")
    args = ap.parse_args(argv)
    out: Path = args.out
    for w in check_versions():
        print("warning:", w, file=sys.stderr)

    files: dict[str, list[dict]] = {}
    c4 = build_c4()
    half = (len(c4) + 1) // 2
    for k, part in enumerate((c4[:half], c4[half:])):
        rel = f"c4/en/c4-train.{k:05d}-of-01024.json.gz"
        recs = [{"text": d["text"], "timestamp": d["timestamp"], "url": d["url"]} for d in part]
        write_gz(out / rel, jsonl(recs, separators=(",", ":")))
        files[rel] = part
    pile = build_pile(c4)
    half = (len(pile) + 1) // 2
    for k, part in enumerate((pile[:half], pile[half:])):
        rel = f"pile/train/{k:02d}.jsonl.zst"
        recs = [{"text": d["text"], "meta": {"pile_set_name": d["meta"]}} for d in part]
        write_zst(out / rel, jsonl(recs))
        files[rel] = part
    for lang in OSCAR_LANGS:
        recs = build_oscar_lang(lang)
        rel = f"oscar/{lang}_meta/{lang}_meta_part_1.jsonl.zst"
        write_zst(out / rel, jsonl(recs, ensure_ascii=False, separators=(",", ":")))
        files[rel] = recs

    rows = []
    for rel in files:
        recs = read_back(out / rel)
        texts = [r.get("text", r.get("content")) for r in recs]
        short = sum(1 for t in texts if len(t) < 300)
        labels = []
        if "pile" in rel:
            names = [r["meta"]["pile_set_name"] for r in recs]
            labels = [f"{k} {names.count(k)}" for k in sorted(set(names))]
        rows.append((rel, len(recs), sum(len(t) for t in texts),
                     sum(len(t.encode()) for t in texts), (out / rel).stat().st_size, short,
                     len(texts) - len(set(texts)), labels))
    write_readme(out, rows)
    head = f"{'file':44} {'docs':>5} {'chars':>9} {'bytes':>9} {'on disk':>8} {'<300':>5}"
    print(head + f" {'dup':>4}")
    for rel, n, chars, nbytes, disk, short, dup, labels in rows:
        print(f"{rel:44} {n:5d} {chars:9d} {nbytes:9d} {disk:8d} {short:5d} {dup:4d}"
              + (f"  {', '.join(labels)}" if labels else ""))
    tot = [sum(r[i] for r in rows) for i in (1, 2, 3, 4)]
    print(f"{'total':44} {tot[0]:5d} {tot[1]:9d} {tot[2]:9d} {tot[3]:8d}")
    return 0


def write_readme(out: Path, rows):
    def table(sel: str, first: str) -> str:
        lines = [f"| {first} | docs | text (UTF-8 bytes) | on disk (bytes) | under 300 chars |",
                 "| --- | ---: | ---: | ---: | ---: |"]
        for rel, n, _chars, nbytes, disk, short, _dup, labels in rows:
            if not rel.startswith(sel):
                continue
            if sel == "oscar/":
                lang = rel.split("/")[1].split("_")[0]
                cell = f"{LANG_NAMES[lang]} (`{lang}`): `{rel}`"
            else:
                cell = f"`{rel}`" + (f" ({', '.join(labels)})" if labels else "")
            lines.append(f"| {cell} | {n:,} | {nbytes:,} | {disk:,} | {short} |")
        return "\n".join(lines)

    total_docs = sum(r[1] for r in rows)
    total_bytes = sum(r[3] for r in rows)
    pkgs = "\n".join(f"| {p} | {v} | {lic} | {cr} |"
                     for p, (v, lic, cr) in sorted(PACKAGES.items()))
    text = f"""# Bundled sample corpus

{total_docs:,} documents, {total_bytes / 1e6:.1f} MB of text (UTF-8), all of it real, freely
licensed text taken from Debian packages, written in the real on-disk formats of C4, the Pile
and OSCAR 23.01. `sample.yaml` is the pipeline config that runs on it.

This file and the corpus files are generated by `scripts/make_sample.py`; do not edit them by
hand. To regenerate, install the Debian packages listed at the top of that script, then run

    python scripts/make_sample.py

Two runs on the same package versions give byte-identical files (fixed seeds, gzip mtime 0,
one zstd frame at a fixed level). The script warns when an installed package version differs
from the one below.

## C4 (allenai/c4 `en` layout)

gzip'd JSON lines `{{"text","timestamp","url"}}` with compact separators and ASCII escapes, as
in the real files. English only: Debian Reference sections and English fortunes, cleaned with
C4's rules (lines ending in terminal punctuation with at least 5 words; pages with `{{` or
"lorem ipsum" dropped; at least 3 sentences, except the planted short documents).

{table("c4/", "file")}

## The Pile (`train/NN.jsonl.zst`)

zstd JSON lines `{{"text": ..., "meta": {{"pile_set_name": ...}}}}` written with `json.dumps`
defaults, as in the real files. English. The subset labels are illustrative only: rendered
English man pages are `Pile-CC`, raw roff sources of man pages are `Github`, pages of English
fortunes are `OpenWebText2`.

{table("pile/", "file (documents per subset)")}

## OSCAR 23.01 (`LANG_meta/LANG_meta_part_N.jsonl.zst`)

zstd JSON lines with `content`, `warc_headers` and `metadata` (`identification`,
`harmful_pp`, `tlsh`, `quality_warnings`, `categories`, `sentence_identifications`), written
compactly with raw UTF-8 like the real files. Text comes from the translated Debian Reference
(fr de es it pt ja zh id), translated man pages (fr de es it pt ru pl nl) and fortunes
(de es it pt ru pl).

- Computed from the content: `tlsh` (TLSH with 256 buckets and a 3-byte checksum, as
  ungoliant uses), `quality_warnings` (ungoliant's tiny, short_sentences, header, footer and
  noisy rules), `content-length` and `warc-block-digest`.
- Approximated: `sentence_identifications` and `identification` come from a stopword and
  script heuristic standing in for fastText (one entry per line, null below 0.8); documents
  not identified as the file's language are left out, as in OSCAR. Untranslated English
  passages of the Debian Reference translations show up as `en` lines.
- Synthetic but deterministic: record ids, `warc-date` (the CC-MAIN-2022-49 window),
  `harmful_pp` and the URLs (the debian.org, manpages.debian.org and sources.debian.org
  addresses where the text is published). `categories` is always null.

{table("oscar/", "language: file")}

## Planted for the filters

- Short documents: about 6% of each corpus or language are a single fortune, a heading with
  one paragraph, or the NAME section of a man page; some are under 50 characters.
- Exact duplicates: 20 C4 documents are copied verbatim into the Pile (as `Pile-CC`), and in
  each OSCAR file 2 documents appear twice (same content under another URL).

## Sources and licenses

Versions, licenses and copyright holders as stated in `/usr/share/doc/PKG/copyright` (Debian
12 "bookworm"). Man pages were rendered to text with man-db and groff-base. Formatted man
pages acknowledge their copyright and authors here: they are named in each page's roff source
(e.g. `/usr/share/man/man2/open.2.gz` from manpages-dev), which the Pile's `Github` documents
reproduce verbatim, and the translated pages keep their translation credits.

| package | version | license | copyright |
| --- | --- | --- | --- |
{pkgs}
"""
    (out / "README.md").write_text(text, "utf-8")


if __name__ == "__main__":
    sys.exit(main())
