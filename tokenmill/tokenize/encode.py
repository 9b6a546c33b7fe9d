"""Batch encoding: the library's batch call over a whole batch (its threads), the
end-of-document id appended, flat numpy output; no per-token Python.

`encode_batch_fast` where the installed `tokenizers` has it (0.20+): the same ids as
`encode_batch` without computing character offsets, which nothing here uses.

BPE cost grows faster than linearly with the length of a pre-tokenized run
(tokenizers#1449, transformers#28629), so documents longer than `max_piece_chars` are cut
into pieces at a line break (else a space) before encoding and their ids joined. Decoding the
joined ids still gives back the document exactly; only the tokens at a cut may differ from
encoding the document whole.
"""

from __future__ import annotations

from itertools import chain
from operator import attrgetter

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
    owner = None  # each piece's document, where some document was cut
    pieces = texts
    if any(len(t) > max_piece_chars for t in texts):
        pieces, cut_owner = [], []
        for i, t in enumerate(texts):
            parts = split_long(t, max_piece_chars)
            pieces.extend(parts)
            cut_owner.extend([i] * len(parts))
        owner = np.asarray(cut_owner, dtype=np.int64)
    encode_batch = getattr(tok, "encode_batch_fast", tok.encode_batch)
    encodings = encode_batch(pieces, add_special_tokens=False)
    piece_len = np.fromiter(map(len, encodings), dtype=np.int64, count=len(encodings))
    # one C-level pass over the ids, one piece's list alive at a time
    ids = np.fromiter(
        chain.from_iterable(map(attrgetter("ids"), encodings)),
        dtype=dtype,
        count=int(piece_len.sum()),
    )
    doc_len = (
        piece_len
        if owner is None
        else np.bincount(owner, weights=piece_len, minlength=len(texts)).astype(np.int64)
    )
    # the end-of-document id after each document's last token
    flat = np.insert(ids, np.cumsum(doc_len), np.asarray(eod_id, dtype=dtype))
    return flat, doc_len + 1
