"""The quality config: defaults per source format, per-source overrides, strict keys, and
build_filters turning names into configured filters that run on real batches; the rule table
and the base class (language scope, reason prefixes, rewriting, the still-kept documents only)
the same for every rule."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tmfixtures import quality_model, sample_docs

from tokenmill.filters.base import Filter, Kept, RuleParams
from tokenmill.filters.registry import (
    RULES,
    QualityConfig,
    apply_filters,
    build_filters,
)

ALL = [
    "basic",
    "c4",
    "gopher_quality",
    "gopher_repetition",
    "bigscience",
    "pii",
    "url",
    "fasttext_quality",
]


def _with_model(raw: dict | None = None) -> QualityConfig:
    """The quality section `raw` with a model for fasttext_quality (it cannot run without)."""
    raw = dict(raw or {})
    raw["fasttext_quality"] = {"model_path": quality_model(), **raw.get("fasttext_quality", {})}
    return QualityConfig.model_validate(raw)


def test_default_filter_sets_by_format():
    from tokenmill.pipelines.readers.formats import default_filter_sets, default_rules

    q = QualityConfig()

    def rules(source, fmt):
        return q.filter_names(source, default_rules(fmt))

    assert rules("c4", "c4") == ["basic", "gopher_repetition"]
    assert rules("pile", "pile") == ["basic", "gopher_repetition"]
    assert rules("oscar", "oscar2301") == ["basic", "bigscience"]
    assert rules("oscar", "oscar2019") == ["basic", "bigscience"]
    assert rules("mine", "jsonl") == rules("t", "parquet") == ["basic"]
    assert rules("oscar", "oscar2109") == ["basic", "bigscience"]
    from tokenmill.config import Format

    # every reader format has a default set (the formats table's column); hf (any dataset)
    # gets basic, as does a format the table does not know
    assert set(default_filter_sets()) == set(Format.__args__)
    assert rules("any", "hf") == rules("any", "nope") == q.filter_names("any") == ["basic"]


def test_per_source_sets_and_basic_switch():
    q = QualityConfig.model_validate(
        {"filter_sets": {"mine": ["c4", "gopher_quality"]}, "basic": {"enabled": False}}
    )
    assert q.filter_names("mine", ["basic", "c4"]) == ["c4", "gopher_quality"]
    assert q.filter_names("oscar", ["basic", "bigscience"]) == ["bigscience"]


@pytest.mark.parametrize(
    "raw",
    [
        {"c4": {"min_word_per_line": 3}},  # typo
        {"gopher": {}},  # not a rule set
        {"filter_sets": {"x": ["gopher"]}},
        {"bigscience": {"overrides": {"en": {"max_word_repetition": 0.2}}}},
        {"gopher_repetition": {"top_ngram_max_char_fraction": {1: 0.5}}},
    ],
)
def test_unknown_keys_and_names_fail_loudly(raw):
    with pytest.raises(ValidationError):
        QualityConfig.model_validate(raw)


def test_build_filters_passes_the_parameters():
    q = QualityConfig.model_validate(
        {
            "basic": {"min_chars": 10},
            "c4": {"min_words_per_line": 3, "languages": None},
            "gopher_quality": {"min_stop_words": 3},
            "gopher_repetition": {"duplicate_ngram_max_char_fraction": {5: 0.5}},
            "bigscience": {"overrides": {"fr": {"max_word_rep": 0.5, "words_augmentation": [2]}}},
            "pii": {"kinds": ["email"], "placeholders": {"email": "PI:EMAIL"}},
            "url": {"block_domains": ["Example.COM"], "block_words": ["Free-Casino"]},
            "fasttext_quality": {"model_path": quality_model(), "min_score": 0.7},
        }
    )
    basic, c4, gq, gr, big, pii, url, ft = build_filters(ALL, q)
    assert (ft.model_path, ft.model_label, ft.min_score) == (quality_model(), "__label__hq", 0.7)
    assert ft.reason_prefix == "quality:fasttext:" and ft.scored
    assert (pii.kinds, pii.placeholders.email, pii.ip_scope) == (["email"], "PI:EMAIL", "public")
    assert url.block_domains == ["Example.COM"] and url.needs == ("url",)
    assert basic.min_chars == 10
    assert (c4.min_words_per_line, c4.languages, c4.rewrites) == (3, None, True)
    assert gq.min_stop_words == 3
    assert gr.dup_ngrams == [(5, 0.5)] and gr.top_ngrams == [(2, 0.2), (3, 0.18), (4, 0.16)]
    assert big.params("fr").max_word_rep == 0.5
    assert big.params("fr").words_augmentation == (2,)
    assert big.params("fr").min_words == 13  # the rest stays published
    with pytest.raises(ValueError, match="unknown quality filter"):
        build_filters(["gopher"], q)


def test_each_config_section_is_its_rules_own_model():
    """Defaults are written once: `quality.<rule>` is the rule's Params, so the config's
    defaults are the rule's, and a rule built from the config equals one built bare."""
    from tokenmill.filters import c4, gopher

    assert list(RULES) == ALL
    for name, cls in RULES.items():
        assert QualityConfig.model_fields[name].annotation is cls.Params, name
        assert issubclass(cls.Params, RuleParams) and "languages" in cls.Params.model_fields
    built = build_filters(ALL, _with_model())
    for f, name in zip(built, ALL, strict=True):
        # (fasttext_quality's one required parameter, its model, given to both)
        bare = RULES[name](
            **({"model_path": quality_model()} if name == "fasttext_quality" else {})
        )
        assert f.settings == bare.settings, name
        assert vars(f).keys() == vars(bare).keys(), name
    assert built[1].end_marks == c4.END_MARKS
    assert built[2].stop_words == frozenset(gopher.GOPHER_STOP_WORDS)
    assert dict(built[3].top_ngrams) == gopher.TOP_NGRAMS
    assert dict(built[3].dup_ngrams) == gopher.DUP_NGRAMS


