"""Regenerate the generated word and character lists in this folder (see README.md).

    python -m tokenmill.filters.wordlists.build

Needs spaCy (stop words), datatrove (Gopher's symbol set) and emoji==1.6.1 (the version
BigScience pinned; its single-code-point emoji are part of their special characters). The
hand-copied lists (stopwords/en.txt, flagged_words/*.txt) are not touched.
"""

from __future__ import annotations

import importlib
import string
from pathlib import Path

HERE = Path(__file__).parent

# Languages with a spaCy stop-word list that tokenmill ships (BigScience's own list for en).
SPACY_STOPWORD_LANGS = [
    "ar", "bn", "ca", "de", "es", "eu", "fr", "hi", "id", "it", "ja",
    "nl", "pl", "pt", "ru", "ur", "vi", "zh",
]  # fmt: skip

# BigScience's `other_special_characters` (parameters_filtering.py), less its leading run of
# Unicode spaces, which `_SPACES` below covers (every str.isspace() character).
_BIGSCIENCE_OTHER = (
    "’“”–ー一▬…✦�£•€«»°·═"
    "×士＾˘⇓↓↑←→（）§″′´¿−±∈¢ø‚„½¼¾¹²³―⁃，ˌ¸‹›ʺˈʻ¦‐⠀‰‑≤≥‖"
    "◆●■►▼▲▴∆▻¡★☆✱ːº。¯˜¥ɪ≈†上ン：∼⁄・♡✓⊕․．⋅÷１‟；،、¨ाাी्े◦˚"
    "゜ʼ≖ʼ¤ッツシ℃√！【】‿∞➤～πه۩☛₨➩☻๑٪♥ıॽ《‘©﴿٬？▷Г♫∟™ª₪®「—❖"
    "」﴾》"
)
_SPACES = "".join(chr(c) for c in range(0x3000 + 1) if chr(c).isspace()) + "\ufffc\u200b"


def _write_codepoints(path: Path, header: str, chars: set[str]) -> None:
    lines = [f"# {h}" for h in header.strip().splitlines()]
    lines += [f"{ord(c):04X}" for c in sorted(chars)]
    path.write_text("\n".join(lines) + "\n")


def build_stopwords() -> None:
    for lang in SPACY_STOPWORD_LANGS:
        mod = importlib.import_module(f"spacy.lang.{lang}.stop_words")
        words = sorted({w.strip().lower() for w in mod.STOP_WORDS if w.strip()})
        (HERE / "stopwords" / f"{lang}.txt").write_text(
            f"# Stop words for {lang}: spaCy {_version('spacy')} spacy.lang.{lang}.stop_words"
            " (MIT license)\n" + "\n".join(words) + "\n"
        )


def build_gopher_symbols() -> None:
    from datatrove.utils.text import PUNCTUATION_SET

    _write_codepoints(
        HERE / "gopher_symbols.txt",
        f"""Characters that do not make a word (Gopher rules): datatrove {_version("datatrove")}
datatrove.utils.text.PUNCTUATION_SET (Apache-2.0): ASCII and CJK punctuation, C0/C1 controls
and Unicode terminal punctuation. One code point per line, hexadecimal.""",
        set(PUNCTUATION_SET),
    )


def build_special_characters() -> None:
    import emoji

    if not hasattr(emoji, "UNICODE_EMOJI"):
        raise RuntimeError("install emoji==1.6.1, the version BigScience used")
    emojis = {k for k in emoji.UNICODE_EMOJI["en"] if len(k) == 1}
    chars = set(string.punctuation + string.digits + string.whitespace)
    chars |= set(_BIGSCIENCE_OTHER) | set(_SPACES) | emojis
    _write_codepoints(
        HERE / "bigscience_special_characters.txt",
        f"""BigScience's special characters (data-preparation parameters_filtering.py, Apache-2.0):
ASCII punctuation, digits and whitespace, their list of other symbols, every Unicode space,
and the single-code-point emoji of emoji {emoji.__version__} (BSD). Hexadecimal code points.""",
        chars,
    )


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    build_stopwords()
    build_gopher_symbols()
    build_special_characters()
