"""`tokenmill prepare`: the config turned into stages of partition tasks, run on Dask.

    scan -> process (read, langid, quality, hashes) -> dedup (exact, per bucket)
         -> tokenizer (train or load) -> tokenize -> shards -> manifest, stats, report

Intermediate files live in OUT/work/ and make a rerun resume: every completed task left a
counts file there and is skipped. What a rerun may reuse, the config and the inputs, is
pinned by its first run (tokenmill/pipelines/resume.py: `ConfigMismatch`, `InputsChanged`).

`--fresh` deletes the earlier outputs and starts over. One run at a time holds OUT
(OUT/.lock, `engine.output_lock`); the lock is taken before `--fresh` deletes anything, and
the temporaries a killed run left (`.NAME.tmp-*`) are swept while holding it. Every output is
written under a temporary name and renamed, so a failure (a full disk) leaves either the
previous file or none, never a truncated one.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from rich.console import Console

from tokenmill.config import Config
from tokenmill.filters.against import AgainstError
from tokenmill.fsio import atomic_path, sweep_temporaries, write_json
from tokenmill.pipelines.engine import Engine, dask_client, output_lock
from tokenmill.pipelines.readers.inputs import is_url, local_path
from tokenmill.pipelines.resume import (  # noqa: F401  (re-exported: the CLI's errors)
    ConfigMismatch,
    InputsChanged,
    check_config,
    check_inputs,
    input_identity,
)
from tokenmill.pipelines.stages import STAGES, Run
from tokenmill.pipelines.stages.against import AGAINST_INPUTS, check_against, write_index_meta
from tokenmill.pipelines.stages.decontam import EVAL_INPUTS
from tokenmill.pipelines.workdir import WorkDir

# the key of the files the quality rules read in OUT/work/inputs.json (not a source name)
RULE_INPUTS = "quality (files the rules read)"

log = logging.getLogger(__name__)

# Outputs of a run, deleted by --fresh (OUT/.lock stays: it may be held while they go).
_OUTPUTS = (
    "work",
    "dedup",
    "shards",
    "removed",
    "manifest.json",
    "stats.json",
    "report.html",
    "tokenizer.json",
    "config.yaml",
)


def expand_paths(patterns: list[str], source: str) -> list[str]:
    """A source's input files, in order (local globs, file://, fsspec URLs, datasets: specs)."""
    from tokenmill.pipelines.readers import expand_inputs

    return expand_inputs(patterns, source)


def _fetch_catalog_sources(cfg: Config, client, console, quiet: bool) -> None:
    """Download the sources given by catalog name and fill in their paths and format."""
    from tokenmill.pipelines.catalog import load_catalog
    from tokenmill.pipelines.download import fetch_source

    catalog = None
    for s in cfg.sources:
        if not s.catalog:
            continue
        c = s.catalog
        catalog = catalog or load_catalog()
        if s.format is None:
            s.format = catalog.variant(c.name, c.variant).format
        s.paths = fetch_source(
            c.name,
            c.variant,
            c.lang,
            c.files,
            c.dest,
            c.base_url,
            client=client,
            split=c.split,
            console=console,
            quiet=quiet,
        )


def prepare(
    cfg: Config,
    out: str | os.PathLike | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    fresh: bool = False,
    console: Console | None = None,
    quiet: bool = False,
) -> dict:
    """Run the whole pipeline; returns the stats dict (also written to OUT/stats.json).

    Raises OutputLocked (another run holds OUT), ConfigMismatch / InputsChanged (OUT holds
    work made from another config / other inputs; `fresh` starts over), FileNotFoundError (an
    input pattern matches nothing), TaskFailed (a task raised)."""
    # absolute: the paths tasks get (and record in their counts) must not depend on the
    # working directory of whoever reads them, a worker or a later command
    out = Path(out or cfg.output).absolute()
    if workers is not None and workers < 1:
        raise ValueError(f"workers: must be >= 1 (got {workers})")
    with output_lock(out):
        return _prepare(cfg, out, workers, scheduler, fresh, console, quiet)


