"""Gopher's quality and repetition rules (Rae et al. 2021, "Scaling Language Models", MassiveText,
appendix A.1.1 and table A1).

Words are spaCy's tokens (the blank `en` tokenizer: rules only, no model download), the same
words datatrove's GopherQualityFilter and GopherRepetitionFilter count, so our decisions are
datatrove's (tests/filters/test_gopher.py checks it on real documents). Ours are written anew
because they are ~10x faster on the same documents (benchmarks/filters.py):

- spaCy tokenizes a whitespace-delimited chunk the same way wherever it occurs, so `SpacyWords`
  tokenizes each distinct chunk once per process and caches its tokens and their counts;
- n-gram counts use integer word ids and numpy instead of joined strings, and the greedy
  duplicate n-gram scan visits only positions whose n-gram occurs more than once.

Two deliberate differences, both negligible in practice: spaCy's special-case matcher can join
emoticon tokens across a single space (`") :("`), which per-chunk tokenization does not; and a
duplicate n-gram is a repeated sequence of words, where datatrove compares the words joined
without spaces (so `"ab c"` and `"a bc"` collide there).

Thresholds: None disables a rule (datatrove also disables on 0).
"""

from __future__ import annotations

import contextlib
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from tokenmill.filters.base import Filter, RuleParams

WORDLISTS = Path(__file__).parent / "wordlists"

# The paper's stop words: a document needs at least two of them.
GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")

# Table A1 of the paper.
TOP_NGRAMS = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_NGRAMS = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}


def _load_codepoints(path: Path) -> frozenset[str]:
    return frozenset(
        chr(int(line, 16))
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )


# A word made only of these is a symbol, not a word (datatrove's PUNCTUATION_SET).
SYMBOLS = _load_codepoints(WORDLISTS / "gopher_symbols.txt")


# ---- words ---------------------------------------------------------------------------------


def import_spacy():
    """`import spacy`, without what the blank tokenizers do not need.

    - thinc imports torch when it is installed (as it is with tokenmill's trainer), which costs
      every worker about 190 MB and a second of start-up: `import torch` is made to fail
      meanwhile (thinc then goes without). Where torch is already imported it is left alone.
    - spaCy's `__init__` imports its command line (`spacy.cli`: requests, urllib3, weasel,
      typer, httpx; ~10 MB and 0.3 s per worker) for `spacy.info` alone: a stand-in module
      answers that import, and `spacy.info` imports the real one when called.
    """
    import sys
    import types

    if "spacy" in sys.modules:
        import spacy

        return spacy
    blocked: dict[str, types.ModuleType | None] = {}
    if "torch" not in sys.modules:
        blocked["torch"] = None  # makes `import torch` fail
    if "spacy.cli" not in sys.modules:
        cli = types.ModuleType("spacy.cli")
        info = types.ModuleType("spacy.cli.info")

        def lazy_info(*args, **kwargs):
            from spacy.cli.info import info as real

            return real(*args, **kwargs)

        info.info = lazy_info  # type: ignore[attr-defined]
        blocked.update({"spacy.cli": cli, "spacy.cli.info": info})
    sys.modules.update(blocked)  # type: ignore[arg-type]
    try:
        import spacy
    except ImportError as e:  # pragma: no cover - spacy is a dependency
        raise ImportError(
            "the Gopher and C4 rules split words with spaCy's tokenizer "
            "(no model download): pip install spacy"
        ) from e
    finally:
        for name, module in blocked.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    if getattr(spacy, "cli", None) is blocked.get("spacy.cli"):
        del spacy.cli  # `import spacy.cli` (or spacy.cli.download ...) loads the real one
    return spacy


class _Rows(dict):
    """chunk -> its row in SpacyWords' flat arrays; -1 for a chunk not cached."""

    def __missing__(self, chunk: str) -> int:
        return -1


