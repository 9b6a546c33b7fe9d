"""The basic quality rules: each removes what it names and keeps a clean document."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tmfixtures import sample_docs

from tokenmill.filters.quality import BasicQuality


def test_each_rule_fires_and_a_clean_document_stays():
    q = BasicQuality(min_chars=50, min_words=5, max_symbol_fraction=0.5)
    clean = sample_docs("c4")[0]["text"]
    texts = [
        clean,
        "Too short.",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa four",
        "#### $$$$ %%%% ^^^^ &&&& **** (((( )))) ---- ++++ ==== 1234 5678 90 ok",
    ]
    assert q(texts, ["en"] * 4) == [
        None,
        "quality:too_short",
        "quality:too_few_words",
        "quality:too_many_symbols",
    ]


def test_no_word_count_for_languages_without_spaces():
    q = BasicQuality(min_chars=10, min_words=5)
    ja = "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
    assert q([ja, ja], ["ja", "en"]) == [None, "quality:too_few_words"]


def test_batch_split_gives_the_same_verdicts():
    q = BasicQuality()
    texts = [r["text"] for r in sample_docs("pile")[:40]]
    langs = ["en"] * 40
    assert q(texts, langs) == q(texts[:17], langs[:17]) + q(texts[17:], langs[17:])


def _symbol_fraction(text: str) -> float:  # the rule's definition, one character at a time
    return sum(1 for c in text if not (c.isalpha() or c.isspace())) / len(text)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300), st.floats(0.05, 0.95))
def test_symbol_fraction_is_the_per_character_definition(text, limit):
    q = BasicQuality(min_chars=1, min_words=0, max_symbol_fraction=limit)
    want = "quality:too_many_symbols" if _symbol_fraction(text) > limit else None
    assert q([text], ["en"]) == [want]


def test_symbol_fraction_on_multilingual_text_and_surrogates():
    texts = [r["content"] for r in sample_docs("oscar")] + ["\ud800 x y z \udfff ok"]
    for limit in (0.02, 0.05, 0.1):
        q = BasicQuality(min_chars=1, min_words=0, max_symbol_fraction=limit)
        want = ["quality:too_many_symbols" if _symbol_fraction(t) > limit else None for t in texts]
        assert q(texts, ["en"] * len(texts)) == want
        assert len(set(want)) == 2  # both verdicts occur
