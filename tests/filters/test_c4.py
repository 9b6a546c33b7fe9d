"""C4's rules: each removes what it names, clean pages keep their lines, decisions and cleaned
text equal datatrove's C4QualityFilter on real documents, and batches split cleanly."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tmfixtures import sample_docs

from tokenmill.filters.c4 import C4Quality

C4 = [r["text"] for r in sample_docs("c4")]
PILE = [r["text"] for r in sample_docs("pile")]
# A real C4 page (already C4-clean) with enough lines to test line rules on.
PAGE = next(t for t in C4 if len(t.splitlines()) >= 6 and len(t) < 3000)
LINES = PAGE.splitlines()


def run(f: C4Quality, text: str, lang: str = "en") -> tuple[str | None, str]:
    reasons, texts = f([text], [lang])
    return reasons[0], texts[0]


def test_defaults_are_the_published_c4_utils_values():
    f = C4Quality()
    assert (f.min_words_per_line, f.min_sentences, f.max_word_length) == (5, 3, 1000)
    assert f.end_marks == (".", "?", "!", '"')
    assert C4Quality.rewrites is True


def test_a_clean_c4_page_is_kept_unchanged():
    assert run(C4Quality(), PAGE) == (None, PAGE.strip())


def test_line_rules_remove_lines_and_keep_the_page():
    noise = [
        "Home | About | Contact",  # no terminal punctuation
        "Click here now.",  # fewer than 5 words
        "Please enable JavaScript in your browser to see this page.",
        "This website uses cookies to improve your experience.",
        "Read our privacy policy before you sign up today.",
        "A line with a " + "x" * 1001 + " word ends here.",
        "And this one trails off into nothing at all...",
    ]
    text = "\n".join([LINES[0], *noise, *LINES[1:]])
    reason, cleaned = run(C4Quality(), text)
    assert reason is None
    assert cleaned == PAGE.strip()


def test_citations_are_removed_from_kept_lines():
    line = LINES[0]
    cited = line[:-1] + " [12][edit][citation needed]" + line[-1]
    reason, cleaned = run(C4Quality(), "\n".join([cited, *LINES[1:]]))
    assert reason is None
    assert cleaned.splitlines()[0] == line[:-1] + " " + line[-1]


def test_page_rules():
    f = C4Quality()
    lorem = "Lorem ipsum dolor sit amet, consectetur adipiscing elit."
    assert run(f, "\n".join([*LINES, lorem]))[0] == "c4:lorem_ipsum"
    assert run(f, "\n".join([*LINES, "Then we call f(x) { return x + 1; } on it."]))[0] == (
        "c4:curly_bracket"
    )
    # A "{" on a line that the line rules drop first does not condemn the page (c4_utils).
    assert run(f, "\n".join([*LINES, "function f() {"]))[0] is None
    assert run(f, "menu\nhome\nabout us")[0] == "c4:no_lines_left"
    two = "\n".join(LINES[:2])
    assert run(f, two)[0] == "c4:too_few_sentences"
    assert run(C4Quality(min_sentences=2), two)[0] is None


@pytest.fixture(scope="module")
def sentencizer():
    """spaCy's own sentencizer on its blank English pipeline: the oracle for sentence counts."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return lambda line: len(list(nlp(line).sents))


HAND_LINES = [
    "One short sentence here. Another one follows it! A third?",
    "Dr. Smith met Mr. Jones at 3.30 p.m. in the U.S. office.",
    "It was late. We went home. The end came soon after that.",
    'He said "stop." Then he left... And? "Yes!" (Really.) Done',
    "Tabs\tand  double  spaces. Still one line; 2 sentences?",
    "。日本語の文。もう一つ！ Last one",
    # a space run other than " " is a token of its own: it starts a sentence after a mark
    'So it ends.  "',
    "Twice!   !",
    "",
]