class SpacyWords:
    """spaCy's tokens of a text, cached per whitespace-delimited chunk.

    Each cache entry is (tokens, number of non-symbol tokens, their total length, number of
    tokens with a letter), so the rules sum per chunk instead of per character; each chunk's
    token ids and lengths are also kept in flat arrays (`token_arrays`). Token ids are stable
    while the cache is: it is cleared (ids and all) when it reaches `max_cache` chunks,
    which bounds memory (~0.4 KB a chunk measured on the
    multilingual sample: 50,000 chunks hold the frequent words of a language for ~20 MB a
    worker; 200,000 cost ~55 MB more and saved under 5% of the process stage's time on
    benchmarks/end_to_end.py's corpus).

    New chunks are tokenized a group of documents at a time (`chunk_lists`), in one spaCy
    call. Most never reach spaCy: with English rules, a chunk of letters is one token, and
    letters with one leading and/or one trailing character that spaCy's own prefix / suffix
    patterns split off are those tokens, unless a special case is involved (see
    `tokenizer` and `_affixed`).
    """

    def __init__(self, lang: str = "en", max_cache: int = 50_000):
        self.lang = lang
        self.max_cache = max_cache
        self._nlp = None
        self._tokenizer = None
        self.cache: dict[str, tuple] = {}
        self.token_ids: dict[str, int] = {}
        # every cached chunk's tokens as rows of flat arrays: chunk -> row, and per row the
        # first token's place and the token count; per token its id and length
        self.rows: dict[str, int] = _Rows()
        self._first, self._count = array("q"), array("q")
        self._ids, self._lens = array("q"), array("q")
        self._flat: tuple[np.ndarray, ...] | None = None
        # the special cases, where a language's chunks of letters (and letters with one
        # split-off prefix / suffix character) can be split without spaCy; None: every
        # chunk goes through spaCy
        self._shortcut_specials: frozenset[str] | None = None

    def tokenizer(self):
        if self._tokenizer is None:
            self._nlp = import_spacy().blank(self.lang)
            # Tokens do not depend on lexeme attributes (shape, like_num, ...): skip them.
            self._nlp.vocab.lex_attr_getters = {}
            self._tokenizer = self._nlp.tokenizer
            if self.lang == "en":
                # English's prefix, suffix and infix rules all need a character that is not
                # a letter, so a chunk of letters only is one token unless it is a special
                # case ("cannot" -> "can", "not"). tests/filters/test_gopher.py checks this
                # and `_affixed` against spaCy on multilingual text; `_shortcut_agrees`
                # checks them again on load and turns the shortcut off if a spaCy version
                # disagrees.
                self._shortcut_specials = frozenset(self._tokenizer.rules)
                if not self._shortcut_agrees():
                    self._shortcut_specials = None
        return self._tokenizer

    def _shortcut_agrees(self) -> bool:
        tok = self._tokenizer
        for probe in _SHORTCUT_PROBES:
            quick = self._quick(probe)
            if quick is not None and quick != tuple(t.text for t in tok(probe)):
                return False
        return True

    def _quick(self, chunk: str) -> tuple[str, ...] | None:
        """spaCy's tokens of `chunk` where the shortcut knows them, else None."""
        specials = self._shortcut_specials
        if specials is None or chunk in specials:
            return None
        if chunk.isalpha():
            return (chunk,)
        return self._affixed(chunk)

    def _affixed(self, chunk: str) -> tuple[str, ...] | None:
        """Letters with one leading and/or one trailing character that spaCy splits off:
        its tokens, else None. spaCy strips a prefix / suffix found by its own patterns
        (`prefix_search` / `suffix_search`, so a "." after a lower-case letter goes and one
        after a capital does not) and stops where the rest is a special case; letters alone
        then have nothing more to split. So: each end, if not a letter, must be a
        one-character match of those patterns, and no string along the way a special case."""
        specials = self._shortcut_specials
        tok = self._tokenizer
        head = tail = ""
        core = chunk
        if not chunk[0].isalpha():
            m = tok.prefix_search(chunk)
            if m is None or m.end() != 1:
                return None
            head, core = chunk[0], chunk[1:]
        if core and not core[-1].isalpha():
            m = tok.suffix_search(core)
            if m is None or m.start() != len(core) - 1:
                return None
            tail, core = core[-1], core[:-1]
        if (
            not core.isalpha()
            or core in specials
            or head + core in specials
            or core + tail in specials
        ):
            return None
        return tuple(t for t in (head, core, tail) if t)

    def chunk_lists(
        self, texts: Iterable[str], group_chunks: int = 4096
    ) -> Iterator[tuple[list[str], np.ndarray]]:
        """Each text's whitespace-delimited chunks, every one of them cached, and their rows
        (for `token_arrays`). Chunks not yet cached are tokenized a group of texts at a time
        (about `group_chunks` new chunks), in one spaCy call: each call has a fixed cost. A
        text's entries stay valid until the texts of the next group are tokenized (a full
        cache is cleared between groups)."""
        lookup = self.rows.__getitem__  # -1 for a chunk not cached
        group: list[tuple[list[str], np.ndarray]] = []
        new: dict[str, None] = {}
        for text in texts:
            chunks = text.split()
            rows = np.fromiter(map(lookup, chunks), np.int64, count=len(chunks))
            group.append((chunks, rows))
            new.update(dict.fromkeys([chunks[k] for k in np.flatnonzero(rows < 0).tolist()]))
            if len(new) >= group_chunks or len(group) >= 512:
                self._fill_group(group, new)
                yield from group
                group, new = [], {}
        if group:
            self._fill_group(group, new)
            yield from group

    def _fill_group(self, group: list[tuple[list[str], np.ndarray]], new: dict) -> None:
        """Tokenize and cache the group's new chunks, and fill in their rows."""
        if not new:
            return
        lookup = self.rows.__getitem__
        if len(self.cache) + len(new) > self.max_cache:
            self.clear()  # every row changes
            self._fill(list(dict.fromkeys(chain.from_iterable(c for c, _ in group))))
            for chunks, rows in group:
                rows[:] = np.fromiter(map(lookup, chunks), np.int64, count=len(chunks))
            return
        self._fill(list(new))
        for chunks, rows in group:
            missing = np.flatnonzero(rows < 0).tolist()
            rows[missing] = [lookup(chunks[k]) for k in missing]

    def clear(self) -> None:
        """Forget every chunk and token id."""
        self.cache.clear()
        self.token_ids.clear()
        self.rows.clear()
        for a in (self._first, self._count, self._ids, self._lens):
            del a[:]
        self._flat = None

    def token_arrays(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(token ids, token lengths) of a text, int64, from its chunks' rows (as
        `chunk_lists` gives them): numpy gathers, no per-token Python."""
        if self._flat is None:
            self._flat = tuple(
                np.frombuffer(a, dtype=np.int64).copy()
                for a in (self._first, self._count, self._ids, self._lens)
            )
        first, count, ids, lens = self._flat
        n = count[rows]
        ends = np.cumsum(n)
        # each token's place in the flat arrays: its chunk's first token + its rank in it
        at = np.repeat(first[rows] - (ends - n), n) + np.arange(int(ends[-1]) if len(n) else 0)
        return ids[at], lens[at]

    def chunks(self, text: str) -> list[str]:
        """The text's whitespace-delimited chunks, each one tokenized and cached."""
        return next(self.chunk_lists((text,)))[0]

    def words(self, text: str) -> list[str]:
        cache = self.cache
        return list(chain.from_iterable(cache[c][0] for c in self.chunks(text)))

    def _fill(self, missing: list[str]) -> None:
        tokenizer = self.tokenizer()
        if self._shortcut_specials is not None:  # most chunks need no spaCy call
            rest, known = [], []
            quick = self._quick
            for m in missing:
                toks = quick(m)
                if toks is None:
                    rest.append(m)
                else:
                    known.append((m, toks))
            self._store(known)
            if not rest:
                return
            missing = rest
        groups: list[list[str]] = [[] for _ in missing]
        ends = []
        pos = 0
        for m in missing:
            pos += len(m)
            ends.append(pos)
            pos += 1
        # The memory zone frees the strings spaCy interns for these tokens (its vocabulary
        # would otherwise grow with every new word a worker sees).
        zone = getattr(self._nlp, "memory_zone", None)
        with zone() if zone is not None else contextlib.nullcontext():
            # Newlines between chunks become whitespace tokens, which keep spaCy's
            # special-case matcher from joining tokens of neighbouring chunks.
            j = 0
            for tok in tokenizer("\n".join(missing)):
                text = tok.text
                if text.isspace():
                    continue
                while tok.idx >= ends[j]:
                    j += 1
                groups[j].append(text)
        self._store(zip(missing, groups, strict=True))

    def _store(self, chunk_tokens) -> None:
        """Cache each (chunk, its tokens) with the per-chunk sums the rules use."""
        symbols = SYMBOLS
        ids = self.token_ids
        cache, rows = self.cache, self.rows
        first, count, flat_ids, flat_lens = self._first, self._count, self._ids, self._lens
        self._flat = None
        for chunk, toks in chunk_tokens:
            n_word = n_len = n_alpha = 0
            for t in toks:
                if t.isalpha():  # (no letter is a symbol)
                    n_word += 1
                    n_len += len(t)
                    n_alpha += 1
                elif not symbols.issuperset(t):
                    n_word += 1
                    n_len += len(t)
                    if any(ch.isalpha() for ch in t):
                        n_alpha += 1
            toks = tuple(toks)
            tids = [ids.setdefault(t, len(ids)) for t in toks]
            cache[chunk] = (toks, n_word, n_len, n_alpha)
            rows[chunk] = len(first)
            first.append(len(flat_ids))
            count.append(len(toks))
            flat_ids.extend(tids)
            flat_lens.extend(map(len, toks))


