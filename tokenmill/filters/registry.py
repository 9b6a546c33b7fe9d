"""Quality-filter configuration and construction: which rule sets run on which source.

API used by the config and the pipeline:

- `QualityConfig`: the `quality:` section of the run config. One field per rule set
  (`basic`, `c4`, `gopher_quality`, `gopher_repetition`, `bigscience`) holding its parameters,
  and `filter_sets`: per source name, the rule sets to run, in order.
- `QualityConfig.filter_names(source, fmt) -> list[str]`: the rule sets for one source: its
  `filter_sets` entry, else `DEFAULT_FILTER_SETS[fmt]`; `basic` is dropped when
  `basic.enabled` is false.
- `DEFAULT_FILTER_SETS`: per reader format. C4 is already C4-cleaned and the Pile has its own
  cleaning, so both get the Gopher repetition rules; OSCAR gets BigScience's rules; generic
  jsonl/parquet get the basic rules only. Every set starts with `basic` (the first, cheap
  checks; it was the only rule set before).
- `build_filters(names, cfg) -> list[filter]`: the filter objects, in the order named. Each is
  called on a batch, `f(texts, langs)`, and returns per document None (keep) or the removal
  reason; a filter with `rewrites = True` (C4) returns `(reasons, new_texts)` instead.
  Filters are cheap to build: spaCy and the word lists load once per process, on first use.

Example:
    quality:
      c4: {min_words_per_line: 3}
      bigscience: {overrides: {fr: {max_word_rep: 0.2}}}
      filter_sets: {mine: [basic, c4, gopher_quality, gopher_repetition]}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from tokenmill.filters.quality import BasicQuality

# The rule sets' published defaults, repeated here so that importing the config stays light
# (the filter modules import numpy and load word lists); tests/filters/test_registry.py checks
# they equal the filters' own defaults.
END_MARKS = (".", "?", "!", '"')
GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
TOP_NGRAMS = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_NGRAMS = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}

FilterName = Literal["basic", "c4", "gopher_quality", "gopher_repetition", "bigscience"]

DEFAULT_FILTER_SETS: dict[str, list[str]] = {
    "c4": ["basic", "gopher_repetition"],
    "pile": ["basic", "gopher_repetition"],
    "oscar2301": ["basic", "bigscience"],
    "oscar2201": ["basic", "bigscience"],
    "oscar2109": ["basic", "bigscience"],
    "oscar2019": ["basic", "bigscience"],
    "jsonl": ["basic"],
    "parquet": ["basic"],
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# a share of a page's lines, words, characters...: a cutoff outside [0, 1] is a typo
Fraction = Annotated[float, Field(ge=0, le=1)]
NgramSize = Annotated[int, Field(ge=2)]


class BasicQualityConfig(_Model):
    """A first, language-agnostic rule set: length, words, symbols."""

    enabled: bool = True
    min_chars: int = Field(50, ge=0)
    min_words: int = Field(5, ge=0)
    max_symbol_fraction: float = Field(
        0.5, ge=0, le=1, description="non-letter, non-space characters"
    )


class C4Rules(_Model):
    """C4's rules; defaults are tensorflow_datasets c4_utils' (see tokenmill/filters/c4.py)."""

    min_words_per_line: int = Field(5, ge=0)
    min_sentences: int = Field(3, ge=0, description="per page, after line filtering")
    max_word_length: int | None = Field(1000, gt=0, description="lines with a longer word go")
    end_marks: list[str] = Field(default_factory=lambda: list(END_MARKS), min_length=1)
    remove_citations: bool = True
    filter_javascript: bool = True
    filter_policy: bool = True
    filter_lorem_ipsum: bool = True
    filter_curly_bracket: bool = True
    bad_words_path: str | None = Field(None, description="one word a line; off when unset")
    languages: list[str] | None = Field(["en"], description="others pass; null: all")


class GopherQualityRules(_Model):
    """Gopher's quality rules (Rae et al. 2021); null disables a rule."""

    min_words: int | None = Field(50, ge=0)
    max_words: int | None = Field(100_000, ge=0)
    min_mean_word_length: float | None = Field(3, gt=0)
    max_mean_word_length: float | None = Field(10, gt=0)
    # a ratio, not a share: a word may hold several '#' or ellipses
    max_symbol_word_ratio: float | None = Field(0.1, ge=0, description="'#' and ellipses per word")
    max_bullet_lines_fraction: float | None = Field(0.9, ge=0, le=1)
    max_ellipsis_lines_fraction: float | None = Field(0.3, ge=0, le=1)
    min_alpha_words_fraction: float | None = Field(0.8, ge=0, le=1)
    min_stop_words: int | None = Field(2, ge=0)
    stop_words: list[str] = Field(default_factory=lambda: list(GOPHER_STOP_WORDS))
    languages: list[str] | None = Field(["en"], description="others pass; null: all")


class GopherRepetitionRules(_Model):
    """Gopher's repetition rules (table A1); null disables a rule."""

    max_duplicate_line_fraction: float | None = Field(0.3, ge=0, le=1)
    max_duplicate_paragraph_fraction: float | None = Field(0.3, ge=0, le=1)
    max_duplicate_line_char_fraction: float | None = Field(0.2, ge=0, le=1)
    max_duplicate_paragraph_char_fraction: float | None = Field(0.2, ge=0, le=1)
    # n -> the cutoff (n >= 2: a "repeated n-gram" of one word is just a repeated word)
    top_ngram_max_char_fraction: dict[NgramSize, Fraction] = Field(
        default_factory=lambda: TOP_NGRAMS
    )
    duplicate_ngram_max_char_fraction: dict[NgramSize, Fraction] = Field(
        default_factory=lambda: DUP_NGRAMS
    )
    languages: list[str] | None = Field(None, description="null: every language")


