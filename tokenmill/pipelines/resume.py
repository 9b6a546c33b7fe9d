"""What a rerun of `prepare` may reuse, pinned by the first run in OUT/work:

- the config (OUT/work/config.json, without `output` and `workers`, which change how a run
  is executed, not what it writes): a different one is refused (`ConfigMismatch`);
- the inputs (OUT/work/inputs.json): each input file's identity (`input_identity`). A rerun
  whose inputs were added, removed or modified is refused before any work (`InputsChanged`),
  naming the files, since completed work belongs to the files it read.

`check_config` and `check_inputs` record them at a first run and compare at a rerun.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tokenmill.config import Config
from tokenmill.fsio import read_json, write_json
from tokenmill.pipelines.workdir import WorkDir

# Config keys that do not change what is written (how a run is executed, not its result):
# tokenizer.backend picks the encoder, and both give the same ids (tokenize/fastbpe.py)
_EXECUTION_ONLY = {"output": True, "workers": True, "tokenizer": {"backend"}}


class ConfigMismatch(RuntimeError):
    """OUT holds work made with another config."""


class InputsChanged(RuntimeError):
    """OUT holds work made from other inputs (files added, removed or modified)."""


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


def identities(files: dict[str, list[str]]) -> dict[str, list[dict]]:
    # a thread per file at a time, up to 16: remote HEADs and cold-cache reads wait, not work
    flat = [f for fs in files.values() for f in fs]
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(flat)))) as pool:
        found = dict(zip(flat, pool.map(input_identity, flat), strict=True))
    return {name: [found[f] for f in fs] for name, fs in files.items()}


def check_inputs(files: dict[str, list[str]], work: Path) -> None:
    """Record the inputs at a first run; refuse a rerun whose inputs are not those."""
    wd = WorkDir.of_work(work)
    saved = wd.inputs()
    current = identities(files)
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


def _with_defaults(saved: dict) -> dict:
    """A recorded config with the defaults of sections and rules added since it was written
    (an OUT made by an older tokenmill resumes; what it set is still compared as it is)."""
    from pydantic import ValidationError

    try:
        return Config.model_validate(saved).model_dump(mode="json", exclude=_EXECUTION_ONLY)
    except ValidationError:  # a key this tokenmill no longer has: compare as written
        return saved


def check_config(cfg: Config, work: Path) -> None:
    """Record the config at a first run; refuse a rerun with another one."""
    saved = WorkDir.of_work(work).config()
    current = cfg.model_dump(mode="json", exclude=_EXECUTION_ONLY)
    if saved.exists():
        old = _with_defaults(read_json(saved))
        if old != current:
            changed = sorted(k for k in set(old) | set(current) if old.get(k) != current.get(k))
            raise ConfigMismatch(
                f"{work.parent} holds a run made with a different config (changed: "
                f"{', '.join(changed)}). Rerun with --fresh to start over, or use another --out."
            )
    else:
        write_json(saved, current)