# Chunks `SpacyWords._shortcut_agrees` checks against spaCy on load: every shape the
# shortcut answers, next to special cases it must leave to spaCy.
_SHORTCUT_PROBES = (
    "word", "naïve", "слово", "cannot", "Gonna", "(word", '"Word', "«mot", "¿Qué", "word,",
    "word;", "word)", 'word"', "word.", "WORD.", "Word.", "слово.", "mot»", "(word)",
    '"word."', "[word]", "(cannot", "cannot.", "Mr.", "(Mr.", "etc.", "(etc.", "a.", "e.g.",
    "U.S.", "it's", "Don't", "word's", "$word", "#word", "*word*", "-word", "word-", "'word",
    "word'", "word!", "word?", "...word", "word...", "(a", "I.", "(I)",
)  # fmt: skip
_SPLITTERS: dict[str, SpacyWords] = {}


def spacy_words(lang: str = "en") -> SpacyWords:
    """The process-wide cached splitter for a spaCy language (loaded on first use)."""
    sw = _SPLITTERS.get(lang)
    if sw is None:
        sw = _SPLITTERS[lang] = SpacyWords(lang)
    return sw


# ---- quality -------------------------------------------------------------------------------


class _SpacyRule(Filter):
    """A rule judged one document at a time on spaCy words."""

    label = "gopher"
    tokenizer_language: str

    def judge(self, texts: list[str], langs: list[str]) -> list[str | None]:
        sw = spacy_words(self.tokenizer_language)
        one = self._one
        pairs = zip(texts, sw.chunk_lists(texts), strict=True)
        return [one(t, chunks, sw) for t, (chunks, _) in pairs]

    def _one(self, text: str, chunks: list[str], sw: SpacyWords) -> str | None:  # pragma: no cover
        """The verdict on one text, given its chunks (all in the SpacyWords cache)."""
        raise NotImplementedError


