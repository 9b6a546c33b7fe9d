"""The quality rules' table, the config section built from it, and running the rules.

- `RULES`: rule name -> its `Filter` class (tokenmill/filters/base.py), in table order: the
  built-in rows below, then any plugin's (the `tokenmill.rules` entry point group: a name and
  `module:Class`), read once when this module is imported. A name is what configs say in
  `quality.filter_sets` and the key of the rule's parameters, `quality.<name>`.
- `QualityConfig`: the `quality:` section of the run config: one field per rule, typed by the
  rule's own `Params` model (defaults and ranges are written there only), and `filter_sets`:
  per source name, the rules to run, in order.
- `QualityConfig.filter_names(source, default_rules) -> list[str]`: the rules for one source:
  its `filter_sets` entry, else `default_rules` (the caller passes its reader format's, from
  the formats table: `tokenmill.pipelines.readers.formats.default_rules(fmt)`; this package
  imports nothing from pipelines); `basic` is dropped when `basic.enabled` is false.
- `build_filters(names, cfg) -> list[Filter]`: the rules named, configured from `cfg`, in
  that order. Building is cheap: spaCy and the word lists load once per process, on first use.
- `apply_filters(filters, texts, langs, reasons, fields=..., rewritten=...) -> texts`: run
  them on a batch (`fields`: the documents' other fields a rule `needs`, such as `url`;
  `rewritten`: counts what the rules rewrote).

Adding a rule: a module with one `Filter` subclass (its `Params`, `label` and `judge`) and one
row in `_BUILTIN` (or, outside tokenmill, one entry point). Nothing else changes: the config
section, the filter_sets names, the reasons in stats.json and the report follow from the row.

Example:
    quality:
      c4: {min_words_per_line: 3}
      bigscience: {overrides: {fr: {max_word_rep: 0.2}}}
      filter_sets: {mine: [basic, c4, gopher_quality, gopher_repetition]}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from tokenmill.filters.base import DOC_FIELDS, Filter, Rewrites, RuleParams
from tokenmill.filters.bigscience import BigScienceOverride, BigScienceQuality, BigScienceRules
from tokenmill.filters.c4 import C4Params, C4Quality
from tokenmill.filters.fasttext_quality import FastTextQuality
from tokenmill.filters.gopher import (
    GopherQuality,
    GopherQualityParams,
    GopherRepetition,
    GopherRepetitionParams,
)
from tokenmill.filters.pii import PiiRedaction
from tokenmill.filters.quality import BasicParams, BasicQuality
from tokenmill.filters.url import UrlBlockList

ENTRY_POINTS = "tokenmill.rules"

# name -> rule class: the one place a built-in rule is registered
_BUILTIN: dict[str, type[Filter]] = {
    "basic": BasicQuality,
    "c4": C4Quality,
    "gopher_quality": GopherQuality,
    "gopher_repetition": GopherRepetition,
    "bigscience": BigScienceQuality,
    "pii": PiiRedaction,
    "url": UrlBlockList,
    "fasttext_quality": FastTextQuality,
}

# The parameter models under the names they had when the registry copied them.
BasicQualityConfig = BasicParams
C4Rules = C4Params
GopherQualityRules = GopherQualityParams
GopherRepetitionRules = GopherRepetitionParams
__all__ = [
    "BigScienceOverride",
    "BigScienceRules",
    "QualityConfig",
    "RULES",
    "apply_filters",
    "build_filters",
]


def _plugin_rules() -> dict[str, type[Filter]]:
    """The rules other packages register as `tokenmill.rules` entry points."""
    from importlib.metadata import entry_points

    found: dict[str, type[Filter]] = {}
    for ep in entry_points(group=ENTRY_POINTS):
        try:
            cls = ep.load()
        except Exception as e:
            raise ImportError(
                f"quality rule {ep.name!r} (entry point {ep.value}) failed to load: {e}; "
                f"fix or uninstall the package that provides it"
            ) from e
        found[ep.name] = cls
    return found


def _check_row(name: str, cls: Any) -> None:
    if not name.isidentifier():
        raise ValueError(f"quality rule name {name!r} must be an identifier (a config key)")
    if name in ("filter_sets", "filter_names"):
        raise ValueError(f"quality rule name {name!r} is taken by the quality section")
    if not (isinstance(cls, type) and issubclass(cls, Filter)):
        raise TypeError(f"quality rule {name!r}: {cls!r} is not a tokenmill.filters.base.Filter")
    if not issubclass(cls.Params, RuleParams):
        raise TypeError(f"quality rule {name!r}: its Params must subclass RuleParams")
    unknown = [f for f in cls.needs if f not in DOC_FIELDS]
    if unknown:
        raise ValueError(
            f"quality rule {name!r} needs {unknown}; a rule can ask for {list(DOC_FIELDS)}"
        )


def _table() -> Mapping[str, type[Filter]]:
    rows = dict(_BUILTIN)
    for name, cls in _plugin_rules().items():
        if name in rows:
            raise ValueError(f"quality rule {name!r} (a plugin's) is already a built-in rule")
        rows[name] = cls
    for name, cls in rows.items():
        _check_row(name, cls)
    return MappingProxyType(rows)


RULES: Mapping[str, type[Filter]] = _table()


# a Literal of the table's names: an unknown name in filter_sets gets pydantic's literal error
# (`must be one of 'basic', 'c4', ...` in the config's words)
RuleName = Literal[tuple(RULES)]  # type: ignore[valid-type]


class _QualityBase(BaseModel):
    """The `quality:` config section: each rule's parameters and the rules per source."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    filter_sets: dict[str, list[RuleName]] = Field(
        default_factory=dict,
        description="source name -> rules in order; default by format (its default_rules)",
    )

    def filter_names(self, source: str, default_rules: Sequence[str] = ("basic",)) -> list[str]:
        """The rules for one source, in order: its `filter_sets` entry, else `default_rules`
        (its format's, from the formats table)."""
        names = self.filter_sets.get(source)
        if names is None:
            names = default_rules
        return [n for n in names if n != "basic" or self.basic.enabled]

    def resolve_paths(self, resolve: Callable[[str], str]) -> None:
        """Apply `resolve` to every path in the rules' `path_fields` (load_config passes its
        resolver against the config file's folder)."""
        for name in RULES:
            params = getattr(self, name)
            for key in type(params).path_fields:
                value = getattr(params, key)
                if isinstance(value, str):
                    setattr(params, key, resolve(value))
                elif isinstance(value, list | tuple):
                    setattr(params, key, [resolve(v) for v in value])
                elif isinstance(value, dict):
                    setattr(params, key, {k: tuple(map(resolve, v)) for k, v in value.items()})

    def files(self, names: Iterable[str]) -> list[str]:
        """The files the rules `names` read (their `path_fields`; a folder: every file in it,
        sorted), in rule order, each once: what a rerun must find unchanged."""
        out: list[str] = []
        for name in RULES:
            if name not in names:
                continue
            params = getattr(self, name)
            for key in type(params).path_fields:
                value = getattr(params, key)
                paths = [value] if isinstance(value, str) else list(value or ())
                if isinstance(value, dict):
                    paths = [p for v in value.values() for p in v]
                for p in paths:
                    found = sorted(map(str, Path(p).rglob("*"))) if Path(p).is_dir() else [p]
                    out += [f for f in found if os.path.isfile(f) and f not in out]
        return out


