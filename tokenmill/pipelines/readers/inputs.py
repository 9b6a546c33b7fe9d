"""What a source's inputs are: `expand_inputs` turns its patterns (local paths and globs,
`file://` URLs, fsspec URLs and globs, `datasets:` specs) into its list of inputs; `is_url`
and `local_path` tell a remote input from a local one."""

from __future__ import annotations

import glob
import os

HF_SPEC_PREFIX = "datasets:"


def is_url(path: str) -> bool:
    """An fsspec URL (s3://, hf://, memory://, https://...), not a local path or file://."""
    return "://" in path and not path.startswith("file://")


def local_path(path: str) -> str:
    """`file://` URLs as plain paths; everything else unchanged."""
    return path.removeprefix("file://") if path.startswith("file://") else path


def expand_inputs(patterns: list[str], source: str) -> list[str]:
    """A source's inputs: local paths and globs, `file://` URLs (given back as local paths),
    fsspec URLs and globs (s3://, gs://, hf://...; given back as URLs) and `datasets:` specs
    (one per streaming shard). In pattern order, each glob sorted, without repeats; a pattern
    that matches nothing is an error."""
    files: list[str] = []
    for pat in patterns:
        if pat.startswith(HF_SPEC_PREFIX):
            from tokenmill.pipelines.readers.hf import expand_hf_spec  # (hf needs this module)

            hits = expand_hf_spec(pat)
        elif is_url(pat):
            hits = _expand_fsspec(pat)
        else:
            pat = local_path(pat)
            hits = sorted(glob.glob(pat, recursive=True)) if glob.has_magic(pat) else [pat]
            hits = [h for h in hits if os.path.isfile(h)]
        if not hits:
            raise FileNotFoundError(f"source {source!r}: no input files match {pat!r}")
        files.extend(hits)
    seen: set[str] = set()
    return [f for f in files if not (f in seen or seen.add(f))]


def _expand_fsspec(url: str) -> list[str]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    if glob.has_magic(path):
        found = fs.glob(path, detail=True)
        names = sorted(p for p, info in found.items() if info.get("type") == "file")
    else:
        try:
            names = [path] if fs.isfile(path) else []
        except FileNotFoundError:
            names = []
    return [fs.unstrip_protocol(p) for p in names]