class GopherQualityParams(RuleParams):
    """Gopher's quality rules (Rae et al. 2021); null disables a rule."""

    min_words: int | None = Field(50, ge=0)
    max_words: int | None = Field(100_000, ge=0)
    min_mean_word_length: float | None = Field(3, gt=0)
    max_mean_word_length: float | None = Field(10, gt=0)
    # a ratio, not a share: a word may hold several '#' or ellipses
    max_symbol_word_ratio: float | None = Field(0.1, ge=0, description="'#' and ellipses per word")
    max_bullet_lines_fraction: float | None = Field(0.9, ge=0, le=1)
    max_ellipsis_lines_fraction: float | None = Field(0.3, ge=0, le=1)
    min_alpha_words_fraction: float | None = Field(0.8, ge=0, le=1)
    min_stop_words: int | None = Field(2, ge=0)
    stop_words: list[str] = Field(default_factory=lambda: list(GOPHER_STOP_WORDS))
    languages: list[str] | None = Field(["en"], description="others pass; null: all")
    tokenizer_language: str = Field("en", description="spaCy tokenizer splitting words")


class GopherQuality(_SpacyRule):
    """Gopher's quality rules, in the paper's (and datatrove's) order.

    Reasons: `gopher:too_few_words` / `gopher:too_many_words` (non-symbol words outside
    [min_words, max_words]), `gopher:mean_word_length_too_low` / `_too_high`,
    `gopher:too_many_hashes` / `gopher:too_many_ellipses` (per word),
    `gopher:too_many_bullet_lines`, `gopher:too_many_ellipsis_lines`,
    `gopher:too_few_alpha_words` (words with a letter), `gopher:too_few_stop_words`.
    Only documents in `languages` are judged (the stop words are English); others pass.
    """

    Params = GopherQualityParams

    def setup(self) -> None:
        self.stop_words = frozenset(self.stop_words)

    def _one(self, text: str, chunks: list[str], sw: SpacyWords) -> str | None:
        cache = sw.cache
        n_words = n_word = n_len = n_alpha = 0
        tokens: set[str] = set()
        for c, k in Counter(chunks).items():  # each distinct chunk once
            toks, w, ln, a = cache[c][:4]
            n_words += k * len(toks)
            n_word += k * w
            n_len += k * ln
            n_alpha += k * a
            tokens.update(toks)

        if self.min_words is not None and n_word < self.min_words:
            return "too_few_words"
        if self.max_words is not None and n_word > self.max_words:
            return "too_many_words"
        if n_word:
            mean = n_len / n_word
            if self.min_mean_word_length is not None and mean < self.min_mean_word_length:
                return "mean_word_length_too_low"
            if self.max_mean_word_length is not None and mean > self.max_mean_word_length:
                return "mean_word_length_too_high"
        if n_words and self.max_symbol_word_ratio is not None:
            if text.count("#") / n_words > self.max_symbol_word_ratio:
                return "too_many_hashes"
            if (text.count("...") + text.count("…")) / n_words > self.max_symbol_word_ratio:
                return "too_many_ellipses"
        lines = text.splitlines()
        if lines:
            if self.max_bullet_lines_fraction is not None:
                bullets = sum(1 for s in lines if s.lstrip().startswith(("•", "-")))
                if bullets / len(lines) > self.max_bullet_lines_fraction:
                    return "too_many_bullet_lines"
            if self.max_ellipsis_lines_fraction is not None:
                ell = sum(1 for s in lines if s.rstrip().endswith(("...", "…")))
                if ell / len(lines) > self.max_ellipsis_lines_fraction:
                    return "too_many_ellipsis_lines"
        if n_words and self.min_alpha_words_fraction is not None:
            if n_alpha / n_words < self.min_alpha_words_fraction:
                return "too_few_alpha_words"
        if self.min_stop_words is not None:
            if len(self.stop_words & tokens) < self.min_stop_words:
                return "too_few_stop_words"
        return None


