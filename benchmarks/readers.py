"""Reader throughput: tokenmill's `read_records` against a plain gzip/zstandard + json.loads loop.

    python benchmarks/readers.py [--repeat 5] [--copies 8] [--write benchmarks/RESULTS.md]

Both read the same files (the bundled sample's C4 json.gz and Pile jsonl.zst, each repeated
`--copies` times into one file) and produce each record's text; MB/s counts the decompressed
bytes per second on one core. Medians of `--repeat` runs; ratio = tokenmill / loop.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# `python benchmarks/x.py` puts benchmarks/ first on sys.path; keep sibling files from
# shadowing installed modules
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import zstandard  # noqa: E402

from tokenmill.config import DATA_DIR  # noqa: E402
from tokenmill.pipelines.readers import Doc, read_records  # noqa: E402


def build(tmp: Path, copies: int) -> dict[str, tuple[str, str, int]]:
    out = {}
    for fmt, pat, suffix in [("c4", "c4/en/*.json.gz", "json.gz"),
                             ("pile", "pile/train/*.jsonl.zst", "jsonl.zst")]:
        raw = b""
        for f in sorted(glob.glob(str(DATA_DIR / pat))):
            data = open(f, "rb").read()
            raw += gzip.decompress(data) if f.endswith(".gz") else \
                zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
        raw *= copies
        path = tmp / f"{fmt}.{suffix}"
        if suffix.endswith("gz"):
            path.write_bytes(gzip.compress(raw, compresslevel=6))
        else:
            path.write_bytes(zstandard.ZstdCompressor(level=3).compress(raw))
        out[fmt] = (str(path), fmt, len(raw))
    return out


def ours(path: str, fmt: str) -> int:
    return sum(len(d.text) for _, d in read_records(path, fmt) if isinstance(d, Doc))


def loop(path: str, fmt: str) -> int:
    if path.endswith(".gz"):
        f = gzip.open(path, "rb")
    else:
        f = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")))
    n = 0
    with f:
        for line in f:
            n += len(json.loads(line)["text"])
    return n


def median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--write", type=Path)
    args = ap.parse_args()
    lines = [
        f"### readers.py ({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} "
        f"cores, Python {sys.version.split()[0]})", "",
        f"Command: `python benchmarks/readers.py --repeat {args.repeat} --copies {args.copies}`;"
        " one core; MB/s of decompressed JSON lines; medians.", "",
        "| file | MB | tokenmill MB/s | gzip/zstandard + json.loads MB/s | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, (path, fmt, nbytes) in build(Path(tmp), args.copies).items():
            assert ours(path, fmt) == loop(path, fmt)  # the same texts
            t_ours = median_s(lambda p=path, f=fmt: ours(p, f), args.repeat)
            t_loop = median_s(lambda p=path, f=fmt: loop(p, f), args.repeat)
            mb = nbytes / 1e6
            lines.append(f"| {name} ({Path(path).name}) | {mb:.1f} | {mb / t_ours:.1f} | "
                         f"{mb / t_loop:.1f} | {t_loop / t_ours:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        with open(args.write, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
