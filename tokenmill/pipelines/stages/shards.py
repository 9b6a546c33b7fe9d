"""Stage `shards`: each source's token series, in order, cut into budget-sized shards.

Plans from the `tokenize` counts: per source (per language where the source asks), its
partitions' series cut by `cut_into_shards`, one task per shard (`WorkDir.shard`); each
writes it with `write_shard`. Collects the shards' counts: the manifest lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenmill.pipelines.engine import Task
from tokenmill.pipelines.stages.base import Counts, Run, Stage
from tokenmill.shards.write import cut_into_shards, write_shard


@dataclass
class ShardCounts(Counts):
    PROGRESS = ("documents", None)
    TOTALS = {"documents": "documents", "tokens": "tokens"}

    prefix: str
    source: str
    lang: str | None
    documents: int
    tokens: int
    files: dict | list | None = None
    wall_s: float = 0.0


class ShardsStage(Stage):
    name = "shards"
    counts = ShardCounts

    def tasks(self, run: Run) -> list[Task]:
        tasks = []
        for s in run.cfg.sources:
            mine = [
                (p, c)
                for p, c in zip(run.partitions, run.counts["tokenize"], strict=True)
                if p.source == s.name
            ]
            groups = sorted({g for _, c in mine for g in c.groups}) if s.split_languages else [""]
            for group in groups:
                tasks += self._group(run, s.name, group, mine)
        return tasks

    def _group(self, run: Run, source: str, group: str, mine: list) -> list[Task]:
        """The shard tasks of one source's documents of one language (or of all: "")."""
        wd = run.wd
        bases = [wd.tokens(source, p.key, group) for p, c in mine if group in c.groups]
        name = f"{source}_{group}" if group else source
        cuts = cut_into_shards([b + ".sizes.npy" for b in bases], run.cfg.shards.tokens_per_shard)
        dtype = mine[0][1].dtype if mine else None
        return [
            Task(
                f"{name}-{i}",
                write_shard,
                (
                    str(wd.shard(source, f"{name}_{i:05d}")),
                    [(bases[p], a, b) for p, a, b in runs],
                    source,
                    dtype,
                    group or None,
                ),
                wd.done_shard(source, f"{name}_{i:05d}"),
            )
            for i, runs in enumerate(cuts)
        ]
