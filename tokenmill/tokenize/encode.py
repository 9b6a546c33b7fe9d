"""Batch encoding: `encode_batch` over a whole batch (the library's threads), the
end-of-document id appended, flat numpy output; no per-token Python.

BPE cost grows faster than linearly with the length of a pre-tokenized run
(tokenizers#1449, transformers#28629), so documents longer than `max_piece_chars` are cut
into pieces at a line break (else a space) before encoding and their ids joined. Decoding the
joined ids still gives back the document exactly; only the tokens at a cut may differ from
encoding the document whole.
"""

from __future__ import annotations

from itertools import chain

import numpy as np
from tokenizers import Tokenizer

MAX_PIECE_CHARS = 1_000_000


def split_long(text: str, max_chars: int = MAX_PIECE_CHARS) -> list[str]:
    """Cut `text` into pieces of at most `max_chars`, after a newline (else a space) where
    one exists in the second half of the window."""
    if len(text) <= max_chars:
        return [text]
    pieces, start = [], 0
    while len(text) - start > max_chars:
        end = start + max_chars
        cut = text.rfind("\n", start + max_chars // 2, end)
        if cut < 0:
            cut = text.rfind(" ", start + max_chars // 2, end)
        cut = end if cut < 0 else cut + 1
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def encode_documents(
    tok: Tokenizer,
    texts: list[str],
    eod_id: int,
    dtype: np.dtype,
    max_piece_chars: int = MAX_PIECE_CHARS,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (flat tokens, sizes): each document's ids followed by `eod_id`."""
    pieces: list[str] = []
    owner: list[int] = []
    for i, t in enumerate(texts):
        if len(t) <= max_piece_chars:
            pieces.append(t)
            owner.append(i)
        else:
            parts = split_long(t, max_piece_chars)
            pieces.extend(parts)
            owner.extend([i] * len(parts))
    encodings = tok.encode_batch(pieces, add_special_tokens=False)
    ids = [e.ids for e in encodings]
    piece_len = np.fromiter(map(len, ids), dtype=np.int64, count=len(pieces))
    sizes = (
        np.bincount(
            np.asarray(owner, dtype=np.int64), weights=piece_len, minlength=len(texts)
        ).astype(np.int64)
        + 1
    )
    # one C-level pass: each document's pieces, then its end-of-document id
    last_piece = [i == len(owner) - 1 or owner[i + 1] != owner[i] for i in range(len(owner))]
    stream = chain.from_iterable(
        chain(piece, (eod_id,)) if last else piece
        for piece, last in zip(ids, last_piece, strict=True)
    )
    flat = np.fromiter(stream, dtype=dtype, count=int(sizes.sum()))
    return flat, sizes
