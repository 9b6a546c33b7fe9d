"""Stage `near`: near dedup, LSH band buckets -> candidate edges -> connected components.

Plans one task per near bucket from the `process` counts (each partition's slice of the
bucket in its bands file); each task writes the candidate edges of its bucket
(`WorkDir.edges`). Then, once per OUT (`WorkDir.components` marks it done): with
`dedup.minhash.verify`, stage `verify` keeps the edges whose documents' true Jaccard reaches
the threshold; the connected components of the edges, in this process for a small graph or
on the cluster, give the documents to remove. Collects their files (`Run.near_files`, one per
partition) and the cluster sizes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from tokenmill.filters.against import near_part
from tokenmill.filters.minhash import BAND_DTYPE, near_edges, shingle_hashes
from tokenmill.fsio import atomic_path, read_json, write_json
from tokenmill.pipelines.engine import StageResult, Task
from tokenmill.pipelines.stages.base import Counts, Run, Stage, summary
from tokenmill.pipelines.stages.dedup import bucket_tasks, save_index_part


@dataclass
class NearCounts(Counts):
    bucket: int
    band_keys: int
    edges: int
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


def verify_edges(
    edge_path: str, docs_files: dict[int, str], threshold: float, ngram: int, out_path: str
) -> dict:
    """Keep the candidate edges whose documents' true shingle Jaccard reaches `threshold`
    (LSH candidates include some pairs below it). Reads only the row groups holding the rows
    it needs, one at a time, and holds each document's shingles as a sorted array of their
    64-bit hashes (`shingle_hashes`, the ones MinHash saw): 8 bytes a shingle. A bucket of
    the 1 GB scale corpus (73,476 candidates) peaked at 411 MB RSS this way, 4,512 MB with
    sets of word tuples and whole partitions read (benchmarks/RESULTS.md)."""
    from tokenmill.filters.components import EDGE_DTYPE

    edges = np.load(edge_path)
    keys = np.unique(np.concatenate([edges["u"], edges["v"]])) if len(edges) else []
    shingles: dict[int, np.ndarray] = {}
    by_part: dict[int, list[int]] = defaultdict(list)
    for k in keys:
        by_part[int(k) >> 32].append(int(k) & 0xFFFFFFFF)
    for ordinal, rows in by_part.items():  # rows ascending; read a row group at a time
        docs = pq.ParquetFile(docs_files[ordinal])
        sizes = [docs.metadata.row_group(i).num_rows for i in range(docs.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        wanted = np.asarray(rows, dtype=np.int64)
        group_of = np.searchsorted(starts, wanted, side="right") - 1
        for g in np.unique(group_of).tolist():
            sel = wanted[group_of == g]
            table = docs.read_row_group(g, columns=["text", "lang"]).take(sel - starts[g])
            texts, langs = table.column("text").to_pylist(), table.column("lang").to_pylist()
            for row, grams in zip(sel.tolist(), shingle_arrays(texts, langs, ngram), strict=True):
                shingles[(ordinal << 32) | row] = grams
    keep = np.array(
        [
            array_jaccard(shingles[int(u)], shingles[int(v)]) >= threshold
            for u, v in zip(edges["u"], edges["v"], strict=True)
        ],
        dtype=bool,
    )
    kept = edges[keep] if len(edges) else np.empty(0, EDGE_DTYPE)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        np.save(f, kept)
    return VerifyCounts(int(len(edges)), int(len(kept)), int(len(edges) - len(kept))).to_json()


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
    """Stage `verify`: the edge files with the candidates below the threshold dropped."""
    wd, mh = run.wd, run.cfg.dedup.minhash
    docs = {p.ordinal: str(wd.docs(p.source, p.key)) for p in run.partitions}
    tasks = [
        Task(
            Path(f).stem,
            verify_edges,
            (f, docs, mh.threshold, mh.ngram, wd.verified(f)),
            wd.done_verify(f),
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