def _prepare(
    cfg: Config,
    out: Path,
    workers: int | None,
    scheduler: str | None,
    fresh: bool,
    console: Console | None,
    quiet: bool,
) -> dict:
    """The stages in order on one cluster, then the outputs made from their counts."""
    wd = WorkDir(out)
    _start(wd, cfg, fresh)
    console = console or Console(stderr=True)
    t_start = time.perf_counter()
    files = None
    if not any(s.catalog for s in cfg.sources):  # fail fast, before starting a cluster
        files = _inputs(cfg, wd)
    with dask_client(workers or cfg.workers, scheduler) as client:
        engine = Engine(client, console, quiet)
        if not quiet:
            console.print(f"[bold]tokenmill prepare[/] -> {out}  ({_describe(client)})")
        if files is None:
            _fetch_catalog_sources(cfg, client, console, quiet)
            files = _inputs(cfg, wd)
        run = Run(cfg, wd, engine, files, t_start=t_start)
        for stage in STAGES:
            if stage.enabled(run):
                stage.run(run)
    return _finish(run)


def _start(wd: WorkDir, cfg: Config, fresh: bool) -> None:
    """Delete the earlier outputs (`fresh`) or what a stopped run left; check the config."""
    if fresh:
        for name in _OUTPUTS:
            p = wd.out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    swept = sweep_temporaries(wd.out)
    if swept:
        log.info("removed %d temporary files a stopped run left in %s", len(swept), wd.out)
    wd.work.mkdir(parents=True, exist_ok=True)
    check_config(cfg, wd.work)


def _inputs(cfg: Config, wd: WorkDir) -> dict[str, list[str]]:
    """Each source's input files, checked with the files the rules read (block lists, word
    lists, KenLM models), the evaluation files (decontamination) and the indexes of
    dedup.against against those of the first run."""
    from tokenmill.filters.registry import build_filters
    from tokenmill.pipelines.readers import default_rules

    files = {s.name: expand_paths(s.paths, s.name) for s in cfg.sources}
    evals = cfg.decontaminate.eval_files
    for path in evals:
        if not is_url(path) and not os.path.isfile(local_path(path)):
            raise FileNotFoundError(f"decontaminate.eval_files: {path} not found")
    used = {
        n for s in cfg.sources for n in cfg.quality.filter_names(s.name, default_rules(s.format))
    }
    build_filters(sorted(used), cfg.quality)  # the rules' own checks (a model file), here first
    if any(Path(a).resolve() == wd.out.resolve() for a in cfg.dedup.against):
        raise AgainstError(f"dedup.against names this run's own output {wd.out}: drop it")
    extra = {
        RULE_INPUTS: cfg.quality.files(used),
        EVAL_INPUTS: evals,
        AGAINST_INPUTS: check_against(cfg),  # their settings checked equal first
    }
    check_inputs({**files, **{k: v for k, v in extra.items() if v}}, wd.work)
    return files


def _finish(run: Run) -> dict:
    """The tokenizer, manifest, stats, report and config of a completed run; the stats."""
    from tokenmill.report.html import write_report
    from tokenmill.report.stats import build_stats
    from tokenmill.shards.manifest import build_manifest

    out, cfg = run.wd.out, run.cfg
    with atomic_path(out / "tokenizer.json") as tmp:
        shutil.copyfile(run.wd.tokenizer(), tmp)
    write_index_meta(run)
    shard_counts = [c.to_json() for c in run.counts["shards"]]
    manifest = build_manifest(cfg, out, shard_counts)
    write_json(out / "manifest.json", manifest)
    stats = build_stats(
        cfg,
        run.partitions,
        run.counts["process"],
        run.counts["tokenize"],
        run.counts["shards"],
        run.stages,
        wall_s=time.perf_counter() - run.t_start,
        decontam_counts=run.counts.get("decontam"),
    )
    write_json(out / "stats.json", stats)
    write_report(stats, manifest, out / "report.html")
    with atomic_path(out / "config.yaml") as tmp:
        tmp.write_text(_yaml(cfg))
    return stats


def _describe(client) -> str:
    try:
        n = len(client.scheduler_info()["workers"])
    except Exception:  # pragma: no cover - depends on the cluster
        n = "?"
    return f"{n} Dask workers"


def _yaml(cfg: Config) -> str:
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
