"""BigScience's OSCAR filters for ROOTS/BLOOM (bigscience-workshop/data-preparation,
preprocessing/training/01b_oscar_cleaning_and_filtering: filtering.py, parameters_filtering.py),
re-implemented with the published per-language values.

Rules, in their order, each with the language's cutoff: number of words, character n-gram
repetition (10-grams; 3-grams for zh), word 5-gram repetition, special characters,
closed-class (stop) words, flagged (adult) words, and KenLM perplexity when a model is given
(off otherwise: the models are a download). Their language-ID cutoff (`min_lang_id` in the
table, e.g. 0.80 for en) belongs to the language-ID stage and is not applied here.

Definitions, as BigScience computes them:
- the text is first normalized for measuring (kept documents are not rewritten): stripped,
  every space character turned into " ", control characters removed, and, where the language
  says so, words containing "http", "www", ".com", "href" or "//" and words longer than its
  cutoff dropped;
- a word is a space-separated piece of that text, lower-cased, with special characters stripped
  from both ends (empty pieces are not words);
- character repetition: of all character n-grams, the share of occurrences taken by the
  sqrt(#distinct) most frequent (only n-grams seen more than once can count);
- word repetition: the share of word n-gram occurrences whose n-gram occurs more than once;
- special characters: BigScience's set (ASCII punctuation, digits, spaces, common symbols and
  emoji), as a share of the normalized text's characters.

Languages: the values for ar, bn, ca, en, es, eu, fr, hi, id, pt, ur, vi and zh are theirs;
every other language (de and it included: BLOOM had neither) gets their "default" profile.
Word lists (wordlists/README.md): BigScience's stop words for en and flagged words for en, ca,
es, eu, fr, id, pt, vi, zh; spaCy's stop words elsewhere. A rule whose list is missing for a
language is skipped, as in BigScience. Word-based rules are skipped for languages written
without spaces (ja, th, ...) and for zh, which BigScience measured on SentencePiece pieces.

Speed: counts use numpy over code points (a lookup table for special characters, 64-bit
rolling hashes for character n-grams) instead of per-character Python loops.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tokenmill.filters.base import Filter, RuleParams
from tokenmill.filters.quality import NO_SPACE_LANGS
from tokenmill.filters.quality import code_points as _codes

WORDLISTS = Path(__file__).parent / "wordlists"
INCORRECT_SUBSTRINGS = ("http", "www", ".com", "href", "//")


@dataclass(frozen=True)
class BigScienceParams:
    """One language's cutoffs (BigScience's names in comments where they differ)."""

    min_words: int = 10  # number_words_min_cutoff
    max_words: int = 100_000
    char_rep_length: int = 10  # character_repetition_length
    max_char_rep: float = 0.2
    word_rep_length: int = 5
    max_word_rep: float = 0.3
    max_special_chars: float = 0.4
    min_stop_words: float = 0.1  # stopwords_min_cutoff (a ratio)
    max_flagged_words: float = 0.1
    remove_incorrect_substrings: bool = False  # cond_remove_words_with_incorrect_substrings
    remove_long_words: bool = False
    max_word_length: int = 50  # length_word_max_cutoff
    words_augmentation: tuple[int, ...] = ()  # n-word groups also looked up in the lists
    augmentation_join: str = ""
    sentencepiece_words: bool = False  # "tokenization": words are SentencePiece pieces
    min_lang_id: float = 0.70  # for the language-ID stage
    max_perplexity: float = 10_000


def _p(**kw) -> BigScienceParams:
    return BigScienceParams(remove_incorrect_substrings=True, remove_long_words=True, **kw)


# parameters_filtering.py, per language ("default" for all others).
PUBLISHED: dict[str, BigScienceParams] = {
    "default": BigScienceParams(),
    "ar": _p(max_word_length=25, min_words=20, max_char_rep=0.20, max_word_rep=0.34,
             max_special_chars=0.30, min_stop_words=0.07, max_flagged_words=0.03,
             min_lang_id=0.81, max_perplexity=2300),
    "bn": _p(max_word_length=20, min_words=33, max_char_rep=0.13, max_word_rep=0.21,
             max_special_chars=0.45, min_stop_words=0.002, max_flagged_words=0.001,
             min_lang_id=0.95, max_perplexity=2000),
    "ca": _p(max_word_length=20, min_words=15, max_char_rep=0.2, max_word_rep=0.4,
             max_special_chars=0.25, min_stop_words=0.25, max_flagged_words=0.1,
             min_lang_id=0.8, max_perplexity=2500),
    "en": _p(max_word_length=25, min_words=20, max_char_rep=0.106, max_word_rep=0.19,
             max_special_chars=0.4, min_stop_words=0.3, max_flagged_words=0.01,
             min_lang_id=0.80, max_perplexity=1500),
    "es": _p(max_word_length=25, min_words=16, max_char_rep=0.14, max_word_rep=0.25,
             max_special_chars=0.34, min_stop_words=0.4, max_flagged_words=0.01,
             min_lang_id=0.8, max_perplexity=1300),
    "eu": _p(max_word_length=28, min_words=8, max_char_rep=0.20, max_word_rep=0.40,
             max_special_chars=0.31, min_stop_words=0.05, max_flagged_words=0.1,
             min_lang_id=0.70, max_perplexity=3000),
    "fr": _p(max_word_length=45, min_words=13, max_char_rep=0.14, max_word_rep=0.13,
             max_special_chars=0.34, min_stop_words=0.27, max_flagged_words=0.008,
             min_lang_id=0.8, max_perplexity=1770),
    "hi": _p(max_word_length=25, min_words=38, max_char_rep=0.18, max_word_rep=0.47,
             max_special_chars=0.45, min_stop_words=0.01, max_flagged_words=0.005,
             min_lang_id=0.90, max_perplexity=1517),
    "id": _p(max_word_length=30, min_words=15, max_char_rep=0.15, max_word_rep=0.20,
             max_special_chars=0.34, min_stop_words=0.15, max_flagged_words=0.01,
             min_lang_id=0.7, max_perplexity=5000),
    "pt": _p(max_word_length=19, min_words=19, max_char_rep=0.25, max_word_rep=0.98,
             max_special_chars=0.35, min_stop_words=0.2, max_flagged_words=0.007,
             min_lang_id=0.6, max_perplexity=3038),
    "ur": _p(max_word_length=20, min_words=25, max_char_rep=0.19, word_rep_length=7,
             max_word_rep=0.5, max_special_chars=0.25, min_stop_words=0.01,
             max_flagged_words=0.025, min_lang_id=0.90, max_perplexity=1495),
    "vi": _p(max_word_length=25, min_words=30, max_char_rep=0.15, max_word_rep=0.20,
             max_special_chars=0.34, words_augmentation=(2,), augmentation_join=" ",
             min_stop_words=0.08, max_flagged_words=0.005, min_lang_id=0.90,
             max_perplexity=1600),
    "zh": BigScienceParams(max_word_length=1000, sentencepiece_words=True, min_words=1,
                           max_words=1_000_000, char_rep_length=3, max_char_rep=0.2,
                           max_word_rep=0.96, max_special_chars=0.3, words_augmentation=(2,),
                           min_stop_words=0.1691, max_flagged_words=0.001, min_lang_id=0.85,
                           max_perplexity=2095),
}  # fmt: skip


def params_for(lang: str, overrides: Mapping[str, Mapping] | None = None) -> BigScienceParams:
    """The published values for `lang` (else "default"), with config overrides applied
    (overrides under "default" apply to every language without its own entry)."""
    base = PUBLISHED.get(lang, PUBLISHED["default"])
    if overrides:
        key = lang if lang in overrides else ("default" if lang not in PUBLISHED else None)
        if key is not None and overrides.get(key):
            base = replace(base, **dict(overrides[key]))
    return base


# ---- character sets and word lists ---------------------------------------------------------


def _load_codepoints(path: Path) -> frozenset[str]:
    return frozenset(
        chr(int(line, 16))
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )


SPECIAL_CHARACTERS = _load_codepoints(WORDLISTS / "bigscience_special_characters.txt")
_SPECIAL_LUT = np.zeros(0x110000, dtype=bool)
_SPECIAL_LUT[[ord(c) for c in SPECIAL_CHARACTERS]] = True
_INCORRECT = re.compile("|".join(re.escape(s) for s in INCORRECT_SUBSTRINGS))

# Spaces become " " (their whitespace list plus every Unicode space); other control characters
# go (their non-printing characters: U+0000-001F, U+007F-009F).
_SPACE_CHARS = (
    set(string.whitespace) | {chr(c) for c in range(0xA0, 0x3001) if chr(c).isspace()} | {"\ufffc"}
)
_NORMALIZE = {ord(c): " " for c in _SPACE_CHARS}
_NORMALIZE.update({c: None for c in [*range(32), *range(127, 160)] if chr(c) not in _SPACE_CHARS})
_TO_NORMALIZE = re.compile(
    "[" + "".join(re.escape(chr(c)) for c in sorted(_NORMALIZE) if c != 32) + "]"
)

# CCNet's punctuation normalization, used before KenLM scoring.
UNICODE_PUNCTUATION = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "１": '"',
    "」": '"', "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?",
    "！": "!", "（": "(", "）": ")", "；": ";", "–": "-", "—": " - ", "．": ". ", "～": "~",
    "’": "'", "…": "...", "━": "-", "〈": "<", "〉": ">", "【": "[", "】": "]", "％": "%",
    "►": "-",
}  # fmt: skip
_PUNCT_TABLE = str.maketrans(UNICODE_PUNCTUATION)

_WORD_LISTS: dict[tuple[str, str], frozenset[str]] = {}


def word_list(kind: str, lang: str, path: str | None = None) -> frozenset[str]:
    """A shipped list (`kind` is "stopwords" or "flagged_words") or the file at `path`;
    empty when there is none for the language."""
    key = (kind, path or lang)
    words = _WORD_LISTS.get(key)
    if words is None:
        p = Path(path) if path else WORDLISTS / kind / f"{lang}.txt"
        if path and not p.exists():
            raise FileNotFoundError(f"{kind} list for {lang} not found: {p}")
        words = frozenset(
            w.strip().lower()
            for w in (p.read_text(encoding="utf-8").splitlines() if p.exists() else [])
            if w.strip() and not w.startswith("#")
        )
        _WORD_LISTS[key] = words
    return words


# ---- measures ------------------------------------------------------------------------------


def normalize(text: str, p: BigScienceParams) -> str:
    """The text BigScience measures: spaces unified, control characters removed and, where
    the language says so, URL-like and over-long words dropped."""
    text = text.strip().replace("\n", " ").replace("\t", " ")
    if _TO_NORMALIZE.search(text):
        text = text.translate(_NORMALIZE)
    check_urls = p.remove_incorrect_substrings and _INCORRECT.search(text) is not None
    if check_urls or p.remove_long_words:
        # The words (split on " ") kept, joined by one space: only words with an incorrect
        # substring or over the length limit can go, so only those are looked at.
        long = p.max_word_length if p.remove_long_words else None
        gone = _dropped_words(text, check_urls, long)
        if gone:
            ends = [0, *chain.from_iterable(gone), len(text)]
            text = "".join(text[ends[i] : ends[i + 1]] for i in range(0, len(ends), 2))
        text = " ".join(filter(None, text.split(" ")))
    return text


_LONG_WORDS: dict[int, re.Pattern] = {}


def _dropped_words(text: str, check_urls: bool, long: int | None) -> list[tuple[int, int]]:
    """(start, end) of each " "-delimited word normalize drops, in order: one with an
    incorrect substring, also once stripped of special characters (check_urls), or longer
    than `long`, also once stripped."""
    spans = set()
    if long is not None:
        pattern = _LONG_WORDS.get(long)
        if pattern is None:
            pattern = _LONG_WORDS[long] = re.compile(f"[^ ]{{{long + 1},}}")
        for m in pattern.finditer(text):  # each match is a whole word
            core = strip_special(m.group())
            if not core or len(core) > long:
                spans.add(m.span())
    if check_urls:
        for m in _INCORRECT.finditer(text):  # (no incorrect substring holds a space)
            start = text.rfind(" ", 0, m.start()) + 1
            end = text.find(" ", m.end())
            end = len(text) if end < 0 else end
            if _INCORRECT.search(strip_special(text[start:end])):
                spans.add((start, end))
    return sorted(spans)


class _Stripped(dict):
    """word -> the word without special characters at either end, computed on first lookup
    (words repeat); cleared when it passes 200,000 words."""

    def __missing__(self, word: str) -> str:
        special = SPECIAL_CHARACTERS
        i, j = 0, len(word)
        while i < j and word[i] in special:
            i += 1
        while j > i and word[j - 1] in special:
            j -= 1
        if len(self) > 200_000:
            self.clear()
        s = self[word] = word[i:j]
        return s


_STRIPPED = _Stripped()


def strip_special(word: str) -> str:
    """`word` without special characters at either end (memoized: words repeat)."""
    return _STRIPPED[word]


def words_of(text: str) -> list[str]:
    """BigScience's words: space-separated, lower-cased, stripped of special characters."""
    return list(filter(None, map(_STRIPPED.__getitem__, text.lower().split())))