def test_round_trip_through_json():
    q = QualityConfig.model_validate(
        {"bigscience": {"overrides": {"en": {"min_words": 5}}, "kenlm_models": {"en": ["a", "b"]}}}
    )
    assert QualityConfig.model_validate(q.model_dump(mode="json")) == q
    assert QualityConfig.model_validate(QualityConfig().model_dump(mode="json")) == QualityConfig()


def test_every_filter_runs_on_a_real_batch():
    docs = sample_docs("oscar")[::40] + sample_docs("pile")[:5]
    texts = [r.get("content") or r.get("text") for r in docs]
    langs = [r["metadata"]["identification"]["label"] if "content" in r else "en" for r in docs]
    urls = [r["warc_headers"]["warc-target-uri"] if "content" in r else None for r in docs]
    for f in build_filters(ALL, _with_model()):
        out = f(texts, langs, url=urls)  # the document fields a rule `needs` (url's)
        reasons, new = out if getattr(f, "rewrites", False) else (out, texts)
        assert len(reasons) == len(new) == len(texts)
        assert all(r is None or isinstance(r, str) and ":" in r for r in reasons)


def test_filters_pickle_for_dask_after_use():
    import pickle

    texts, langs, urls = [sample_docs("c4")[0]["text"]], ["en"], [sample_docs("c4")[0]["url"]]
    for f in build_filters(ALL, _with_model()):
        before = f(texts, langs, url=urls)
        assert pickle.loads(pickle.dumps(f))(texts, langs, url=urls) == before


# ---- the base class: one behaviour for every rule --------------------------------------------

# per rule: a document it removes, and the reason exactly as stats.json counts it; or, for a
# rule that only rewrites, a document and its rewritten text
REMOVED = {
    "basic": ("Too short.", "quality:too_short"),
    "c4": ("menu\nhome", "quality:c4:no_lines_left"),
    "gopher_quality": ("The cat sat on the mat.", "quality:gopher:too_few_words"),
    "gopher_repetition": ("", "quality:gopher:empty"),
    "bigscience": ("hello world", "quality:bigscience:too_few_words"),
    "url": ("A page from a blocked site.", "quality:url:blocked_domain"),
    "fasttext_quality": ("A page the classifier doubts.", "quality:fasttext:low_score"),
}
REWRITTEN = {"pii": ("Mail joe@example.org now.", "Mail <EMAIL> now.")}
PARAMS = {  # beyond the defaults
    "url": {"block_domains": ["example.com"]},
    "fasttext_quality": {"min_score": 1.0},  # (the model: _params)
}


def _params(name: str) -> dict:
    if name == "fasttext_quality":
        return {**PARAMS[name], "model_path": quality_model()}
    return PARAMS.get(name, {})


URL = "https://www.example.com/a"  # every document's url