def test_sentences_are_counted_as_spacys_sentencizer_counts(sentencizer):
    f = C4Quality()
    assert [f.count_sentences(line) for line in HAND_LINES[:3]] == [3, 1, 3]
    lines = HAND_LINES + [line.strip() for t in C4[:150] + PILE[:60] for line in t.splitlines()]
    lines = list(dict.fromkeys(lines))
    assert len(lines) > 1000
    got = {line: f.count_sentences(line) for line in lines}
    want = {line: sentencizer(line) for line in lines}
    assert got == want
    assert max(want.values()) > 3  # lines of many sentences are among them
    one_line = "It was late. We went home. The end came soon after that."
    assert run(f, one_line)[0] is None  # one line, three sentences


def test_bad_words_list_is_optional(tmp_path):
    words = tmp_path / "bad.txt"
    words.write_text("# one a line\nbadword\n")
    text = "\n".join([*LINES, "This sentence has a badword in it, sadly."])
    assert run(C4Quality(), text)[0] is None
    assert run(C4Quality(bad_words_path=str(words)), text)[0] == "c4:bad_words"
    assert run(C4Quality(bad_words_path=str(words)), text.replace("badword", "badwords"))[0] is None
    with pytest.raises(FileNotFoundError):
        run(C4Quality(bad_words_path=str(tmp_path / "missing.txt")), text)


def test_other_languages_pass_unchanged():
    f = C4Quality()
    text = "menu\nhome"
    reasons, texts = f([text, text, text], ["fr", "en", "und"])
    assert reasons == [None, "c4:no_lines_left", "c4:no_lines_left"]
    assert texts == [text, text, text]  # removed documents keep their original text
    assert C4Quality(languages=None)([text], ["fr"])[0] == ["c4:no_lines_left"]


# ---- agreement with datatrove --------------------------------------------------------------


def damaged(texts: list[str], seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for t in texts:
        lines = t.splitlines()
        k = rng.randrange(6)
        if k == 0:
            out.append(t)
        elif k == 1:  # cut to a line or two
            out.append("\n".join(lines[: rng.randrange(1, 3)]))
        elif k == 2:  # navigation and notices mixed in
            out.append(
                "\n".join(w for line in lines for w in (line, "Share | Tweet", "We use cookies."))
            )
        elif k == 3:  # code
            out.append(t + "\nThen call it as f(x) { return 1; } and see.")
        elif k == 4:  # terminal punctuation dropped
            out.append("\n".join(line.rstrip(".!?\"'") for line in lines))
        else:  # words per line thinned out
            out.append("\n".join(" ".join(line.split()[::3]) + "." for line in lines))
    return out


@pytest.fixture(scope="module")
def agreement_docs() -> list[str]:
    rng = random.Random(3)
    return rng.sample(C4, 80) + rng.sample(PILE, 80) + damaged(rng.sample(C4 + PILE, 160), 4)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        # c4_utils' values; datatrove also takes "'" as a terminal mark.
        (
            dict(end_marks=(".", "?", "!", '"', "'")),
            dict(min_words_per_line=5, min_num_sentences=3),
        ),
        # datatrove's own defaults.
        (dict(end_marks=(".", "?", "!", '"', "'"), min_words_per_line=3, min_sentences=5), {}),
    ],
)
def test_same_decisions_and_text_as_datatrove(agreement_docs, ours, theirs, require):
    filters = require("datatrove.pipeline.filters", "the reference C4 filter")
    from datatrove.data import Document

    ref = filters.C4QualityFilter(**theirs)
    reasons, texts = C4Quality(**ours)(agreement_docs, ["en"] * len(agreement_docs))
    n_kept = 0
    for doc, reason, text in zip(agreement_docs, reasons, texts, strict=True):
        d = Document(text=doc, id="x")
        kept = ref.filter(d) is True
        assert (reason is None) == kept, (reason, doc[:300])
        if kept:
            n_kept += 1
            assert text == d.text
    assert 40 < n_kept < len(agreement_docs) - 40  # both decisions well represented


# ---- batches -------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.sampled_from(C4[:50] + PILE[:20]) | st.text(max_size=200), max_size=8),
    st.integers(0, 8),
)
def test_batch_split_gives_the_same_result(texts, cut):
    f = C4Quality()
    langs = ["en"] * len(texts)
    reasons, out = f(texts, langs)
    r1, o1 = f(texts[:cut], langs[:cut])
    r2, o2 = f(texts[cut:], langs[cut:])
    assert (reasons, out) == (r1 + r2, o1 + o2)
