"""Reader throughput: tokenmill's `read_records` against a plain gzip/zstandard + json.loads loop.

    python benchmarks/readers.py [--repeat 5] [--copies 8] [--write benchmarks/RESULTS.md]

Both read the same files (the bundled sample's C4 json.gz and Pile jsonl.zst, each repeated
`--copies` times into one file) and produce each record's text; MB/s counts the decompressed
bytes per second on one core. The two alternate, `--repeat` runs each; ratio = tokenmill speed
/ loop speed, from the medians and (steadier on a shared machine) as the median of each
pair's ratio.
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


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def paired(a, b, repeat: int) -> tuple[list[float], list[float]]:
    """Times of `a` and `b`, run alternately `repeat` times each (which goes first alternates
    too), so that load changes on a shared machine hit both alike."""
    ta: list[float] = []
    tb: list[float] = []
    for r in range(repeat):
        order = [(a, ta), (b, tb)]
        for fn, times in order[:: -1 if r % 2 else 1]:
            times.append(timed(fn))
    return ta, tb


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
        " one core; MB/s of decompressed JSON lines; medians of runs that alternate between"
        " the two; paired = median over pairs of loop time / tokenmill time.", "",
        "| file | MB | tokenmill MB/s | gzip/zstandard + json.loads MB/s | ratio of medians"
        " | paired ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, (path, fmt, nbytes) in build(Path(tmp), args.copies).items():
            assert ours(path, fmt) == loop(path, fmt)  # the same texts
            ts_ours, ts_loop = paired(
                lambda p=path, f=fmt: ours(p, f), lambda p=path, f=fmt: loop(p, f), args.repeat
            )
            t_ours, t_loop = statistics.median(ts_ours), statistics.median(ts_loop)
            ratio = statistics.median(b / a for a, b in zip(ts_ours, ts_loop, strict=True))
            mb = nbytes / 1e6
            lines.append(f"| {name} ({Path(path).name}) | {mb:.1f} | {mb / t_ours:.1f} | "
                         f"{mb / t_loop:.1f} | {t_loop / t_ours:.2f}x | {ratio:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        with open(args.write, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
