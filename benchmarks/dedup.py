"""Near-duplicate dedup benchmark (issue 5), in one run, on the bundled sample's real text.

    python benchmarks/dedup.py [--repeat 5] [--scales 1,4] [--write benchmarks/RESULTS.md]

1. Signature throughput, one process on one core, on the same documents (every readable
   document of tokenmill/data: c4, pile, oscar2301), 128 permutations, word 5-gram shingles:
   - tokenmill: `tokenmill.filters.minhash.signatures(texts, langs)` (the whole batch at once;
     the language is the file's: c4/pile `en`, oscar `xx_meta` -> `xx`).
   - datasketch: `datasketch.MinHash(num_perm=128)` and `update_batch` of the same shingles
     (NFC + casefold, split on non-word characters, characters as words for zh/ja, 5-grams
     joined by spaces and UTF-8 encoded); the time includes building the shingles in Python,
     as a datasketch user has to.
   - datatrove: its whole `MinhashDedupSignature` step (`MinhashConfig(n_grams=5,
     num_buckets=16, hashes_per_bucket=8)` = 128 hashes; default English word tokenizer and
     64-bit xxhash) run over `Document`s, writing and sorting its signature files in a temporary
     folder: what datatrove's stage 1 costs per document.
   Median of `--repeat` timed runs each, after a warm-up on 100 documents (datatrove's spaCy
   tokenizer caches its vocabulary, so its first full run is slower; the median leaves it out).
   CPU seconds / wall seconds is reported to show each ran on one core.

2. Peak memory of the dedup stages at 1x and 4x the input: the sample written again, in its real
   layouts, under a temporary folder, `scale` times: copy 0 is the original files, copy k >= 1
   is every file again under the next real name (c4-train.0000{2k+i}, pile/{2k+i}, oscar
   xx_meta_part_{k+1}) with 1% of the words of even documents changed (near duplicates,
   Jaccard ~0.9) and 50% of the words of odd documents changed (distinct documents).
   `prepare` runs on the sample config pointed at that folder, on a LocalCluster of 2
   single-threaded worker processes started here (passed as `scheduler=`), and is stopped when
   the tokenizer stage starts (`--full-prepare` runs it to the end). At every stage boundary
   the Linux peak-RSS counter (VmHWM) of each worker process is reset (/proc/PID/clear_refs)
   and read back when the stage ends, so each stage's number is the exact peak RSS of the
   biggest worker during that stage (a 20 ms psutil sampler is used instead where the reset is
   not allowed). Stages: process (read, langid, quality, hashes and the MinHash signatures and
   LSH band records), dedup (exact), near (LSH band buckets -> candidate edges), components
   (connected components on Dask; also the peak of this process, which holds the scheduler
   and client). Also: the bytes allocated by one `near_bucket` task on the run's real band
   files (tracemalloc peak, which counts numpy buffers; no interpreter baseline), per band
   record, and the clusters found.
"""

# ruff: noqa: E402
from __future__ import annotations

import os
import sys

# `python benchmarks/dedup.py` puts benchmarks/ first on sys.path, where a sibling module may
# shadow the standard library (a benchmarks/tokenize.py breaks pandas); import nothing from it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import contextlib
import glob
import gzip
import json
import platform
import re
import shutil
import statistics
import tempfile
import threading
import time
import tracemalloc
import unicodedata
from pathlib import Path

import numpy as np

from tokenmill.config import DATA_DIR, load_config
from tokenmill.filters.quality import NO_SPACE_LANGS
from tokenmill.pipelines.readers import Doc, open_binary, read_records

SOURCES = [
    ("c4", "c4/en/*.json.gz"),
    ("pile", "pile/train/*.jsonl.zst"),
    ("oscar2301", "oscar/*_meta/*.jsonl.zst"),
]
TEXT_KEY = {"c4": "text", "pile": "text", "oscar2301": "content"}
NUM_PERM, NGRAM, SEED = 128, 5, 1


def file_lang(fmt: str, path: str) -> str:
    return Path(path).parent.name.split("_")[0] if fmt == "oscar2301" else "en"


def sample_docs() -> tuple[list[str], list[str]]:
    texts, langs = [], []
    for fmt, pat in SOURCES:
        for f in sorted(glob.glob(str(DATA_DIR / pat))):
            for _, d in read_records(f, fmt):
                if isinstance(d, Doc):
                    texts.append(d.text)
                    langs.append(file_lang(fmt, f))
    return texts, langs


# ---- 1. signature throughput ----------------------------------------------------------------


