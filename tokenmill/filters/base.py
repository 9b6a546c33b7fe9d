"""The quality rules' base class: what every rule shares, written once.

A rule is one `Filter` subclass with

- `Params`: a pydantic model of its parameters, defaults included (written once, there). The
  config's `quality.<rule>` section is this model (tokenmill.filters.registry builds
  `QualityConfig` from the rule table), so a key typo or an out-of-range number is refused
  when the config is read. Every rule has `languages` (from `RuleParams`): documents in other
  languages pass untouched; null judges every language. Documents without a language
  (language ID off: `und`) are always judged.
- `label`: its reasons' namespace: a reason `r` is counted as `quality:<label>:<r>`
  (`quality:gopher:too_many_duplicate_lines`); basic's label is empty (`quality:too_short`).
- `judge(texts, langs)`: the one method a rule writes. Given a batch (only documents still
  kept and in the rule's languages), it returns per document None (keep), a reason (a str,
  without the prefix: remove) or `Kept(new_text)` (keep, rewritten: C4's line filter).
- `setup()` (optional): derived state after the parameters are set (compiled patterns,
  frozensets).

The base class owns the rest: the parameters as attributes (`rule.min_words`), the batch loop
over the still-kept documents (`apply`, one `judge` call a batch: no per-document call),
the language scope, the reason prefix and rewriting.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

UNDETERMINED = "und"  # the pipeline's language when language ID is off


class RuleParams(BaseModel):
    """A rule's parameters (subclassed by each rule). Unknown keys and NaN / infinite numbers
    are refused; fields bound their ranges where a value outside is a typo."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    languages: list[str] | None = Field(None, description="others pass; null: every language")


class Kept(NamedTuple):
    """A `judge` verdict: the document is kept, as `text` (the rule rewrote it)."""

    text: str


Verdict = str | Kept | None


class Filter:
    """A quality rule (see the module docstring). Build it from its parameters, as a model or
    as keywords: `GopherQuality(GopherQuality.Params(min_words=10))`,
    `GopherQuality(min_words=10)`; both are validated."""

    Params: ClassVar[type[RuleParams]] = RuleParams
    label: ClassVar[str] = ""
    # Only for a direct call (`rule(texts, langs)`): whether it returns (reasons, texts).
    rewrites: ClassVar[bool] = False

    def __init__(self, params: RuleParams | None = None, /, **kwargs: Any):
        if params is None:
            params = self.Params(**kwargs)
        elif kwargs:
            raise TypeError(f"{type(self).__name__}: give a Params model or keywords, not both")
        elif not isinstance(params, self.Params):
            params = self.Params.model_validate(params.model_dump())
        self.settings = params
        for key in type(params).model_fields:
            setattr(self, key, getattr(params, key))
        langs = params.languages
        self.languages: frozenset[str] | None = None if langs is None else frozenset(langs)
        self.reason_prefix = f"quality:{self.label}:" if self.label else "quality:"
        self.setup()

    def setup(self) -> None:
        """Derived state, after the parameters are set as attributes (none by default)."""

    def judge(self, texts: list[str], langs: list[str]) -> list[Verdict]:  # pragma: no cover
        """Per document of the batch: None (keep), a reason (remove) or Kept(new text)."""
        raise NotImplementedError

    def in_scope(self, lang: str) -> bool:
        """Whether this rule judges a document of language `lang`."""
        return self.languages is None or lang in self.languages or lang == UNDETERMINED

    def apply(
        self,
        texts: list[str],
        langs: list[str],
        reasons: list[str | None],
        prefix: str | None = None,
    ) -> None:
        """Judge the documents still kept (`reasons[i] is None`) and in scope, in one batch:
        fills `reasons` with prefixed reasons (`prefix`, by default `reason_prefix`) and
        replaces rewritten texts in `texts`, both in place."""
        scope = self.languages
        live = [
            i
            for i, r in enumerate(reasons)
            if r is None and (scope is None or langs[i] in scope or langs[i] == UNDETERMINED)
        ]
        if not live:
            return
        prefix = self.reason_prefix if prefix is None else prefix
        verdicts = self.judge([texts[i] for i in live], [langs[i] for i in live])
        for i, v in zip(live, verdicts, strict=True):
            if v is None:
                continue
            if type(v) is Kept:
                texts[i] = v.text
            else:
                reasons[i] = prefix + v

    def __call__(self, texts: list[str], langs: list[str]) -> Any:
        """The rule alone on a batch: per document None or its reason as the rule names it
        (`gopher:too_few_words`; basic's, the first rule set's, were always
        `quality:too_short`), and with `rewrites` also the texts, rewritten where kept."""
        out = list(texts)
        reasons: list[str | None] = [None] * len(out)
        self.apply(out, langs, reasons, f"{self.label}:" if self.label else None)
        return (reasons, out) if self.rewrites else reasons

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings!r})"
