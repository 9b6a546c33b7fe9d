#!/usr/bin/env python3
"""Scale runs: `tokenmill prepare` on generated corpora of growing size, on a LocalCluster and
on a cluster of separate processes started as on nodes, with what grows and what does not.

    .venv/bin/python benchmarks/scale.py --sizes 100MB 1GB 4GB --work /data/scale
    .venv/bin/python benchmarks/scale.py --sizes 20MB 100MB --modes local processes --results

Per size (benchmarks/make_corpus.py writes the corpus once, with its ground truth, under
WORK/corpus_SIZE) and per mode:

- `local`: `tokenmill prepare --workers N` (its own LocalCluster);
- `processes`: `dask scheduler` and `dask worker --nworkers N --nthreads 1 --memory-limit M`
  started as separate processes (as on nodes), the run given `--scheduler`.

Recorded: wall time and MB/s of input per core; per stage, task seconds per MB, tasks and
the largest worker peak RSS while one of its tasks ran (stats.json's `peak_rss_mb`);
peak RSS of the client (the `prepare` process), of the scheduler (the client's for `local`)
and of every worker; bytes spilled to disk (the workers' local directories at their fullest);
near-dedup edges, components method and rounds; exact and near dedup against the
generator's truth (a family is a unique document and its copies: `recall` is the share of the
expected removals made, `false merges` the documents removed for a document of another family
whose real word 5-gram Jaccard with it is under the threshold (0.8; pairs at or above it are
`cross_family_similar`: two of the generator's documents that really are near duplicates;
an exact copy removed for its original's near-cluster survivor is `exact_elsewhere`, a right
removal), per near level the share of copies removed; copies whose original another rule
removed are left out of those shares, as the first survivor is rightly kept). Near dedup
runs with `verify: true`. The two modes' shards are compared by the
manifest's SHA-256s: they must be equal. Prints a table; `--results` appends it to
benchmarks/RESULTS.md, and `--json FILE` writes every number.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import make_corpus  # noqa: E402

BIN = Path(sys.executable).parent


def _rss(pid: int) -> int:
    from tokenmill.memory import status_bytes

    return status_bytes("VmRSS", pid)


def _children(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _du(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


class Monitor:
    """Samples, every `every` seconds, the RSS of named process roots and their descendants
    (peak per process, labelled by the root), and the size of `spill_dirs`."""

    def __init__(self, every: float = 0.2):
        self.every, self.roots, self.spill_dirs = every, {}, []
        self.peak: dict[tuple[str, int], int] = collections.defaultdict(int)
        self.spill_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, label: str, pid: int, descendants: bool = False) -> None:
        self.roots[label] = (pid, descendants)

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(self.every):
            for label, (pid, desc) in list(self.roots.items()):
                pids = [pid] + (_children(pid) if desc else [])
                for p in pids:
                    key = (label if p == pid else f"{label} child", p)
                    self.peak[key] = max(self.peak[key], _rss(p))
            tick += 1
            if self.spill_dirs and tick % 10 == 0:  # every 2 s: du is not free
                self.spill_peak = max(self.spill_peak, sum(_du(d) for d in self.spill_dirs))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def peaks(self, label: str) -> list[int]:
        return [v for (lab, _), v in self.peak.items() if lab == label]


def corpus(work: Path, size: int, seed: int) -> Path:
    folder = work / f"corpus_{size}"
    if not (folder / "corpus.json").exists():
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.time()
        make_corpus.main(["--out", str(folder), "--size", str(size), "--seed", str(seed)])
        print(f"corpus {folder}: {time.time() - t0:.0f} s", flush=True)
    return folder


def config(folder: Path, work: Path) -> Path:
    """make_corpus's config with absolute paths, exact and near dedup on (verified pairs)."""
    info = json.loads((folder / "corpus.json").read_text())
    cfg = info["config"]
    for s in cfg["sources"]:
        s["paths"] = [str(folder / p) for p in s["paths"]]
    cfg.setdefault("dedup", {})["minhash"] = {"enabled": True, "verify": True}
    path = work / f"config_{folder.name}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _wait_workers(scheduler_file: Path, n: int, timeout: float = 120) -> str:
    from distributed import Client

    deadline = time.time() + timeout
    while not scheduler_file.exists():
        if time.time() > deadline:
            raise RuntimeError("dask scheduler did not start")
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    with Client(address, timeout=30) as c:
        c.wait_for_workers(n, timeout=timeout)
    return address


