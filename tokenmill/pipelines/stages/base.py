"""What every stage of `prepare` shares: the partition, typed counts, the run, a stage.

A stage plans its tasks from what earlier stages collected into the `Run` (`tasks`), runs
them on the engine, and collects their counts back into the `Run` (`collect`). Its counts
are one `Counts` dataclass, stored as the task's done-JSON (the same keys as before this
module existed, so an OUT written then still resumes).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tokenmill.config import Config
from tokenmill.pipelines.engine import Engine, StageResult, Task
from tokenmill.pipelines.workdir import WorkDir


@dataclass(frozen=True)
class Partition:
    """Records [start, stop) of one input file; `ordinal` is its place in the global order."""

    source: str
    fmt: str
    text_key: str
    path: str
    rel: str  # the file's path relative to its source's root: part of every document id
    file_idx: int
    slice_idx: int
    start: int
    stop: int | None
    ordinal: int
    nbytes: int = 0  # its share of the file's bytes (0: unknown): how the engine groups tasks

    @property
    def key(self) -> str:
        return f"{self.file_idx:05d}-{self.slice_idx:04d}"


@dataclass
class Counts:
    """A task's counts. Subclasses declare which fields the progress bar shows (`PROGRESS`:
    documents, bytes) and which sum into the stage's entry of stats.json (`TOTALS`: key in
    stats.json -> field)."""

    PROGRESS: ClassVar[tuple[str | None, str | None]] = (None, None)
    TOTALS: ClassVar[dict[str, str]] = {}
    LEGACY: ClassVar[dict[str, str]] = {}  # done-JSON key of an older tokenmill -> field

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Counts:
        names = {f.name for f in dataclasses.fields(cls)}
        data = {cls.LEGACY.get(k, k): v for k, v in data.items()}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Run:
    """One `prepare` run: its settings, folders, engine, and what the stages collected."""

    cfg: Config
    wd: WorkDir
    engine: Engine
    files: dict[str, list[str]]
    t_start: float = field(default_factory=time.perf_counter)
    partitions: list[Partition] = field(default_factory=list)
    buckets: int = 1
    near_buckets: int = 1
    counts: dict[str, list[Any]] = field(default_factory=dict)  # stage -> its typed counts
    stages: dict[str, dict] = field(default_factory=dict)  # stage -> its stats.json entry
    bucket_files: list[str] = field(default_factory=list)  # exact duplicates, per bucket
    near_files: list[str] = field(default_factory=list)  # near duplicates, per partition
    eval_indexes: tuple[str, ...] = ()  # decontamination: the evaluation sets' index files
    against_files: dict[int, str] = field(default_factory=dict)  # ordinal -> stage against's
    span_files: list[str] = field(default_factory=list)  # duplicate spans, per span bucket


class Stage:
    """A stage: `name`, its `Counts` type, the tasks it plans and what it collects."""

    name: ClassVar[str]
    counts: ClassVar[type[Counts]]

    def enabled(self, run: Run) -> bool:
        return True

    def tasks(self, run: Run) -> list[Task]:
        raise NotImplementedError

    def collect(self, run: Run, result: StageResult, counts: list) -> None:
        """Keep what later stages need; the default keeps the counts and the summary."""

    def run(self, run: Run) -> None:
        """Plan, run on the engine, collect."""
        result = self.execute(run, self.name, self.counts, self.tasks(run))
        run.counts[self.name] = typed = [self.counts.from_json(c) for c in result.counts]
        run.stages[self.name] = summary(result, self.counts)
        self.collect(run, result, typed)

    @staticmethod
    def execute(run: Run, name: str, counts: type[Counts], tasks: list[Task]) -> StageResult:
        docs, nbytes = counts.PROGRESS
        return run.engine.run_stage(name, tasks, docs_field=docs, bytes_field=nbytes)


def summary(result: StageResult, counts: type[Counts]) -> dict:
    """A stage's entry in stats.json: tasks run and skipped, wall and summed task seconds,
    the largest worker peak RSS of its tasks (`peak_rss_mb`, where measured), and its totals
    of the count fields it declares (documents, bytes, tokens)."""
    out = {
        "tasks": len(result.counts),
        "ran": result.ran,
        "skipped": result.skipped,
        "wall_s": round(result.wall_s, 3),
        "task_s": round(sum(c.get("wall_s", 0.0) for c in result.counts), 3),
    }
    peaks = [c["peak_rss_mb"] for c in result.counts if "peak_rss_mb" in c]
    if peaks:
        out["peak_rss_mb"] = max(peaks)
    for key, name in counts.TOTALS.items():
        if result.counts:
            out[key] = sum(int(getattr(counts.from_json(c), name)) for c in result.counts)
    return out
