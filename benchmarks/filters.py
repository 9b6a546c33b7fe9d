"""Quality-filter throughput per core: tokenmill's rule sets against datatrove's on the same
documents (the bundled sample), in one process and one thread.

    python benchmarks/filters.py [--repeat 5] [--write benchmarks/RESULTS.md]

- c4, gopher_quality, gopher_repetition: ours vs datatrove's C4QualityFilter (with c4_utils'
  values: 5 words per line, 3 sentences), GopherQualityFilter, GopherRepetitionFilter, on the
  English documents (C4 and Pile files); their keep/remove agreement is reported too.
- chain: C4 -> Gopher quality -> Gopher repetition, each on the previous one's survivors (C4's
  rewritten text), ours vs datatrove's.
- bigscience (no datatrove counterpart) on every document, and the default filter sets per
  source (DEFAULT_FILTER_SETS: basic + gopher_repetition for C4/Pile, basic + bigscience for
  OSCAR): ours only.

"cold": our per-process caches (spaCy tokens per chunk, stripped words) are emptied before
each run, as for a worker's first partition; "warm": a second pass with them filled, closer
to a worker deep into a corpus. datatrove keeps no such cache. Medians of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from tokenmill.config import DATA_DIR
from tokenmill.pipelines.readers import Doc, read_records


def sample_docs() -> list[tuple[str, str, str]]:
    """(format, text, language) of every document of the bundled sample."""
    out = []
    for fmt, pat in [
        ("c4", "c4/en/*.json.gz"),
        ("pile", "pile/train/*.jsonl.zst"),
        ("oscar2301", "oscar/*_meta/*.jsonl.zst"),
    ]:
        for f in sorted(glob.glob(str(DATA_DIR / pat))):
            for _, d in read_records(f, fmt):
                if isinstance(d, Doc):
                    lang = (d.meta.get("identification") or {}).get("label", "en")
                    out.append((fmt, d.text, lang))
    return out


def clear_caches() -> None:
    from tokenmill.filters import bigscience, gopher

    for sw in gopher._SPLITTERS.values():
        sw.cache.clear()
        sw.token_ids.clear()
    bigscience._STRIPPED.clear()


def timed(fn, repeat: int, cold: bool) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        if cold:
            clear_caches()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def keeps(out) -> list[bool]:
    reasons = out[0] if isinstance(out, tuple) else out
    return [r is None for r in reasons]


def datatrove_run(f, texts: list[str]) -> tuple[list[bool], list[str]]:
    from datatrove.data import Document

    kept, new = [], []
    for i, t in enumerate(texts):
        d = Document(text=t, id=str(i))
        kept.append(f.filter(d) is True)
        new.append(d.text)
    return kept, new


def chain_ours(filters, texts: list[str]) -> list[bool]:
    alive = list(range(len(texts)))
    cur = list(texts)
    for f in filters:
        out = f([cur[i] for i in alive], ["en"] * len(alive))
        if getattr(f, "rewrites", False):
            reasons, new = out
            for i, t in zip(alive, new, strict=True):
                cur[i] = t
        else:
            reasons = out
        alive = [i for i, r in zip(alive, reasons, strict=True) if r is None]
    keep = set(alive)
    return [i in keep for i in range(len(texts))]


def chain_datatrove(filters, texts: list[str]) -> list[bool]:
    from datatrove.data import Document

    out = []
    for i, t in enumerate(texts):
        d = Document(text=t, id=str(i))
        out.append(all(f.filter(d) is True for f in filters))  # all() stops at the first False
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--write", type=Path, default=None, help="append a section to this file")
    args = ap.parse_args()

    from datatrove.pipeline.filters import (
        C4QualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    from tokenmill.filters.c4 import END_MARKS, C4Quality
    from tokenmill.filters.gopher import GopherQuality, GopherRepetition, spacy_words
    from tokenmill.filters.registry import QualityConfig, build_filters

    docs = sample_docs()
    en = [t for fmt, t, _ in docs if fmt in ("c4", "pile")]
    spacy_words("en").tokenizer()  # load spaCy once, as datatrove's first call does below

    def mb(texts):
        return sum(len(t.encode()) for t in texts) / 1e6

    rows = []

    def row(name, texts, ours_fn, ref_fn=None, agree=None):
        n, size = len(texts), mb(texts)
        cold, out = timed(ours_fn, args.repeat, cold=True)
        warm, _ = timed(ours_fn, args.repeat, cold=False)
        ref = ref_out = None
        if ref_fn is not None:
            ref, ref_out = timed(ref_fn, args.repeat, cold=False)
        agreement = agree(out, ref_out) if agree else None
        rows.append((name, n, size, cold, warm, ref, agreement))
        print(rows[-1], file=sys.stderr)

    def same(a, b):
        return sum(x == y for x, y in zip(keeps(a), b, strict=True)) / len(b)

    ours_c4 = C4Quality(end_marks=(*END_MARKS, "'"))  # datatrove's marks; its other values = ours
    ref_c4 = C4QualityFilter(min_words_per_line=5, min_num_sentences=3)
    en_langs = ["en"] * len(en)
    row("c4", en, lambda: ours_c4(en, en_langs), lambda: datatrove_run(ref_c4, en)[0], same)
    gq, ref_gq = GopherQuality(), GopherQualityFilter()
    row("gopher_quality", en, lambda: gq(en, en_langs), lambda: datatrove_run(ref_gq, en)[0], same)
    gr, ref_gr = GopherRepetition(), GopherRepetitionFilter()
    row(
        "gopher_repetition", en, lambda: gr(en, en_langs),
        lambda: datatrove_run(ref_gr, en)[0], same,
    )  # fmt: skip
    row(
        "chain c4 -> gopher_quality -> gopher_repetition", en,
        lambda: chain_ours([ours_c4, gq, gr], en),
        lambda: chain_datatrove([ref_c4, ref_gq, ref_gr], en),
        lambda a, b: sum(x == y for x, y in zip(a, b, strict=True)) / len(b),
    )  # fmt: skip

    all_texts = [t for _, t, _ in docs]
    all_langs = [lang for _, _, lang in docs]
    q = QualityConfig()
    big = build_filters(["bigscience"], q)[0]
    row("bigscience (all languages)", all_texts, lambda: big(all_texts, all_langs))

    by_fmt: dict[str, list[int]] = {}
    for i, (fmt, _, _) in enumerate(docs):
        by_fmt.setdefault(fmt, []).append(i)
    sets = {fmt: build_filters(q.filter_names(fmt, fmt), q) for fmt in by_fmt}

    def default_sets():
        kept = 0
        for fmt, idx in by_fmt.items():
            texts = [all_texts[i] for i in idx]
            langs = [all_langs[i] for i in idx]
            alive = list(range(len(idx)))
            for f in sets[fmt]:
                reasons = f([texts[i] for i in alive], [langs[i] for i in alive])
                alive = [i for i, r in zip(alive, reasons, strict=True) if r is None]
            kept += len(alive)
        return kept

    row("default sets per source", all_texts, default_sets)

    load = os.getloadavg()[0]
    cmd = "python benchmarks/filters.py " + " ".join(sys.argv[1:])
    lines = [
        "## Quality filters (per core)",
        "",
        f"`{cmd.strip()}` on the bundled sample; one process, one thread; "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"load average {load:.1f} at the end (the 2-core machine is shared). Medians of "
        f"{args.repeat} runs. cold: our caches emptied before each run; warm: filled.",
        "",
        "| rule set | docs | MB | ours cold docs/s | MB/s | ours warm docs/s | MB/s "
        "| datatrove docs/s | MB/s | speed-up (cold) | same decision |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, n, size, cold, warm, ref, agreement in rows:
        ref_cells = f"{n / ref:,.0f} | {size / ref:.2f} | {ref / cold:.1f}x" if ref else "- | - | -"
        agree_cell = f"{agreement:.1%}" if agreement is not None else "-"
        lines.append(
            f"| {name} | {n:,} | {size:.2f} | {n / cold:,.0f} | {size / cold:.2f} "
            f"| {n / warm:,.0f} | {size / warm:.2f} | {ref_cells} | {agree_cell} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        with open(args.write, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
