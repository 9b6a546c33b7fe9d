"""Batch encoding: the library's batch call over a whole batch (its threads), the
end-of-document id appended, flat numpy output; no per-token Python.

`encode_batch_fast` where the installed `tokenizers` has it (0.20+): the same ids as
`encode_batch` without computing character offsets, which nothing here uses.

BPE cost grows faster than linearly with the length of a pre-tokenized run
(tokenizers#1449, transformers#28629), so documents longer than `max_piece_chars` are cut
into pieces at a line break (else a space) before encoding and their ids joined. Decoding the
joined ids still gives back the document exactly; only the tokens at a cut may differ from
encoding the document whole.

The tokenize stage encodes the next batch on a background thread while it turns this
batch's encodings into numpy and writes them (`encode_pipelined`): the library releases the
GIL while it encodes, and that Python work would otherwise leave its threads' cores idle.
"""

from __future__ import annotations

import ctypes
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from operator import attrgetter
from typing import TypeVar

import numpy as np
from tokenizers import Tokenizer

MAX_PIECE_CHARS = 1_000_000
ENCODE_THREAD_NAME = "tm-encode"
T = TypeVar("T")


def name_os_thread(name: str) -> None:
    """Give the calling thread an OS-level name (Linux; 15 bytes at most), as `top -H`,
    `ps -L` and /proc/PID/task/TID/comm show it. Threads it starts inherit the name: the
    library's encoding threads, started by the first encode call, show as this name too, so
    tokenization's CPU time can be told apart from the rest of a worker's. Elsewhere, a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


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


class Encoded:
    """One batch's encodings (the library's objects) and, where a document was cut into
    pieces, each piece's document; `flat()` turns them into the shard's layout."""

    __slots__ = ("encodings", "owner", "n_docs")

    def __init__(self, encodings: list, owner: np.ndarray | None, n_docs: int):
        self.encodings, self.owner, self.n_docs = encodings, owner, n_docs

    def flat(self, eod_id: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """(flat tokens, sizes): each document's ids followed by `eod_id`."""
        encodings, owner = self.encodings, self.owner
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
            else np.bincount(owner, weights=piece_len, minlength=self.n_docs).astype(np.int64)
        )
        # the end-of-document id after each document's last token
        flat = np.insert(ids, np.cumsum(doc_len), np.asarray(eod_id, dtype=dtype))
        return flat, doc_len + 1


def encode_batch(
    tok: Tokenizer, texts: list[str], max_piece_chars: int = MAX_PIECE_CHARS
) -> Encoded:
    """The library's batch call on `texts` (documents over `max_piece_chars` cut first). The
    call runs on the library's threads without the GIL."""
    owner = None  # each piece's document, where some document was cut
    pieces = texts
    if any(len(t) > max_piece_chars for t in texts):
        pieces, cut_owner = [], []
        for i, t in enumerate(texts):
            parts = split_long(t, max_piece_chars)
            pieces.extend(parts)
            cut_owner.extend([i] * len(parts))
        owner = np.asarray(cut_owner, dtype=np.int64)
    call = getattr(tok, "encode_batch_fast", tok.encode_batch)
    return Encoded(call(pieces, add_special_tokens=False), owner, len(texts))


def encode_documents(
    tok: Tokenizer,
    texts: list[str],
    eod_id: int,
    dtype: np.dtype,
    max_piece_chars: int = MAX_PIECE_CHARS,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (flat tokens, sizes): each document's ids followed by `eod_id`."""
    return encode_batch(tok, texts, max_piece_chars).flat(eod_id, dtype)


def encode_pipelined(
    tok: Tokenizer,
    batches: Iterable[tuple[T, list[str]]],
    eod_id: int,
    dtype: np.dtype,
    max_piece_chars: int = MAX_PIECE_CHARS,
    ahead: int = 1,
) -> Iterator[tuple[T, np.ndarray, np.ndarray]]:
    """`(item, flat, sizes)` for each `(item, texts)` of `batches`, in order, as
    `encode_documents` gives them, with the next `ahead` batches being encoded on background
    threads meanwhile: the library releases the GIL while it encodes, so the caller's Python
    work on this batch (ids into numpy, writing) no longer leaves its threads' cores idle.
    `ahead + 1` batches are alive at a time. (ahead=2 also overlaps one batch's longest
    documents with the next batch; on the tokenization benchmark it measured no better.)"""
    with ThreadPoolExecutor(
        ahead,
        thread_name_prefix="tokenmill-encode",
        initializer=name_os_thread,
        initargs=(ENCODE_THREAD_NAME,),
    ) as pool:
        pending: deque = deque()

        def oldest():
            item, job = pending.popleft()
            return item, *job.result().flat(eod_id, dtype)

        try:
            for item, texts in batches:
                pending.append((item, pool.submit(encode_batch, tok, texts, max_piece_chars)))
                if len(pending) > ahead:
                    yield oldest()
            while pending:
                yield oldest()
        finally:
            for _, job in pending:
                job.cancel()