def timed(fn, repeat: int) -> dict:
    walls, cpus = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {
        "median": statistics.median(walls),
        "runs": walls,
        "cpu_per_wall": sum(cpus) / sum(walls),
    }


_WORD = re.compile(r"[^\w]+")


def py_shingles(text: str, lang: str) -> list[bytes]:
    """The same word 5-grams as tokenmill's (NFC, casefold, split on non-word characters,
    characters as words for zh/ja/...), built in Python."""
    t = unicodedata.normalize("NFC", text).casefold()
    words = (
        [c for c in t if c.isalnum()]
        if lang in NO_SPACE_LANGS
        else [w for w in _WORD.split(t) if w]
    )
    if len(words) < NGRAM:
        return [w.encode() for w in words] or [t.encode()]
    return [" ".join(words[i : i + NGRAM]).encode() for i in range(len(words) - NGRAM + 1)]


def bench_signatures(texts, langs, repeat) -> list[tuple]:
    import pyarrow as pa

    pa.set_cpu_count(1)  # one core: no Arrow thread pool
    from datasketch import MinHash

    from tokenmill.filters.minhash import signatures

    def ours(t=texts, g=langs):
        signatures(t, g, NUM_PERM, NGRAM, SEED)

    def datasketch_run(t=texts, g=langs):
        for text, lang in zip(t, g, strict=True):
            m = MinHash(num_perm=NUM_PERM, seed=SEED)
            m.update_batch(py_shingles(text, lang))

    import xxhash
    from datatrove.data import Document
    from datatrove.io import get_datafolder
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    tmp = tempfile.mkdtemp(prefix="dedup-bench-dt-")
    dt_cfg = MinhashConfig(n_grams=NGRAM, num_buckets=16, hashes_per_bucket=8, seed=SEED)
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    runs = iter(range(10**6))

    # one step (one tokenizer) for all runs, as one datatrove task processes a whole shard
    step = MinhashDedupSignature(tmp, config=dt_cfg)
    # datatrove 0.10 passes str to xxhash, which xxhash >= 4 (tokenmill's) refuses; the same
    # 64-bit xxh64 of the UTF-8 bytes, as xxhash 3 computed it:
    step._hash_func = lambda s: xxhash.xxh64_intdigest(s.encode("utf-8"))

    def datatrove_run(d=docs):
        step.output_folder = get_datafolder(f"{tmp}/{next(runs)}")
        step.run(iter(d))

    from datatrove.utils.logging import logger

    logger.remove()  # its per-run INFO lines
    for fn in (ours, datasketch_run, datatrove_run):
        fn(texts[:100], langs[:100]) if fn is not datatrove_run else fn(docs[:100])
    res = {
        "tokenmill signatures": timed(ours, repeat),
        "datasketch MinHash.update_batch": timed(datasketch_run, repeat),
        "datatrove MinhashDedupSignature": timed(datatrove_run, repeat),
    }
    shutil.rmtree(tmp, ignore_errors=True)
    return res


# ---- 2. peak memory of the dedup stages ---------------------------------------------------


def _copy_name(fmt: str, path: str, k: int, i: int, n_files: int) -> str:
    p = Path(path)
    if fmt == "c4":  # c4-train.00000-of-01024.json.gz
        return str(p.with_name(f"c4-train.{k * n_files + i:05d}-of-01024.json.gz"))
    if fmt == "pile":  # 00.jsonl.zst
        return str(p.with_name(f"{k * n_files + i:02d}.jsonl.zst"))
    lang = p.parent.name.removesuffix("_meta")  # xx_meta_part_1.jsonl.zst
    return str(p.with_name(f"{lang}_meta_part_{k + 1}.jsonl.zst"))


def _perturb(text: str, rate: float, rng: np.random.Generator, chars: bool) -> str:
    """`rate` of the words (characters for zh/ja) replaced by other words of the same text."""
    if chars:
        parts = list(text)
        idx = [j for j, c in enumerate(parts) if c.isalnum()]
    else:
        parts = re.split(r"(\s+)", text)
        idx = [j for j in range(0, len(parts), 2) if parts[j]]
    if len(idx) < 2:
        return text + " x"
    pool = [parts[j] for j in idx]
    for j in rng.choice(idx, size=max(1, int(round(rate * len(idx)))), replace=False):
        parts[j] = pool[int(rng.integers(len(pool)))]
    return "".join(parts)


