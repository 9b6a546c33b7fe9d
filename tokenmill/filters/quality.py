"""Quality rules. `BasicQuality` is a first, language-agnostic set; the C4, Gopher and
BigScience rule sets build on the same interface."""

from __future__ import annotations

import numpy as np

# Languages written without spaces between words: a word count means nothing there.
NO_SPACE_LANGS = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "wuu", "yue"})


class BasicQuality:
    """Removes documents too short to be useful or made mostly of symbols.

    Reasons: `quality:too_short` (< min_chars characters), `quality:too_few_words`
    (< min_words whitespace words, skipped for languages without spaces),
    `quality:too_many_symbols` (fraction of characters that are neither letters nor spaces
    above max_symbol_fraction).
    """

    name = "quality:basic"

    def __init__(self, min_chars: int = 50, min_words: int = 5, max_symbol_fraction: float = 0.5):
        self.min_chars = min_chars
        self.min_words = min_words
        self.max_symbol_fraction = max_symbol_fraction

    def __call__(self, texts: list[str], langs: list[str]) -> list[str | None]:
        return [self._one(t, lang) for t, lang in zip(texts, langs, strict=True)]

    def _one(self, text: str, lang: str) -> str | None:
        n = len(text)
        if n < self.min_chars:
            return "quality:too_short"
        if lang not in NO_SPACE_LANGS and len(text.split()) < self.min_words:
            return "quality:too_few_words"
        letters_or_space = int(np.count_nonzero(_letter_or_space()[code_points(text)]))
        if (n - letters_or_space) / n > self.max_symbol_fraction:
            return "quality:too_many_symbols"
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
