"""The data-quality steps of issue 17, each timed on the bundled sample in one process and one
thread, against language ID (lid.176) on the same documents (the reference every prepare
pays): MB of text per second and the ratio to language ID.

    python benchmarks/quality_steps.py [--repeat 5] [--write benchmarks/RESULTS.md]

- pii: the rule, default kinds (email, IPv4, IPv6), on every document;
- url: the rule with a 10,000-domain block list and 3 block words, on the documents with a url;
- decontamination: `find_contamination` (13-grams) against an evaluation set of 2,000 items
  made of 30-word windows of the sample's own documents (so some hit);
- span hashing: `span_records` (3 sentences), the per-partition part of span dedup;
- exact + band keys (the hashes process writes, for scale) and the `dedup.against` lookups of
  them in an index of the same documents (exact hashes and MinHash band keys).

Medians of `--repeat` runs; the machine is shared, so compare ratios, not absolute rates.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from filters import sample_docs  # noqa: E402  (benchmarks/filters.py)


def timed(fn, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--write", help="append the table to this markdown file")
    args = ap.parse_args()

    from tokenmill.filters.against import DedupIndex, exact_part, near_part
    from tokenmill.filters.decontam import EvalIndex, find_contamination
    from tokenmill.filters.exact import order_key, text_hashes
    from tokenmill.filters.langid import LanguageId
    from tokenmill.filters.minhash import LSH
    from tokenmill.filters.pii import PiiRedaction
    from tokenmill.filters.spans import span_records
    from tokenmill.filters.url import UrlBlockList

    docs = sample_docs()
    texts = [t for _, t, _ in docs]
    langs = [lang for _, _, lang in docs]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    rng = random.Random(0)
    urls = [f"https://site{rng.randrange(20000)}.example.org/p/{i}" for i in range(len(texts))]

    lid = LanguageId("all", 0.0)
    pii = PiiRedaction()
    domains = [f"site{i}.example.org" for i in range(10_000)]
    url = UrlBlockList(block_domains=domains, block_words=["casino", "porn", "xxx"])
    windows = []
    for _ in range(2000):
        w = rng.choice(texts).split()
        a = rng.randrange(max(1, len(w) - 30))
        windows.append(" ".join(w[a : a + 30]))
    ix = EvalIndex.build("windows", windows, 13)
    lsh = LSH(0.8, 128, 5, 1)
    keys = order_key(0, np.arange(len(texts)))

    with tempfile.TemporaryDirectory() as tmp:  # an index of the sample itself, one bucket
        hi, lo = text_hashes(texts)
        rec = np.empty(len(hi), [("hi", "<u8"), ("lo", "<u8"), ("key", "<i8")])
        rec["hi"], rec["lo"], rec["key"] = hi, lo, keys
        bands = lsh.records(texts, langs, keys)
        root = Path(tmp) / "dedup"
        (root / "exact").mkdir(parents=True)
        (root / "near").mkdir()
        np.save(root / "exact" / "b00000.npy", exact_part(rec))
        np.save(root / "near" / "n00000.npy", near_part(bands))
        (root / "meta.json").write_text(
            '{"version": 1, "settings": {}, "buckets": 1, "near_buckets": 1, "documents": 0}'
        )
        index = DedupIndex(tmp)

        steps = {
            "language ID (lid.176, reference)": lambda: lid(texts),
            "pii": lambda: pii.judge(texts, langs),
            "url (10k domains, 3 words)": lambda: url.judge(texts, langs, url=urls),
            "decontamination (13-grams, 2k items)": lambda: find_contamination(texts, langs, [ix]),
            "span hashing (3 sentences)": lambda: span_records(texts, keys, 3),
            "exact hashes + MinHash band keys": lambda: (
                text_hashes(texts),
                lsh.records(texts, langs, keys),
            ),
            "against lookups (exact + bands)": lambda: (
                index.exact(hi, lo),
                index.near(bands["key"]),
            ),
        }
        secs = {name: timed(fn, args.repeat) for name, fn in steps.items()}
    ref = secs["language ID (lid.176, reference)"]
    rows = [
        "| step | s (median) | MB/s | cost vs language ID |",
        "|---|---|---|---|",
    ]
    for name, s in secs.items():
        rows.append(f"| {name} | {s:.3f} | {mb / s:.1f} | {s / ref:.2f}x |")
    head = (
        f"## quality_steps.py: issue 17's steps on the bundled sample "
        f"({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores shared, "
        f"Python {platform.python_version()})\n\n"
        f"Command: `.venv/bin/python benchmarks/quality_steps.py --repeat {args.repeat}`. "
        f"{len(texts):,} documents, {mb:.1f} MB of text, one thread; medians of "
        f"{args.repeat} runs. Reference: language ID (LanguageId, lid.176.ftz) on the same "
        "documents.\n\n"
    )
    table = head + "\n".join(rows) + "\n"
    print(table)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as f:
            f.write("\n" + table)


if __name__ == "__main__":
    main()