@pytest.mark.parametrize("name", ALL)
def test_every_rule_applies_its_language_scope_and_the_prefix(name):
    text, reason = REMOVED[name] if name in REMOVED else REWRITTEN[name]
    kept = name in REWRITTEN  # then `reason` is the rewritten text
    params = _params(name)
    (everywhere,) = build_filters(
        [name], QualityConfig.model_validate({name: {**params, "languages": None}})
    )
    (scoped,) = build_filters(
        [name], QualityConfig.model_validate({name: {**params, "languages": ["xx"]}})
    )
    langs = ["en", "xx", "und"]  # und: language ID off, judged by every rule
    texts = [text, text, text]
    fields = {"url": [URL] * 3}
    reasons: list = [None, None, None]
    out = apply_filters([scoped], texts, langs, reasons, fields=fields)
    assert reasons == ([None] * 3 if kept else [None, reason, reason])
    assert out[0] is text  # out of scope: passed untouched
    if kept:
        assert out[1:] == [reason, reason]
    reasons = [None, None, None]
    out = apply_filters([everywhere], texts, langs, reasons, fields=fields)
    assert (out, reasons) == (([reason] * 3, [None] * 3) if kept else (texts, [reason] * 3))
    # called alone, a rule names its reasons as it always has (basic's with `quality:`)
    alone = everywhere(texts, langs, **fields)
    if kept:
        assert alone == ([None] * 3, [reason] * 3)
        return
    alone = alone[0] if everywhere.rewrites else alone
    assert alone == [reason if name == "basic" else reason.removeprefix("quality:")] * 3


class _Recorder(Filter):
    """Removes documents holding "x" and records each batch it is given."""

    label = "rec"

    def setup(self) -> None:
        self.batches: list[tuple[list[str], list[str]]] = []

    def judge(self, texts, langs):
        self.batches.append((list(texts), list(langs)))
        return ["has_x" if "x" in t.split() else None for t in texts]


def test_rules_see_only_the_documents_still_kept_in_one_batch():
    texts = ["a b x", "a b c", "a x c", "keep me"]
    langs = ["en", "fr", "de", "en"]
    first, second = _Recorder(), _Recorder()
    reasons = [None, "quality:earlier", None, None]
    assert apply_filters([first, second], texts, langs, reasons) == texts
    assert first.batches == [(["a b x", "a x c", "keep me"], ["en", "de", "en"])]
    assert second.batches == [(["keep me"], ["en"])]
    assert reasons == ["quality:rec:has_x", "quality:earlier", "quality:rec:has_x", None]
    # nothing left: the rule is not called
    apply_filters([second], texts, langs, ["gone"] * 4)
    assert len(second.batches) == 1


def test_a_rewriting_rule_replaces_kept_texts_only():
    lines = [
        "The first line of the page has enough words in it.",
        "A second line follows the first one here today.",
        "And the third line closes this very short page.",
    ]
    page = "\n".join(["Home | About | Contact", *lines])  # the first line goes (no end mark)
    texts = [page, "menu\nhome", page]
    reasons: list = [None, None, None]
    (c4,) = build_filters(["c4"], QualityConfig())
    out = apply_filters([c4], texts, ["en", "en", "fr"], reasons)
    assert reasons == [None, "quality:c4:no_lines_left", None]
    assert out == ["\n".join(lines), "menu\nhome", page]
    assert out[2] is page and texts[0] == page  # fr: not judged; the caller's list unchanged


class _Rewriter(Filter):
    label = "up"

    def judge(self, texts, langs):
        return [Kept(t.upper()) if t else "empty" for t in texts]


def test_kept_rewrites_and_reasons_mix_in_one_batch():
    reasons: list = [None, None, "quality:earlier"]
    assert apply_filters([_Rewriter()], ["ab", "", "cd"], ["en"] * 3, reasons) == ["AB", "", "cd"]
    assert reasons == [None, "quality:up:empty", "quality:earlier"]


def test_a_rule_takes_its_params_as_a_model_or_keywords_validated():
    from tokenmill.filters.gopher import GopherQuality

    assert (
        GopherQuality(min_words=7).settings
        == GopherQuality(GopherQuality.Params(min_words=7)).settings
    )
    with pytest.raises(ValidationError):
        GopherQuality(min_word=7)  # typo
    with pytest.raises(ValidationError):
        GopherQuality(max_bullet_lines_fraction=2)
    with pytest.raises(TypeError, match="not both"):
        GopherQuality(GopherQuality.Params(), min_words=7)