QualityConfig = create_model(
    "QualityConfig",
    __base__=_QualityBase,
    __module__=__name__,
    **{name: (cls.Params, Field(default_factory=cls.Params)) for name, cls in RULES.items()},
)
QualityConfig.__doc__ = _QualityBase.__doc__


def build_filters(names: list[str], cfg: Any) -> list[Filter]:
    """The rules named (keys of `RULES`), configured from `cfg` (a QualityConfig), in that
    order."""
    out = []
    for name in names:
        cls = RULES.get(name)
        if cls is None:
            raise ValueError(f"unknown quality filter {name!r}; known: {', '.join(RULES)}")
        out.append(cls(getattr(cfg, name)))
    return out


def apply_filters(
    filters: list[Filter],
    texts: list[str],
    langs: list[str],
    reasons: list[str | None],
    *,
    fields: Mapping[str, Sequence] | None = None,
    rewritten: Rewrites | None = None,
    scores: list[float | None] | None = None,
) -> list[str]:
    """Run `filters` in order, each on the documents still kept (`reasons[i] is None`).

    Fills `reasons` in place with `quality:`-prefixed reasons (`quality:c4:too_few_sentences`)
    and returns the texts, rewritten where a filter rewrites (C4's line rules, `pii`).
    `fields` holds the documents' other fields (`url`), aligned with `texts`, for the rules
    that need them; `rewritten` counts each rule's rewrites; `scores` gets the scores of a
    scoring rule (`fasttext_quality`: None where no such rule judged the document). The one
    place the pipeline and the raw-data report apply quality rules, so both count alike."""
    texts = list(texts)
    for rule in filters:
        rule.apply(texts, langs, reasons, fields=fields, rewritten=rewritten, scores=scores)
    return texts
