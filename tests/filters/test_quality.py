"""The basic quality rules: each removes what it names and keeps a clean document."""

from __future__ import annotations

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
