"""Span deduplication, as C4 did: of every span of `n` consecutive sentences that occurs more
than once in the corpus, only the first occurrence is kept.

A document's sentences (`sentences`) end at `.`, `!`, `?` (and their full-width forms) before
white space, or at a line break; each keeps the white space after it, so the document is
exactly its sentences joined. A span is `n` consecutive sentences; its hash (`span_hashes`) is
xxh3-64 of the sentences normalized as exact dedup normalizes a text (NFC, case-folded, white
space collapsed) and joined by newlines. Across the corpus, in the deterministic document order
(partition, row) and then sentence order, every later occurrence of a span's hash is a
duplicate (`duplicate_spans`). A document loses every sentence of its duplicate spans
(`remove_spans`); one left with only white space is removed as `dedup:span`. Documents of
fewer than `n` sentences have no span and are never changed.
"""

from __future__ import annotations

import re

import numpy as np
import xxhash

from tokenmill.filters.exact import normalize

SPAN_DTYPE = np.dtype([("hash", "<u8"), ("key", "<i8"), ("idx", "<u4")])
DUP_DTYPE = np.dtype([("key", "<i8"), ("idx", "<u4")])
_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+|\n\s*")


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, its following white space included: they tile `text`.
    Sentences of white space only are not listed (their characters go with the sentence
    before; leading white space with the first)."""
    out, start = [], 0
    for m in _END.finditer(text):
        end = m.end()
        if text[start : m.start()].strip():
            out.append((start, end))
        elif out:  # white space only: it belongs to the previous sentence
            out[-1] = (out[-1][0], end)
        start = end
    if text[start:].strip():
        out.append((start, len(text)))
    elif out:
        out[-1] = (out[-1][0], len(text))
    if out and out[0][0] > 0:
        out[0] = (0, out[0][1])
    return out


def span_hashes(text: str, n: int) -> np.ndarray:
    """The hashes of the document's spans of `n` sentences, in order (none under n)."""
    sent = sentences(text)
    if len(sent) < n:
        return np.empty(0, np.uint64)
    norm = [normalize(text[a:b]) for a, b in sent]
    return np.fromiter(
        (
            xxhash.xxh3_64_intdigest("\n".join(norm[i : i + n]).encode("utf-8", "surrogatepass"))
            for i in range(len(norm) - n + 1)
        ),
        np.uint64,
        count=len(norm) - n + 1,
    )


def span_records(texts: list[str], keys: np.ndarray, n: int) -> np.ndarray:
    """SPAN_DTYPE records (hash, document key, span index) of every span of `texts`."""
    parts = []
    for text, key in zip(texts, keys.tolist(), strict=True):
        h = span_hashes(text, n)
        if len(h):
            rec = np.empty(len(h), SPAN_DTYPE)
            rec["hash"], rec["key"], rec["idx"] = h, key, np.arange(len(h))
            parts.append(rec)
    return np.concatenate(parts) if parts else np.empty(0, SPAN_DTYPE)


def duplicate_spans(records: np.ndarray) -> np.ndarray:
    """DUP_DTYPE (key, idx) of every span whose hash occurs earlier, in (key, idx) order, among
    `records`; sorted by key, then idx."""
    if not len(records):
        return np.empty(0, DUP_DTYPE)
    r = records[np.lexsort((records["idx"], records["key"], records["hash"]))]
    later = np.concatenate([[False], r["hash"][1:] == r["hash"][:-1]])
    dup = r[later]
    out = np.empty(len(dup), DUP_DTYPE)
    out["key"], out["idx"] = dup["key"], dup["idx"]
    return out[np.lexsort((out["idx"], out["key"]))]


def remove_spans(text: str, spans: set[int] | list[int], n: int) -> str:
    """`text` without the sentences of its spans `spans` (span i: sentences i to i + n - 1)."""
    sent = sentences(text)
    gone = {j for i in spans for j in range(i, i + n)}
    return "".join(text[a:b] for k, (a, b) in enumerate(sent) if k not in gone)
