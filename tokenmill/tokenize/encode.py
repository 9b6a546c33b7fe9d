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

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain
from operator import attrgetter
from typing import TypeVar

import numpy as np
from tokenizers import Encoding, Tokenizer

MAX_PIECE_CHARS = 1_000_000

T = TypeVar("T")


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


def _pieces(texts: list[str], max_piece_chars: int) -> tuple[list[str], np.ndarray | None]:
    """The texts to encode, and each one's document (None when no document was cut)."""
    if all(len(t) <= max_piece_chars for t in texts):
        return texts, None
    pieces: list[str] = []
    owner: list[int] = []
    for i, t in enumerate(texts):
        parts = split_long(t, max_piece_chars)
        pieces.extend(parts)
        owner.extend([i] * len(parts))
    return pieces, np.asarray(owner, dtype=np.int64)


def _encode(tok: Tokenizer, pieces: list[str]) -> list[Encoding]:
    batch = getattr(tok, "encode_batch_fast", tok.encode_batch)
    return batch(pieces, add_special_tokens=False)


def _flatten(
    encodings: list[Encoding], owner: np.ndarray | None, n_docs: int, eod_id: int, dtype
) -> tuple[np.ndarray, np.ndarray]:
    """(flat tokens, sizes) from the encoded pieces: each document's ids, then `eod_id`."""
    piece_len = np.fromiter(map(len, encodings), dtype=np.int64, count=len(encodings))
    # one C-level pass over the ids, one list alive at a time
    ids = np.fromiter(
        chain.from_iterable(map(attrgetter("ids"), encodings)),
        dtype=dtype,
        count=int(piece_len.sum()),
    )
    if owner is None:
        doc_len = piece_len
    else:
        doc_len = np.bincount(owner, weights=piece_len, minlength=n_docs).astype(np.int64)
    # an end-of-document id after each document's last token
    flat = np.insert(ids, np.cumsum(doc_len), np.asarray(eod_id, dtype=dtype))
    return flat, doc_len + 1


def encode_documents(
    tok: Tokenizer,
    texts: list[str],
    eod_id: int,
    dtype: np.dtype,
    max_piece_chars: int = MAX_PIECE_CHARS,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (flat tokens, sizes): each document's ids followed by `eod_id`."""
    pieces, owner = _pieces(texts, max_piece_chars)
    return _flatten(_encode(tok, pieces), owner, len(texts), eod_id, dtype)


def encode_pipelined(
    tok: Tokenizer,
    batches: Iterable[tuple[T, list[str]]],
    eod_id: int,
    dtype: np.dtype,
    max_piece_chars: int = MAX_PIECE_CHARS,
) -> Iterator[tuple[T, np.ndarray, np.ndarray]]:
    """`encode_documents` over (key, texts) batches, yielding (key, flat tokens, sizes) in
    order.

    The library call of the next batch runs in a helper thread (it releases the GIL) while
    this thread turns the current batch into arrays and the caller writes it, so the
    tokenizer's threads are not left idle during the single-threaded Python work. The
    output is the same as calling `encode_documents` on each batch.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="encode") as pool:
        pending: tuple[T, int, np.ndarray | None, Future] | None = None
        for key, texts in batches:
            pieces, owner = _pieces(texts, max_piece_chars)
            submitted = (key, len(texts), owner, pool.submit(_encode, tok, pieces))
            if pending is not None:
                yield _finish(pending, eod_id, dtype)
            pending = submitted
        if pending is not None:
            yield _finish(pending, eod_id, dtype)


def _finish(pending, eod_id: int, dtype) -> tuple:
    key, n_docs, owner, future = pending
    flat, sizes = _flatten(future.result(), owner, n_docs, eod_id, dtype)
    return key, flat, sizes