def _write(path: str, lines: list[bytes]) -> None:
    data = b"".join(lines)
    if path.endswith(".gz"):
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(data)
    else:
        import zstandard

        with open(path, "wb") as f:
            f.write(zstandard.ZstdCompressor(level=1).compress(data))


def build_input(root: Path, scale: int) -> None:
    """The sample's files `scale` times under `root`, real layouts, perturbed copies."""
    shutil.copy(DATA_DIR / "sample.yaml", root / "sample.yaml")
    for fmt, pat in SOURCES:
        files = sorted(glob.glob(str(DATA_DIR / pat)))
        per_dir: dict[str, int] = {}
        for f in files:
            d = str(Path(f).parent)
            i = per_dir[d] = per_dir.get(d, -1) + 1
            n_files = sum(1 for g in files if str(Path(g).parent) == d)
            rel = os.path.relpath(f, DATA_DIR)
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dest)
            if scale == 1:
                continue
            with open_binary(f) as s:
                raw = [ln for ln in s.read().split(b"\n") if ln.strip()]
            chars = file_lang(fmt, f) in NO_SPACE_LANGS
            for k in range(1, scale):
                rng = np.random.default_rng([k, len(rel), i, scale])
                out = []
                for n, ln in enumerate(raw):
                    try:
                        rec = json.loads(ln)
                        key = TEXT_KEY[fmt]
                        if isinstance(rec.get(key), str) and rec[key].strip():
                            rate = 0.01 if n % 2 == 0 else 0.5
                            rec[key] = _perturb(rec[key], rate, rng, chars)
                        ln = json.dumps(rec, ensure_ascii=False).encode()
                    except ValueError:
                        pass  # an invalid record stays invalid, as in the original
                    out.append(ln + b"\n")
                _write(str(root / _copy_name(fmt, rel, k, i, n_files)), out)


class PeakRSS:
    """Per-stage peak RSS (bytes) of the worker processes and of this process."""

    def __init__(self, pids: list[int]):
        import psutil

        self.procs = {p: psutil.Process(p) for p in pids}
        self.me = os.getpid()
        self.exact = all(self._reset(p) for p in [*pids, self.me])
        self.stage, self.peaks = None, {}
        self._stop = threading.Event()
        self._sampled: dict[int, int] = {}
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _reset(pid) -> bool:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    @staticmethod
    def _hwm(pid) -> int:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")

    def _sample(self):
        import psutil

        while not self._stop.wait(0.02):
            for pid, p in [*self.procs.items(), (self.me, psutil.Process(self.me))]:
                with contextlib.suppress(psutil.Error):
                    self._sampled[pid] = max(self._sampled.get(pid, 0), p.memory_info().rss)

    def current(self) -> int:
        return max(p.memory_info().rss for p in self.procs.values())

    def begin(self, stage: str) -> None:
        self.end()
        self.stage = stage
        self._sampled = {}
        for pid in [*self.procs, self.me]:
            self._reset(pid)

    def end(self) -> None:
        if self.stage is None:
            return
        get = self._hwm if self.exact else (lambda pid: self._sampled.get(pid, 0))
        self.peaks[self.stage] = {
            "workers_max": max(get(p) for p in self.procs),
            "workers_sum": sum(get(p) for p in self.procs),
            "client": get(self.me),
        }
        self.stage = None

    def close(self):
        self.end()
        self._stop.set()


class _StopAfterDedup(Exception):
    pass