class BigScienceOverride(_Model):
    """Any of one language's BigScience values (tokenmill.filters.bigscience.BigScienceParams)."""

    min_words: int | None = Field(None, ge=0)
    max_words: int | None = Field(None, ge=0)
    char_rep_length: int | None = Field(None, ge=1)
    max_char_rep: float | None = Field(None, ge=0, le=1)
    word_rep_length: int | None = Field(None, ge=1)
    max_word_rep: float | None = Field(None, ge=0, le=1)
    max_special_chars: float | None = Field(None, ge=0, le=1)
    min_stop_words: float | None = Field(None, ge=0, le=1)  # a ratio, as BigScience's
    max_flagged_words: float | None = Field(None, ge=0, le=1)
    remove_incorrect_substrings: bool | None = None
    remove_long_words: bool | None = None
    max_word_length: int | None = Field(None, gt=0)
    words_augmentation: tuple[int, ...] | None = None
    augmentation_join: str | None = None
    sentencepiece_words: bool | None = None
    min_lang_id: float | None = Field(None, ge=0, le=1)
    max_perplexity: float | None = Field(None, gt=0)


class BigScienceRules(_Model):
    """BigScience's OSCAR rules with their published per-language values
    (tokenmill.filters.bigscience.PUBLISHED); `overrides` changes them per language
    ("default" for languages without their own values)."""

    overrides: dict[str, BigScienceOverride] = Field(
        default_factory=dict,
        description="language -> {parameter: value}, e.g. {en: {max_word_rep: 0.2}}",
    )
    kenlm_models: dict[str, tuple[str, str]] = Field(
        default_factory=dict,
        description="language -> [KenLM model, SentencePiece model]; perplexity off without",
    )
    stop_words_files: dict[str, str] = Field(default_factory=dict, description="language -> file")
    flagged_words_files: dict[str, str] = Field(default_factory=dict)
    normalize: bool = Field(True, description="measure the text as BigScience normalized it")

    def filter_kwargs(self) -> dict:
        kw = self.model_dump(exclude={"overrides"})
        kw["overrides"] = {k: v.model_dump(exclude_none=True) for k, v in self.overrides.items()}
        return kw


class QualityConfig(_Model):
    """The `quality:` config section: each rule set's parameters and the sets per source."""

    basic: BasicQualityConfig = BasicQualityConfig()
    c4: C4Rules = C4Rules()
    gopher_quality: GopherQualityRules = GopherQualityRules()
    gopher_repetition: GopherRepetitionRules = GopherRepetitionRules()
    bigscience: BigScienceRules = BigScienceRules()
    filter_sets: dict[str, list[FilterName]] = Field(
        default_factory=dict,
        description="source name -> rule sets in order; default by format (DEFAULT_FILTER_SETS)",
    )

    def filter_names(self, source: str, fmt: str) -> list[str]:
        """The rule sets for one source, in order."""
        names = self.filter_sets.get(source)
        if names is None:
            names = DEFAULT_FILTER_SETS.get(fmt, ["basic"])
        return [n for n in names if n != "basic" or self.basic.enabled]


def build_filters(names: list[str], cfg: QualityConfig) -> list:
    """The filters named (see FilterName), configured from `cfg`, in that order."""
    from tokenmill.filters.bigscience import BigScienceQuality
    from tokenmill.filters.c4 import C4Quality
    from tokenmill.filters.gopher import GopherQuality, GopherRepetition

    out = []
    for name in names:
        if name == "basic":
            b = cfg.basic
            out.append(BasicQuality(b.min_chars, b.min_words, b.max_symbol_fraction))
        elif name == "c4":
            out.append(C4Quality(**cfg.c4.model_dump()))
        elif name == "gopher_quality":
            out.append(GopherQuality(**cfg.gopher_quality.model_dump()))
        elif name == "gopher_repetition":
            out.append(GopherRepetition(**cfg.gopher_repetition.model_dump()))
        elif name == "bigscience":
            out.append(BigScienceQuality(**cfg.bigscience.filter_kwargs()))
        else:
            raise ValueError(
                f"unknown quality filter {name!r}; known: basic, c4, gopher_quality, "
                "gopher_repetition, bigscience"
            )
    return out


def apply_filters(
    filters: list, texts: list[str], langs: list[str], reasons: list[str | None]
) -> list[str]:
    """Run `filters` in order, each on the documents still kept (`reasons[i] is None`).

    Fills `reasons` in place with `quality:`-prefixed reasons (`quality:c4:too_few_sentences`)
    and returns the texts, rewritten where a filter rewrites (C4's line rules). The one place
    the pipeline and the raw-data report apply quality rules, so both count alike."""
    texts = list(texts)
    for rule in filters:
        live = [i for i, r in enumerate(reasons) if r is None]
        if not live:
            break
        verdicts = rule([texts[i] for i in live], [langs[i] for i in live])
        if getattr(rule, "rewrites", False):
            verdicts, new_texts = verdicts
            for i, t in zip(live, new_texts, strict=True):
                texts[i] = t
        for i, r in zip(live, verdicts, strict=True):
            if r is not None:
                reasons[i] = r if r.startswith("quality:") else f"quality:{r}"
    return texts
