"""Stage `scan`: count the records of every input file, to cut big files into partitions.

Plans one task per input file; collects the partitions (`Run.partitions`, each at most
`input.partition_docs` records) and the bucket counts of the dedup shuffles, pinned by the
first run of an OUT so that a resumed run agrees with it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from tokenmill.filters.minhash import LSH
from tokenmill.fsio import read_json, write_json
from tokenmill.pipelines.engine import StageResult, Task
from tokenmill.pipelines.readers import count_records
from tokenmill.pipelines.readers.inputs import HF_SPEC_PREFIX, is_url, local_path
from tokenmill.pipelines.stages.base import Counts, Partition, Run, Stage


@dataclass
class ScanCounts(Counts):
    PROGRESS = ("records", None)
    TOTALS = {"records": "records"}

    path: str
    records: int
    error: str | None
    wall_s: float = 0.0
    nbytes: int = 0  # the file's size (0: not a local file, or scanned by an older tokenmill)


def scan_file(path: str, fmt: str, max_doc_bytes: int) -> dict:
    """Records of one input file, and what is wrong with it if it cannot be read to its end
    (never raises for a file: a damaged or unreadable one is reported by its partition)."""
    try:
        n, error = count_records(path, fmt, max_doc_bytes)
    except Exception as e:  # noqa: BLE001 - one file never ends the run
        n, error = 0, f"input:read_error: {path}: {type(e).__name__}: {e}"
    return ScanCounts(path, n, error, nbytes=local_size(path)).to_json()


def local_size(path: str) -> int:
    """The size of a local file; 0 for a URL, a `datasets:` spec or a file not there."""
    if is_url(path) or path.startswith(HF_SPEC_PREFIX):
        return 0
    try:
        return os.path.getsize(local_path(path))
    except OSError:
        return 0


def relative_names(files: list[str]) -> list[str]:
    """Stable names of a source's inputs for document ids: local files relative to their
    common folder; URLs and specs without their scheme."""
    if all("://" not in f and not f.startswith("datasets:") for f in files):
        root = os.path.commonpath([os.path.dirname(f) for f in files])
        return [os.path.relpath(f, root) for f in files]
    return [f.split("://", 1)[-1].removeprefix("datasets:") for f in files]


def partitions(cfg, files: dict[str, list[str]], scans: list[ScanCounts]) -> list[Partition]:
    """Every input file cut into slices of at most `input.partition_docs` records, in order."""
    parts: list[Partition] = []
    it = iter(scans)
    step = cfg.input.partition_docs
    for s in cfg.sources:
        names = relative_names(files[s.name])
        for i, f in enumerate(files[s.name]):
            scan = next(it)
            slices = max(1, math.ceil(scan.records / step))
            for k in range(slices):
                last = k == slices - 1
                parts.append(
                    Partition(
                        source=s.name,
                        fmt=s.format,
                        text_key=s.text_key,
                        path=f,
                        rel=names[i],
                        file_idx=i,
                        slice_idx=k,
                        start=k * step,
                        stop=None if last else (k + 1) * step,
                        ordinal=len(parts),
                        nbytes=scan.nbytes // slices,
                    )
                )
    return parts


def pin(path, value: int) -> int:
    """Keep a value chosen by the first run of an OUT (a resumed run must agree with it)."""
    if path.exists():
        return int(read_json(path)["value"])
    write_json(path, {"value": value})
    return value


class ScanStage(Stage):
    name = "scan"
    counts = ScanCounts

    def tasks(self, run: Run) -> list[Task]:
        cfg = run.cfg
        return [
            Task(
                f"{s.name}-{i}",
                scan_file,
                (f, s.format, cfg.input.max_doc_bytes),
                run.wd.done_scan(s.name, i),
                local_size(f),
            )
            for s in cfg.sources
            for i, f in enumerate(run.files[s.name])
        ]

    def collect(self, run: Run, result: StageResult, counts: list[ScanCounts]) -> None:
        cfg = run.cfg
        run.partitions = partitions(cfg, run.files, counts)
        total = sum(c.records for c in counts)
        buckets = cfg.dedup.buckets or max(1, min(1024, math.ceil(total / 1_000_000)))
        run.buckets = pin(run.wd.pinned("buckets"), buckets)
        # a document has one exact hash but `bands` LSH keys: size near buckets by keys
        # (~2M keys, ~170 MB per task), not by documents
        mh = cfg.dedup.minhash
        bands = LSH(mh.threshold, mh.num_perm, 1, 1, mh.bands, mh.rows).bands
        near = max(1, min(4096, math.ceil(total * bands / 2_000_000)))
        run.near_buckets = pin(run.wd.pinned("near_buckets"), near)
