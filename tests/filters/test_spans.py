"""Span dedup's pieces (tokenmill.filters.spans) against a plain reading: sentences found by
walking the characters, spans as tuples of normalized sentences, first occurrences in a
dict."""

from __future__ import annotations

import random
import unicodedata

import numpy as np
from tmfixtures import sample_docs

from tokenmill.filters.spans import (
    duplicate_spans,
    remove_spans,
    sentences,
    span_hashes,
    span_records,
)

ENDS = ".!?\u3002\uff01\uff1f"


def plain_sentences(text: str) -> list[str]:
    """Cut after an end mark followed by white space (the white space goes with it) or after
    a line break's white space; pieces of white space only join the piece before."""
    out, cur, i = [], "", 0
    while i < len(text):
        c = text[i]
        cur += c
        i += 1
        if (c in ENDS and i < len(text) and text[i].isspace()) or c == "\n":
            while i < len(text) and text[i].isspace():
                cur += text[i]
                i += 1
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    merged: list[str] = []
    for piece in out:
        if piece.strip() or not merged:
            merged.append(piece)
        else:
            merged[-1] += piece
    if len(merged) > 1 and not merged[0].strip():  # leading white space: with the first
        merged[1] = merged[0] + merged[1]
        merged.pop(0)
    return [m for m in merged if m.strip()] or []


def norm(s: str) -> str:
    return " ".join(unicodedata.normalize("NFC", s).casefold().split())


def texts() -> list[str]:
    rng = random.Random(0)
    docs = [d["text"] for d in sample_docs("c4")[:60]] + [
        d["content"] for d in sample_docs("oscar")[:30]
    ]
    docs += ["", "   ", "no end mark", "A. B.", " \n lead. x? y!\n\nz", "一。二！三？四"]
    docs += ["".join(rng.choice("ab. !?\n") for _ in range(rng.randrange(40))) for _ in range(200)]
    return docs


def test_sentences_tile_the_text_and_match_a_plain_walk():
    for t in texts():
        got = [t[a:b] for a, b in sentences(t)]
        if t.strip():
            assert "".join(got) == t
        assert got == plain_sentences(t), repr(t)


def test_spans_and_their_first_occurrences_match_a_plain_reading():
    docs = texts()
    rng = random.Random(1)
    # plant repeated passages: three sentences of one document into others
    for _ in range(40):
        src = plain_sentences(docs[rng.randrange(60)])
        if len(src) >= 4:
            a = rng.randrange(len(src) - 3)
            j = rng.randrange(len(docs))
            docs[j] = docs[j] + "\n" + "".join(src[a : a + 3]).strip() + "\nTail sentence here."
    keys = np.array([(3 << 32) | i for i in range(len(docs))][::-1], np.int64)  # any order
    rec = span_records(docs, keys, 3)
    seen, want = {}, []
    for k in sorted(range(len(docs)), key=lambda i: keys[i]):
        sents = [norm(s) for s in plain_sentences(docs[k])]
        spans = [tuple(sents[i : i + 3]) for i in range(len(sents) - 2)]
        assert len(span_hashes(docs[k], 3)) == len(spans)
        for i, s in enumerate(spans):
            if s in seen:
                want.append((int(keys[k]), i))
            else:
                seen[s] = (k, i)
    got = duplicate_spans(rec)
    assert [(int(a), int(b)) for a, b in zip(got["key"], got["idx"], strict=True)] == sorted(want)
    assert len(want) >= 40


def test_removing_spans_drops_their_sentences():
    t = "One one. Two two! Three three?\nFour four. Five five. Six"
    s = plain_sentences(t)
    assert remove_spans(t, [1], 3) == s[0] + s[4] + s[5]
    assert remove_spans(t, [0, 3], 3) == ""
    assert remove_spans(t, [], 3) == t
    assert remove_spans(t, [2], 2) == s[0] + s[1] + s[4] + s[5]
