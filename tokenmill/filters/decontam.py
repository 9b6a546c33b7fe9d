"""Decontamination: find documents that share a word n-gram with an evaluation set.

An evaluation set is a sequence of items' texts (reading them from files is
tokenmill.pipelines.evalsets' work). Its index (`EvalIndex`) holds the 64-bit hashes of every
word n-gram of every item, sorted, with the first item each comes from: 12 bytes per
distinct n-gram and no strings, so a large evaluation set stays small in memory and on disk
(`save` / `load`: one .npz that each worker loads once).

N-grams are those of near dedup (tokenmill.filters.minhash.shingle_hashes): the NFC,
case-folded text's words (runs of Unicode letters, marks, numbers and "_"; each alphanumeric
character for languages written without spaces), `ngram` consecutive words per n-gram, the
same hash on every machine. Only whole n-grams count: an item with fewer than `ngram` words
cannot be found and is counted as `too_short` (GPT-3 and datatrove do the same), and a
document shorter than `ngram` words never matches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tokenmill.filters.minhash import shingle_hashes

BATCH = 1024  # items hashed per numpy pass


@dataclass
class EvalIndex:
    """One evaluation set's n-grams: `hashes` sorted and distinct, `items[k]` the first item
    (0-based, in file order) that has `hashes[k]`. `counts`: items, items without text,
    items too short to have one n-gram, and n-grams."""

    name: str
    ngram: int
    hashes: np.ndarray
    items: np.ndarray
    counts: dict = field(default_factory=dict)

    @classmethod
    def build(
        cls, name: str, texts: Iterable[str | None], ngram: int = 13, lang: str = "und"
    ) -> EvalIndex:
        """The index of the items `texts` (None: an item without text), in order."""
        hs, owners = [], []
        n_items = no_text = 0
        batch: list[str] = []
        numbers: list[int] = []

        def flush() -> int:
            """Hash the batch; how many of its items have an n-gram."""
            g, doc = shingle_hashes(batch, [lang] * len(batch), ngram, short=False)
            hs.append(g)
            owners.append(np.asarray(numbers, np.int64)[doc])
            batch.clear()
            numbers.clear()
            return len(np.unique(doc))

        found = 0
        for i, text in enumerate(texts):
            n_items += 1
            if text is None:
                no_text += 1
                continue
            batch.append(text)
            numbers.append(i)
            if len(batch) == BATCH:
                found += flush()
        if batch:
            found += flush()
        too_short = n_items - no_text - found
        h = np.concatenate(hs) if hs else np.empty(0, np.uint64)
        owner = np.concatenate(owners) if owners else np.empty(0, np.int64)
        # sort by (hash, item): np.unique's first index is then the lowest item per hash
        order = np.lexsort((owner, h))
        h, owner = h[order], owner[order]
        hashes, first = np.unique(h, return_index=True)
        counts = {
            "items": n_items,
            "no_text": no_text,
            "too_short": too_short,
            "ngrams": len(hashes),
        }
        return cls(name, ngram, hashes, owner[first].astype(np.int32), counts)

    def save(self, path: str | os.PathLike) -> None:
        """Write the index as one .npz (the caller renames it into place)."""
        with open(path, "wb") as f:
            np.savez(
                f,
                hashes=self.hashes,
                items=self.items,
                meta=np.frombuffer(
                    json.dumps({"name": self.name, "ngram": self.ngram, **self.counts}).encode(),
                    np.uint8,
                ),
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> EvalIndex:
        with np.load(path) as z:
            meta = json.loads(z["meta"].tobytes())
            hashes, items = z["hashes"], z["items"]
        name, ngram = meta.pop("name"), meta.pop("ngram")
        return cls(name, ngram, hashes, items, meta)

    def lookup(self, g: np.ndarray) -> np.ndarray:
        """For each hash of `g`, the item that has it, or -1."""
        out = np.full(len(g), -1, np.int64)
        if not len(self.hashes) or not len(g):
            return out
        pos = np.searchsorted(self.hashes, g)
        pos[pos == len(self.hashes)] = 0
        hit = self.hashes[pos] == g
        out[hit] = self.items[pos[hit]]
        return out


@dataclass
class Hit:
    """A document's overlap with one evaluation set: the set's name and the items (sorted)
    that share at least one n-gram with the document."""

    name: str
    items: list[int]


def find_contamination(
    texts: list[str], langs: list[str], indexes: Sequence[EvalIndex]
) -> list[list[Hit]]:
    """Per document, its `Hit`s in the order of `indexes` (empty: clean). All indexes must
    have the same `ngram`; a filter removes a document for its first hit."""
    out: list[list[Hit]] = [[] for _ in texts]
    if not indexes or not texts:
        return out
    ngram = indexes[0].ngram
    if any(ix.ngram != ngram for ix in indexes):
        raise ValueError("evaluation indexes with different n-gram sizes")
    g, doc = shingle_hashes(texts, langs, ngram, short=False)
    for ix in indexes:
        item = ix.lookup(g)
        hit = item >= 0
        if not hit.any():
            continue
        pairs = np.unique(np.stack([doc[hit], item[hit]]), axis=1)  # sorted by doc, item
        docs, starts = np.unique(pairs[0], return_index=True)
        for d, items in zip(docs.tolist(), np.split(pairs[1], starts[1:]), strict=True):
            out[d].append(Hit(ix.name, items.tolist()))
    return out
