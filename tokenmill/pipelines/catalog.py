"""The source catalog (`catalog.yaml`): each corpus's remote layout, file counts, reader format
and published sizes, checked by pydantic.

    cat = load_catalog()
    v = cat.variant("c4", "en")            # a Variant with the source's settings filled in
    v.file_names("train", files="0:8")     # ['en/c4-train.00000-of-01024.json.gz', ...]
    v.root_url()                           # https://huggingface.co/datasets/allenai/c4/resolve/main

Template splits are named here without any network access; listing splits (OSCAR) need their
listing file, which `tokenmill.pipelines.download` fetches.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")
HF_ENDPOINT = "https://huggingface.co"
# Language codes end up in file names: letters, digits and dashes only (no `/`, no `..`).
_LANG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


class CatalogError(ValueError):
    """A catalog lookup that cannot be satisfied (unknown source, variant, language, split)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileSet(_Model):
    """The files of one split: named by a template, or listed in a file of the layout."""

    template: str | None = Field(None, description="{index}, {count}, {lang} format string")
    count: int | None = Field(None, ge=1, description="files; else from the languages table")
    listing: str | None = Field(None, description="layout file listing the files + SHA-256")
    listing_format: Literal["sha256sum", "name_tab_sha256"] = "sha256sum"
    include: str = Field("*", description="glob: the listed files this split reads")
    companion: str | None = Field(None, description="glob: listed files fetched alongside")
    checksums: str | None = Field(None, description="published SHA-256 file for a template")

    @model_validator(mode="after")
    def _one_way(self) -> FileSet:
        if (self.template is None) == (self.listing is None):
            raise ValueError("a split needs exactly one of `template` or `listing`")
        return self


class Variant(_Model):
    description: str
    format: str | None = None
    repo: str | None = None
    revision: str | None = None
    base_url: str | None = None
    gated: bool | None = None
    lang_required: bool = False
    languages: dict[str, dict[str, int]] | list[str] | None = None
    splits: dict[str, FileSet]
    documents: dict[str, int] | None = None
    download_bytes: int | None = None
    notes: str | None = None
    # filled in from the source by Catalog.variant()
    source: str = ""
    name: str = ""

    def language_codes(self) -> list[str] | None:
        if self.languages is None:
            return None
        return list(self.languages)

    def check_lang(self, lang: str | None) -> None:
        if lang is None:
            if self.lang_required or self._needs_lang():
                codes = self.language_codes()
                some = f" (one of: {', '.join(codes)})" if codes else ""
                raise CatalogError(f"{self.source} {self.name} needs --lang{some}")
            return
        if not _LANG_RE.match(lang):
            raise CatalogError(f"invalid language code {lang!r}")
        codes = self.language_codes()
        if codes is not None and lang not in codes:
            raise CatalogError(
                f"{self.source} {self.name} has no language {lang!r}; it has: {', '.join(codes)}"
            )
        if codes is None and not self.lang_required and not self._needs_lang():
            raise CatalogError(f"{self.source} {self.name} takes no --lang")

    def _needs_lang(self) -> bool:
        return any("{lang}" in (s.template or "") + (s.listing or "") for s in self.splits.values())

    def split(self, split: str) -> FileSet:
        try:
            return self.splits[split]
        except KeyError:
            raise CatalogError(
                f"{self.source} {self.name} has no split {split!r}; "
                f"it has: {', '.join(self.splits)}"
            ) from None

    def root_url(self, override: str | None = None) -> str:
        """Where REL paths are fetched from: --base-url, the variant's host, or the hub repo."""
        if override:
            return override.rstrip("/")
        if self.base_url:
            return self.base_url.rstrip("/")
        if not self.repo:
            raise CatalogError(f"{self.source} {self.name}: no host known; give --base-url")
        endpoint = os.environ.get("HF_ENDPOINT", HF_ENDPOINT).rstrip("/")
        return f"{endpoint}/datasets/{self.repo}/resolve/{self.revision or 'main'}"

    def file_count(self, split: str, lang: str | None = None) -> int | None:
        """Files in a template split (None for a listing split: known once listed)."""
        fs = self.split(split)
        if fs.listing is not None:
            return None
        if fs.count is not None:
            return fs.count
        if isinstance(self.languages, dict) and lang in self.languages:
            counts = self.languages[lang]
            if split in counts:
                return counts[split]
        raise CatalogError(f"{self.source} {self.name}: no file count for {split} {lang}")

    def file_names(self, split: str = "train", lang: str | None = None, files=None) -> list[str]:
        """REL paths of a template split, optionally sliced (`files`: see parse_files)."""
        self.check_lang(lang)
        fs = self.split(split)
        if fs.template is None:
            raise CatalogError(
                f"{self.source} {self.name} {split} is listed in {fs.listing}: fetch it first"
            )
        count = self.file_count(split, lang)
        assert count is not None
        return [fs.template.format(index=i, count=count, lang=lang) for i in select(count, files)]

    def listing_path(self, split: str, lang: str | None) -> str | None:
        fs = self.split(split)
        return None if fs.listing is None else fs.listing.format(lang=lang)


