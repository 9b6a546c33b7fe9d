"""Before / after: `tokenmill prepare --fresh` of two checkouts on the same corpus, interleaved.

    python benchmarks/end_to_end.py --scale 4 --repeat 1 --sizes 1 --datatrove-sizes "" --keep DIR
    git worktree add /tmp/base REV      # the checkout to compare with
    python benchmarks/ab_prepare.py --base /tmp/base --config DIR/tokenmill.yaml --repeat 7

For a refactor that must not be slower (same output, other code). Each round runs both
checkouts (in alternating order) as fresh processes with the same Python environment
(`PYTHONPATH` picks the checkout), 2 workers. Reported: median wall and median CPU seconds of
the whole process tree (the command and its Dask workers: RUSAGE_CHILDREN), and the median of
the per-round ratios head / base, which is the steadiest number on a shared machine. It also
checks that both wrote the same shards and tokenizer.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAD = Path(__file__).resolve().parents[1]


def run(checkout: Path, config: str, out: Path, workers: int) -> tuple[float, float]:
    """(wall s, CPU s of the process tree) of one `prepare --fresh`."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    cmd = [sys.executable, "-m", "tokenmill", "prepare", config, "--out", str(out)]
    cmd += ["--fresh", "--workers", str(workers), "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{checkout}: prepare failed:\n{proc.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def digest(out: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(out.rglob("*")):
        if p.is_file() and (p.suffix in (".bin", ".idx") or p.name == "tokenizer.json"):
            h.update(str(p.relative_to(out)).encode() + p.read_bytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="the checkout to compare with")
    ap.add_argument("--head", type=Path, default=HEAD, help="default: this checkout")
    ap.add_argument("--config", required=True)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    sides = {"base": args.base.resolve(), "head": args.head.resolve()}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            order = list(sides) if i % 2 == 0 else list(reversed(sides))
            for name in order:
                times[name].append(run(sides[name], args.config, Path(tmp) / name, args.workers))
                wall, cpu = times[name][-1]
                print(f"round {i + 1} {name}: wall {wall:.1f} s, cpu {cpu:.1f} s", flush=True)
        same = digest(Path(tmp) / "base") == digest(Path(tmp) / "head")
    print(f"\nload average (1 min) {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print("| checkout | median wall s | median CPU s |\n|---|---:|---:|")
    for name in sides:
        wall = statistics.median(w for w, _ in times[name])
        cpu = statistics.median(c for _, c in times[name])
        print(f"| {name} ({sides[name]}) | {wall:.1f} | {cpu:.1f} |")
    for i, what in enumerate(("wall", "CPU")):
        ratios = [h[i] / b[i] for b, h in zip(times["base"], times["head"], strict=True)]
        print(f"head / base {what}: median of {len(ratios)} rounds {statistics.median(ratios):.3f}")
    print(f"shards and tokenizer identical: {same}")


if __name__ == "__main__":
    main()
