"""Write tokenmill/eval/tasks/tokenmill_sample/python_reference.jsonl: 24 items of real English
prose for the bundled offline evaluation tasks (tokenmill_cloze, tokenmill_ppl,
tokenmill_complete).

The text is the Python Language Reference as CPython ships it for `help()`
(`pydoc_data.topics`, PSF License): for each topic in name order, its first prose paragraph
(lines that are not headings, rules or indented code, joined) and that paragraph's first
sentence of 12 to 40 ASCII words ending in a period. The last three words of the sentence
(without the period) are its `ending`, the words before it its `context`; `choices` are the
item's ending and the endings of the next three items (in a cycle), the right one at position
`label` = item number mod 4. The first 24 topics that have such a sentence make the file.

Run with the Python the file was made with (3.11.7; another version's reference text differs):

    python scripts/make_eval_sample.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ITEMS = 24
ENDING_WORDS = 3
OUT = Path(__file__).resolve().parents[1] / "tokenmill/eval/tasks/tokenmill_sample"


def first_paragraph(doc: str) -> str | None:
    """The first paragraph of plain prose: no heading, rule, grammar or indented line."""
    for block in re.split(r"\n\s*\n", doc):
        lines = block.splitlines()
        if not lines or any(line.startswith(" ") or not line.strip() for line in lines):
            continue
        if any(set(line.strip()) <= set("*=-") for line in lines):  # a heading's underline
            continue
        text = " ".join(line.strip() for line in lines)
        if len(text.split()) >= 12 and text.isascii():
            return text
    return None


def first_sentence(paragraph: str) -> str | None:
    for s in re.split(r'(?<=\.)\s+(?=["*A-Z])', paragraph):
        words = s.split()
        if 12 <= len(words) <= 40 and s.endswith(".") and "::=" not in s:
            return s
    return None


def main() -> None:
    import pydoc_data.topics as topics

    if sys.version_info[:3] != (3, 11, 7):
        print(f"warning: made with Python 3.11.7, this is {sys.version.split()[0]}")
    found = []
    for name in sorted(topics.topics):
        paragraph = first_paragraph(topics.topics[name])
        sentence = first_sentence(paragraph) if paragraph else None
        if sentence:
            words = sentence[:-1].split()
            found.append(
                {
                    "id": name,
                    "text": paragraph,
                    "context": " ".join(words[:-ENDING_WORDS]),
                    "ending": " ".join(words[-ENDING_WORDS:]),
                }
            )
        if len(found) == ITEMS:
            break
    rows = []
    for i, item in enumerate(found):
        others = [found[(i + k) % len(found)]["ending"] for k in (1, 2, 3)]
        label = i % 4
        choices = others[:label] + [item["ending"]] + others[label:]
        rows.append({**item, "choices": choices, "label": label})
    path = OUT / "python_reference.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{path}: {len(rows)} items")


if __name__ == "__main__":
    main()
