"""Per-stage throughput against the raw libraries, in one run, on the bundled sample's text.

    python benchmarks/stages.py [--repeat 5] [--write benchmarks/RESULTS.md]

- language ID: tokenmill's LanguageId.predict vs raw fastText `model.predict(text)` per document
- encoding:    tokenmill's encode_documents vs raw `Tokenizer.encode_batch` on the same batches
- prepare:     the whole `prepare` on the bundled sample (2 workers), docs/s and MB/s

Medians of `--repeat` runs; ratios are tokenmill / reference (>1 is faster for throughputs).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tokenmill.config import DATA_DIR, load_config
from tokenmill.pipelines.readers import Doc, read_records


def sample_texts() -> list[str]:
    texts = []
    for fmt, pat in [("c4", "c4/en/*.json.gz"), ("pile", "pile/train/*.jsonl.zst"),
                     ("oscar2301", "oscar/*_meta/*.jsonl.zst")]:
        for f in sorted(glob.glob(str(DATA_DIR / pat))):
            texts += [d.text for _, d in read_records(f, fmt) if isinstance(d, Doc)]
    return texts


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_langid(texts, repeat):
    import fasttext

    from tokenmill.filters.langid import LanguageId, bundled_model_path

    raw = fasttext.load_model(bundled_model_path())
    lid = LanguageId()
    lid.predict(texts[:10])  # load once

    def ours():
        lid.predict(texts)

    def reference():
        for t in texts:  # (the binding: fastText 0.9.2's predict(str) fails under NumPy 2)
            raw.f.predict(t.replace("\n", " ") + "\n", 1, 0.0, "strict")

    return median_time(ours, repeat), median_time(reference, repeat)


def bench_encode(texts, repeat):
    from tokenmill.tokenize.bpe import train_bpe
    from tokenmill.tokenize.encode import encode_documents

    tok = train_bpe(texts, 8000, ["<|endoftext|>", "<|pad|>"])
    batches = [texts[i : i + 1024] for i in range(0, len(texts), 1024)]

    def ours():
        for b in batches:
            encode_documents(tok, b, 0, np.dtype(np.uint16))

    def reference():
        for b in batches:
            tok.encode_batch(b, add_special_tokens=False)

    return median_time(ours, repeat), median_time(reference, repeat)


def bench_prepare(repeat):
    from tokenmill.pipelines.prepare import prepare

    cfg = load_config()
    times, stats = [], None
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            stats = prepare(cfg, Path(out), workers=2, quiet=True)
            times.append(time.perf_counter() - t0)
    return statistics.median(times), stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--write", type=Path, default=None, help="append a section to this file")
    args = ap.parse_args()

    texts = sample_texts()
    mb = sum(len(t.encode()) for t in texts) / 1e6
    rows = []
    ours, ref = bench_langid(texts, args.repeat)
    rows.append(("language ID (1 process)", "raw fastText predict", len(texts) / ours,
                 len(texts) / ref, mb / ours, ref / ours))
    ours, ref = bench_encode(texts, args.repeat)
    rows.append(("encode + EOD, flat uint16", "raw Tokenizer.encode_batch", len(texts) / ours,
                 len(texts) / ref, mb / ours, ref / ours))
    wall, stats = bench_prepare(max(1, args.repeat // 2))
    docs_in = stats["totals"]["documents_in"]
    mb_in = stats["totals"]["bytes_in"] / 1e6

    lines = [
        f"### stages.py ({time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()},"
        f" {os.cpu_count()} cores, Python {sys.version.split()[0]})",
        "",
        f"Command: `python benchmarks/stages.py --repeat {args.repeat}`; "
        f"{len(texts):,} documents, {mb:.1f} MB of the bundled sample; medians.",
        "",
        "| what | reference | tokenmill docs/s | reference docs/s | tokenmill MB/s | ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, refname, d_ours, d_ref, mbs, ratio in rows:
        lines.append(f"| {name} | {refname} | {d_ours:,.0f} | {d_ref:,.0f} | {mbs:.2f} | "
                     f"{ratio:.2f}x |")
    lines += [
        "",
        f"Whole `prepare` of the bundled sample, 2 workers (incl. cluster start-up): "
        f"{wall:.1f} s, {docs_in / wall:,.0f} docs/s, {mb_in / wall:.2f} MB/s "
        f"({docs_in:,} documents, {mb_in:.1f} MB in, {stats['totals']['tokens']:,} tokens out).",
        "Stage wall times (s): " + json.dumps({k: v.get("wall_s") for k, v in
                                               stats["stages"].items()}),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with open(args.write, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
