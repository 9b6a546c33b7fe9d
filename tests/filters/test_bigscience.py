"""BigScience's OSCAR rules: the published per-language values, each rule removing what it
names, clean documents kept in several languages, the fast measures equal to a plain reading
of BigScience's definitions, and batches split cleanly."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tmfixtures import sample_docs

from tokenmill.filters import bigscience as bs
from tokenmill.filters.bigscience import PUBLISHED, BigScienceQuality, params_for

OSCAR = [(r["content"], r["metadata"]["identification"]["label"]) for r in sample_docs("oscar")]
EN = [r["text"] for r in sample_docs("c4")]


def clean(lang: str, min_words: int = 120) -> str:
    f = BigScienceQuality()
    texts = EN if lang == "en" else [t for t, lab in OSCAR if lab == lang]
    for t in texts:
        if len(t.split()) >= min_words and f([t], [lang]) == [None]:
            return t
    raise AssertionError(f"no clean {lang} document in the sample")


CLEAN_EN = clean("en")


def test_published_values():
    en = PUBLISHED["en"]
    assert (en.min_words, en.max_words) == (20, 100_000)
    assert (en.char_rep_length, en.max_char_rep) == (10, 0.106)
    assert (en.word_rep_length, en.max_word_rep) == (5, 0.19)
    assert (en.max_special_chars, en.min_stop_words, en.max_flagged_words) == (0.4, 0.3, 0.01)
    assert (en.min_lang_id, en.max_perplexity) == (0.80, 1500)
    assert (PUBLISHED["fr"].max_word_rep, PUBLISHED["es"].min_stop_words) == (0.13, 0.4)
    assert (PUBLISHED["pt"].max_word_rep, PUBLISHED["zh"].char_rep_length) == (0.98, 3)
    # BLOOM had no German or Italian: they, like every other language, get "default".
    assert params_for("de") == params_for("it") == params_for("xx") == PUBLISHED["default"]
    assert params_for("fr", {"fr": {"max_word_rep": 0.5}}).max_word_rep == 0.5
    assert params_for("de", {"default": {"min_words": 3}}).min_words == 3
    assert params_for("en", {"default": {"min_words": 3}}).min_words == 20


@pytest.mark.parametrize("lang", ["en", "fr", "es", "de", "it", "pt"])
def test_clean_documents_are_kept(lang):
    assert BigScienceQuality()([clean(lang)], [lang]) == [None]


def test_each_rule_removes_what_it_names():
    f = BigScienceQuality()
    words = CLEAN_EN.split()
    cases = {
        "bigscience:too_few_words": " ".join(words[:12]),
        "bigscience:char_repetition_too_high": CLEAN_EN + " la" * 1500,
        "bigscience:word_repetition_too_high": " ".join(words[:80] * 2),
        "bigscience:too_many_special_characters": " ".join(
            f"{w} ({i * 7919 % 99991}) [{i % 97}]" for i, w in enumerate(words)
        ),
        "bigscience:too_few_stop_words": " ".join(
            w for w in words if w.lower() not in bs.word_list("stopwords", "en")
        ),
        "bigscience:too_many_flagged_words": " ".join(
            w + (" porn" if i % 20 == 0 else "") for i, w in enumerate(words)
        ),
    }
    for reason, text in cases.items():
        assert f([text], ["en"]) == [reason], reason
    few = BigScienceQuality(overrides={"en": {"max_words": 50}})
    assert few([CLEAN_EN], ["en"]) == ["bigscience:too_many_words"]


def test_perplexity_only_with_a_model(monkeypatch):
    class LM:
        def score(self, line):  # log10 probability: -3 per piece, as a bad model would give
            return -3.0 * (len(line.split()) + 1)

    class SP:
        def encode_as_pieces(self, text):
            return text.split()

    assert BigScienceQuality()([CLEAN_EN], ["en"]) == [None]  # no model: no perplexity rule
    f = BigScienceQuality(kenlm_models={"en": ("en.arpa.bin", "en.sp.model")})
    monkeypatch.setattr(bs._KenLM, "load", lambda self: (LM(), SP()))
    assert bs.perplexity("a b c", LM(), SP()) == 1000.0
    assert f([CLEAN_EN, CLEAN_EN], ["en", "und"]) == [None, None]  # 1000 <= 1500; und: no model
    monkeypatch.setattr(LM, "score", lambda self, line: -4.0 * (len(line.split()) + 1))
    assert f([CLEAN_EN], ["en"]) == ["bigscience:perplexity_too_high"]


def test_missing_kenlm_names_the_packages():
    f = BigScienceQuality(kenlm_models={"en": ("m.bin", "sp.model")})
    try:
        import kenlm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install kenlm sentencepiece"):
            f([CLEAN_EN], ["en"])


def test_normalization_drops_urls_and_long_words_where_published():
    text = "See https://example.org/x or www.debian.org for " + "a" * 30 + " details."
    assert bs.normalize(text, PUBLISHED["en"]) == "See or for details."
    assert bs.normalize("a\tb\n\nc\x00d\u2003e", PUBLISHED["default"]) == "a b  cd e"
    assert bs.words_of("«Hello», said the “Man”—42!") == ["hello", "said", "the", "man"]


def test_word_rules_are_skipped_without_spaces():
    ja = [t for t, lab in OSCAR if lab == "ja"][0]
    assert BigScienceQuality()([ja[:60]], ["ja"]) == [None]  # few "words", but none counted


def test_unknown_language_gets_default_values_and_no_lists():
    assert bs.word_list("stopwords", "und") == frozenset()
    assert BigScienceQuality()([CLEAN_EN], ["und"]) == [None]


# ---- the fast measures against a plain reading of the definitions -------------------------


def plain_char_repetition(text: str, n: int) -> float:
    grams = Counter(text[i : i + n] for i in range(len(text) - n + 1))
    if not grams:
        return 0
    freq = sorted(grams.values(), reverse=True)
    k = min(int(math.sqrt(len(freq))), len(freq) - freq.count(1))
    return sum(freq[:k]) / sum(freq)


def plain_word_repetition(words: list[str], n: int) -> float:
    grams = Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0
    return sum(v for v in grams.values() if v > 1) / sum(grams.values())


def plain_normalize_words(text: str, p) -> str:
    """The word-dropping step of normalize, read plainly: every " "-delimited word looked at."""
    check_urls = p.remove_incorrect_substrings and bs._INCORRECT.search(text) is not None
    long = p.max_word_length if p.remove_long_words else None
    kept = []
    for w in text.split(" "):
        if not w:
            continue
        if check_urls and bs._INCORRECT.search(w) and bs._INCORRECT.search(bs.strip_special(w)):
            continue
        if long is not None and len(w) > long:
            core = bs.strip_special(w)
            if not core or len(core) > long:
                continue
        kept.append(w)
    return " ".join(kept)


_PIECES = ["a", "Wort", " ", "  ", ".", "«", "»", "http", "www", ".com", "//", "href", "x" * 26,
           "é" * 30, "—", "(", ")", "\n", "\u3000", "42"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map("".join))
def test_normalize_drops_the_words_a_plain_loop_drops(text):
    for lang in ("en", "fr", "default"):
        p = PUBLISHED[lang]
        spaced = text.strip().replace("\n", " ").replace("\t", " ").translate(bs._NORMALIZE)
        urls = p.remove_incorrect_substrings and bs._INCORRECT.search(spaced) is not None
        want = plain_normalize_words(spaced, p) if urls or p.remove_long_words else spaced
        assert bs.normalize(text, p) == want


def test_fast_measures_equal_the_definitions():
    docs = [t for t, _ in OSCAR[::20]] + EN[::60] + ["", "a", "aaaaaaaaaaaaaaaaaaaa"]
    for t in docs:
        for n in (3, 4, 5, 7, 10, 13):
            assert bs.char_repetition_ratio(t, n) == pytest.approx(plain_char_repetition(t, n))
        words = bs.words_of(t)
        assert bs.word_repetition_ratio(words, 5) == pytest.approx(plain_word_repetition(words, 5))
        plain = sum(c in bs.SPECIAL_CHARACTERS for c in t) / len(t) if t else 0
        assert bs.special_characters_ratio(t) == pytest.approx(plain)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.sampled_from(OSCAR[::10] + [(t, "en") for t in EN[:30]]), max_size=8),
    st.integers(0, 8),
)
def test_batch_split_gives_the_same_verdicts(docs, cut):
    f = BigScienceQuality()
    texts = [t for t, _ in docs]
    langs = [lang for _, lang in docs]
    assert f(texts, langs) == f(texts[:cut], langs[:cut]) + f(texts[cut:], langs[cut:])