# ---- repetition ----------------------------------------------------------------------------

_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")


def _duplicates(parts: list[str]) -> tuple[int, int]:
    """(repeated elements, their characters), counting every occurrence after the first."""
    seen: set[str] = set()
    n = chars = 0
    for p in parts:
        if p in seen:
            n += 1
            chars += len(p)
        else:
            seen.add(p)
    return n, chars


# n -> the cutoff (n >= 2: a "repeated n-gram" of one word is just a repeated word)
NgramCutoffs = dict[Annotated[int, Field(ge=2)], Annotated[float, Field(ge=0, le=1)]]


class GopherRepetitionParams(RuleParams):
    """Gopher's repetition rules (table A1); null disables a rule."""

    max_duplicate_line_fraction: float | None = Field(0.3, ge=0, le=1)
    max_duplicate_paragraph_fraction: float | None = Field(0.3, ge=0, le=1)
    max_duplicate_line_char_fraction: float | None = Field(0.2, ge=0, le=1)
    max_duplicate_paragraph_char_fraction: float | None = Field(0.2, ge=0, le=1)
    top_ngram_max_char_fraction: NgramCutoffs = Field(default_factory=lambda: dict(TOP_NGRAMS))
    duplicate_ngram_max_char_fraction: NgramCutoffs = Field(
        default_factory=lambda: dict(DUP_NGRAMS)
    )
    languages: list[str] | None = Field(None, description="null: every language")
    tokenizer_language: str = Field("en", description="spaCy tokenizer splitting words")


