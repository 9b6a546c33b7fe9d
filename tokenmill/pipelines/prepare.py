"""`tokenmill prepare`: the config turned into stages of partition tasks, run on Dask.

    scan -> process (read, langid, quality, hashes) -> dedup (exact, per bucket)
         -> tokenizer (train or load) -> tokenize -> shards -> manifest, stats, report

Intermediate files live in OUT/work/ and make a rerun resume: every completed task left a
counts file there and is skipped. What a rerun may reuse is pinned by its first run:

- the config (OUT/work/config.json, without `output` and `workers`, which change how a run
  is executed, not what it writes): a different one is refused (`ConfigMismatch`);
- the inputs (OUT/work/inputs.json): each input file's identity, see `input_identity`. A
  rerun whose inputs were added, removed or modified is refused before any work
  (`InputsChanged`), naming the files, since completed work belongs to the files it read.

`--fresh` deletes the earlier outputs and starts over. One run at a time holds OUT
(OUT/.lock, `engine.output_lock`); the lock is taken before `--fresh` deletes anything, and
the temporaries a killed run left (`.NAME.tmp-*`) are swept while holding it. Every output is
written under a temporary name and renamed, so a failure (a full disk) leaves either the
previous file or none, never a truncated one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console

from tokenmill.config import Config
from tokenmill.fsio import atomic_path, read_json, sweep_temporaries, write_json
from tokenmill.pipelines.engine import Engine, dask_client, output_lock
from tokenmill.pipelines.stages import STAGES, Run
from tokenmill.pipelines.workdir import WorkDir

log = logging.getLogger(__name__)

# Config sections that do not change what is written (how a run is executed, not its result).
_EXECUTION_ONLY = {"output", "workers"}


class ConfigMismatch(RuntimeError):
    """OUT holds work made with another config."""


class InputsChanged(RuntimeError):
    """OUT holds work made from other inputs (files added, removed or modified)."""


# Outputs of a run, deleted by --fresh (OUT/.lock stays: it may be held while they go).
_OUTPUTS = (
    "work",
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


# An input's identity reads this much at each end of a local file: a rewrite that keeps the
# size and the modification time still changes the fingerprint if it touches either end.
FINGERPRINT_BYTES = 64 << 10

# What fsspec's `info` may report that changes when a remote file does: HTTP headers (ETag,
# Last-Modified, Content-MD5), S3 (ETag, LastModified, VersionId), GCS (generation, md5Hash,
# crc32c, updated), Azure (etag, last_modified), the Hugging Face hub (blob_id, lfs sha256),
# and mtime / created where a filesystem gives them.
_REMOTE_IDENTITY = (
    "ETag",
    "etag",
    "Content-MD5",
    "Digest",
    "Last-Modified",
    "LastModified",
    "last_modified",
    "VersionId",
    "generation",
    "md5Hash",
    "crc32c",
    "updated",
    "mtime",
    "created",
    "blob_id",
    "lfs",
)


def input_identity(path: str) -> dict:
    """What an input is, to tell whether a rerun reads the same files as the first run.

    - a local file: its path, size, modification time (ns) and `ends_sha256`, the SHA-256 of
      its first and last FINGERPRINT_BYTES (the whole file when smaller than both);
    - an fsspec URL: its size and whatever of ETag / checksums / last-modified / version
      fsspec's `info` reports (`_REMOTE_IDENTITY`); its bytes are not read;
    - a `datasets:` spec: the spec (pin `revision=` for a hub dataset: nothing else tells a
      hub dataset's versions apart) and the identities of its `data_files`.
    """
    from tokenmill.pipelines.readers import HF_SPEC_PREFIX, is_url, local_path

    if path.startswith(HF_SPEC_PREFIX):
        from tokenmill.pipelines.readers import expand_inputs, parse_hf_spec

        files = parse_hf_spec(path).data_files
        found = expand_inputs(files, path) if files else []
        return {"path": path, "data_files": [input_identity(f) for f in found]}
    if is_url(path):
        import fsspec

        fs, p = fsspec.core.url_to_fs(path)
        info = fs.info(p)
        ident = {"path": path, "size": info.get("size")}
        for key in _REMOTE_IDENTITY:
            if info.get(key) is not None:
                v = info[key]
                ident[key] = v if isinstance(v, int | str) else str(v)
        return ident
    local = local_path(path)
    st = os.stat(local)
    h = hashlib.sha256()
    with open(local, "rb") as f:
        if st.st_size <= 2 * FINGERPRINT_BYTES:
            h.update(f.read())
        else:
            h.update(f.read(FINGERPRINT_BYTES))
            f.seek(st.st_size - FINGERPRINT_BYTES)
            h.update(f.read(FINGERPRINT_BYTES))
    return {
        "path": path,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ends_sha256": h.hexdigest(),
    }


def _identities(files: dict[str, list[str]]) -> dict[str, list[dict]]:
    # a thread per file at a time, up to 16: remote HEADs and cold-cache reads wait, not work
    flat = [f for fs in files.values() for f in fs]
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(flat)))) as pool:
        found = dict(zip(flat, pool.map(input_identity, flat), strict=True))
    return {name: [found[f] for f in fs] for name, fs in files.items()}


def _check_inputs(files: dict[str, list[str]], work: Path) -> None:
    """Record the inputs at a first run; refuse a rerun whose inputs are not those."""
    wd = WorkDir.of_work(work)
    saved = wd.inputs()
    current = _identities(files)
    if not saved.exists():
        if any(wd.scan_dir().rglob("*.json")):
            raise InputsChanged(
                f"{work} holds completed work but no record of the inputs it read (it was made "
                "by an older tokenmill): rerun with --fresh to start over"
            )
        write_json(saved, {"version": 1, "sources": current})
        return
    old = read_json(saved)["sources"]
    changes = []
    for name in sorted(set(old) | set(current)):
        changes += _changes(name, old.get(name, []), current.get(name, []))
    if changes:
        raise InputsChanged(
            f"the inputs changed since the first run in {work.parent}: {'; '.join(changes)}. "
            "Its completed work was made from the old inputs: rerun with --fresh to start over "
            f"with the current ones, or restore the old inputs (listed in {saved})"
        )


def _changes(source: str, old: list[dict], new: list[dict], show: int = 3) -> list[str]:
    """What differs between two identity lists of a source, in words."""
    before = {i["path"]: i for i in old}
    after = {i["path"]: i for i in new}
    added = [p for p in after if p not in before]
    removed = [p for p in before if p not in after]
    modified = [_modified(before[p], after[p]) for p in after if p in before]
    modified = [m for m in modified if m]

    def listed(paths: list[str]) -> str:
        more = f" and {len(paths) - show} more" if len(paths) > show else ""
        return ", ".join(paths[:show]) + more

    out = []
    if added:
        out.append(f"source {source!r}: {len(added)} added ({listed(added)})")
    if removed:
        out.append(f"source {source!r}: {len(removed)} removed ({listed(removed)})")
    if modified:
        out.append(f"source {source!r}: {len(modified)} modified ({listed(modified)})")
    if not out and [i["path"] for i in old] != [i["path"] for i in new]:
        out.append(f"source {source!r}: the same files in another order")
    return out


def _modified(old: dict, new: dict) -> str | None:
    if old == new:
        return None
    path = new["path"]
    if old.get("size") != new.get("size"):
        return f"{path}: size {old.get('size')} -> {new.get('size')}"
    if "mtime_ns" in new and {**old, "mtime_ns": 0} == {**new, "mtime_ns": 0}:
        # a copy without -p or a `touch`: the bytes may be the same, but what a writer
        # changed in the middle of a file keeps its size and both ends; only the time tells
        return (
            f"{path}: modification time only (size and first/last "
            f"{FINGERPRINT_BYTES >> 10} KiB unchanged; `touch -d @{old['mtime_ns'] / 1e9:.9f}` "
            "restores it if the contents are the same)"
        )
    if old.get("ends_sha256") != new.get("ends_sha256"):
        return f"{path}: contents changed (same size)"
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return f"{path}: {', '.join(changed)} changed"


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


def _check_config(cfg: Config, work: Path) -> None:
    """Record the config at a first run; refuse a rerun with another one."""
    saved = WorkDir.of_work(work).config()
    current = cfg.model_dump(mode="json", exclude=_EXECUTION_ONLY)
    if saved.exists():
        old = read_json(saved)
        if old != current:
            changed = sorted(k for k in set(old) | set(current) if old.get(k) != current.get(k))
            raise ConfigMismatch(
                f"{work.parent} holds a run made with a different config (changed: "
                f"{', '.join(changed)}). Rerun with --fresh to start over, or use another --out."
            )
    else:
        write_json(saved, current)


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
    _check_config(cfg, wd.work)


def _inputs(cfg: Config, wd: WorkDir) -> dict[str, list[str]]:
    """Each source's input files, checked against those of the first run."""
    files = {s.name: expand_paths(s.paths, s.name) for s in cfg.sources}
    _check_inputs(files, wd.work)
    return files


def _finish(run: Run) -> dict:
    """The tokenizer, manifest, stats, report and config of a completed run; the stats."""
    from tokenmill.report.html import write_report
    from tokenmill.report.stats import build_stats
    from tokenmill.shards.manifest import build_manifest

    out, cfg = run.wd.out, run.cfg
    with atomic_path(out / "tokenizer.json") as tmp:
        shutil.copyfile(run.wd.tokenizer(), tmp)
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
