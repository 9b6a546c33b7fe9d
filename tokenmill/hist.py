"""Fixed-bin histograms that add up across partitions (so they can be summed in stats.json).

Lengths use log2 bins: bin k counts values in [2**k, 2**(k+1)), bin 0 also counts 0; the last
bin takes everything larger. Language-ID scores and a quality classifier's scores (a source's
`quality_score` histogram) use 20 bins of 0.05 over [0, 1].
"""

from __future__ import annotations

import numpy as np

LENGTH_BINS = 32
SCORE_BINS = 20
DESCRIPTION = {
    "length": "log2 bins: bin k counts values in [2^k, 2^(k+1)); bin 0 also counts 0",
    "lang_score": "20 bins of 0.05 over [0, 1]",
    "quality_score": "20 bins of 0.05 over [0, 1]",
}
# a source's histograms that hold scores, not lengths
SCORE_HISTOGRAMS = ("quality_score",)


def length_hist(values) -> list[int]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return [0] * LENGTH_BINS
    k = np.floor(np.log2(np.maximum(v, 1))).astype(np.int64)
    return np.bincount(np.minimum(k, LENGTH_BINS - 1), minlength=LENGTH_BINS).tolist()


def score_hist(values) -> list[int]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return [0] * SCORE_BINS
    k = np.clip((v * SCORE_BINS).astype(np.int64), 0, SCORE_BINS - 1)
    return np.bincount(k, minlength=SCORE_BINS).tolist()


def add(a: list[int] | None, b: list[int] | None) -> list[int]:
    if not a:
        return list(b or [])
    if not b:
        return list(a)
    return [x + y for x, y in zip(a, b, strict=True)]
