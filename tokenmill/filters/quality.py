"""The basic quality rules (`BasicQuality`): a first, language-agnostic rule set, and the
code-point helpers other rules share."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from tokenmill.filters.base import Filter, RuleParams

# Languages written without spaces between words: a word count means nothing there.
NO_SPACE_LANGS = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "wuu", "yue"})


class BasicParams(RuleParams):
    """A first, language-agnostic rule set: length, words, symbols."""

    enabled: bool = Field(True, description="false: no source runs it (filter_sets included)")
    min_chars: int = Field(50, ge=0)
    min_words: int = Field(5, ge=0)
    max_symbol_fraction: float = Field(
        0.5, ge=0, le=1, description="non-letter, non-space characters"
    )


class BasicQuality(Filter):
    """Removes documents too short to be useful or made mostly of symbols.

    Reasons: `quality:too_short` (< min_chars characters), `quality:too_few_words`
    (< min_words whitespace words, skipped for languages without spaces),
    `quality:too_many_symbols` (fraction of characters that are neither letters nor spaces
    above max_symbol_fraction).
    """

    Params = BasicParams
    label = ""  # the first rule set: its reasons are `quality:<reason>`

    def judge(self, texts: list[str], langs: list[str]) -> list[str | None]:
        return [self._one(t, lang) for t, lang in zip(texts, langs, strict=True)]

    def _one(self, text: str, lang: str) -> str | None:
        n = len(text)
        if n < self.min_chars:
            return "too_short"
        if lang not in NO_SPACE_LANGS and len(text.split()) < self.min_words:
            return "too_few_words"
        letters_or_space = int(np.count_nonzero(_letter_or_space()[code_points(text)]))
        if (n - letters_or_space) / n > self.max_symbol_fraction:
            return "too_many_symbols"
        return None


def code_points(text: str) -> np.ndarray:
    """The text's code points (lone surrogates included), without a per-character loop."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


_LETTER_OR_SPACE: np.ndarray | None = None


def _letter_or_space() -> np.ndarray:
    """Per code point: str.isalpha() or str.isspace() (built once per process, ~0.2 s)."""
    global _LETTER_OR_SPACE
    if _LETTER_OR_SPACE is None:
        _LETTER_OR_SPACE = np.fromiter(
            (c.isalpha() or c.isspace() for c in map(chr, range(0x110000))),
            dtype=bool,
            count=0x110000,
        )
    return _LETTER_OR_SPACE