def run_prepare(cfg: Path, out: Path, mode: str, workers: int, memory: str, work: Path) -> dict:
    """One `tokenmill prepare`, measured."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(BIN / "tokenmill"), "prepare", str(cfg), "--out", str(out), "--quiet"]
    cmd.append("--keep-removed")  # the removed ids and reasons: dedup against the truth
    procs: list[subprocess.Popen] = []
    mon = Monitor()
    local_dir = work / f"dask-{mode}"
    shutil.rmtree(local_dir, ignore_errors=True)
    local_dir.mkdir(parents=True)
    mon.spill_dirs = [local_dir]
    env = {**os.environ, "DASK_TEMPORARY_DIRECTORY": str(local_dir)}
    try:
        if mode == "processes":
            sf = local_dir / "scheduler.json"
            sched = subprocess.Popen(
                [str(BIN / "dask"), "scheduler", "--port", "0", "--no-dashboard",
                 "--scheduler-file", str(sf)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            procs.append(sched)
            wk = subprocess.Popen(
                [str(BIN / "dask"), "worker", "--scheduler-file", str(sf),
                 "--nworkers", str(workers), "--nthreads", "1", "--memory-limit", memory,
                 "--local-directory", str(local_dir), "--no-dashboard"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            procs.append(wk)
            address = _wait_workers(sf, workers)
            cmd += ["--scheduler", address]
            mon.watch("scheduler", sched.pid)
            mon.watch("workers", wk.pid, descendants=True)
        else:
            cmd += ["--workers", str(workers)]
        with mon:
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            mon.watch("client", p.pid, descendants=mode == "local")
            output = p.communicate()[0].decode(errors="replace")
            wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"prepare failed ({p.returncode}):\n{output[-3000:]}")
    finally:
        for q in reversed(procs):
            try:
                os.killpg(q.pid, signal.SIGTERM)
                q.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(q.pid, signal.SIGKILL)
    stats = json.loads((out / "stats.json").read_text())
    if mode == "local":  # the LocalCluster's workers are the client's children
        worker_peaks, scheduler_peak = mon.peaks("client child"), None
    else:
        # `dask worker --nworkers N` is a parent process; its children are the nannies'
        # workers (the largest N descendants are the worker processes)
        worker_peaks = sorted(mon.peaks("workers child"), reverse=True)[:workers]
        scheduler_peak = max(mon.peaks("scheduler"), default=0)
    return {
        "wall_s": wall,
        "stats": stats,
        "client_peak": max(mon.peaks("client"), default=0),
        "scheduler_peak": scheduler_peak,
        "worker_peaks": sorted(worker_peaks, reverse=True)[:workers],
        "spill_peak": mon.spill_peak,
    }


def _texts(folder: Path, wanted: dict[tuple[str, str], set[int]]) -> dict:
    """{(source, file, record): text} for the records asked for, one file streamed at a time."""
    out = {}
    for (source, file), records in wanted.items():
        path = folder / source / file
        raw = open(path, "rb")
        stream = (gzip.GzipFile(fileobj=raw) if path.suffix == ".gz"
                  else zstandard.ZstdDecompressor().stream_reader(raw))  # fmt: skip
        with raw, stream, io.TextIOWrapper(stream, encoding="utf-8") as lines:
            last = max(records)
            for i, line in enumerate(lines):
                if i in records:
                    rec = json.loads(line)
                    out[(source, file, i)] = rec.get("text", rec.get("content"))
                if i >= last:
                    break
    return out


def _lang(source: str, file: str) -> str:
    return "en" if source == "c4" else os.path.basename(os.path.dirname(file)).split("_meta")[0]


def dedup_truth(folder: Path, out: Path, threshold: float = 0.8) -> dict:
    """Exact and near dedup of the run against the generator's truth (see the docstring)."""
    import pyarrow.parquet as pq

    dedup, reason, removed_other = {}, {}, set()
    for p in (out / "removed").rglob("*.parquet"):
        t = pq.read_table(p, columns=["id", "reason", "kept_id"] if ".dedup." in p.name else
                          ["id", "reason"]).to_pylist()  # fmt: skip
        for r in t:
            if r["reason"].startswith("dedup:"):
                dedup[r["id"]] = r.get("kept_id")
                reason[r["id"]] = r["reason"]
            else:
                removed_other.add(r["id"])
    with gzip.open(folder / "truth.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    # tokenmill's ids are relative to the folder the source's glob starts in (c4/en/ for
    # c4/en/*.json.gz, oscar/ for oscar/*_meta/...): strip each source's common folder
    dirs = collections.defaultdict(set)
    for r in rows:
        dirs[r["source"]].add(os.path.dirname(r["file"]))
    common = {s: os.path.commonpath(sorted(d)) for s, d in dirs.items()}

    def key(source: str, file: str, record: int) -> str:
        rel = os.path.relpath(file, common[source]) if common[source] else file
        return f"{source}/{rel}/{record}"

    family, kind, level, where = {}, {}, {}, {}
    for r in rows:
        doc = key(r["source"], r["file"], r["record"])
        kind[doc] = r["kind"]
        where[doc] = (r["source"], r["file"], r["record"])
        family[doc] = key(*r["of"]) if "of" in r else doc
        if r["kind"] == "near":
            level[doc] = r["target"]
    unknown = [d for d in list(dedup) + list(removed_other) if d not in kind]
    if unknown:
        raise RuntimeError(f"{len(unknown)} removed ids not in the truth, e.g. {unknown[:3]}")
    # removals kept for a document of another family: judged on the pair's real similarity
    cross = {d: k for d, k in dedup.items() if k is not None and family.get(k) != family[d]}
    exact_elsewhere = {d for d in cross if reason[d] == "dedup:exact" and kind[d] == "exact"}
    near_cross = {d: k for d, k in cross.items() if d not in exact_elsewhere}
    wanted = collections.defaultdict(set)
    for d, k in near_cross.items():
        for x in (d, k):
            wanted[where[x][:2]].add(where[x][2])
    text = _texts(folder, wanted)
    similar = sum(
        1 for d, k in near_cross.items()
        if make_corpus.jaccard5(text[where[d]], text[where[k]], _lang(*where[d][:2])) >= threshold
    )  # fmt: skip
    false = len(near_cross) - similar
    # per family, the members that should merge: its original, exact copies, near copies at
    # or above the threshold, all surviving the quality rules
    members = collections.defaultdict(list)
    for doc, fam in family.items():
        if doc in removed_other or kind[doc] == "junk":
            continue
        if kind[doc] == "near" and level[doc] < threshold:
            continue
        members[fam].append(doc)
    expected = sum(len(m) - 1 for m in members.values())
    should = {d for m in members.values() for d in m}
    same = sum(
        1 for d, k in dedup.items()
        if d in should and k is not None and (family.get(k) == family[d] or d in exact_elsewhere)
    )  # fmt: skip
    by_level = collections.defaultdict(lambda: [0, 0])
    for doc, lv in level.items():
        if doc in removed_other or family[doc] in removed_other:  # original gone: a survivor
            continue
        by_level[lv][1] += 1
        by_level[lv][0] += doc in dedup
    # an exact copy whose original another rule removed is the first survivor: kept rightly
    survivor = {d for d, k in kind.items() if k == "exact" and family[d] in removed_other}
    counted = {d for d, k in kind.items() if k == "exact" and d not in removed_other} - survivor
    return {
        "expected_removals": expected,
        "recall": same / expected if expected else None,
        "false_merges": false,
        "cross_family_similar": similar,
        "exact_elsewhere": len(exact_elsewhere),
        "exact_survivors": len(survivor - removed_other),
        "exact_removed": sum(d in dedup for d in counted) / len(counted) if counted else None,
        "near_removed": {str(k): v[0] / v[1] for k, v in sorted(by_level.items()) if v[1]},
    }


def summarize(size: int, mode: str, r: dict, cores: int, truth: dict) -> dict:
    s = r["stats"]
    mb = s["totals"]["bytes_in"] / 1e6
    st = s["stages"]
    near = st.get("near", {})
    sched = r["scheduler_peak"]
    return {
        "size": size,
        "mode": mode,
        "mb_in": round(mb, 1),
        "wall_s": round(r["wall_s"], 1),
        "mb_s_per_core": round(mb / r["wall_s"] / cores, 3),
        "task_s_per_mb": {k: round(v["task_s"] / mb, 4) for k, v in st.items() if "task_s" in v},
        "tasks": {k: v.get("tasks") for k, v in st.items()},
        "stage_peak_mb": {k: v["peak_rss_mb"] for k, v in st.items() if "peak_rss_mb" in v},
        "client_peak_mb": round(r["client_peak"] / 1e6),
        "scheduler_peak_mb": None if sched is None else round(sched / 1e6),
        "worker_peak_mb": [round(w / 1e6) for w in r["worker_peaks"]],
        "spill_mb": round(r["spill_peak"] / 1e6, 1),
        "edges": near.get("edges"),
        "components": (near.get("components_method"), near.get("components_rounds")),
        "documents_in": s["totals"]["documents_in"],
        "tokens": s["totals"].get("tokens"),
        "dedup": truth,
    }  # fmt: skip


def shard_digest(out: Path) -> str:
    import hashlib

    m = json.loads((out / "manifest.json").read_text())
    keys = [(s["prefix"], s.get("files")) for s in m["shards"]]
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def table(rows: list[dict]) -> str:
    head = (
        "| size | mode | MB in | wall s | MB/s per core | client MB | scheduler MB | "
        "largest worker MB | spill MB | edges | components | recall | false merges | "
        "cross-family similar | near removed by level |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        d = r["dedup"]
        lines.append(
            f"| {make_corpus_size(r['size'])} | {r['mode']} | {r['mb_in']:,} | {r['wall_s']:,} | "
            f"{r['mb_s_per_core']} | {r['client_peak_mb']} | "
            f"{r['scheduler_peak_mb'] or '(in client)'} | "
            f"{max(r['worker_peak_mb'], default=0)} | {r['spill_mb']} | {r['edges']} | "
            f"{r['components'][0]}, {r['components'][1]} rounds | "
            f"{d['recall']:.4f} | {d['false_merges']} | {d['cross_family_similar']} | "
            + ", ".join(f"{k}: {v:.3f}" for k, v in d["near_removed"].items())
            + " |"
        )  # fmt: skip
    lines += _stage_table(rows, "task_s_per_mb", "Task seconds per MB of input, per stage:")
    lines += _stage_table(
        rows, "stage_peak_mb", "Largest worker peak RSS (MB) while a task of the stage ran:"
    )
    return "\n".join(lines)


def _stage_table(rows: list[dict], field: str, title: str) -> list[str]:
    """A table of each row's per-stage figures `field` (none where no row has them)."""
    stages = sorted({k for r in rows for k in r.get(field, {})})
    if not stages:
        return []
    lines = ["", title, "", "| size | mode | " + " | ".join(stages) + " |"]
    lines.append("|---|---|" + "---|" * len(stages))
    for r in rows:
        cells = (f"{r[field][s]:,}" if s in r.get(field, {}) else "" for s in stages)
        lines.append(f"| {make_corpus_size(r['size'])} | {r['mode']} | " + " | ".join(cells) + " |")
    return lines


def make_corpus_size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} B"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=make_corpus.parse_size, default=[10**8])
    ap.add_argument(
        "--modes", nargs="+", choices=["local", "processes"], default=["local", "processes"]
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="2GB", help="per worker (processes mode)")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "scale")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", action="store_true", help="append to benchmarks/RESULTS.md")
    ap.add_argument("--json", type=Path, help="write every number here")
    args = ap.parse_args()  # fmt: skip
    args.work.mkdir(parents=True, exist_ok=True)
    rows, digests = [], {}
    t_all = time.time()
    for size in args.sizes:
        folder = corpus(args.work, size, args.seed)
        cfg = config(folder, args.work)
        for mode in args.modes:
            out = args.work / f"out_{size}_{mode}"
            r = run_prepare(cfg, out, mode, args.workers, args.memory_limit, args.work)
            truth = dedup_truth(folder, out)
            row = summarize(size, mode, r, args.workers, truth)
            digests[(size, mode)] = shard_digest(out)
            row["shards"] = digests[(size, mode)]
            rows.append(row)
            print(json.dumps(row), flush=True)
        same = {digests[(size, m)] for m in args.modes}
        if len(same) != 1:
            raise SystemExit(f"{size}: the modes wrote different shards: {same}")
    text = table(rows)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if args.results:
        cmd = "python benchmarks/scale.py " + " ".join(sys.argv[1:])
        with open(ROOT / "benchmarks" / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write(
                f"\n## Scale runs ({time.strftime('%Y-%m-%d')})\n\nCommand: `{cmd}` "
                f"({args.workers} workers, 1 thread each; processes mode: `dask scheduler` + "
                f"`dask worker --nworkers {args.workers} --nthreads 1 --memory-limit "
                f"{args.memory_limit}`; {time.time() - t_all:.0f} s in all). Shards equal "
                f"across modes: yes.\n\n{text}\n"
            )


if __name__ == "__main__":
    main()