class Source(_Model):
    title: str
    homepage: str | None = None
    license: str | None = None
    format: str | None = None
    fields: str | None = None
    repo: str | None = None
    revision: str = "main"
    base_url: str | None = None
    gated: bool = False
    default_dest: str | None = Field(None, description="{source}, {variant}; else data/S/V")
    default_variant: str
    variants: dict[str, Variant]
    notes: str | None = None

    @model_validator(mode="after")
    def _default_exists(self) -> Source:
        if self.default_variant not in self.variants:
            raise ValueError(f"default_variant {self.default_variant!r} is not a variant")
        return self


class Catalog(_Model):
    sources: dict[str, Source]

    def source(self, name: str) -> Source:
        try:
            return self.sources[name]
        except KeyError:
            raise CatalogError(
                f"unknown source {name!r}; the catalog has: {', '.join(self.sources)}"
            ) from None

    def variant(self, name: str, variant: str | None = None) -> Variant:
        """A source's variant with the source-level settings filled in."""
        src = self.source(name)
        key = src.default_variant if variant is None else variant
        if key not in src.variants:
            raise CatalogError(f"{name} has no variant {key!r}; it has: {', '.join(src.variants)}")
        v = src.variants[key]
        return v.model_copy(
            update={
                "source": name,
                "name": key,
                "format": v.format or src.format,
                "repo": v.repo or src.repo,
                "revision": v.revision or src.revision,
                "base_url": v.base_url or (None if v.repo else src.base_url),
                "gated": src.gated if v.gated is None else v.gated,
            }
        )

    def title(self, name: str, variant: str | None = None) -> str:
        v = self.variant(name, variant)
        return f"{name} {v.name}" + (f" ({v.repo})" if v.repo else "")


@functools.cache
def load_catalog(path: str | os.PathLike | None = None) -> Catalog:
    """The bundled catalog (or another YAML file of the same shape)."""
    data = yaml.safe_load(Path(path or CATALOG_PATH).read_text(encoding="utf-8"))
    return Catalog.model_validate(data)


def parse_files(spec: str | None) -> list[slice | int] | None:
    """`--files` as a list of Python-style slices and indices: "0:8", "5", "10:", "0:100:10",
    "0:4,9". None or "" or ":" means every file."""
    if spec is None or not str(spec).strip():
        return None
    out: list[slice | int] = []
    for part in str(spec).split(","):
        part = part.strip()
        if not re.fullmatch(r"-?\d*(:-?\d*){0,2}", part) or not part:
            raise CatalogError(f"--files {spec!r}: expected START:STOP[:STEP] or an index")
        if ":" in part:
            bits = [int(b) if b else None for b in part.split(":")]
            out.append(slice(*bits))
        else:
            out.append(int(part))
    return out


def select(count: int, files) -> list[int]:
    """The indices of `count` files chosen by `files` (a spec string or parse_files' list),
    in order and without repeats."""
    specs = parse_files(files) if isinstance(files, str) or files is None else files
    if specs is None:
        return list(range(count))
    chosen: list[int] = []
    for s in specs:
        if isinstance(s, slice):
            chosen.extend(range(count)[s])
        else:
            if not -count <= s < count:
                raise CatalogError(f"--files index {s} is out of range: there are {count} files")
            chosen.append(s % count)
    seen: set[int] = set()
    return [i for i in chosen if not (i in seen or seen.add(i))]


def natural_key(name: str):
    """Sort key that puts part_2 before part_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
