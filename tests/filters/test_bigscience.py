"""BigScience's OSCAR rules: the published per-language values, each rule removing what it
names, clean documents kept in several languages, the fast measures equal to a plain reading
of BigScience's definitions, and batches split cleanly."""

from __future__ import annotations

import functools
import math
import pickle
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tmfixtures import sample_docs

from tokenmill.filters import bigscience as bs
from tokenmill.filters.bigscience import PUBLISHED, BigScienceQuality, params_for
from tokenmill.filters.quality import NO_SPACE_LANGS

OSCAR = [(r["content"], r["metadata"]["identification"]["label"]) for r in sample_docs("oscar")]
EN = [r["text"] for r in sample_docs("c4")]


@functools.cache
def clean(lang: str, min_words: int = 120) -> str:
    """A real document the plain reading of BigScience's rules (plain_verdict, below) keeps:
    chosen without the filter under test."""
    for t in documents(lang):
        if len(t.split()) >= min_words and plain_verdict(t, lang) is None:
            return t
    raise AssertionError(f"no clean {lang} document in the sample")


def documents(lang: str) -> list[str]:
    return EN if lang == "en" else [t for t, lab in OSCAR if lab == lang]


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


@pytest.mark.parametrize("lang", ["en", "fr", "es", "de", "it", "pt", "id", "zh", "ja"])
def test_verdicts_equal_a_plain_reading_of_the_rules(lang):
    """Real documents of each language: the filter's verdict on each is the plain reading's
    (kept ones included: the first document of 120+ words the plain reading keeps is kept)."""
    docs = documents(lang)[:40]
    want = [plain_verdict(t, lang) for t in docs]
    assert BigScienceQuality()(docs, [lang] * len(docs)) == want
    assert None in want  # clean documents are kept, not only bad ones removed
    assert BigScienceQuality()([clean(lang)], [lang]) == [None]


