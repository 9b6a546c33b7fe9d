"""Connected components of the near-duplicate graph: on the Dask cluster, or in one process
when the graph is small.

Hash-to-min label propagation over Dask dataframes: every node starts with the smallest id
among itself and its neighbours; each round a node takes the smallest label among its
neighbours' labels, then jumps to its label's label (pointer jumping), until no label changes.
Rounds grow with the log of the clusters' diameter; LSH graphs (stars around each bucket's
smallest document) need a handful. Each round is a shuffle-based merge and groupby, so no
worker ever holds more than its share of the edges. The smallest id in a component is its
label, so the document kept per cluster does not depend on the worker count.

A small graph (the usual case: edges are candidate near-duplicate pairs, a small fraction of
the documents) is solved in one task on one worker instead, with the same algorithm on numpy
arrays (`components_local`, `solve_local`): each Dask round is a shuffle that costs ~0.5 s
however small the graph. Both give the same labels (a component's smallest id). "Small" is
what fits a worker: `LOCAL_BYTES_PER_EDGE` (measured peak of `components_local`, 146 bytes
per edge on 2M random edges) times the edges, at most half the smallest worker's memory
limit, and never more than `LOCAL_MAX_EDGES`. The process that runs `prepare` only counts the
edges (file headers): its memory does not grow with the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EDGE_DTYPE = np.dtype([("u", "<i8"), ("v", "<i8")])


# peak bytes per edge of components_local (tracemalloc, 2M edges: 146): the one-task
# method is chosen only where this fits in half a worker's memory limit
LOCAL_BYTES_PER_EDGE = 150
LOCAL_MAX_EDGES = 20_000_000  # ~3 GB at the peak: above this, Dask rounds whatever the memory


def local_edge_limit(worker_memory: int | None) -> int:
    """The most edges solved in one task on a worker with `worker_memory` bytes (None or 0:
    no limit set, LOCAL_MAX_EDGES)."""
    if not worker_memory:
        return LOCAL_MAX_EDGES
    return min(LOCAL_MAX_EDGES, int(worker_memory * 0.5 // LOCAL_BYTES_PER_EDGE))


@dataclass
class LocalLabels:
    """Labels computed in this process: `label[i]` is the component label of `node[i]`
    (nodes sorted). `save_removed` and `cluster_sizes` take these or the Dask DataFrame."""

    node: np.ndarray
    label: np.ndarray


def components_local(edge_files: list[str], rounds: list | None = None) -> LocalLabels:
    """`connected_components` in this process, on numpy arrays (no pandas or Dask imported:
    the process that runs `prepare` stays small). `rounds` receives the labels changed in
    each round."""
    rounds = rounds if rounds is not None else []
    arrays = [np.load(p) for p in edge_files]
    u = np.concatenate([a["u"] for a in arrays]).astype(np.int64)
    v = np.concatenate([a["v"] for a in arrays]).astype(np.int64)
    nodes, inv = np.unique(np.concatenate([u, v]), return_inverse=True)
    a, b = inv[: len(u)], inv[len(u) :]
    # labels are positions in the sorted `nodes`, so the smallest position is the smallest id
    label = np.arange(len(nodes))
    np.minimum.at(label, a, b)
    np.minimum.at(label, b, a)
    while True:
        new = label.copy()
        np.minimum.at(new, a, label[b])  # neighbours' labels
        np.minimum.at(new, b, label[a])
        new = np.minimum(new, new[new])  # pointer jumping
        changed = int((new != label).sum())
        rounds.append(changed)
        label = new
        if changed == 0:
            break
    return LocalLabels(nodes, nodes[label])


def solve_local(edge_files: list[str], out_dir: str) -> dict:
    """One task's work (run on a worker): components_local, the removed files and the
    cluster sizes; returns {"files", "cluster_sizes", "rounds"} (small)."""
    rounds: list[int] = []
    labels = components_local(edge_files, rounds=rounds)
    files = save_removed(labels, out_dir)
    return {"files": files, "cluster_sizes": cluster_sizes(labels), "rounds": rounds}


def _load(path: str):
    import pandas as pd

    a = np.load(path)
    return pd.DataFrame({"u": a["u"].astype(np.int64), "v": a["v"].astype(np.int64)})


def connected_components(
    client, edge_files: list[str], max_rounds: int = 64, rounds: list | None = None
):
    """Return a Dask DataFrame (persisted) indexed by node with column `label` (the smallest
    node id of its component), for every node that has at least one edge. `rounds`, if
    given, receives the number of labels changed in each round."""
    rounds = rounds if rounds is not None else []
    import dask.dataframe as dd
    import pandas as pd
    from dask import delayed

    meta = pd.DataFrame({"u": pd.Series([], dtype="int64"), "v": pd.Series([], dtype="int64")})
    edges = dd.from_delayed([delayed(_load)(p) for p in edge_files], meta=meta)
    both = dd.concat([edges, edges.rename(columns={"u": "v", "v": "u"})])
    both = both.persist()
    own = both[["u"]].drop_duplicates().assign(v=lambda d: d.u)
    labels = dd.concat([both, own]).groupby("u").v.min().rename("label").to_frame()
    labels = labels.persist()
    for _ in range(max_rounds):
        # neighbours' labels
        e = both.merge(labels, left_on="v", right_index=True)
        cand = e.groupby("u").label.min().rename("cand").to_frame()
        step = labels.merge(cand, left_index=True, right_index=True, how="left")
        step["label2"] = step[["label", "cand"]].min(axis=1).astype("int64")
        # pointer jumping: take the label of my label
        jumped = step[["label2"]].merge(
            labels.rename(columns={"label": "of_label"}),
            left_on="label2",
            right_index=True,
            how="left",
        )
        jumped["new"] = jumped[["label2", "of_label"]].min(axis=1).astype("int64")
        new = jumped[["new"]].rename(columns={"new": "label"}).persist()
        both_l = labels.merge(new.rename(columns={"label": "n"}), left_index=True, right_index=True)
        changed = int((both_l["label"] != both_l["n"]).sum().compute())
        labels = new
        rounds.append(changed)
        if changed == 0:
            return labels
    raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")


def save_removed(labels, out_dir: str) -> list[str]:
    """Write, per partition of `labels`, the sorted ids of nodes that are not their component's
    smallest (the documents to remove), and beside each (`.kept.npy`) the id of the one kept;
    returns the file paths."""
    from pathlib import Path

    from dask import delayed

    from tokenmill.fsio import atomic_path

    def save_arrays(node: np.ndarray, label: np.ndarray, path: str) -> str:
        gone = node != label
        order = np.argsort(node[gone], kind="stable")
        with atomic_path(path[:-4] + ".kept.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, label[gone][order].astype(np.int64))  # kept document, aligned
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, node[gone][order].astype(np.int64))
        return path

    def save(df, path: str) -> str:
        return save_arrays(df.index.to_numpy(), df["label"].to_numpy(), path)

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    if isinstance(labels, LocalLabels):
        return [save_arrays(labels.node, labels.label, f"{out_dir}/removed_00000.npy")]
    parts = labels.to_delayed()
    tasks = [delayed(save)(part, f"{out_dir}/removed_{i:05d}.npy") for i, part in enumerate(parts)]
    import dask

    return list(dask.compute(*tasks))


def cluster_sizes(labels) -> dict[str, int]:
    """{component size: number of components}, computed on the cluster (or here, for
    LocalLabels)."""
    if isinstance(labels, LocalLabels):
        _, per_cluster = np.unique(labels.label, return_counts=True)
        sizes, n = np.unique(per_cluster, return_counts=True)
        return {str(int(k)): int(c) for k, c in zip(sizes, n, strict=True)}
    per_cluster = labels["label"].value_counts()
    dist = per_cluster.value_counts().compute()
    return {str(int(k)): int(v) for k, v in sorted(dist.items())}
