"""Stage `against` (only with `dedup.against`): per partition, the documents whose exact hash
or any MinHash band key is in the index an earlier run left (OUT/dedup, see
tokenmill.filters.against); the tokenize stage drops them as `dedup:against`.

Reads only the hashes and band keys the process stage wrote (no text), and the earlier
runs' index files (memory-mapped, a bucket at a time). An earlier OUT made with other
deduplication settings is refused before any work, naming the settings that differ: its
hashes or band keys would not be comparable. Its index is an input of this run (its
meta.json's identity is recorded): prepared again, the rerun is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tokenmill.config import Config
from tokenmill.filters.against import INDEX_VERSION, AgainstError, DedupIndex
from tokenmill.fsio import atomic_path, write_json
from tokenmill.pipelines.engine import Task
from tokenmill.pipelines.stages.base import Counts, Run, Stage

# the key of the earlier runs' indexes in OUT/work/inputs.json (not a valid source name)
AGAINST_INPUTS = "dedup.against"


@dataclass
class AgainstCounts(Counts):
    TOTALS = {"documents": "documents"}

    partition: str
    exact: int  # documents with an exact copy in an earlier corpus
    near: int  # documents sharing a band key with one (and no exact copy)
    documents: int
    wall_s: float = 0.0


def dedup_settings(cfg: Config) -> dict:
    """What hashes and band keys depend on: refused when an earlier index differs."""
    from tokenmill.filters.minhash import LSH

    d, mh = cfg.dedup, cfg.dedup.minhash
    out: dict = {"exact": d.exact, "normalize": d.normalize, "minhash": None}
    if mh.enabled:
        lsh = LSH(mh.threshold, mh.num_perm, mh.ngram, mh.seed, mh.bands, mh.rows)
        out["minhash"] = {
            "num_perm": mh.num_perm,
            "ngram": mh.ngram,
            "seed": mh.seed,
            "bands": lsh.bands,
            "rows": lsh.rows,
        }
    return out


def check_against(cfg: Config) -> list[str]:
    """Each `dedup.against` OUT's index meta.json, once its settings are checked equal to
    this run's (AgainstError otherwise, naming them)."""
    mine = dedup_settings(cfg)
    metas = []
    for out in cfg.dedup.against:
        index = DedupIndex(out)
        theirs = index.settings()
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if diff:
            shown = "; ".join(f"{k}: {theirs.get(k)} there, {mine.get(k)} here" for k in diff)
            raise AgainstError(
                f"dedup.against: {out} was deduplicated with other settings ({shown}): its "
                "hashes cannot be compared with this run's; use the same dedup settings"
            )
        metas.append(str(index.root / "meta.json"))
    return metas


def write_index_meta(run: Run) -> None:
    """OUT/dedup/meta.json, once every bucket's part of the index is there (a run resumed
    from an OUT made without the index gets none: said in the log)."""
    import logging

    wd, cfg = run.wd, run.cfg
    if not cfg.dedup.write_index:
        return
    parts = [wd.exact_index(b) for b in range(run.buckets)] if cfg.dedup.exact else []
    if cfg.dedup.minhash.enabled:
        parts += [wd.near_index(b) for b in range(run.near_buckets)]
    missing = [p for p in parts if not p.exists()]
    if missing:
        logging.getLogger(__name__).warning(
            "no deduplication index in %s: %d of its parts are missing (work done by an "
            "older tokenmill); rerun with --fresh to make one",
            wd.dedup_index(),
            len(missing),
        )
        return
    write_json(
        wd.dedup_index() / "meta.json",
        {
            "version": INDEX_VERSION,
            "settings": dedup_settings(cfg),
            "buckets": run.buckets if cfg.dedup.exact else None,
            "near_buckets": run.near_buckets if cfg.dedup.minhash.enabled else None,
            "documents": sum(c.documents_kept for c in run.counts["process"]),
        },
    )


def against_partition(
    part_key: str, hashes: str, bands: str | None, outs: tuple[str, ...], out_path: str
) -> dict:
    """The order keys of one partition's documents found in the indexes of `outs`."""
    rec = np.load(hashes)
    exact = np.zeros(len(rec), bool)
    near_keys = np.empty(0, np.int64)
    brec = np.load(bands) if bands else None
    for out in outs:
        index = DedupIndex(out)
        if index.meta.get("buckets"):
            exact |= index.exact(rec["hi"], rec["lo"])
        if brec is not None and len(brec) and index.meta.get("near_buckets"):
            near_keys = np.union1d(near_keys, brec["doc"][index.near(brec["key"])])
    exact_keys = np.sort(rec["key"][exact])
    near_only = np.setdiff1d(near_keys, exact_keys)
    found = np.union1d(exact_keys, near_only).astype(np.int64)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        np.save(f, found)
    return AgainstCounts(part_key, len(exact_keys), len(near_only), len(found)).to_json()


class AgainstStage(Stage):
    name = "against"
    counts = AgainstCounts

    def enabled(self, run: Run) -> bool:
        return bool(run.cfg.dedup.against)

    def tasks(self, run: Run) -> list[Task]:
        wd, cfg = run.wd, run.cfg
        outs = tuple(cfg.dedup.against)
        return [
            Task(
                f"{p.source}-{p.key}",
                against_partition,
                (
                    p.key,
                    str(wd.hashes(p.source, p.key)),
                    str(wd.bands(p.source, p.key)) if cfg.dedup.minhash.enabled else None,
                    outs,
                    str(wd.against(p.source, p.key)),
                ),
                wd.done_against(p.source, p.key),
                p.nbytes,
            )
            for p in run.partitions
        ]

    def collect(self, run: Run, result, counts: list[AgainstCounts]) -> None:
        run.against_files = {
            p.ordinal: str(run.wd.against(p.source, p.key)) for p in run.partitions
        }
        run.stages[self.name]["exact"] = sum(c.exact for c in counts)
        run.stages[self.name]["near"] = sum(c.near for c in counts)