def test_each_rule_removes_what_it_names():
    f = BigScienceQuality()
    clean_en = clean("en")
    words = clean_en.split()
    cases = {
        "bigscience:too_few_words": " ".join(words[:12]),
        "bigscience:char_repetition_too_high": clean_en + " la" * 1500,
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
    assert few([clean_en], ["en"]) == ["bigscience:too_many_words"]


@pytest.mark.parametrize("missing", ["kenlm", "sentencepiece"])
def test_missing_kenlm_names_the_packages(monkeypatch, missing):
    # None in sys.modules makes `import` raise ImportError, installed or not.
    monkeypatch.setitem(sys.modules, missing, None)
    f = BigScienceQuality(kenlm_models={"en": ("m.bin", "sp.model")})
    with pytest.raises(ImportError, match="pip install kenlm sentencepiece"):
        f([clean("en")], ["en"])


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
    assert BigScienceQuality()([clean("en")], ["und"]) == [None]


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


SPECIAL = "".join(bs.SPECIAL_CHARACTERS)  # for str.strip: strips any of them from both ends


def plain_normalize_words(text: str, p) -> str:
    """The word-dropping step of normalize, read plainly: every " "-delimited word looked at."""
    check_urls = p.remove_incorrect_substrings and has_incorrect(text)
    long = p.max_word_length if p.remove_long_words else None
    kept = []
    for w in text.split(" "):
        if not w:
            continue
        if check_urls and has_incorrect(w) and has_incorrect(w.strip(SPECIAL)):
            continue
        if long is not None and len(w) > long:
            core = w.strip(SPECIAL)
            if not core or len(core) > long:
                continue
        kept.append(w)
    return " ".join(kept)


def has_incorrect(text: str) -> bool:
    return any(s in text for s in bs.INCORRECT_SUBSTRINGS)


def plain_list_ratio(words: list[str], listed: frozenset[str], p) -> float:
    if not words:
        return 0.0
    hits = sum(w in listed for w in words)
    for g in p.words_augmentation:
        groups = (p.augmentation_join.join(words[i : i + g]) for i in range(len(words) - g + 1))
        hits += sum(group in listed for group in groups)
    return min(hits / len(words), 1.0)


def plain_verdict(text: str, lang: str) -> str | None:
    """BigScience's rules (module docstring) read plainly, in their order, without the
    filter's fast measures; no perplexity (no model)."""
    p = params_for(lang)
    spaced = text.strip().replace("\n", " ").replace("\t", " ").translate(bs._NORMALIZE)
    urls = p.remove_incorrect_substrings and has_incorrect(spaced)
    doc = plain_normalize_words(spaced, p) if urls or p.remove_long_words else spaced
    word_rules = not p.sentencepiece_words and lang not in NO_SPACE_LANGS
    words = [w.strip(SPECIAL) for w in doc.lower().split()] if word_rules else []
    words = [w for w in words if w]
    if word_rules and len(words) < p.min_words:
        return "bigscience:too_few_words"
    if word_rules and len(words) > p.max_words:
        return "bigscience:too_many_words"
    if plain_char_repetition(doc, p.char_rep_length) > p.max_char_rep:
        return "bigscience:char_repetition_too_high"
    if word_rules and plain_word_repetition(words, p.word_rep_length) > p.max_word_rep:
        return "bigscience:word_repetition_too_high"
    if doc and sum(c in bs.SPECIAL_CHARACTERS for c in doc) / len(doc) > p.max_special_chars:
        return "bigscience:too_many_special_characters"
    if word_rules:
        stop = bs.word_list("stopwords", lang)
        if stop and plain_list_ratio(words, stop, p) < p.min_stop_words:
            return "bigscience:too_few_stop_words"
        flagged = bs.word_list("flagged_words", lang)
        if flagged and plain_list_ratio(words, flagged, p) > p.max_flagged_words:
            return "bigscience:too_many_flagged_words"
    return None


_PIECES = ["a", "Wort", " ", "  ", ".", "«", "»", "http", "www", ".com", "//", "href", "x" * 26,
           "é" * 30, "—", "(", ")", "\n", "\u3000", "42"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map("".join))
def test_normalize_drops_the_words_a_plain_loop_drops(text):
    for lang in ("en", "fr", "default"):
        p = PUBLISHED[lang]
        spaced = text.strip().replace("\n", " ").replace("\t", " ").translate(bs._NORMALIZE)
        urls = p.remove_incorrect_substrings and has_incorrect(spaced)
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


# ---- KenLM perplexity: a real model, scored by hand ------------------------------------------
#
# A SentencePiece model trained here on real English text, and a bigram ARPA file written here
# from piece counts of that text (add-one unigrams, absolute-discount bigrams with backoff
# weights that make every context's distribution sum to 1), loaded by the real `kenlm`. The
# oracle reads the ARPA file back and scores with the backoff formula in plain Python.


def write_arpa(path, lines: list[list[str]], min_count: int = 2, discount: float = 0.5) -> None:
    """A valid bigram ARPA model of `lines` (lists of pieces)."""
    uni, bi = Counter(), Counter()
    for pieces in lines:
        tokens = ["<s>", *pieces, "</s>"]
        uni.update(tokens[1:])
        bi.update(zip(tokens, tokens[1:], strict=False))
    vocab = sorted(uni) + ["<unk>"]
    total = sum(uni.values()) + len(vocab)
    p_uni = {w: (uni[w] + 1) / total for w in vocab}  # sums to 1 over vocab
    history = Counter()
    for (v, _), c in bi.items():
        history[v] += c
    kept = {vw: c for vw, c in bi.items() if c >= min_count}
    p_bi = {(v, w): (c - discount) / history[v] for (v, w), c in kept.items()}
    mass, lower = Counter(), Counter()
    for (v, w), p in p_bi.items():
        mass[v] += p
        lower[v] += p_uni[w]
    backoff = {v: (1 - mass[v]) / (1 - lower[v]) for v in mass}
    log_bo = {w: math.log10(backoff.get(w, 1)) for w in ["<s>", *vocab]}
    rows1 = [f"-99\t<s>\t{log_bo['<s>']:.6f}"]  # <s> is never predicted
    rows1 += [f"{math.log10(p_uni[w]):.6f}\t{w}\t{log_bo[w]:.6f}" for w in vocab]
    rows2 = [f"{math.log10(p):.6f}\t{v} {w}" for (v, w), p in sorted(p_bi.items())]
    path.write_text(
        f"\\data\\\nngram 1={len(rows1)}\nngram 2={len(rows2)}\n\n\\1-grams:\n"
        + "\n".join(rows1)
        + "\n\n\\2-grams:\n"
        + "\n".join(rows2)
        + "\n\n\\end\\\n",
        encoding="utf-8",
    )


def read_arpa(path) -> tuple[dict, dict]:
    """{word: (log10 p, log10 backoff)}, {(v, w): log10 p} as written in the file."""
    uni, bi, order = {}, {}, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1])
        elif line and order and not line.startswith("\\"):
            fields = line.split("\t")
            if order == 1:
                uni[fields[1]] = (float(fields[0]), float(fields[2]) if len(fields) > 2 else 0.0)
            else:
                bi[tuple(fields[1].split(" "))] = float(fields[0])
    return uni, bi


def plain_log10_score(pieces: list[str], uni: dict, bi: dict) -> float:
    """log10 P(<s> pieces </s>); unknown pieces are <unk>."""
    tokens = ["<s>"] + [w if w in uni else "<unk>" for w in pieces] + ["</s>"]
    return sum(plain_log10_p(v, w, uni, bi) for v, w in zip(tokens, tokens[1:], strict=False))


