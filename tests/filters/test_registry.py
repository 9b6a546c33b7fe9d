"""The quality config: defaults per source format, per-source overrides, strict keys, and
build_filters turning names into configured filters that run on real batches."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tmfixtures import sample_docs

from tokenmill.filters import registry
from tokenmill.filters.registry import DEFAULT_FILTER_SETS, QualityConfig, build_filters

ALL = ["basic", "c4", "gopher_quality", "gopher_repetition", "bigscience"]


def test_default_filter_sets_by_format():
    q = QualityConfig()
    assert q.filter_names("c4", "c4") == ["basic", "gopher_repetition"]
    assert q.filter_names("pile", "pile") == ["basic", "gopher_repetition"]
    assert q.filter_names("oscar", "oscar2301") == ["basic", "bigscience"]
    assert q.filter_names("oscar", "oscar2019") == ["basic", "bigscience"]
    assert q.filter_names("mine", "jsonl") == q.filter_names("t", "parquet") == ["basic"]
    assert q.filter_names("oscar", "oscar2109") == ["basic", "bigscience"]
    from tokenmill.config import Format

    # every reader format has a default set, except hf (any dataset: basic, the fallback)
    assert set(DEFAULT_FILTER_SETS) == set(Format.__args__) - {"hf"}
    assert q.filter_names("any", "hf") == ["basic"]


def test_per_source_sets_and_basic_switch():
    q = QualityConfig.model_validate(
        {"filter_sets": {"mine": ["c4", "gopher_quality"]}, "basic": {"enabled": False}}
    )
    assert q.filter_names("mine", "jsonl") == ["c4", "gopher_quality"]
    assert q.filter_names("oscar", "oscar2301") == ["bigscience"]


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
        }
    )
    basic, c4, gq, gr, big = build_filters(ALL, q)
    assert basic.min_chars == 10
    assert (c4.min_words_per_line, c4.languages, c4.rewrites) == (3, None, True)
    assert gq.min_stop_words == 3
    assert gr.dup_ngrams == [(5, 0.5)] and gr.top_ngrams == [(2, 0.2), (3, 0.18), (4, 0.16)]
    assert big.params("fr").max_word_rep == 0.5
    assert big.params("fr").words_augmentation == (2,)
    assert big.params("fr").min_words == 13  # the rest stays published
    with pytest.raises(ValueError, match="unknown quality filter"):
        build_filters(["gopher"], q)


def test_config_defaults_equal_the_filters_defaults():
    from tokenmill.filters import c4, gopher

    assert registry.END_MARKS == c4.END_MARKS
    assert registry.GOPHER_STOP_WORDS == gopher.GOPHER_STOP_WORDS
    assert registry.TOP_NGRAMS == gopher.TOP_NGRAMS
    assert registry.DUP_NGRAMS == gopher.DUP_NGRAMS
    defaults = build_filters(["c4", "gopher_quality", "gopher_repetition"], QualityConfig())
    assert vars(defaults[0]) == vars(c4.C4Quality())
    assert vars(defaults[1]) == vars(gopher.GopherQuality())
    assert vars(defaults[2]) == vars(gopher.GopherRepetition())


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
    for f in build_filters(ALL, QualityConfig()):
        out = f(texts, langs)
        reasons, new = out if getattr(f, "rewrites", False) else (out, texts)
        assert len(reasons) == len(new) == len(texts)
        assert all(r is None or isinstance(r, str) and ":" in r for r in reasons)


def test_filters_pickle_for_dask_after_use():
    import pickle

    texts, langs = [sample_docs("c4")[0]["text"]], ["en"]
    for f in build_filters(ALL, QualityConfig()):
        before = f(texts, langs)
        assert pickle.loads(pickle.dumps(f))(texts, langs) == before