def special_characters_ratio(text: str) -> float:
    if not text:
        return 0.0
    return int(np.count_nonzero(_SPECIAL_LUT[_codes(text)])) / len(text)


_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)
_S21, _S29 = np.uint64(21), np.uint64(29)


def _mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A 64-bit hash of the pairs (a[i], b[i])."""
    h = a * _HASH_BASE
    h ^= b
    h *= _HASH_BASE
    h ^= h >> _S29
    return h


def _char_ngram_hashes(codes: np.ndarray, n: int, m: int) -> np.ndarray:
    """An id for each of the m character n-grams: exact for n <= 3 (21-bit code points
    packed), else a 64-bit hash built by doubling (2-grams packed exactly, 4-grams from two
    2-grams, 8 from two 4, ...), log2(n) vector passes instead of n."""
    if n <= 3:
        h = codes[:m].copy()
        for k in range(1, n):
            h = (h << _S21) | codes[k : k + m]
        return h
    with np.errstate(over="ignore"):
        # the pieces n is made of (its binary digits), kept; the others dropped once used
        grams = {1: codes} if n & 1 else {}
        g, size = (codes[:-1] << _S21) | codes[1:], 2
        while True:
            if n & size:
                grams[size] = g
            if size * 2 > n:
                break
            g, size = _mix(g[:-size], g[size:]), size * 2
        h, done = g[:m], size  # the first `size` characters of each n-gram
        for part in sorted(grams, reverse=True)[1:]:  # then the rest, largest pieces first
            h = _mix(h, grams[part][done : done + m])
            done += part
        return h


def char_repetition_ratio(text: str, n: int) -> float:
    """Share of character n-gram occurrences taken by the sqrt(#distinct) most frequent
    n-grams (n-grams compared through 64-bit hashes; exact for n <= 3)."""
    m = len(text) - n + 1
    if m <= 0:
        return 0.0
    h = _char_ngram_hashes(_codes(text).astype(np.uint64), n, m)
    h.sort()
    # the last place of each distinct n-gram, then their counts
    last = np.flatnonzero(h[1:] != h[:-1])
    bounds = np.empty(len(last) + 2, dtype=np.int64)
    bounds[0], bounds[-1] = -1, m - 1
    bounds[1:-1] = last
    freq = bounds[1:] - bounds[:-1]
    repeated = freq[freq > 1]  # the top sqrt(#distinct) can only come from these
    k = min(int(math.sqrt(len(freq))), len(repeated))
    if k == 0:
        return 0.0
    top = np.partition(repeated, len(repeated) - k)[len(repeated) - k :]
    return int(top.sum()) / m


def word_repetition_ratio(words: list[str], n: int) -> float:
    """Share of word n-gram occurrences whose n-gram occurs more than once."""
    if len(words) < n:
        return 0.0
    counts = Counter(zip(*(words[i:] for i in range(n)), strict=False)).values()
    return sum(c for c in counts if c > 1) / (len(words) - n + 1)


def list_ratio(words: list[str], listed: frozenset[str], p: BigScienceParams) -> float:
    """Share of words in `listed`, counting also the n-word groups of words_augmentation
    (capped at 1, as BigScience does)."""
    if not words:
        return 0.0
    hits = sum(map(listed.__contains__, words))
    for g in p.words_augmentation:
        j = p.augmentation_join
        hits += sum(1 for i in range(len(words) - g + 1) if j.join(words[i : i + g]) in listed)
    return min(hits / len(words), 1.0)


# ---- the filter ----------------------------------------------------------------------------


@dataclass
class _KenLM:
    model_path: str
    sentencepiece_path: str
    models: tuple = field(default=(), repr=False)

    def load(self):
        if not self.models:
            try:
                import kenlm
                import sentencepiece
            except ImportError as e:
                raise ImportError(
                    "perplexity filtering needs KenLM and SentencePiece: "
                    "pip install kenlm sentencepiece"
                ) from e
            sp = sentencepiece.SentencePieceProcessor()
            sp.load(self.sentencepiece_path)
            self.models = (kenlm.Model(self.model_path), sp)
        return self.models

    def __getstate__(self):  # ship the paths, not the loaded models
        return {**self.__dict__, "models": ()}


def perplexity(text: str, lm, sp) -> float:
    """BigScience's (CCNet's) document perplexity: punctuation normalized, SentencePiece
    pieces, KenLM log10 scores summed over lines, per piece (+1 per line)."""
    text = text.strip().translate(_NORMALIZE).translate(_PUNCT_TABLE)
    pieces = " ".join(sp.encode_as_pieces(text))
    log_score, length = 0.0, 0
    for line in pieces.split("\n"):
        log_score += lm.score(line)
        length += len(line.split()) + 1
    return round(10.0 ** (-log_score / length), 1)


class BigScienceOverride(BaseModel):
    """Any of one language's BigScience values (`BigScienceParams`); unset keeps the
    published one."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    min_words: int | None = Field(None, ge=0)
    max_words: int | None = Field(None, ge=0)
    char_rep_length: int | None = Field(None, ge=1)
    max_char_rep: float | None = Field(None, ge=0, le=1)
    word_rep_length: int | None = Field(None, ge=1)
    max_word_rep: float | None = Field(None, ge=0, le=1)
    max_special_chars: float | None = Field(None, ge=0, le=1)
    min_stop_words: float | None = Field(None, ge=0, le=1)  # a ratio, as BigScience's
    max_flagged_words: float | None = Field(None, ge=0, le=1)
    remove_incorrect_substrings: bool | None = None
    remove_long_words: bool | None = None
    max_word_length: int | None = Field(None, gt=0)
    words_augmentation: tuple[int, ...] | None = None
    augmentation_join: str | None = None
    sentencepiece_words: bool | None = None
    min_lang_id: float | None = Field(None, ge=0, le=1)
    max_perplexity: float | None = Field(None, gt=0)


