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
  `Kept(new_text, {"email": 2})` also says what it changed, by kind (`pii`: spans replaced).
- `needs` (optional): document fields besides the text that `judge` reads, from
  `DOC_FIELDS` (`("url",)` for the `url` rule). Each comes as a keyword argument of `judge`
  named as the field, a list aligned with `texts` (`judge(texts, langs, url)`); a rule with
  no `needs` is called with texts and languages only.
- `setup()` (optional): derived state after the parameters are set (compiled patterns,
  frozensets).
- `scored = True` (optional): `judge` also scores each document it is given (a float: a
  classifier's probability) and returns `(verdicts, scores)`; the pass keeps each document's
  score as its `quality_score` (the shards' .docs.parquet column) and counts them in a
  histogram (`fasttext_quality`). The last scoring rule that judged a document sets it.

The base class owns the rest: the parameters as attributes (`rule.min_words`), the batch loop
over the still-kept documents (`apply`, one `judge` call a batch: no per-document call),
the language scope, the reason prefix, rewriting, and the counts of what each rule rewrote
(`Rewrites`: per rule, documents changed, their bytes before and after, and the rule's own
counts by kind), which stats.json shows under each source's `rewritten`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

UNDETERMINED = "und"  # the pipeline's language when language ID is off
# Document fields a rule may name in `needs` (the inter-stage schema's, besides the text).
DOC_FIELDS = ("url",)


class RuleParams(BaseModel):
    """A rule's parameters (subclassed by each rule). Unknown keys and NaN / infinite numbers
    are refused; fields bound their ranges where a value outside is a typo."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # Fields holding file or folder paths (a str, a list of them, or a dict whose values are
    # lists of them): load_config resolves a relative one against the config file's folder,
    # as it does the inputs', and `prepare` records their files' identities with the inputs'
    # (a rerun after an edited list is refused, not run with the old one).
    path_fields: ClassVar[tuple[str, ...]] = ()

    languages: list[str] | None = Field(None, description="others pass; null: every language")


class Kept(NamedTuple):
    """A `judge` verdict: the document is kept, as `text` (the rule rewrote it); `counts`,
    optional, what the rule changed in it by kind (`{"email": 2, "ipv4": 1}`)."""

    text: str
    counts: Mapping[str, int] | None = None


Verdict = str | Kept | None


class Rewrites:
    """What the rules rewrote, per rule (its reason prefix without the colon: `quality:c4`):
    documents changed, their UTF-8 bytes before and after the rule, and the sums of the
    counts by kind its `Kept` verdicts gave. A document is counted by each rule that changed
    its text (a `Kept` with the same text is no change), whether or not a later rule removes
    it. `to_json()` is what stats.json shows under a source's `rewritten`."""

    def __init__(self) -> None:
        self.by_rule: dict[str, dict] = {}

    def add(self, rule: str, before: str, after: str, counts: Mapping[str, int] | None) -> None:
        r = self.by_rule.get(rule)
        if r is None:
            r = self.by_rule[rule] = {"documents": 0, "bytes_in": 0, "bytes_out": 0, "counts": {}}
        r["documents"] += 1
        r["bytes_in"] += len(before.encode("utf-8"))
        r["bytes_out"] += len(after.encode("utf-8"))
        if counts:
            got = r["counts"]
            for kind, n in counts.items():
                got[kind] = got.get(kind, 0) + n

    def to_json(self) -> dict:
        return merge_rewrites({}, self.by_rule)


def merge_rewrites(into: dict, other: Mapping[str, Mapping]) -> dict:
    """`into` (a `Rewrites.to_json()`) with `other`'s counts added; keys sorted (rules, then
    each rule's kinds), so the merged JSON does not depend on the order of the parts."""
    out = {k: {**v, "counts": dict(v["counts"])} for k, v in into.items()}
    for rule, c in other.items():
        r = out.setdefault(rule, {"documents": 0, "bytes_in": 0, "bytes_out": 0, "counts": {}})
        for k in ("documents", "bytes_in", "bytes_out"):
            r[k] += c[k]
        for kind, n in c["counts"].items():
            r["counts"][kind] = r["counts"].get(kind, 0) + n
    return {
        rule: {**r, "counts": dict(sorted(r["counts"].items()))} for rule, r in sorted(out.items())
    }


class Filter:
    """A quality rule (see the module docstring). Build it from its parameters, as a model or
    as keywords: `GopherQuality(GopherQuality.Params(min_words=10))`,
    `GopherQuality(min_words=10)`; both are validated."""

    Params: ClassVar[type[RuleParams]] = RuleParams
    label: ClassVar[str] = ""
    # Only for a direct call (`rule(texts, langs)`): whether it returns (reasons, texts).
    rewrites: ClassVar[bool] = False
    # Document fields `judge` gets as keyword lists besides the texts (names in DOC_FIELDS).
    needs: ClassVar[tuple[str, ...]] = ()
    # Whether `judge` returns (verdicts, scores): a score per document (quality_score).
    scored: ClassVar[bool] = False

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
        label = type(self).label  # (a parameter may share the name: fasttext_quality's)
        self.reason_prefix = f"quality:{label}:" if label else "quality:"
        self.rewrite_key = self.reason_prefix[:-1]  # its key under stats.json's `rewritten`
        self.setup()

    def setup(self) -> None:
        """Derived state, after the parameters are set as attributes (none by default)."""

    def judge(
        self, texts: list[str], langs: list[str], **fields: list
    ) -> Sequence[Verdict]:  # pragma: no cover
        """Per document of the batch: None (keep), a reason (remove) or Kept(new text).
        `fields`: the document fields named in `needs`, each aligned with `texts`."""
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
        *,
        fields: Mapping[str, Sequence] | None = None,
        rewritten: Rewrites | None = None,
        scores: list[float | None] | None = None,
    ) -> None:
        """Judge the documents still kept (`reasons[i] is None`) and in scope, in one batch:
        fills `reasons` with prefixed reasons (`prefix`, by default `reason_prefix`) and
        replaces rewritten texts in `texts`, both in place. `fields`: document fields aligned
        with `texts` (those in `needs` are passed to `judge`); `rewritten`, where given,
        counts each text the rule changed; `scores`, where given, gets a scoring rule's score
        of each document it judged (in place; the others' are left as they are)."""
        scope = self.languages
        live = [
            i
            for i, r in enumerate(reasons)
            if r is None and (scope is None or langs[i] in scope or langs[i] == UNDETERMINED)
        ]
        if not live:
            return
        prefix = self.reason_prefix if prefix is None else prefix
        kw = {}
        for name in self.needs:
            if fields is None or name not in fields:
                raise ValueError(
                    f"quality rule {type(self).__name__} needs the document field {name!r}, "
                    f"which its caller did not pass"
                )
            column = fields[name]
            kw[name] = [column[i] for i in live]
        verdicts = self.judge([texts[i] for i in live], [langs[i] for i in live], **kw)
        if self.scored:
            verdicts, got = verdicts
            if scores is not None:
                for i, score in zip(live, got, strict=True):
                    scores[i] = score
        for i, v in zip(live, verdicts, strict=True):
            if v is None:
                continue
            if type(v) is Kept:
                if rewritten is not None and v.text != texts[i]:
                    rewritten.add(self.rewrite_key, texts[i], v.text, v.counts)
                texts[i] = v.text
            else:
                reasons[i] = prefix + v

    def __call__(self, texts: list[str], langs: list[str], **fields: Sequence) -> Any:
        """The rule alone on a batch: per document None or its reason as the rule names it
        (`gopher:too_few_words`; basic's, the first rule set's, were always
        `quality:too_short`), and with `rewrites` also the texts, rewritten where kept (a
        scoring rule's scores: `apply` with `scores`).
        `fields`: the document fields the rule `needs` (`url=[...]`)."""
        out = list(texts)
        reasons: list[str | None] = [None] * len(out)
        label = type(self).label
        self.apply(out, langs, reasons, f"{label}:" if label else None, fields=fields)
        return (reasons, out) if self.rewrites else reasons

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings!r})"