class GopherRepetition(_SpacyRule):
    """Gopher's repetition rules (table A1): duplicate paragraphs and lines (by count and by
    characters), the most frequent 2-4-gram's share of characters, and the share of characters
    in duplicated 5-10-grams. Characters are counted against the whole text.

    Reasons: `gopher:too_many_duplicate_paragraphs`, `gopher:too_many_duplicate_paragraph_chars`,
    `gopher:too_many_duplicate_lines`, `gopher:too_many_duplicate_line_chars`,
    `gopher:top_{n}gram_too_frequent`, `gopher:too_many_duplicate_{n}grams`, `gopher:empty`.
    """

    Params = GopherRepetitionParams

    def setup(self) -> None:
        self.max_dup_line = self.max_duplicate_line_fraction
        self.max_dup_para = self.max_duplicate_paragraph_fraction
        self.max_dup_line_chars = self.max_duplicate_line_char_fraction
        self.max_dup_para_chars = self.max_duplicate_paragraph_char_fraction
        self.top_ngrams = sorted(self.top_ngram_max_char_fraction.items())
        self.dup_ngrams = sorted(self.duplicate_ngram_max_char_fraction.items())

    def judge(self, texts: list[str], langs: list[str]) -> list[str | None]:
        sw = spacy_words(self.tokenizer_language)
        out: list[str | None] = [None] * len(texts)
        # the line rules one document at a time; the n-gram rules on the rest, together
        rest, ids, lens = [], [], []
        for i, (_, rows) in enumerate(sw.chunk_lists(texts)):
            out[i] = self._line_verdict(texts[i])
            if out[i] is None:
                doc_ids, doc_lens = sw.token_arrays(rows)  # (ids valid for this text only)
                if len(doc_ids) >= 2:
                    rest.append(i)
                    ids.append(doc_ids)
                    lens.append(doc_lens)
        if rest:
            n_chars = np.fromiter((len(texts[i]) for i in rest), np.int64, count=len(rest))
            for i, verdict in zip(rest, self._ngram_rules(ids, lens, n_chars), strict=True):
                out[i] = verdict
        return out

    def _line_rules(self, text: str) -> str | None:
        """The line rules alone on one text, the reason named as a direct call names it."""
        r = self._line_verdict(text)
        return None if r is None else f"{self.label}:{r}"

    def _line_verdict(self, text: str) -> str | None:
        if not text:
            return "empty"
        n_chars = len(text)
        paragraphs = _PARAGRAPHS.split(text.strip())
        dup, chars = _duplicates(paragraphs)
        if self.max_dup_para is not None and dup / len(paragraphs) > self.max_dup_para:
            return "too_many_duplicate_paragraphs"
        if self.max_dup_para_chars is not None and chars / n_chars > self.max_dup_para_chars:
            return "too_many_duplicate_paragraph_chars"
        lines = _LINES.split(text)
        dup, chars = _duplicates(lines)
        if self.max_dup_line is not None and dup / len(lines) > self.max_dup_line:
            return "too_many_duplicate_lines"
        if self.max_dup_line_chars is not None and chars / n_chars > self.max_dup_line_chars:
            return "too_many_duplicate_line_chars"
        return None

    def _ngram_rules(
        self, ids: list[np.ndarray], lens: list[np.ndarray], n_chars: np.ndarray
    ) -> list[str | None]:
        """The n-gram rules for a batch of documents (each one's token ids and lengths, at
        least 2 tokens; its characters), with numpy calls per n-gram size, not per document.

        N-gram ids are built from (n-1)-gram ids level by level, documents kept apart by
        the first level's ids. Only positions whose (n-1)-gram repeats can hold a repeated
        n-gram, so each level counts only those: most documents are down to a handful of
        positions after n = 3. A document's verdict is its first failing rule, in the
        order n = 2, 3, ... (the top n-gram rule, then the duplicate one)."""
        top = dict(self.top_ngrams)
        dup = dict(self.dup_ngrams)
        last = max([*top, *dup], default=1)
        last_top = max(top, default=1)
        n_docs = len(ids)
        length = np.fromiter(map(len, ids), np.int64, count=n_docs)
        start = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(length, out=start[1:])
        tok_ids = np.concatenate(ids)
        cum = np.zeros(len(tok_ids) + 1, dtype=np.int64)
        np.cumsum(np.concatenate(lens), out=cum[1:])
        doc = np.repeat(np.arange(n_docs), length)  # each token's document
        verdicts: list[str | None] = [None] * n_docs
        done = np.zeros(n_docs, dtype=bool)  # judged, or shorter than the next n
        pos = np.arange(len(tok_ids))  # candidate positions
        # the id of the (n-1)-gram at each candidate, documents apart: at n = 2, of the
        # (document, token) pair (a text's token ids mean nothing in another text); above,
        # a group number (< tokens)
        vocab = int(tok_ids.max()) + 1
        if n_docs * vocab * vocab < 2**62:  # (document, token, token) keys fit in int64
            rank = doc * vocab + tok_ids
        else:
            rank = _group(doc * vocab + tok_ids)[0]
        for n in range(2, last + 1):
            done |= length < n  # no n-gram left (as each level below needs)
            if done.all():
                break
            keep = pos + n <= start[1:][doc[pos]]  # a whole n-gram inside its document
            keep &= ~done[doc[pos]]
            pos, rank = pos[keep], rank[keep]
            if len(pos):
                inv, counts = _group(rank * vocab + tok_ids[pos + n - 1])
                per_pos = counts[inv]
            else:
                inv = per_pos = np.zeros(0, dtype=np.int64)
            where = doc[pos]
            repeated = per_pos > 1
            if n in top:
                live = np.flatnonzero(~done)  # (each at least n tokens long)
                share = _top_ngram_shares(n, live, start, where, pos, per_pos, cum, n_chars)
                for d in live[share > top[n]]:
                    verdicts[d] = f"top_{n}gram_too_frequent"
                    done[d] = True
            if n in dup and repeated.any():
                r_pos, r_inv, r_doc = pos[repeated], inv[repeated], where[repeated]
                bounds = np.searchsorted(r_doc, np.arange(n_docs + 1))
                for d in np.flatnonzero(np.diff(bounds)):
                    if done[d]:
                        continue
                    a, b = bounds[d], bounds[d + 1]
                    dup_chars = _greedy_duplicate_chars(
                        r_pos[a:b].tolist(), r_inv[a:b].tolist(), cum, n
                    )
                    if dup_chars / int(n_chars[d]) > dup[n]:
                        verdicts[d] = f"too_many_duplicate_{n}grams"
                        done[d] = True
            pos, rank = pos[repeated], inv[repeated]
            if not len(pos) and n >= last_top:  # nothing repeats any more
                break
        return verdicts


