"""OUT/manifest.json: the tokenizer, every shard with its counts and the size and SHA-256 of
each of its files, the mixture weights and the `--data-path` string Megatron-DeepSpeed takes.

`load_manifest` is the one way in: it checks that a file is a tokenmill manifest (its
`format` marker and a version this code reads, the keys and types every reader relies on)
and says in one line what is wrong when it is not, instead of a KeyError deep in a command.

Versions: 2 adds `format` and each shard's `files` ({"bin", "idx", "docs.parquet"}: bytes and
sha256). Version 1 manifests (no checksums) are still read: their shards get the structural
and size checks, and `tokenmill verify` says it had no checksum to compare.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

from tokenmill.config import Config

FORMAT = "tokenmill-manifest"
MANIFEST_VERSION = 2
READABLE_VERSIONS = (1, 2)
# The files of a shard, by the suffix after its prefix; the first two are the Megatron shard.
SHARD_FILES = ("bin", "idx", "docs.parquet")


class ManifestError(ValueError):
    """A manifest.json that is missing, not JSON, or not a tokenmill manifest (one line)."""


class ShardsChanged(ValueError):
    """Shards of a run that no longer match what the shard stage wrote: no manifest is built."""


def build_manifest(
    cfg: Config, out: Path, shard_counts: list[dict], jobs: int | None = None
) -> dict:
    """The manifest of a finished run. A shard's `files` come from its count when the shard
    writer recorded them, else they are hashed here (streaming, `jobs` threads)."""
    from tokenizers import Tokenizer

    from tokenmill.shards.megatron import dtype_for_vocab
    from tokenmill.shards.verify import REWRITE_HINT, check_shard, file_records

    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    vocab = tok.get_vocab_size()
    # A rerun of a finished prepare rebuilds the manifest from the shard tasks' counts: a
    # shard damaged since it was written must not be listed (nor, below, its damage hashed).
    dtype = dtype_for_vocab(vocab).name
    bad = [st for c in shard_counts if not (st := check_shard(out, c, dtype)).ok]
    if bad:
        shown = "; ".join(f"{os.path.relpath(st.prefix, out)}: {st.problems[0]}" for st in bad[:3])
        raise ShardsChanged(
            f"{len(bad)} of {len(shard_counts)} shards in {out} no longer match what the shard "
            f"stage wrote: {shown}. The manifest was not written; {REWRITE_HINT}"
        )
    files = file_records([c["prefix"] for c in shard_counts if not c.get("files")], jobs=jobs)
    shards = [
        {
            "prefix": os.path.relpath(c["prefix"], out),
            "source": c["source"],
            **({"lang": c["lang"]} if c.get("lang") else {}),
            "documents": c["documents"],
            "tokens": c["tokens"],
            "files": c.get("files") or files[c["prefix"]],
        }
        for c in shard_counts
    ]
    tokens = {s.name: 0 for s in cfg.sources}
    for s in shards:
        tokens[s["source"]] += s["tokens"]
    present = {s.name: s.weight for s in cfg.sources if tokens[s.name] > 0}
    total_w = sum(present.values()) or 1.0
    mixture = {name: w / total_w for name, w in present.items()}
    return {
        "format": FORMAT,
        "version": MANIFEST_VERSION,
        "tokenizer": {
            "path": "tokenizer.json",
            "vocab_size": vocab,
            "eod_token": cfg.tokenizer.eod_token,
            "eod_id": tok.token_to_id(cfg.tokenizer.eod_token),
            "pad_id": tok.token_to_id(cfg.tokenizer.pad_token),
            "dtype": dtype_for_vocab(vocab).name,
        },
        "sources": {
            name: {"tokens": n, "weight": mixture.get(name, 0.0)} for name, n in tokens.items()
        },
        "shards": shards,
        "mixture": mixture,
        "budget": None,
        "data_path": data_path(shards, mixture, tokens),
    }


def data_path(shards: list[dict], mixture: dict[str, float], tokens: dict[str, int]) -> str:
    """Megatron's blended `--data-path "w1 prefix1 w2 prefix2 ..."`: each source gets its
    mixture weight, shared among its shards by their tokens (prefixes relative to OUT)."""
    parts = []
    for s in shards:
        if tokens[s["source"]] and s["tokens"]:
            w = mixture[s["source"]] * s["tokens"] / tokens[s["source"]]
            parts.append(f"{w:.6g} {s['prefix']}")
    return " ".join(parts)


def manifest_path(target: str | os.PathLike) -> Path:
    """OUT/manifest.json for an OUT folder, or the path itself."""
    p = Path(target)
    return p / "manifest.json" if p.is_dir() else p


def load_manifest(target: str | os.PathLike) -> dict:
    """Read and check OUT/manifest.json (or the file given); ManifestError says what is wrong."""
    path = manifest_path(target)
    if not path.exists():
        raise ManifestError(f"{path} not found: run `tokenmill prepare --out {path.parent}` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path} is not a tokenmill manifest: not UTF-8 text ({e})") from e
    except json.JSONDecodeError as e:
        raise ManifestError(
            f"{path} is not valid JSON ({e}): a run that stopped while writing it leaves none; "
            "rerun `tokenmill prepare` to write it again"
        ) from e
    check_manifest(data, path)
    return data


_NOT_OURS = "is not a tokenmill manifest"
_REDO = "rerun `tokenmill prepare` to write a complete one"


def check_manifest(data, path: str | os.PathLike = "manifest.json") -> None:
    """Raise ManifestError unless `data` is a manifest this code reads (see the module doc)."""
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a string", type(None): "null"}.get(type(data), "a number")
        raise ManifestError(f"{path} {_NOT_OURS}: it holds {kind}, not a JSON object")
    fmt, version = data.get("format"), data.get("version")
    if fmt is None and version is None:
        raise ManifestError(
            f"{path} {_NOT_OURS}: it has no 'format' or 'version' key; give the "
            "manifest.json (or OUT folder) that `tokenmill prepare` wrote"
        )
    if fmt is not None and fmt != FORMAT:
        raise ManifestError(f"{path} {_NOT_OURS}: its format is {fmt!r}, not {FORMAT!r}")
    if (
        not isinstance(version, int)
        or isinstance(version, bool)
        or version not in (READABLE_VERSIONS)
    ):
        raise ManifestError(
            f"{path}: manifest version {version!r} is not one this tokenmill reads "
            f"({', '.join(map(str, READABLE_VERSIONS))}): upgrade tokenmill, or {_REDO}"
        )
    if version >= 2 and fmt is None:
        raise ManifestError(f"{path} {_NOT_OURS}: version {version} without 'format'")
    need = {"tokenizer": dict, "shards": list, "mixture": dict, "data_path": str}
    missing = [k for k in need if k not in data]
    if missing:
        raise ManifestError(
            f"{path} lacks key{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(k) for k in missing)}: {_REDO}"
        )
    for k, t in need.items():
        if not isinstance(data[k], t):
            raise ManifestError(f"{path}: {k!r} should be a {_TYPE_NAMES[t]}: {_REDO}")
    tok = data["tokenizer"]
    if not _is_int(tok.get("vocab_size")):
        raise ManifestError(f"{path}: tokenizer.vocab_size is missing or not an integer: {_REDO}")
    if tok.get("dtype") not in ("uint16", "int32"):
        raise ManifestError(
            f"{path}: tokenizer.dtype is {tok.get('dtype')!r}, not 'uint16' or 'int32': {_REDO}"
        )
    for i, s in enumerate(data["shards"]):
        _check_shard_entry(s, f"{path}: shards[{i}]", version)


_TYPE_NAMES = {dict: "JSON object", list: "JSON list", str: "string"}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_shard_entry(s, where: str, version: int) -> None:
    if not isinstance(s, dict):
        raise ManifestError(f"{where} is not a JSON object: {_REDO}")
    for k, ok in (
        ("prefix", lambda v: isinstance(v, str) and v),
        ("source", lambda v: isinstance(v, str)),
        ("documents", lambda v: _is_int(v) and v >= 0),
        ("tokens", lambda v: _is_int(v) and v >= 0),
    ):
        if k not in s:
            raise ManifestError(f"{where} lacks {k!r}: {_REDO}")
        if not ok(s[k]):
            raise ManifestError(f"{where}.{k} has an unusable value {s[k]!r}: {_REDO}")
    p = PurePosixPath(s["prefix"])
    if p.is_absolute() or ".." in p.parts:
        # shards are read relative to OUT: a prefix must not point outside it
        raise ManifestError(f"{where}.prefix {s['prefix']!r} is not a path inside OUT: {_REDO}")
    if version < 2 and "files" not in s:
        return
    files = s.get("files")
    if not isinstance(files, dict) or not {"bin", "idx"} <= files.keys():
        raise ManifestError(f"{where} lacks the sizes and checksums of its .bin and .idx: {_REDO}")
    for suffix, rec in files.items():
        if suffix not in SHARD_FILES:
            raise ManifestError(f"{where}.files has an unknown file {suffix!r}: {_REDO}")
        if (
            not isinstance(rec, dict)
            or not _is_int(rec.get("bytes"))
            or not isinstance(rec.get("sha256"), str)
            or len(rec["sha256"]) != 64
        ):
            raise ManifestError(
                f"{where}.files.{suffix} needs 'bytes' (an integer) and 'sha256' "
                f"(64 hex digits): {_REDO}"
            )
