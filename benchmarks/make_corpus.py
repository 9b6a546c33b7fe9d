#!/usr/bin/env python3
"""A corpus of any size for scale runs, made from real text, with its own ground truth.

    .venv/bin/python benchmarks/make_corpus.py --out /data/scale1g --size 1GB
    .venv/bin/python benchmarks/make_corpus.py --out x --size 100MB --text more/*.txt --seed 2

Documents are new combinations of real sentences: those of the bundled sample's paragraphs
(tokenmill/data: C4 and the Pile in English, OSCAR in nine languages) and of any text files
given with --text (paragraphs split at line ends, English assumed). Each document is one of

- unique: 2 to 12 paragraphs of 1 to 6 sentences each, every sentence drawn at random from
  one language's pool of real sentences, none over MAX_SHARE of the document's words. The
  pool is small (20,711 English sentences in the bundled sample), so at 4 GB each sentence
  is in ~850 documents; drawing whole paragraphs instead made documents that share
  one paragraph, and LSH candidates among them grew with the square of the corpus (55x for
  10x at 1 GB). Two documents sharing a sentence stay under a 5-gram Jaccard of
  MAX_SHARE / (2 - MAX_SHARE) = 0.14, where LSH at a 0.8 threshold almost never pairs them;
- exact: a copy of an earlier document, its whitespace changed (tokenmill's exact dedup
  normalizes whitespace and case, so it is still a copy);
- near: an earlier document cut after the word that gives a word 5-gram Jaccard with the
  original closest to a target level (--near, e.g. 0.9, 0.8, 0.7), so near dedup at a given
  threshold should take the copies above it and keep those below;
- junk: a short run of symbols, digits or one repeated word (what quality rules remove).

The documents go to two sources in their real layouts, each in parts of about --part-size
uncompressed bytes: C4 (`c4/en/c4-train.NNNNN-of-01024.json.gz`: text, timestamp, url) with
the English documents, and OSCAR 23.01 (`oscar/LANG_meta/LANG_meta_part_N.jsonl.zst`:
content, warc_headers, metadata.identification) with the others; copies stay in their
original's language. The ground truth is `truth.jsonl.gz`, one row per document in write order:
its source, file (relative to the source's folder, as tokenmill ids have it), record number,
kind, and for copies the original's (source, file, record) and the measured Jaccard (words:
runs of letters and digits of the NFC, case-folded text, as a plain regex reads them; a
character each for languages written without spaces);
`corpus.json` has the counts, sizes, settings and a config for `tokenmill prepare`. The same
arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import io
import json
import random
import re
import sys
import unicodedata
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import xxhash
import zstandard

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tokenmill" / "data"
MAX_SHARE = 0.25  # of a unique document's words, for its longest sentence
UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?B?)\s*", text.upper())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 100MB, 4GB)")
    return int(float(m.group(1)) * UNITS[m.group(2)])


def _records(path: str) -> list[dict]:
    raw = Path(path).read_bytes()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    elif path.endswith(".zst"):
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    return [json.loads(x) for x in raw.decode("utf-8").splitlines() if x.strip()]


def paragraph_pools(extra: list[str]) -> dict[str, list[str]]:
    """Language -> distinct real paragraphs (at least 40 characters)."""
    pools: dict[str, list[str]] = {}

    def add(lang: str, text: str) -> None:
        for p in re.split(r"\n\s*\n|\n", text):
            p = p.strip()
            if len(p) >= 40:
                pools.setdefault(lang, []).append(p)

    for f in sorted(glob.glob(str(DATA / "c4/en/*.json.gz"))):
        for r in _records(f):
            add("en", r["text"])
    for f in sorted(glob.glob(str(DATA / "pile/train/*.jsonl.zst"))):
        for r in _records(f):
            add("en", r["text"])
    for f in sorted(glob.glob(str(DATA / "oscar/*_meta/*.jsonl.zst"))):
        for r in _records(f):
            add(r["metadata"]["identification"]["label"], r["content"])
    for f in extra:
        add("en", Path(f).read_text(encoding="utf-8", errors="replace"))
    return {k: sorted(set(v)) for k, v in sorted(pools.items())}


SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<=[。！？])")


def sentence_pools(paragraphs: dict[str, list[str]]) -> dict[str, list[str]]:
    """Language -> distinct real sentences (at least 3 words, or 10 characters where words
    are characters), split after . ! ? and their full-width forms."""
    pools = {}
    for lang, paras in paragraphs.items():
        least = 10 if lang in NO_SPACE else 3
        found = {
            s.strip() for p in paras for s in SENTENCE_END.split(p) if len(words(s, lang)) >= least
        }
        pools[lang] = sorted(found)
    return pools


WORD = re.compile(r"[^\W_]+")
CHAR = re.compile(r"[^\W_]")  # languages written without spaces: a word per character
NO_SPACE = {"zh", "ja", "th", "lo", "km", "my", "bo", "dz"}


def _word_re(lang: str) -> re.Pattern:
    return CHAR if lang in NO_SPACE else WORD


def words(text: str, lang: str = "en") -> list[str]:
    return _word_re(lang).findall(unicodedata.normalize("NFC", text).casefold())


def jaccard5(a: str, b: str, lang: str = "en") -> float:
    def sh(t: str) -> set:
        w = words(t, lang)
        return {tuple(w[i : i + 5]) for i in range(len(w) - 4)} or set(w)

    x, y = sh(a), sh(b)
    return len(x & y) / len(x | y) if x | y else 1.0


def _unique(rng: random.Random, pool: list[str], sizes: list[int]) -> array | None:
    """A unique document's sentences as pool indices, each paragraph its length and then
    its indices (compact: millions are kept for the copies), or None when one sentence
    would be over MAX_SHARE of its words."""
    paras = [
        [rng.randrange(len(pool)) for _ in range(rng.randrange(1, 7))]
        for _ in range(rng.randrange(2, 13))
    ]
    n_words = [sizes[i] for para in paras for i in para]
    if max(n_words) > MAX_SHARE * sum(n_words):
        return None
    return array("I", [x for para in paras for x in (len(para), *para)])


def _text(pool: list[str], doc: array, joiner: str) -> str:
    paras, k = [], 0
    while k < len(doc):
        n = doc[k]
        paras.append(joiner.join(pool[i] for i in doc[k + 1 : k + 1 + n]))
        k += 1 + n
    return "\n".join(paras)


def near_copy(text: str, target: float, lang: str = "en") -> str:
    """`text` cut after the word whose prefix's 5-gram Jaccard with `text` is closest to
    `target` (a prefix's shingles are a subset: Jaccard = (m - 4) / (n - 4))."""
    spans = [m.span() for m in _word_re(lang).finditer(unicodedata.normalize("NFC", text))]
    n = len(spans)
    if n < 10:
        return text
    m = max(5, min(n - 1, round(target * (n - 4)) + 4))
    return text[: spans[m - 1][1]]


@dataclass
class Part:
    source: str
    rel: str
    path: Path
    lines: list[bytes] = field(default_factory=list)
    size: int = 0


class Writer:
    """Documents into parts of the two sources' layouts, rotating at `part_size` bytes."""

    def __init__(self, out: Path, part_size: int):
        self.out, self.part_size = out, part_size
        self.parts: dict[str, Part] = {}  # key: c4 or oscar/LANG
        self.counts: dict[str, int] = {}
        self.files: list[str] = []

    def _part(self, key: str) -> Part:
        p = self.parts.get(key)
        if p is not None and p.size < self.part_size:
            return p
        if p is not None:
            self._flush(p)
        n = self.counts.get(key, 0)
        self.counts[key] = n + 1
        if key == "c4":
            rel = f"en/c4-train.{n:05d}-of-01024.json.gz"
            p = Part("c4", rel, self.out / "c4" / rel)
        else:
            lang = key.split("/", 1)[1]
            rel = f"{lang}_meta/{lang}_meta_part_{n + 1}.jsonl.zst"
            p = Part("oscar", rel, self.out / "oscar" / rel)
        self.parts[key] = p
        return p

    def add(self, lang: str, text: str, k: int) -> tuple[str, str, int]:
        """Write one document; its (source, file, record)."""
        key = "c4" if lang == "en" else f"oscar/{lang}"
        p = self._part(key)
        if p.source == "c4":
            rec = {
                "text": text,
                "timestamp": f"2019-04-{1 + k % 28:02d}T{k % 24:02d}:00:00Z",
                "url": f"https://example-{k % 9973}.org/page/{k}",
            }
        else:
            rec = {
                "content": text,
                "warc_headers": {"warc-record-id": f"<urn:uuid:{k:032x}>"},
                "metadata": {"identification": {"label": lang, "prob": 0.99}},
            }
        line = json.dumps(rec, ensure_ascii=False).encode("utf-8") + b"\n"
        p.lines.append(line)
        p.size += len(line)
        return p.source, p.rel, len(p.lines) - 1

    def _flush(self, p: Part) -> None:
        p.path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(p.lines)
        if p.source == "c4":
            p.path.write_bytes(gzip.compress(data, compresslevel=6, mtime=0))
        else:
            p.path.write_bytes(zstandard.ZstdCompressor(level=3).compress(data))
        self.files.append(str(p.path.relative_to(self.out)))
        p.lines = []

    def close(self) -> None:
        for p in self.parts.values():
            if p.lines:
                self._flush(p)


def junk(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return "".join(rng.choice("#$%&*+=<>|~^") for _ in range(rng.randrange(30, 300)))
    if kind == 1:
        return " ".join(str(rng.randrange(10**6)) for _ in range(rng.randrange(10, 80)))
    return " ".join([rng.choice(["buy", "click", "free", "now"])] * rng.randrange(20, 200))


def make(args) -> dict:
    rng = random.Random(args.seed)
    pools = sentence_pools(paragraph_pools(args.text))
    langs = sorted(pools)
    joiners = {lang: "" if lang in NO_SPACE else " " for lang in langs}
    weights = [len(pools[lang]) for lang in langs]
    sizes = {lang: [len(words(p, lang)) for p in pools[lang]] for lang in langs}
    out = Path(args.out)
    writer = Writer(out, args.part_size)
    truth = io.TextIOWrapper(  # mtime 0: the same bytes every time
        gzip.GzipFile(out / "truth.jsonl.gz", "wb", compresslevel=6, mtime=0), encoding="utf-8"
    )
    docs: list[tuple[str, tuple, tuple]] = []  # unique documents: (lang, sentences, where)
    seen: set[int] = set()
    counts = {"unique": 0, "exact": 0, "near": 0, "junk": 0}
    near_levels = {str(level): 0 for level in args.near}
    total = k = 0
    while total < args.size:
        r = rng.random()
        row: dict = {}
        if docs and r < args.exact:
            lang, paras, orig = docs[rng.randrange(len(docs))]
            text = _text(pools[lang], paras, joiners[lang])
            text = "  " + text.replace(" ", "  ", rng.randrange(1, 4)) + "\n"
            row = {"kind": "exact", "of": list(orig), "jaccard": 1.0}
        elif docs and r < args.exact + args.near_rate * len(args.near):
            level = args.near[rng.randrange(len(args.near))]
            lang, paras, orig = docs[rng.randrange(len(docs))]
            text = _text(pools[lang], paras, joiners[lang])
            copy = near_copy(text, level, lang)
            row = {"kind": "near", "of": list(orig), "target": level}
            row["jaccard"] = round(jaccard5(copy, text, lang), 4)
            near_levels[str(level)] += 1
            text = copy
        elif r < args.exact + args.near_rate * len(args.near) + args.junk:
            lang, text, row = "en", junk(rng), {"kind": "junk"}
        else:
            lang = rng.choices(langs, weights)[0]
            paras = _unique(rng, pools[lang], sizes[lang])
            if paras is None:
                continue  # one sentence would dominate it (see the docstring)
            text = _text(pools[lang], paras, joiners[lang])
            h = xxhash.xxh3_64_intdigest(text.encode("utf-8", "surrogatepass"))
            if h in seen:
                continue
            seen.add(h)
            row = {"kind": "unique"}
        where = writer.add(lang, text, k)
        if row["kind"] == "unique":
            docs.append((lang, paras, where))
        counts[row["kind"]] += 1
        truth.write(json.dumps({"source": where[0], "file": where[1], "record": where[2],
                                **row}) + "\n")  # fmt: skip
        total += len(text.encode("utf-8"))
        k += 1
    writer.close()
    truth.close()
    summary = {
        "documents": k,
        "text_bytes": total,
        "counts": counts,
        "near_levels": near_levels,
        "files": sorted(writer.files),
        "settings": {
            "size": args.size,
            "seed": args.seed,
            "exact": args.exact,
            "near": args.near,
            "near_rate": args.near_rate,
            "junk": args.junk,
            "part_size": args.part_size,
            "text": args.text,
        },
        "config": {
            "sources": [
                {"name": "c4", "format": "c4", "paths": ["c4/en/*.json.gz"]},
                {"name": "oscar", "format": "oscar2301", "paths": ["oscar/*_meta/*.jsonl.zst"]},
            ]
        },
    }
    (out / "corpus.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder to write (must not exist or be empty)")
    ap.add_argument("--size", type=parse_size, default=parse_size("100MB"), help="text bytes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exact", type=float, default=0.05, help="share of exact copies")
    ap.add_argument("--near", type=float, nargs="*", default=[0.95, 0.85, 0.7],
                    help="Jaccard levels of near copies")  # fmt: skip
    ap.add_argument("--near-rate", type=float, default=0.02, help="share of copies per level")
    ap.add_argument("--junk", type=float, default=0.02, help="share of junk documents")
    ap.add_argument("--part-size", type=parse_size, default=parse_size("300MB"),
                    help="uncompressed bytes per file (C4's parts: ~300MB)")  # fmt: skip
    ap.add_argument("--text", nargs="*", default=[], help="more text files for paragraphs")
    args = ap.parse_args(argv)
    if args.exact + args.near_rate * len(args.near) + args.junk >= 1:
        ap.error("--exact + --near-rate x levels + --junk must leave room for unique documents")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        ap.error(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    summary = make(args)
    print(json.dumps({k: summary[k] for k in ("documents", "text_bytes", "counts")}))
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