def bench_memory(scale: int, workers: int, full: bool) -> dict:
    from tokenmill.pipelines import engine as eng
    from tokenmill.pipelines.engine import dask_client, read_json
    from tokenmill.pipelines.prepare import prepare
    from tokenmill.pipelines.stages import near_bucket

    root = Path(tempfile.mkdtemp(prefix=f"dedup-bench-{scale}x-"))
    try:
        build_input(root, scale)
        cfg = load_config(root / "sample.yaml")
        out = root / "out"
        with dask_client(workers) as client:
            pids = sorted(client.run(os.getpid).values())
            meter = PeakRSS(pids)
            idle = meter.current()
            orig = eng.Engine.run_stage

            def run_stage(self, name, tasks, unit="docs"):
                if name == "tokenizer":
                    meter.end()
                    if not full:
                        raise _StopAfterDedup
                meter.begin(name)
                res = orig(self, name, tasks, unit)
                if name == "near":  # connected components run next, outside run_stage
                    meter.begin("components")
                return res

            eng.Engine.run_stage = run_stage
            t0 = time.perf_counter()
            try:
                prepare(cfg, out, scheduler=client.scheduler.address, quiet=True)
            except _StopAfterDedup:
                pass
            finally:
                eng.Engine.run_stage = orig
                meter.close()
            wall = time.perf_counter() - t0

        work = out / "work"
        procs = [read_json(p) for p in sorted(glob.glob(str(work / "docs/*/*.json")))]
        buckets = int(read_json(work / "buckets.json")["value"])
        comp = read_json(work / "dedup/near/components.json")
        near = [read_json(p) for p in sorted(glob.glob(str(work / "dedup/near/e*.json")))]
        # bytes one near_bucket task allocates on these real band files
        task_peak, task_keys = 0, 0
        for b in range(buckets):
            specs = [
                (
                    p.removesuffix(".json") + ".bands.npy",
                    c["band_offsets"][b],
                    c["band_offsets"][b + 1],
                )
                for p, c in zip(sorted(glob.glob(str(work / "docs/*/*.json"))), procs, strict=True)
            ]
            tracemalloc.start()
            r = near_bucket(b, specs, str(root / "probe.npy"))
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            if peak > task_peak:
                task_peak, task_keys = peak, r["band_keys"]
        sizes = comp["cluster_sizes"]
        return {
            "scale": scale,
            "documents_in": sum(c["documents_in"] for c in procs),
            "mb_in": sum(c["bytes_in"] for c in procs) / 1e6,
            "documents_kept": sum(c["documents_kept"] for c in procs),
            "buckets": buckets,
            "band_keys": sum(c["band_keys"] for c in near),
            "edges": sum(c["edges"] for c in near),
            "clusters": sum(sizes.values()),
            "near_removed": sum((int(k) - 1) * v for k, v in sizes.items()),
            "rounds": len(comp["rounds"]),
            "idle_worker_rss": idle,
            "peaks": meter.peaks,
            "exact_hwm": meter.exact,
            "near_task_alloc": task_peak,
            "near_task_keys": task_keys,
            "wall_s": wall,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def memory_in_subprocess(scale: int, workers: int, full: bool) -> dict:
    """bench_memory in a fresh interpreter, so this process's own peak (client + scheduler)
    does not carry what part 1 loaded."""
    import subprocess

    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--memory-child",
                str(scale),
                "--workers",
                str(workers),
                "--child-out",
                f.name,
            ]
            + (["--full-prepare"] if full else []),
            check=True,
        )
        return json.loads(Path(f.name).read_text())


