"""Histograms of stats.json: moved to the low-level `tokenmill.hist` (stages use them too);
this name stays for the report's modules and outside code."""

from tokenmill.hist import (
    DESCRIPTION,
    LENGTH_BINS,
    SCORE_BINS,
    SCORE_HISTOGRAMS,
    add,
    length_hist,
    score_hist,
)

__all__ = [
    "DESCRIPTION",
    "LENGTH_BINS",
    "SCORE_BINS",
    "SCORE_HISTOGRAMS",
    "add",
    "length_hist",
    "score_hist",
]
