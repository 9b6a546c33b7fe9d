"""Batch encoding: `encode_batch` over a whole batch (the library's threads), the
end-of-document id appended, flat numpy output; no per-token Python."""

from __future__ import annotations

import numpy as np
from tokenizers import Tokenizer


def encode_documents(
    tok: Tokenizer, texts: list[str], eod_id: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Return (flat tokens, sizes): each document's ids followed by `eod_id`."""
    encodings = tok.encode_batch(texts, add_special_tokens=False)
    sizes = np.fromiter((len(e.ids) + 1 for e in encodings), dtype=np.int64, count=len(texts))
    flat = np.empty(int(sizes.sum()), dtype=dtype)
    pos = 0
    for e, n in zip(encodings, sizes, strict=True):
        flat[pos : pos + n - 1] = e.ids
        flat[pos + n - 1] = eod_id
        pos += n
    return flat, sizes