# ---- report ---------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--scales", default="1,4", help="input replication factors for part 2")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--full-prepare",
        action="store_true",
        help="run prepare to the end instead of stopping after the dedup stages",
    )
    ap.add_argument("--skip-signatures", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--write", type=Path, default=None, help="append a section to this file")
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child is not None:
        res = bench_memory(args.memory_child, args.workers, args.full_prepare)
        Path(args.child_out).write_text(json.dumps(res))
        return
    cmd = "python benchmarks/dedup.py " + " ".join(sys.argv[1:])
    t_all = time.perf_counter()

    texts, langs = sample_docs()
    n, mb = len(texts), sum(len(t.encode()) for t in texts) / 1e6
    lines = [
        f"## dedup.py: MinHash signatures and dedup memory ({time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()}, {os.cpu_count()} cores shared, Python {sys.version.split()[0]})",
        "",
        f"Command: `{cmd.strip()}`",
        "",
    ]
    if not args.skip_signatures:
        res = bench_signatures(texts, langs, args.repeat)
        dt = res["datatrove MinhashDedupSignature"]["median"]
        ds = res["datasketch MinHash.update_batch"]["median"]
        lines += [
            f"Signatures, 1 process: {n:,} documents, {mb:.2f} MB (every document of the bundled"
            f" sample: c4, pile, oscar 11 languages), {NUM_PERM} permutations, word {NGRAM}-grams;"
            f" median of {args.repeat} runs (all runs in s in the last column).",
            "",
            "| implementation | docs/s | MB/s | tokenmill is | CPU s / wall s | runs (s) |",
            "|---|---:|---:|---:|---:|---|",
        ]
        tm = res["tokenmill signatures"]["median"]
        for name, r in res.items():
            m = r["median"]
            ratio = "-" if m == tm else f"{m / tm:.1f}x faster"
            lines.append(
                f"| {name} | {n / m:,.0f} | {mb / m:.2f} | {ratio} | "
                f"{r['cpu_per_wall']:.2f} | {', '.join(f'{x:.2f}' for x in r['runs'])} |"
            )
        lines += [
            "",
            f"tokenmill / datatrove = {dt / tm:.1f}x per core (aim: >= 2x); tokenmill / "
            f"datasketch = {ds / tm:.1f}x. datatrove: the whole stage-1 step "
            "(`MinhashDedupSignature(folder, MinhashConfig(n_grams=5, num_buckets=16, "
            "hashes_per_bucket=8)).run(docs)`: spaCy English word tokenizer, xxh64, writes and "
            "sorts its 16 bucket files); its first run fills spaCy's vocabulary cache and is "
            "slower. datasketch: shingles built in Python + `MinHash(128).update_batch` (SHA-1).",
            "",
        ]
    if not args.skip_memory:
        mem = [
            memory_in_subprocess(int(s), args.workers, args.full_prepare)
            for s in args.scales.split(",")
        ]
        base = mem[0]
        how = (
            "exact per-stage peak (VmHWM reset at each stage start)"
            if base["exact_hwm"]
            else "psutil RSS sampled every 20 ms"
        )
        lines += [
            f"Peak memory of the dedup stages, `prepare` on the sample replicated "
            f"{'x/'.join(args.scales.split(','))}x in its "
            f"real layouts (copies: 1% of words changed in even documents = near duplicates, "
            f"50% in odd ones = distinct), {args.workers} worker processes; RSS in MB, "
            f"{how}, of the biggest worker (sum over workers in brackets). "
            f"`prepare` stopped when the tokenizer stage starts.",
            "",
            "| input | docs in | MB in | idle worker | process (signatures + bands) | "
            "dedup (exact) | near (LSH buckets) | components (workers) | components "
            "(client+scheduler) | near_bucket task allocs | LSH buckets | clusters | "
            "near dups removed | CC rounds |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        MB = 1e6
        for r in mem:
            p = r["peaks"]

            def cell(stage, p=p):
                s = p.get(stage)
                return (
                    "-"
                    if s is None
                    else f"{s['workers_max'] / MB:.0f} ({s['workers_sum'] / MB:.0f})"
                )

            comp = p.get("components", {})
            lines.append(
                f"| {r['scale']}x | {r['documents_in']:,} | {r['mb_in']:.1f} | "
                f"{r['idle_worker_rss'] / MB:.0f} | {cell('process')} | {cell('dedup')} | "
                f"{cell('near')} | {cell('components')} | "
                f"{comp.get('client', 0) / MB:.0f} | {r['near_task_alloc'] / MB:.2f} "
                f"({r['near_task_keys']:,} band keys) | {r['buckets']} | {r['clusters']:,} | "
                f"{r['near_removed']:,} | {r['rounds']} |"
            )
        if len(mem) > 1:
            last = mem[-1]

            def growth(stage):
                a, b = base["peaks"].get(stage), last["peaks"].get(stage)
                return f"{b['workers_max'] / a['workers_max']:.2f}x" if a and b else "-"

            per_key = last["near_task_alloc"] / max(last["near_task_keys"], 1)
            keys_per_doc = last["near_task_keys"] / max(last["documents_kept"], 1)
            lines += [
                "",
                f"{last['scale']}x / {base['scale']}x input: documents "
                f"{last['documents_in'] / base['documents_in']:.2f}x; peak worker RSS: process "
                f"{growth('process')}, near {growth('near')}, components "
                f"{growth('components')}; one near_bucket task's own allocations "
                f"{last['near_task_alloc'] / max(base['near_task_alloc'], 1):.2f}x "
                f"({per_key:.0f} bytes per band key). Worker RSS is dominated by the "
                "interpreter and libraries at this size; a near_bucket task holds all band keys "
                f"of its bucket, and buckets = ceil(records / 1M), so at 1M documents per bucket "
                f"and {keys_per_doc:.1f} band keys per document one task "
                f"would allocate about "
                f"{per_key * 1e6 * keys_per_doc / 1e9:.1f}"
                " GB.",
                "Wall (s, incl. writing the input and cluster start-up): "
                + ", ".join(f"{r['scale']}x {r['wall_s']:.0f}" for r in mem)
                + ".",
            ]
        lines.append("")
    lines.append(
        f"Benchmark wall time: {time.perf_counter() - t_all:.0f} s. The 2 cores are "
        "shared with other jobs: run-to-run spread is in the runs column."
    )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        new = not args.write.exists()
        with open(args.write, "a") as f:
            f.write(("# Benchmark results\n" if new else "") + "\n" + text)


if __name__ == "__main__":
    main()
