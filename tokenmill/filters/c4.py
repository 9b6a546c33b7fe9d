"""C4's cleaning rules (Raffel et al. 2020), as tensorflow_datasets' c4_utils applied them to
make allenai/c4.

Per line (after stripping it and removing Wikipedia-style citations such as `[12]`, `[edit]`):
drop lines with a word longer than 1,000 characters, lines not ending in a terminal mark
(`.` `?` `!` `"`, not `...`), lines of fewer than 5 words, lines mentioning "javascript", and
cookie/privacy/terms-of-use notices. Per page: drop it when a line that survived the checks
above contains "lorem ipsum" or `{` (c4_utils looks only at those lines), when fewer than 3
sentences are left, or (optional, off by default) when a bad word appears in what is left. Kept
pages are rewritten to their kept lines.

Defaults are c4_utils' published values (5 words per line, 3 sentences). datatrove's
C4QualityFilter defaults differ (3 words, 5 sentences, and `'` also counts as a terminal mark);
every value is a parameter.

Sentences: c4_utils counted them with NLTK's punkt, which needs a download; we count them as
datatrove does, with spaCy's rule-based sentencizer (punctuation tokens followed by a word), and
only for pages left with fewer lines than `min_sentences` (every kept line holds at least one
sentence, so more lines than that always pass). C4's corpus-wide exact-line deduplication is a
global step and is not part of this filter.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from tokenmill.filters.base import Filter, Kept, RuleParams, Verdict
from tokenmill.filters.gopher import SpacyWords, spacy_words

END_MARKS = (".", "?", "!", '"')
ELLIPSIS = "..."
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
_WORDS = re.compile(r"\S+")
# Languages whose bad words are matched anywhere, not only as whole words (c4_utils).
_NO_WORD_BOUNDARY = frozenset({"ja", "th", "zh"})


class C4Params(RuleParams):
    path_fields: ClassVar[tuple[str, ...]] = ("bad_words_path",)

    """C4's rules; defaults are tensorflow_datasets c4_utils' (see the module docstring)."""

    min_words_per_line: int = Field(5, ge=0)
    min_sentences: int = Field(3, ge=0, description="per page, after line filtering")
    max_word_length: int | None = Field(1000, gt=0, description="lines with a longer word go")
    end_marks: list[str] = Field(default_factory=lambda: list(END_MARKS), min_length=1)
    remove_citations: bool = True
    filter_javascript: bool = True
    filter_policy: bool = True
    filter_lorem_ipsum: bool = True
    filter_curly_bracket: bool = True
    bad_words_path: str | None = Field(None, description="one word a line; off when unset")
    languages: list[str] | None = Field(["en"], description="others pass; null: all")
    tokenizer_language: str = Field("en", description="spaCy tokenizer counting sentences")


class C4Quality(Filter):
    """C4's line and page rules; rewrites kept pages to their kept lines.

    Reasons: `c4:lorem_ipsum`, `c4:curly_bracket`, `c4:no_lines_left`, `c4:too_few_sentences`,
    `c4:bad_words` (counted as `quality:c4:...`); a removed page keeps its original text.
    Called alone on a batch, returns (reasons, texts), texts cleaned where kept. Documents
    whose language is not in `languages` pass unchanged.
    """

    Params = C4Params
    label = "c4"
    rewrites = True

    def setup(self) -> None:
        self.end_marks = tuple(self.end_marks)
        self._bad_words: dict[bool, re.Pattern] = {}
        self._punct_chars: frozenset[str] | None = None

    def judge(self, texts: list[str], langs: list[str]) -> list[Verdict]:
        out: list[Verdict] = []
        for text, lang in zip(texts, langs, strict=True):
            reason, new = self._one(text, lang)
            out.append(reason or Kept(new))
        return out

    def _one(self, text: str, lang: str) -> tuple[str | None, str]:
        kept: list[str] = []
        max_len = self.max_word_length
        marks = self.end_marks
        for line in text.splitlines():
            line = line.strip()
            if max_len is not None and len(line) > max_len:
                if any(len(w) > max_len for w in line.split()):
                    continue
            if self.remove_citations and "[" in line:
                line = CITATION.sub("", line)
            if not line.endswith(marks) or line.endswith(ELLIPSIS):
                continue
            if len(line.split()) < self.min_words_per_line:
                continue
            low = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in low:
                return "lorem_ipsum", text
            if self.filter_javascript and "javascript" in low:
                continue
            if self.filter_curly_bracket and "{" in line:
                return "curly_bracket", text
            if self.filter_policy and any(p in low for p in POLICY_SUBSTRINGS):
                continue
            kept.append(line)
        if not kept:
            return "no_lines_left", text
        if len(kept) < self.min_sentences:
            sw = spacy_words(self.tokenizer_language)
            if sum(self.count_sentences(line, sw) for line in kept) < self.min_sentences:
                return "too_few_sentences", text
        new = "\n".join(kept).strip()
        if self.bad_words_path and self._bad_words_regex(lang).search(new.lower()):
            return "bad_words", text
        return None, new

    def count_sentences(self, line: str, sw: SpacyWords | None = None) -> int:
        """Sentences in one line by spaCy's sentencizer rule: a sentence ends after a token
        that is a sentence-final mark, at the next token that is not punctuation."""
        sw = sw or spacy_words(self.tokenizer_language)
        punct_chars = self._sentence_marks()
        cache = sw.cache
        sw.chunks(line)
        n = 0
        seen_period = False
        prev_end = None
        for m in _WORDS.finditer(line):
            # A whitespace run other than one space is a token of its own in spaCy.
            tokens = cache[m.group()][0]
            if prev_end is not None and line[prev_end : m.start()] != " ":
                tokens = ("\n", *tokens)
            prev_end = m.end()
            for tok in tokens:
                if n == 0:
                    n = 1
                in_marks = tok in punct_chars
                if seen_period and not in_marks and not _is_punct(tok):
                    n += 1
                    seen_period = False
                elif in_marks:
                    seen_period = True
        return n

    def _sentence_marks(self) -> frozenset[str]:
        if self._punct_chars is None:
            from spacy.pipeline.sentencizer import Sentencizer

            self._punct_chars = frozenset(Sentencizer.default_punct_chars)
        return self._punct_chars

    def _bad_words_regex(self, lang: str) -> re.Pattern:
        anywhere = lang in _NO_WORD_BOUNDARY
        rx = self._bad_words.get(anywhere)
        if rx is None:
            words = load_word_list(self.bad_words_path)
            alt = "|".join(re.escape(w) for w in sorted(words))
            rx = re.compile(alt if anywhere else rf"(?:\W|^)({alt})(?:\W|$)")
            self._bad_words[anywhere] = rx
        return rx


def _is_punct(token: str) -> bool:
    # spaCy's IS_PUNCT: every character is Unicode punctuation (P*).
    return all(unicodedata.category(c).startswith("P") for c in token)


def load_word_list(path: str | Path) -> set[str]:
    """Lower-cased words of a list file, one a line; blank lines and `#` comments skipped."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"word list not found: {p}")
    return {
        w.strip().lower()
        for w in p.read_text(encoding="utf-8").splitlines()
        if w.strip() and not w.startswith("#")
    }
