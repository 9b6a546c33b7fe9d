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
import math
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console

from tokenmill.config import Config
from tokenmill.filters.minhash import LSH
from tokenmill.pipelines.engine import (
    Engine,
    Task,
    atomic_path,
    dask_client,
    output_lock,
    read_json,
    sweep_temporaries,
    write_json,
)
from tokenmill.pipelines.stages import (
    Partition,
    dedup_bucket,
    near_bucket,
    plan_shards,
    process_partition,
    scan_file,
    tokenize_partition,
    train_tokenizer,
    verify_edges,
    write_shard,
)

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


def relative_names(files: list[str]) -> list[str]:
    """Stable names of a source's inputs for document ids: local files relative to their
    common folder; URLs and specs without their scheme."""
    if all("://" not in f and not f.startswith("datasets:") for f in files):
        root = os.path.commonpath([os.path.dirname(f) for f in files])
        return [os.path.relpath(f, root) for f in files]
    return [f.split("://", 1)[-1].removeprefix("datasets:") for f in files]


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
    saved = work / "inputs.json"
    current = _identities(files)
    if not saved.exists():
        if any((work / "scan").rglob("*.json")):
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
    saved = work / "config.json"
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
    work = out / "work"
    if fresh:
        for name in _OUTPUTS:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    swept = sweep_temporaries(out)
    if swept:
        log.info("removed %d temporary files a stopped run left in %s", len(swept), out)
    work.mkdir(parents=True, exist_ok=True)
    _check_config(cfg, work)
    console = console or Console(stderr=True)
    t_start = time.perf_counter()

    stages: dict[str, dict] = {}
    if not any(s.catalog for s in cfg.sources):  # fail fast, before starting a cluster
        files = {s.name: expand_paths(s.paths, s.name) for s in cfg.sources}
        _check_inputs(files, work)

    with dask_client(workers or cfg.workers, scheduler) as client:
        engine = Engine(client, console, quiet)
        if not quiet:
            console.print(f"[bold]tokenmill prepare[/] -> {out}  ({_describe(client)})")
        if any(s.catalog for s in cfg.sources):
            _fetch_catalog_sources(cfg, client, console, quiet)
            files = {s.name: expand_paths(s.paths, s.name) for s in cfg.sources}
            _check_inputs(files, work)

        # scan: records per file, to cut big files into partitions
        scan_tasks = []
        for s in cfg.sources:
            for i, f in enumerate(files[s.name]):
                scan_tasks.append(
                    Task(
                        f"{s.name}-{i}",
                        scan_file,
                        (f, s.format, cfg.input.max_doc_bytes),
                        work / "scan" / s.name / f"{i:05d}.json",
                    )
                )
        scan = engine.run_stage("scan", scan_tasks)
        stages["scan"] = _stage_json(scan)
        partitions = _partitions(cfg, files, scan.counts)
        total_records = sum(c["records"] for c in scan.counts)
        buckets = cfg.dedup.buckets or max(1, min(1024, math.ceil(total_records / 1_000_000)))
        buckets = _pin(work / "buckets.json", buckets)
        # a document has one exact hash but `bands` LSH keys: size near buckets by keys
        # (~2M keys, ~170 MB per task), not by documents
        bands = LSH(
            cfg.dedup.minhash.threshold,
            cfg.dedup.minhash.num_perm,
            1,
            1,
            cfg.dedup.minhash.bands,
            cfg.dedup.minhash.rows,
        ).bands
        near_buckets = max(1, min(4096, math.ceil(total_records * bands / 2_000_000)))
        near_buckets = _pin(work / "near_buckets.json", near_buckets)

        # process: one fused pass per partition
        proc = engine.run_stage(
            "process",
            [
                Task(
                    f"{p.source}-{p.key}",
                    process_partition,
                    (p, cfg, str(work), buckets, near_buckets),
                    work / "docs" / p.source / f"{p.key}.json",
                )
                for p in partitions
            ],
        )
        stages["process"] = _stage_json(proc)

        # exact dedup: one task per hash bucket
        bucket_files: list[str] = []
        if cfg.dedup.exact:
            tasks = []
            for b in range(buckets):
                specs = _bucket_specs(work, partitions, proc.counts, "hashes", b)
                path = work / "dedup" / f"b{b:04d}.npy"
                bucket_files.append(str(path))
                tasks.append(
                    Task(
                        f"b{b}",
                        dedup_bucket,
                        (b, specs, str(path)),
                        work / "dedup" / f"b{b:04d}.json",
                    )
                )
            dd = engine.run_stage("dedup", tasks)
            stages["dedup"] = _stage_json(dd)
            sizes: dict[str, int] = {}
            for c in dd.counts:
                for k, v in c["cluster_sizes"].items():
                    sizes[k] = sizes.get(k, 0) + v
            stages["dedup"]["cluster_sizes"] = dict(sorted(sizes.items(), key=lambda x: int(x[0])))

        # near dedup: LSH band buckets -> candidate edges -> connected components on the cluster
        near_files: list[str] = []
        if cfg.dedup.minhash.enabled:
            near_dir = work / "dedup" / "near"
            tasks = []
            for b in range(near_buckets):
                specs = _bucket_specs(work, partitions, proc.counts, "bands", b)
                tasks.append(
                    Task(
                        f"n{b}",
                        near_bucket,
                        (b, specs, str(near_dir / f"e{b:04d}.npy")),
                        near_dir / f"e{b:04d}.json",
                    )
                )
            nb = engine.run_stage("near", tasks)
            stages["near"] = _stage_json(nb)
            stages["near"]["edges"] = sum(c["edges"] for c in nb.counts)
            done = near_dir / "components.json"
            if not done.exists():
                edge_files = [
                    str(near_dir / f"e{c['bucket']:04d}.npy") for c in nb.counts if c["edges"]
                ]
                if cfg.dedup.minhash.verify and edge_files:
                    docs_files = {
                        p.ordinal: str(work / "docs" / p.source / f"{p.key}.parquet")
                        for p in partitions
                    }
                    mh = cfg.dedup.minhash
                    vr = engine.run_stage(
                        "verify",
                        [
                            Task(
                                Path(f).stem,
                                verify_edges,
                                (f, docs_files, mh.threshold, mh.ngram, f[:-4] + ".verified.npy"),
                                Path(f[:-4] + ".verified.json"),
                            )
                            for f in edge_files
                        ],
                    )
                    stages["verify"] = _stage_json(vr)
                    stages["verify"]["rejected"] = sum(c["rejected"] for c in vr.counts)
                    edge_files = [
                        f[:-4] + ".verified.npy"
                        for f, c in zip(edge_files, vr.counts, strict=True)
                        if c["edges"]
                    ]
                info = {"files": [], "cluster_sizes": {}, "rounds": [], "wall_s": 0.0}
                if edge_files:
                    import numpy as np

                    from tokenmill.filters.components import (
                        LOCAL_MAX_EDGES,
                        cluster_sizes,
                        components_local,
                        connected_components,
                        save_removed,
                    )

                    t0 = time.perf_counter()
                    n_edges = sum(int(np.load(f, mmap_mode="r").shape[0]) for f in edge_files)
                    info["method"] = "local" if n_edges <= LOCAL_MAX_EDGES else "dask"
                    if info["method"] == "local":  # a small graph: no Dask shuffle rounds
                        labels = components_local(edge_files, rounds=info["rounds"])
                    else:
                        labels = connected_components(client, edge_files, rounds=info["rounds"])
                    info["files"] = save_removed(labels, str(near_dir / "removed"))
                    info["cluster_sizes"] = cluster_sizes(labels)
                    info["wall_s"] = round(time.perf_counter() - t0, 3)
                write_json(done, info)
            info = read_json(done)
            near_files = info["files"]
            stages["near"].update(
                clusters=sum(info["cluster_sizes"].values()),
                cluster_sizes=info["cluster_sizes"],
                components_rounds=len(info["rounds"]),
                components_method=info.get("method"),
                components_wall_s=info["wall_s"],
            )

        # tokenizer: train on a deterministic sample, or take the given one
        tok_path = work / "tokenizer.json"
        if cfg.tokenizer.path:
            if not tok_path.exists():
                with atomic_path(tok_path) as tmp:
                    shutil.copyfile(cfg.tokenizer.path, tmp)
            stages["tokenizer"] = {"path": cfg.tokenizer.path, "trained": False}
        else:
            kept_bytes = sum(c["bytes_kept"] for c in proc.counts)
            rate = min(1.0, cfg.tokenizer.train.sample_bytes / max(kept_bytes, 1))
            docs_files = [
                (str(work / "docs" / p.source / f"{p.key}.parquet"), p.ordinal) for p in partitions
            ]
            tr = engine.run_stage(
                "tokenizer",
                [
                    Task(
                        "train",
                        train_tokenizer,
                        (cfg, docs_files, bucket_files + near_files, rate, str(tok_path)),
                        work / "tokenizer.done.json",
                    )
                ],
            )
            stages["tokenizer"] = {**_stage_json(tr), **tr.counts[0], "trained": True}

        # tokenize: one task per partition
        split = {s.name: s.split_languages for s in cfg.sources}
        docs_paths = {
            p.ordinal: str(work / "docs" / p.source / f"{p.key}.parquet") for p in partitions
        }
        tok = engine.run_stage(
            "tokenize",
            [
                Task(
                    f"{p.source}-{p.key}",
                    tokenize_partition,
                    (
                        p.key,
                        p.ordinal,
                        str(work / "docs" / p.source / f"{p.key}.parquet"),
                        bucket_files,
                        near_files,
                        str(tok_path),
                        cfg.tokenizer.eod_token,
                        str(work / "tokens" / p.source / p.key),
                        split[p.source],
                        str(out / "removed" / p.source / f"{p.key}.dedup.parquet")
                        if cfg.keep_removed
                        else None,
                        docs_paths if cfg.keep_removed else None,
                    ),
                    work / "tokens" / p.source / f"{p.key}.json",
                )
                for p in partitions
            ],
        )
        stages["tokenize"] = _stage_json(tok)

        # shards: cut each source's documents (per language where asked), in order, into
        # budget-sized shards
        shard_tasks = []
        for s in cfg.sources:
            mine = [
                (p, c) for p, c in zip(partitions, tok.counts, strict=True) if p.source == s.name
            ]
            groups = (
                sorted({g for _, c in mine for g in c["groups"]}) if s.split_languages else [""]
            )
            for group in groups:
                base = [
                    str(work / "tokens" / s.name / p.key) + (f".{group}" if group else "")
                    for p, c in mine
                    if group in c["groups"]
                ]
                name = f"{s.name}_{group}" if group else s.name
                plan = plan_shards([b + ".sizes.npy" for b in base], cfg.shards.tokens_per_shard)
                for i, runs in enumerate(plan):
                    prefix = out / "shards" / s.name / f"{name}_{i:05d}"
                    shard_tasks.append(
                        Task(
                            f"{name}-{i}",
                            write_shard,
                            (
                                str(prefix),
                                [(base[p], a, b) for p, a, b in runs],
                                s.name,
                                mine[0][1]["dtype"],
                                group or None,
                            ),
                            work / "shards" / s.name / f"{name}_{i:05d}.json",
                        )
                    )
        sh = engine.run_stage("shards", shard_tasks)
        stages["shards"] = _stage_json(sh)

    with atomic_path(out / "tokenizer.json") as tmp:
        shutil.copyfile(tok_path, tmp)
    from tokenmill.report.stats import build_stats
    from tokenmill.shards.manifest import build_manifest

    manifest = build_manifest(cfg, out, sh.counts)
    write_json(out / "manifest.json", manifest)
    stats = build_stats(
        cfg,
        partitions,
        proc.counts,
        tok.counts,
        sh.counts,
        stages,
        wall_s=time.perf_counter() - t_start,
    )
    write_json(out / "stats.json", stats)
    from tokenmill.report.html import write_report

    write_report(stats, manifest, out / "report.html")
    with atomic_path(out / "config.yaml") as tmp:
        tmp.write_text(_yaml(cfg))
    return stats


