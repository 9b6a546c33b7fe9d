"""Stage `near`: near dedup, LSH band buckets -> candidate edges -> connected components.

Plans one task per near bucket from the `process` counts (each partition's slice of the
bucket in its bands file); each task writes the candidate edges of its bucket
(`WorkDir.edges`). Then, once per OUT (`WorkDir.components` marks it done): with
`dedup.minhash.verify`, stage `verify` keeps the edges whose documents' true Jaccard reaches
the threshold (three steps: `verify.ends`, `verify.shingles`, `verify`); the connected
components of the edges, in this process for a small graph or on the cluster, give the
documents to remove. Collects their files (`Run.near_files`, one per
partition) and the cluster sizes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow.parquet as pq

from tokenmill.filters.against import near_part
from tokenmill.filters.minhash import BAND_DTYPE, near_edges, shingle_hashes
from tokenmill.fsio import atomic_path, read_json, write_json
from tokenmill.pipelines.engine import StageResult, Task
from tokenmill.pipelines.stages.base import Counts, Run, Stage, summary
from tokenmill.pipelines.stages.dedup import bucket_tasks, save_index_part
from tokenmill.pipelines.workdir import shingle_base


@dataclass
class NearCounts(Counts):
    bucket: int
    band_keys: int
    edges: int
    wall_s: float = 0.0


@dataclass
class VerifyEndsCounts(Counts):
    TOTALS: ClassVar[dict[str, str]] = {"ends": "ends"}

    edges: int
    ends: int
    wall_s: float = 0.0


@dataclass
class ShinglesCounts(Counts):
    TOTALS: ClassVar[dict[str, str]] = {"documents": "documents", "shingles": "shingles"}

    partition: int
    documents: int
    shingles: int
    wall_s: float = 0.0


@dataclass
class VerifyCounts(Counts):
    candidates: int
    edges: int
    rejected: int
    wall_s: float = 0.0


def near_bucket(
    bucket: int, band_files: list[tuple[str, int, int]], out_path: str, index: str | None = None
) -> dict:
    """One bucket of the LSH shuffle: documents sharing a band key become edges to the
    smallest document of their band bucket; with `index`, the bucket's distinct band keys
    are written there (OUT/dedup, tokenmill.filters.against)."""
    parts = [np.array(np.load(p, mmap_mode="r")[lo:hi]) for p, lo, hi in band_files if hi > lo]
    records = np.concatenate(parts) if parts else np.empty(0, BAND_DTYPE)
    edges = near_edges(records)
    save_index_part(index, near_part(records))
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        np.save(f, edges)
    return NearCounts(bucket, int(len(records)), int(len(edges))).to_json()


def edge_ends(edge_path: str, out_path: str) -> dict:
    """Verify, step 1 (`verify.ends`), per edge file: its distinct endpoints, sorted (so each
    partition's are one slice: keys are ordinal << 32 | row)."""
    edges = np.load(edge_path)
    ends = np.unique(np.concatenate([edges["u"], edges["v"]])) if len(edges) else edges["u"]
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        np.save(f, ends.astype(np.int64))
    return VerifyEndsCounts(int(len(edges)), int(len(ends))).to_json()


def partition_shingles(
    ordinal: int, docs_path: str, ends_list: str, ngram: int, out_base: str
) -> dict:
    """Verify, step 2 (`verify.shingles`), per partition: the shingle hashes of its documents
    that any edge names, each document hashed once whatever the number of edge files naming
    it. Reads its slice of each ends file listed in the JSON file `ends_list` (memory-mapped:
    a binary search) and only the row groups holding those rows, one at a time, writing as it
    goes: OUT_BASE.sh (each document's distinct shingle hashes, sorted, uint64, one after
    another), OUT_BASE.rows.npy (the rows, ascending) and OUT_BASE.offs.npy (where each one's
    hashes start, and the end)."""
    lo, hi = ordinal << 32, (ordinal + 1) << 32
    wanted = []
    for f in read_json(ends_list):
        ends = np.load(f, mmap_mode="r")
        a, b = np.searchsorted(ends, [lo, hi])
        if b > a:
            wanted.append(np.asarray(ends[a:b]) & 0xFFFFFFFF)
    rows = np.unique(np.concatenate(wanted)).astype(np.int64) if wanted else np.empty(0, np.int64)
    offs = [0]
    with atomic_path(out_base + ".sh") as tmp, open(tmp, "wb") as out:
        if len(rows):
            docs = pq.ParquetFile(docs_path)
            sizes = [docs.metadata.row_group(i).num_rows for i in range(docs.num_row_groups)]
            starts = np.concatenate([[0], np.cumsum(sizes)])
            group_of = np.searchsorted(starts, rows, side="right") - 1
            for g in np.unique(group_of).tolist():
                sel = rows[group_of == g]
                table = docs.read_row_group(g, columns=["text", "lang"]).take(sel - starts[g])
                texts, langs = table.column("text").to_pylist(), table.column("lang").to_pylist()
                for grams in shingle_arrays(texts, langs, ngram):
                    out.write(grams.astype(np.uint64).tobytes())
                    offs.append(offs[-1] + len(grams))
    for suffix, arr in ((".rows.npy", rows), (".offs.npy", np.asarray(offs, np.int64))):
        with atomic_path(out_base + suffix) as tmp, open(tmp, "wb") as f:
            np.save(f, arr)
    return ShinglesCounts(ordinal, int(len(rows)), int(offs[-1])).to_json()


VERIFY_CHUNK_BYTES = 256 * 2**20  # of shingle hashes a verify task holds at a time


def verify_edges(
    edge_path: str,
    shingle_dir: str,
    threshold: float,
    out_path: str,
    chunk_bytes: int = VERIFY_CHUNK_BYTES,
) -> dict:
    """Verify, step 3 (`verify`), per edge file: keep the candidate edges whose documents'
    true shingle Jaccard reaches `threshold` (LSH candidates include some pairs below it),
    from step 2's files in `shingle_dir`. The edges are taken in runs whose documents'
    hashes come to at most `chunk_bytes` (8 bytes a shingle; a run has at least one edge):
    each run's arrays are read, a partition's file at a time, checked, and let go.

    Before these steps, one task per edge file read its documents' texts itself: a task's
    candidates were spread over every partition (so each read nearly every row group: the
    whole corpus once per near bucket), a document was hashed again in every bucket where it
    had a candidate, and a task held all its candidates' hashes (benchmarks/RESULTS.md)."""
    from tokenmill.filters.components import EDGE_DTYPE

    edges = np.load(edge_path)
    keys, inverse = np.unique(np.concatenate([edges["u"], edges["v"]]), return_inverse=True)
    start, stop = _shingle_spans(keys, shingle_dir)
    size = (stop - start) * 8
    n = len(edges)
    iu, iv = inverse[:n], inverse[n:]
    keep = np.zeros(n, dtype=bool)
    first = 0
    while first < n:
        held: set[int] = set()
        total, last = 0, first
        while last < n:  # the run: edges while their new documents' hashes fit
            new = {int(iu[last]), int(iv[last])} - held
            more = int(sum(size[k] for k in new))
            if last > first and total + more > chunk_bytes:
                break
            held |= new
            total += more
            last += 1
        arrays = _read_shingles(keys, start, stop, sorted(held), shingle_dir)
        for e in range(first, last):
            keep[e] = array_jaccard(arrays[int(iu[e])], arrays[int(iv[e])]) >= threshold
        del arrays  # before the next run's are read: one run held at a time
        first = last
    kept = edges[keep] if n else np.empty(0, EDGE_DTYPE)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        np.save(f, kept)
    return VerifyCounts(int(n), int(len(kept)), int(n - len(kept))).to_json()


def _shingle_spans(keys: np.ndarray, shingle_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """Where each document's hashes are in its partition's .sh file (keys sorted: each
    partition's are together), found in its .rows.npy and .offs.npy."""
    start = np.zeros(len(keys), np.int64)
    stop = np.zeros(len(keys), np.int64)
    ordinals = keys >> 32
    for o in np.unique(ordinals).tolist():
        a, b = np.searchsorted(ordinals, [o, o + 1])
        base = shingle_base(shingle_dir, o)
        rows, offs = np.load(base + ".rows.npy"), np.load(base + ".offs.npy")
        want = keys[a:b] & 0xFFFFFFFF
        at = np.searchsorted(rows, want)
        found = at < len(rows)
        found[found] = rows[at[found]] == want[found]
        if not found.all():
            row = int(want[~found][0])
            raise KeyError(f"{base}: no shingles for row {row} (a verify.shingles file is stale)")
        start[a:b], stop[a:b] = offs[at], offs[at + 1]
    return start, stop


def _read_shingles(keys, start, stop, which: list[int], shingle_dir: str) -> dict:
    """{index: hash array} for the documents `which` (indices into the sorted `keys`), read
    from their partitions' .sh files, each file opened once."""
    out = {}
    ordinals = (keys >> 32).tolist()
    k = 0
    while k < len(which):
        o = ordinals[which[k]]
        with open(shingle_base(shingle_dir, o) + ".sh", "rb") as f:
            while k < len(which) and ordinals[which[k]] == o:
                i = which[k]
                f.seek(8 * int(start[i]))
                out[i] = np.frombuffer(f.read(8 * int(stop[i] - start[i])), dtype=np.uint64)
                k += 1
    return out


def shingle_arrays(texts: list[str], langs: list[str], ngram: int) -> list[np.ndarray]:
    """Each text's distinct shingle hashes, sorted (`shingle_hashes`: every document has at
    least one)."""
    g, gdoc = shingle_hashes(texts, langs, ngram)  # gdoc ascending: each document's together
    bounds = np.searchsorted(gdoc, np.arange(len(texts) + 1))
    return [np.unique(g[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def array_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sets given as sorted arrays of distinct values."""
    both = np.intersect1d(a, b, assume_unique=True).size
    union = a.size + b.size - both
    return both / union if union else 1.0


def _verify(run: Run, edge_files: list[str]) -> list[str]:
    """Stage `verify`: the edge files with the candidates below the threshold dropped, in
    three steps (each a stage in stats.json): `verify.ends` (each edge file's endpoints),
    `verify.shingles` (each partition's named documents hashed once), `verify` (the pairs)."""
    wd, mh = run.wd, run.cfg.dedup.minhash
    ends = [
        Task(Path(f).stem, edge_ends, (f, wd.edge_ends(f)), wd.done_edge_ends(f))
        for f in edge_files
    ]
    result = Stage.execute(run, "verify.ends", VerifyEndsCounts, ends)
    run.stages["verify.ends"] = summary(result, VerifyEndsCounts)
    write_json(wd.ends_list(), [wd.edge_ends(f) for f in edge_files])
    wd.shingle_dir().mkdir(parents=True, exist_ok=True)
    parts = [
        Task(
            f"p{p.ordinal}",
            partition_shingles,
            (
                p.ordinal,
                str(wd.docs(p.source, p.key)),
                str(wd.ends_list()),
                mh.ngram,
                wd.shingles(p.ordinal),
            ),
            wd.done_shingles(p.ordinal),
            p.nbytes,
        )  # fmt: skip
        for p in run.partitions
    ]
    result = Stage.execute(run, "verify.shingles", ShinglesCounts, parts)
    run.stages["verify.shingles"] = summary(result, ShinglesCounts)
    folder = str(wd.shingle_dir())
    tasks = [
        Task(
            Path(f).stem, verify_edges, (f, folder, mh.threshold, wd.verified(f)), wd.done_verify(f)
        )
        for f in edge_files
    ]
    result = Stage.execute(run, "verify", VerifyCounts, tasks)
    counts = [VerifyCounts.from_json(c) for c in result.counts]
    run.stages["verify"] = {**summary(result, VerifyCounts)}
    run.stages["verify"]["rejected"] = sum(c.rejected for c in counts)
    return [wd.verified(f) for f, c in zip(edge_files, counts, strict=True) if c.edges]


def _components(run: Run, edge_files: list[str]) -> dict:
    """Connected components of the edges: which documents to remove, cluster sizes."""
    from tokenmill.filters.components import (
        cluster_sizes,
        connected_components,
        local_edge_limit,
        save_removed,
        solve_local,
    )

    info = {"files": [], "cluster_sizes": {}, "rounds": [], "wall_s": 0.0}
    if not edge_files:
        return info
    t0 = time.perf_counter()
    client = run.engine.client
    n_edges = sum(int(np.load(f, mmap_mode="r").shape[0]) for f in edge_files)  # headers only
    limits = [w.get("memory_limit") for w in client.scheduler_info()["workers"].values()]
    limit = local_edge_limit(min((m for m in limits if m), default=None))
    info.update(method="local" if n_edges <= limit else "dask", edges=n_edges)
    out_dir = str(run.wd.near_removed())
    if info["method"] == "local":  # a graph one worker holds: one task, no shuffle rounds
        info.update(client.submit(solve_local, edge_files, out_dir, pure=False).result())
    else:
        labels = connected_components(client, edge_files, rounds=info["rounds"])
        info["files"] = save_removed(labels, out_dir)
        info["cluster_sizes"] = cluster_sizes(labels)
    info["wall_s"] = round(time.perf_counter() - t0, 3)
    return info


class NearStage(Stage):
    name = "near"
    counts = NearCounts

    def enabled(self, run: Run) -> bool:
        return run.cfg.dedup.minhash.enabled

    def tasks(self, run: Run) -> list[Task]:
        wd = run.wd
        return bucket_tasks(
            run, "bands", run.near_buckets, near_bucket, wd.edges, wd.done_near, wd.near_index
        )

    def collect(self, run: Run, result: StageResult, counts: list[NearCounts]) -> None:
        done = run.wd.components()
        run.stages[self.name]["edges"] = sum(c.edges for c in counts)
        if not done.exists():
            edge_files = [str(run.wd.edges(c.bucket)) for c in counts if c.edges]
            if run.cfg.dedup.minhash.verify and edge_files:
                edge_files = _verify(run, edge_files)
            write_json(done, _components(run, edge_files))
        info = read_json(done)
        run.near_files = info["files"]
        run.stages[self.name].update(
            clusters=sum(info["cluster_sizes"].values()),
            cluster_sizes=info["cluster_sizes"],
            components_rounds=len(info["rounds"]),
            components_method=info.get("method"),
            components_wall_s=info["wall_s"],
        )