def plain_log10_p(v: str, w: str, uni: dict, bi: dict) -> float:
    """log10 P(w | v): the bigram's own probability if listed, else the context's backoff
    times the unigram probability."""
    return bi[(v, w)] if (v, w) in bi else uni[v][1] + uni[w][0]


def plain_perplexity(text: str, lang: str, sp, uni: dict, bi: dict) -> float:
    """CCNet's document perplexity over the text the rule measures (normalized as for the
    other rules, then CCNet's punctuation replacements), one pass per line, per piece + 1."""
    doc = bs.normalize(text, params_for(lang))
    for a, b in bs.UNICODE_PUNCTUATION.items():
        doc = doc.replace(a, b)
    score, length = 0.0, 0
    for line in " ".join(sp.encode_as_pieces(doc)).split("\n"):
        pieces = line.split()
        score += plain_log10_score(pieces, uni, bi)
        length += len(pieces) + 1
    return 10 ** (-score / length)


@pytest.fixture(scope="module")
def real_lm(tmp_path_factory, require):
    """(arpa path, SentencePiece model path, loaded SentencePiece) trained on EN[:150]."""
    require("kenlm", "the perplexity rule is tested with a real KenLM model")
    spm = require("sentencepiece", "the perplexity rule's pieces")
    root = tmp_path_factory.mktemp("kenlm")
    train = [bs.normalize(t, PUBLISHED["en"]) for t in EN[:150]]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(train),
        model_prefix=str(root / "en.sp"),
        vocab_size=600,
        model_type="unigram",
        character_coverage=1.0,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(root / "en.sp.model"))
    write_arpa(root / "en.arpa", [sp.encode_as_pieces(t) for t in train])
    return root / "en.arpa", root / "en.sp.model", sp


def test_arpa_model_is_a_distribution(real_lm):
    """The hand-made model is valid: after every context, the probabilities of all next
    pieces (backoff included) sum to 1; kenlm reads the same numbers back."""
    import kenlm

    arpa, _, _ = real_lm
    uni, bi = read_arpa(arpa)
    words = [w for w in uni if w != "<s>"]
    for v in ["<s>", "▁the", ".", "<unk>"]:
        total = sum(10 ** plain_log10_p(v, w, uni, bi) for w in words)
        assert total == pytest.approx(1.0, abs=1e-4), v
    model = kenlm.Model(str(arpa))
    assert model.order == 2
    for sentence in ["▁the", "▁the ▁of .", "zzz ▁the"]:
        want = plain_log10_score(sentence.split(), uni, bi)
        assert model.score(sentence) == pytest.approx(want, abs=1e-4)


def test_perplexity_rule_with_a_real_kenlm_model(real_lm):
    """Documents every other rule keeps: each one's perplexity is the hand-scored one, and
    with the cutoff between two of them the rule removes exactly those above it."""
    arpa, sp_model, sp = real_lm
    uni, bi = read_arpa(arpa)
    # seen in training (low perplexity) and unseen (higher), all clean for the other rules
    docs = [t for t in EN[100:150] + EN[300:400] if plain_verdict(t, "en") is None][:60]
    want = [plain_perplexity(t, "en", sp, uni, bi) for t in docs]
    import kenlm

    lm = kenlm.Model(str(arpa))
    for t, w in zip(docs, want, strict=True):
        assert bs.perplexity(bs.normalize(t, PUBLISHED["en"]), lm, sp) == pytest.approx(w, abs=0.1)
    # the cutoff in the widest gap between neighbouring perplexities of the middle half, so
    # that neither float32 scores nor the rule's rounding to 0.1 can flip a decision
    ordered = sorted(want)
    n = len(ordered)
    k = max(range(n // 4, 3 * n // 4), key=lambda i: ordered[i] - ordered[i - 1])
    cut = (ordered[k - 1] + ordered[k]) / 2
    assert ordered[k] - ordered[k - 1] > 1
    f = BigScienceQuality(
        overrides={"en": {"max_perplexity": cut}},
        kenlm_models={"en": (str(arpa), str(sp_model))},
    )
    expected = ["bigscience:perplexity_too_high" if w > cut else None for w in want]
    assert f(docs, ["en"] * len(docs)) == expected
    assert expected.count(None) == k
    # shipped to a worker: the paths travel, the models are loaded again there
    assert pickle.loads(pickle.dumps(f))(docs, ["en"] * len(docs)) == expected
    # a language without a model, and a filter without models: no perplexity rule
    assert f(docs[:3], ["und"] * 3) == [None] * 3
    assert BigScienceQuality()(docs, ["en"] * len(docs)) == [None] * len(docs)