def _partitions(cfg: Config, files: dict[str, list[str]], scans: list[dict]) -> list[Partition]:
    parts: list[Partition] = []
    it = iter(scans)
    step = cfg.input.partition_docs
    for s in cfg.sources:
        names = relative_names(files[s.name])
        for i, f in enumerate(files[s.name]):
            n = next(it)["records"]
            slices = max(1, math.ceil(n / step))
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
                    )
                )
    return parts


def _bucket_specs(work: Path, partitions, counts, kind: str, b: int) -> list:
    """(file, start, end) of bucket `b` in every partition's `hashes` or `bands` records."""
    offsets = "bucket_offsets" if kind == "hashes" else "band_offsets"
    return [
        (str(work / "docs" / p.source / f"{p.key}.{kind}.npy"), c[offsets][b], c[offsets][b + 1])
        for p, c in zip(partitions, counts, strict=True)
    ]


def _pin(path: Path, value: int) -> int:
    """Keep a value chosen by the first run of an OUT (a resumed run must agree with it)."""
    if path.exists():
        return int(read_json(path)["value"])
    write_json(path, {"value": value})
    return value


def _stage_json(res) -> dict:
    """Tasks run and skipped, wall and summed task seconds, and the stage's totals of the
    count fields it reports (documents, bytes, tokens) for throughput."""
    out = {
        "tasks": len(res.counts),
        "ran": res.ran,
        "skipped": res.skipped,
        "wall_s": round(res.wall_s, 3),
        "task_s": round(sum(c.get("wall_s", 0.0) for c in res.counts), 3),
    }
    for key in (
        "records",
        "documents_in",
        "documents_kept",
        "documents",
        "bytes_in",
        "bytes_kept",
        "tokens",
        "hashes",
        "duplicates",
    ):
        if any(key in c for c in res.counts):
            out[key] = sum(int(c.get(key, 0)) for c in res.counts)
    return out


def _describe(client) -> str:
    try:
        n = len(client.scheduler_info()["workers"])
    except Exception:  # pragma: no cover - depends on the cluster
        n = "?"
    return f"{n} Dask workers"


def _yaml(cfg: Config) -> str:
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