def _top_ngram_shares(
    n: int,
    live: np.ndarray,
    start: np.ndarray,
    where: np.ndarray,
    pos: np.ndarray,
    per_pos: np.ndarray,
    cum: np.ndarray,
    n_chars: np.ndarray,
) -> np.ndarray:
    """For the documents `live`, the share of characters their most frequent n-gram covers
    (`where` / `pos` / `per_pos`: each candidate position's document, place and n-gram count;
    `start`: each document's first token; `cum`: cumulative token lengths)."""
    # each document's most frequent n-gram: count, and first place (among equally frequent
    # ones, the first seen, as Counter.most_common(1)); 1 and the first n-gram where nothing
    # repeats
    repeated = per_pos > 1
    most = np.ones(len(start) - 1, dtype=np.int64)
    np.maximum.at(most, where[repeated], per_pos[repeated])
    first = start[:-1].copy()
    hit = repeated & (per_pos == most[where])
    hit_docs, hit_pos = where[hit], pos[hit]
    lead = np.ones(len(hit_docs), dtype=bool)  # a document's first hit
    np.not_equal(hit_docs[1:], hit_docs[:-1], out=lead[1:])
    first[hit_docs[lead]] = hit_pos[lead]
    at = first[live]
    return (cum[at + n] - cum[at] + n - 1) * most[live] / n_chars[live]


def _group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each key's group, each group's size), groups numbered in key order: what
    `np.unique(keys, return_inverse=True, return_counts=True)` gives, for less overhead."""
    order = np.argsort(keys)
    ordered = keys[order]
    starts = np.empty(len(keys), dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    inv = np.empty(len(keys), dtype=np.int64)
    inv[order] = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    counts = np.empty(len(first), dtype=np.int64)
    np.subtract(first[1:], first[:-1], out=counts[:-1])
    counts[-1] = len(keys) - first[-1]
    return inv, counts


def _greedy_duplicate_chars(positions: list[int], keys: list[int], cum: np.ndarray, n: int) -> int:
    """Characters of duplicated n-grams, scanning left to right and skipping the n words of
    each duplicate found (the paper's count, as datatrove implements it). Only positions whose
    n-gram occurs more than once can change the scan, so only those (sorted, with their n-gram
    ids) are visited."""
    seen: set[int] = set()
    chars = 0
    idx = 0
    for i, k in zip(positions, keys, strict=True):
        if i < idx:
            continue
        if k in seen:
            chars += int(cum[i + n] - cum[i])
            idx = i + n
        else:
            seen.add(k)
            idx = i + 1
    return chars
