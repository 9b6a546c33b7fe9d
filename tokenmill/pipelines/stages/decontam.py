"""Stage `decontam` (only with `decontaminate.eval_files`): one task per evaluation file builds
its n-gram index (tokenmill.filters.decontam.EvalIndex) into `WorkDir.eval_index`; the process
stage's document pass then removes a document sharing an n-gram with a set as
`decontam:<set name>` (`Decontaminator`).

The evaluation files are inputs like the corpus files: their identities are recorded at the
first run and a rerun with a changed file is refused (pipelines/resume.py), so an index on
disk always belongs to the files the config names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from tokenmill.config import Config
from tokenmill.filters.decontam import EvalIndex, Hit, find_contamination
from tokenmill.fsio import atomic_path
from tokenmill.pipelines.engine import Task
from tokenmill.pipelines.evalsets import eval_name, load_eval_index
from tokenmill.pipelines.stages.base import Counts, Run, Stage

# the key of the evaluation files in OUT/work/inputs.json (not a valid source name)
EVAL_INPUTS = "decontaminate.eval_files"


@dataclass
class DecontamCounts(Counts):
    name: str
    path: str
    index: str
    items: int
    no_text: int
    too_short: int
    ngrams: int
    wall_s: float = 0.0


def build_eval_index(path: str, name: str, cfg: Config, index: str) -> dict:
    """Index one evaluation file into `index`; its counts."""
    d = cfg.decontaminate
    ix = load_eval_index(path, d.text_key, d.ngram, d.lang)
    with atomic_path(index) as tmp:
        ix.save(tmp)
    return DecontamCounts(name=name, path=path, index=index, **ix.counts).to_json()


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> EvalIndex:
    return EvalIndex.load(path)


class Decontaminator:
    """The document pass's decontamination step: `(texts, langs)` -> each document's hits
    (the indexes loaded once per worker process)."""

    def __init__(self, index_paths: tuple[str, ...]):
        self.index_paths = index_paths

    def __call__(self, texts: list[str], langs: list[str]) -> list[list[Hit]]:
        indexes = [_load(p, os.stat(p).st_mtime_ns) for p in self.index_paths]
        return find_contamination(texts, langs, indexes)


class DecontamStage(Stage):
    name = "decontam"
    counts = DecontamCounts

    def enabled(self, run: Run) -> bool:
        return bool(run.cfg.decontaminate.eval_files)

    def tasks(self, run: Run) -> list[Task]:
        out = []
        for path in run.cfg.decontaminate.eval_files:
            name = eval_name(path)
            index = str(run.wd.eval_index(name))
            out.append(
                Task(
                    name,
                    build_eval_index,
                    (path, name, run.cfg, index),
                    run.wd.done_eval_index(name),
                )  # fmt: skip
            )
        return out

    def collect(self, run: Run, result, counts: list[DecontamCounts]) -> None:
        run.eval_indexes = tuple(c.index for c in counts)
