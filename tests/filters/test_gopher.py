"""Gopher quality and repetition rules: each removes what it names, clean text stays, and the
decisions equal datatrove's GopherQualityFilter / GopherRepetitionFilter on real documents."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tmfixtures import sample_docs

from tokenmill.filters.gopher import (
    DUP_NGRAMS,
    GOPHER_STOP_WORDS,
    TOP_NGRAMS,
    GopherQuality,
    GopherRepetition,
    SpacyWords,
)

EN = [r["text"] for r in sample_docs("c4")] + [r["text"] for r in sample_docs("pile")]


@pytest.fixture(scope="module")
def datatrove_keeps(require):
    """text -> (datatrove's GopherQualityFilter keeps it, its GopherRepetitionFilter keeps it):
    the reference implementation, independent of the rules under test."""
    filters = require("datatrove.pipeline.filters", "the reference Gopher filters")
    from datatrove.data import Document

    quality, repetition = filters.GopherQualityFilter(), filters.GopherRepetitionFilter()

    def keeps(text: str, i: int = 0) -> tuple[bool, bool]:
        # one filter after the other per document: datatrove caches the last words
        q = quality.filter(Document(text=text, id=str(i))) is True
        return q, repetition.filter(Document(text=text, id=str(i))) is True

    return keeps


@pytest.fixture(scope="module")
def clean(datatrove_keeps) -> str:
    """A real English document of 150+ words that datatrove's Gopher filters both keep."""
    for t in EN:
        if len(t.split()) >= 150 and datatrove_keeps(t) == (True, True):
            return t
    raise AssertionError("no document in the sample passes datatrove's Gopher filters")


def perturbed(texts: list[str], seed: int = 0) -> list[str]:
    """Real documents, most of them damaged in a way one of the rules should catch."""
    rng = random.Random(seed)
    out = []
    for t in texts:
        lines = t.split("\n")
        k = rng.randrange(9)
        if k == 0:
            out.append(t)
        elif k == 1:  # repeated lines
            out.append("\n".join(lines + lines[: max(1, len(lines) // 2)]))
        elif k == 2:  # truncated
            out.append(t[: rng.randrange(50, 600)])
        elif k == 3:  # hashes
            step = rng.randrange(3, 15)
            out.append(
                " ".join(w + (" #" if i % step == 0 else "") for i, w in enumerate(t.split(" ")))
            )
        elif k == 4:  # bullets
            out.append("\n".join("- " + line for line in lines))
        elif k == 5:  # ellipses
            out.append("\n".join(line + "..." if i % 2 else line for i, line in enumerate(lines)))
        elif k == 6:  # repeated paragraph
            out.append((t.split("\n\n")[0] + "\n\n") * rng.randrange(2, 5) + t)
        elif k == 7:  # no stop words
            out.append(t.replace(" the ", " ").replace(" of ", " ").replace(" and ", " "))
        else:  # symbols instead of words
            out.append(" ".join(w if i % 3 else "$%&" for i, w in enumerate(t.split(" "))))
    return out


# ---- quality -------------------------------------------------------------------------------


def test_quality_keeps_clean_prose_and_names_each_failure(clean):
    q = GopherQuality()
    words = clean.split()
    lines = clean.splitlines()
    cases = {
        "gopher:too_few_words": " ".join(words[:30]),
        "gopher:too_many_words": clean,  # with max_words below its length, next
        "gopher:mean_word_length_too_low": " ".join(w[:2] for w in words),
        "gopher:mean_word_length_too_high": " ".join(
            "".join(words[i : i + 3]) for i in range(0, len(words), 3)
        ),
        "gopher:too_many_hashes": clean.replace(" ", " # ", len(words) // 5),
        "gopher:too_many_ellipses": " ".join(
            w + " ..." * (i % 5 == 0) for i, w in enumerate(words)
        ),
        "gopher:too_many_bullet_lines": "\n".join("• " + line for line in lines),
        "gopher:too_many_ellipsis_lines": "\n".join(line + "…" for line in lines),
        "gopher:too_few_alpha_words": " ".join(w if i % 3 else "1234" for i, w in enumerate(words)),
        "gopher:too_few_stop_words": " ".join(w for w in words if w not in GOPHER_STOP_WORDS),
    }
    assert q([clean], ["en"]) == [None]  # datatrove keeps it
    for reason, text in cases.items():
        f = GopherQuality(max_words=len(words) // 2) if reason == "gopher:too_many_words" else q
        assert f([text], ["en"]) == [reason], reason


def test_quality_judges_only_its_languages_and_none_disables_a_rule(clean):
    short = " ".join(clean.split()[:30])
    q = GopherQuality()
    assert q([short, short, short], ["fr", "en", "und"]) == [None, "gopher:too_few_words"] * 1 + [
        "gopher:too_few_words"
    ]
    assert GopherQuality(languages=None)([short], ["fr"]) == ["gopher:too_few_words"]
    assert GopherQuality(min_words=None)([short], ["en"]) == [None]
    assert GopherQuality()([""], ["en"]) == ["gopher:too_few_words"]
    assert GopherQuality(min_words=None, min_stop_words=None)([""], ["en"]) == [None]


# ---- repetition ----------------------------------------------------------------------------


def test_repetition_keeps_clean_prose_and_names_each_failure(clean):
    r = GopherRepetition()
    paras = [p for p in clean.split("\n\n") if p.strip()]
    lines = [line for line in clean.split("\n") if line.strip()]
    words = clean.split()
    long_line = " ".join(words[:120])
    assert r([clean], ["en"]) == [None]  # datatrove keeps it
    cases = {
        "gopher:too_many_duplicate_paragraphs": "\n\n".join(
            ["Short one."] * 3 + ["Other text here."]
        ),
        "gopher:too_many_duplicate_paragraph_chars": "\n\n".join(lines + [long_line] * 2),
        "gopher:too_many_duplicate_lines": "\n".join(lines + [lines[0]] * len(lines)),
        "gopher:top_2gram_too_frequent": " ".join(["new york"] * 60 + words[:100]),
        "gopher:too_many_duplicate_5grams": " ".join(words[:200]) + " " + " ".join(words[:60]),
        "gopher:empty": "",
    }
    for reason, text in cases.items():
        assert r([text], ["en"]) == [reason], reason
    # Only the duplicate-line character rule: few lines repeated, many characters.
    text = "\n".join([long_line, *lines[:8], long_line])
    assert GopherRepetition(
        max_duplicate_line_fraction=None, max_duplicate_paragraph_char_fraction=None
    )([text], ["en"]) == ["gopher:too_many_duplicate_line_chars"]
    assert paras  # the clean document has paragraphs


def plain_ngram_verdict(words: list[str], n_chars: int) -> str | None:
    """Gopher's n-gram rules read plainly: tuples of words, Counter, a left-to-right scan."""
    for n in range(2, max(DUP_NGRAMS) + 1):
        if len(words) < n:
            return None
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        if n in TOP_NGRAMS:
            gram, count = Counter(grams).most_common(1)[0]
            if (sum(map(len, gram)) + n - 1) * count / n_chars > TOP_NGRAMS[n]:
                return f"gopher:top_{n}gram_too_frequent"
        if n in DUP_NGRAMS:
            seen, chars, skip_to = set(), 0, 0
            for i, gram in enumerate(grams):
                if i < skip_to:
                    continue
                if gram in seen:
                    chars += sum(map(len, gram))
                    skip_to = i + n
                else:
                    seen.add(gram)
            if chars / n_chars > DUP_NGRAMS[n]:
                return f"gopher:too_many_duplicate_{n}grams"
    return None


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(perturbed(EN[:80], seed=3)) | st.text(max_size=80), max_size=12))
def test_batched_repetition_rules_equal_a_plain_reading_per_document(texts):
    """The n-gram rules run over a whole batch at once; each document's verdict is what the
    plain per-document definition gives (the line rules first)."""
    rule, sw = GopherRepetition(), SpacyWords()
    want = []
    for t in texts:
        words = sw.words(t)
        want.append(
            rule._line_rules(t) or (plain_ngram_verdict(words, len(t)) if len(words) > 1 else None)
        )
    assert rule(texts, ["en"] * len(texts)) == want


def test_tiny_documents_fail_the_top_bigram_rule_as_in_datatrove():
    # Three words: the first bigram is most of the text, as datatrove also counts it.
    assert GopherRepetition()(["one two three"], ["en"]) == ["gopher:top_2gram_too_frequent"]


# ---- agreement with datatrove --------------------------------------------------------------


@pytest.fixture(scope="module")
def agreement(datatrove_keeps) -> tuple[list[str], list[bool], list[bool]]:
    """300 real documents, half of them damaged, and datatrove's keep decisions for each."""
    rng = random.Random(1)
    docs = rng.sample(EN, 150) + perturbed(rng.sample(EN, 150), seed=2)
    keep_q, keep_r = zip(*(datatrove_keeps(t, i) for i, t in enumerate(docs)), strict=True)
    return docs, list(keep_q), list(keep_r)


def test_same_decisions_as_datatrove_quality(agreement):
    docs, ref, _ = agreement
    ours = [r is None for r in GopherQuality()(docs, ["en"] * len(docs))]
    assert 50 < sum(ref) < len(ref) - 50  # both decisions well represented
    assert ours == ref


def test_same_decisions_as_datatrove_repetition(agreement):
    docs, _, ref = agreement
    ours = [r is None for r in GopherRepetition()(docs, ["en"] * len(docs))]
    assert 50 < sum(ref) < len(ref) - 50
    assert ours == ref


def test_words_are_datatrove_words_in_many_languages(require):
    text_mod = require("datatrove.utils.text")
    english = require("datatrove.utils.typeshelper").Languages.english
    docs = EN[:20] + [r["content"] for r in sample_docs("oscar")][::25]
    sw = SpacyWords()
    for t in docs:
        assert sw.words(t) == text_mod.split_into_words(t, english)


def test_shortcut_gives_spacys_own_tokens():
    """English chunks that are letters, or letters with one leading and/or trailing
    character spaCy's prefix / suffix patterns split off, skip spaCy. On every chunk of the
    multilingual sample the shortcut answers, spaCy agrees; whole documents split the same
    with and without it; special cases go to spaCy."""
    docs = EN + [r["content"] for r in sample_docs("oscar")]
    fast = SpacyWords()
    tokenizer = fast.tokenizer()
    assert fast._shortcut_specials is not None  # the load-time self-check passed
    chunks = sorted({c for t in docs for c in t.split()})
    answered = {c: q for c in chunks if (q := fast._quick(c)) is not None}
    shapes = {len(q) for q in answered.values()}
    assert len(answered) > 0.6 * len(chunks) and shapes == {1, 2, 3}
    assert any(c.endswith(".") for c in answered) and any(c[0] == "(" for c in answered)
    assert any(not c.isascii() for c in answered)
    wrong = [(c, q) for c, q in answered.items() if q != tuple(t.text for t in tokenizer(c))]
    assert wrong == []
    # specials and the strings on the way to the letters are left to spaCy
    for chunk in ["cannot", "(cannot", "cannot.", "Mr.", "(Mr.", "a.", "(a.", "Gonna"]:
        assert fast._quick(chunk) is None
    assert fast.words("I cannot say (Gonna.") == ["I", "can", "not", "say", "(", "Gon", "na", "."]
    slow = SpacyWords()
    slow.tokenizer()
    slow._shortcut_specials = None  # every chunk through spaCy
    for t in docs[::7]:
        assert fast.words(t) == slow.words(t)


def test_shortcut_matches_spacy_for_every_one_character_affix():
    """Each printable non-letter BMP character before and/or after a few cores (lower, upper,
    mixed case, Cyrillic, accented), wherever the shortcut answers."""
    fast = SpacyWords()
    tokenizer = fast.tokenizer()
    marks = [chr(c) for c in range(0x21, 0x3000) if chr(c).isprintable() and not chr(c).isalpha()]
    marks = [m for m in marks if not m.isspace()]
    answered = 0
    for core in ("word", "Word", "WORD", "слово", "naïve", "x"):
        for m in marks:
            for chunk in (m + core, core + m, m + core + m):
                q = fast._quick(chunk)
                if q is not None:
                    answered += 1
                    assert q == tuple(t.text for t in tokenizer(chunk)), chunk
    assert answered > 1000


def test_a_disagreeing_spacy_turns_the_shortcut_off():
    sw = SpacyWords()
    tokenizer = sw.tokenizer()
    assert sw._shortcut_agrees()
    tokenizer.rules = {**tokenizer.rules, "word.": [{"ORTH": "word."}]}  # a new special case
    assert not sw._shortcut_agrees()


def test_a_full_cache_starts_over_without_changing_results():
    texts = EN[:40]
    small = SpacyWords(max_cache=300)
    big = SpacyWords()
    assert [small.words(t) for t in texts] == [big.words(t) for t in texts]
    assert len(small.cache) <= max(300, max(len(set(t.split())) for t in texts))


# ---- batches -------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.sampled_from(EN[:60]) | st.text(max_size=200), max_size=8),
    st.integers(0, 8),
)
def test_batch_split_gives_the_same_verdicts(texts, cut):
    langs = ["en"] * len(texts)
    for f in (GopherQuality(), GopherRepetition()):
        assert f(texts, langs) == f(texts[:cut], langs[:cut]) + f(texts[cut:], langs[cut:])


def test_spacy_is_imported_without_torch_or_its_command_line():
    """A fresh process: the word splitter's spaCy import leaves torch and spacy.cli (requests,
    weasel, ...) unimported, tokenizes, and spacy.info / spacy.cli still work when asked for."""
    import subprocess
    import sys

    code = """
import sys
from tokenmill.filters.gopher import spacy_words
words = spacy_words("en").words("Hello, world! Don't stop.")
heavy = sorted(m for m in ("torch", "spacy.cli", "requests", "weasel") if m in sys.modules)
import spacy
version = spacy.info()["spacy_version"]
import spacy.cli
print(words, heavy, version == spacy.__version__, callable(spacy.cli.download))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "['Hello', ',', 'world', '!', 'Do', \"n't\", 'stop', '.'] [] True True"