class BigScienceRules(RuleParams):
    """BigScience's OSCAR rules with their published per-language values (`PUBLISHED`);
    `overrides` changes them per language ("default" for languages without their own)."""

    path_fields: ClassVar[tuple[str, ...]] = ("kenlm_models",)

    overrides: dict[str, BigScienceOverride] = Field(
        default_factory=dict,
        description="language -> {parameter: value}, e.g. {en: {max_word_rep: 0.2}}",
    )
    kenlm_models: dict[str, tuple[str, str]] = Field(
        default_factory=dict,
        description="language -> [KenLM model, SentencePiece model]; perplexity off without",
    )
    stop_words_files: dict[str, str] = Field(default_factory=dict, description="language -> file")
    flagged_words_files: dict[str, str] = Field(default_factory=dict)
    normalize: bool = Field(True, description="measure the text as BigScience normalized it")


class BigScienceQuality(Filter):
    """BigScience's OSCAR quality rules with per-language cutoffs (see the module docstring).

    Reasons: `bigscience:too_few_words`, `bigscience:too_many_words`,
    `bigscience:char_repetition_too_high`, `bigscience:word_repetition_too_high`,
    `bigscience:too_many_special_characters`, `bigscience:too_few_stop_words`,
    `bigscience:too_many_flagged_words`, `bigscience:perplexity_too_high`.
    """

    Params = BigScienceRules
    label = "bigscience"

    def setup(self) -> None:
        self.overrides = {
            k: v.model_dump(exclude_none=True) for k, v in self.settings.overrides.items()
        }
        self.kenlm = {lang: _KenLM(*paths) for lang, paths in self.kenlm_models.items()}
        self._params: dict[str, BigScienceParams] = {}

    def params(self, lang: str) -> BigScienceParams:
        p = self._params.get(lang)
        if p is None:
            p = self._params[lang] = params_for(lang, self.overrides)
        return p

    def judge(self, texts: list[str], langs: list[str]) -> list[str | None]:
        return [self._one(t, lang) for t, lang in zip(texts, langs, strict=True)]

    def _one(self, text: str, lang: str) -> str | None:
        p = self.params(lang)
        doc = normalize(text, p) if self.normalize else text
        word_rules = not p.sentencepiece_words and lang not in NO_SPACE_LANGS
        words = words_of(doc) if word_rules else []
        if word_rules and not p.min_words <= len(words) <= p.max_words:
            return "too_few_words" if len(words) < p.min_words else "too_many_words"
        if char_repetition_ratio(doc, p.char_rep_length) > p.max_char_rep:
            return "char_repetition_too_high"
        if word_rules and word_repetition_ratio(words, p.word_rep_length) > p.max_word_rep:
            return "word_repetition_too_high"
        if special_characters_ratio(doc) > p.max_special_chars:
            return "too_many_special_characters"
        if word_rules:
            stop = word_list("stopwords", lang, self.stop_words_files.get(lang))
            if stop and list_ratio(words, stop, p) < p.min_stop_words:
                return "too_few_stop_words"
            flagged = word_list("flagged_words", lang, self.flagged_words_files.get(lang))
            if flagged and list_ratio(words, flagged, p) > p.max_flagged_words:
                return "too_many_flagged_words"
        lm = self.kenlm.get(lang)
        if lm is not None and perplexity(doc, *lm.load()) > p.max_perplexity:
            return "perplexity_too_high"
        return None
