"""Training samples from a `prepare` output: fixed-length windows over the shards, blended by
the manifest's mixture weights, deterministic for a seed, resumable from a small state.

Per source, as Megatron's GPTDataset: the documents (all shards, in manifest order) are
shuffled once per epoch and laid end to end, epoch after epoch; sample s is the seq_len + 1
tokens starting at token s * seq_len of that stream (neighbours share one token, the last
target of one is the first input of the next), so samples run across document boundaries
(and, at the end of an epoch, into the next one). Samples are then shuffled within blocks of
one epoch's worth. Everything is a pure function of (seed, source, index): any sample can be
read directly, and no index files are written.

Across sources, as Megatron's BlendedDataset: sample g of the blend goes to the source whose
count lags most behind its weight, argmax_s(w_s * (g + 1) - count_s), and takes that source's
next sample. The blend's position (samples consumed, per-source counts) is the whole state a
checkpoint needs to continue with exactly the samples an uninterrupted run would see.

Held-out slice: the last `valid_fraction` of each source's documents (in manifest order, at
least one where a source has two or more) never enter training; validation reads the first
samples of the same construction over them (a slice shorter than one sample is read over and
over: `short_valid` names those sources for a warning).

Every token read is checked against the manifest's vocab_size: shards written with another
tokenizer stop the run with TokenOutOfRange naming the shard, not an IndexError in the model.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from tokenmill.shards.manifest import load_manifest, manifest_path
from tokenmill.shards.megatron import ShardReader
from tokenmill.shards.verify import require_intact


class TokenOutOfRange(ValueError):
    """A shard holds a token id outside the manifest's vocabulary."""


class Vocabulary:
    """The token ids a run accepts (the manifest's vocab_size) and what to say about one
    outside: the shard it came from and the model's vocabulary."""

    def __init__(self, vocab_size: int, prefixes: list[str]):
        self.size, self.prefixes = vocab_size, prefixes
        self.model: tuple[int, int] | None = None  # (vocab_size, padded rows), once built

    def check(self, piece: np.ndarray, reader: int, seq: int, source: str) -> None:
        if len(piece) and (int(piece.max()) >= self.size or int(piece.min()) < 0):
            bad = int(piece[(piece >= self.size) | (piece < 0)][0])
            model = (
                f"; the model's vocab_size is {self.model[0]} ({self.model[1]} embedding rows)"
                if self.model
                else ""
            )
            raise TokenOutOfRange(
                f"{self.prefixes[reader]} (source {source!r}), document {seq}: token id {bad} "
                f"is outside the manifest's vocab_size {self.size}{model}. The shards were "
                "written with another tokenizer than the manifest's: prepare them again with "
                "one tokenizer (tokenmill prepare --fresh)"
            )


class SourceSamples:
    """Fixed-length samples over a set of documents of one source (see the module docstring)."""

    def __init__(
        self,
        name: str,
        readers,
        docs: np.ndarray,
        seq_len: int,
        seed: int,
        vocab: Vocabulary | None = None,
    ):
        # docs: (n, 3) int64 rows of (reader index, sequence index, length)
        self.name, self.readers, self.docs, self.vocab = name, readers, docs, vocab
        self.seq_len, self.seed = seq_len, seed
        self.tokens_per_epoch = int(docs[:, 2].sum()) if len(docs) else 0
        self.block = max(1, (self.tokens_per_epoch - 1) // seq_len)
        self._key = zlib.crc32(name.encode())
        self._epoch = lru_cache(maxsize=4)(self._epoch_uncached)
        self._block_perm = lru_cache(maxsize=4)(self._block_perm_uncached)

    def __len__(self) -> int:
        """Samples in one epoch; the stream itself never ends (epochs repeat, reshuffled)."""
        return self.block

    def _epoch_uncached(self, e: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.random.default_rng([self.seed, self._key, 0, e]).permutation(len(self.docs))
        starts = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(self.docs[order, 2], out=starts[1:])
        return order, starts

    def _block_perm_uncached(self, b: int) -> np.ndarray:
        return np.random.default_rng([self.seed, self._key, 1, b]).permutation(self.block)

    def _tokens(self, start: int, n: int) -> np.ndarray:
        out, filled = np.empty(n, dtype=np.int64), 0
        e, off = divmod(start, self.tokens_per_epoch)
        while filled < n:
            order, starts = self._epoch(e)
            d = int(np.searchsorted(starts, off, side="right")) - 1
            while filled < n and d < len(order):
                r, seq, length = self.docs[order[d]]
                doc = self.readers[r][int(seq)]
                lo = off - int(starts[d])
                take = min(n - filled, int(length) - lo)
                if self.vocab:
                    self.vocab.check(doc[lo : lo + take], int(r), int(seq), self.name)
                out[filled : filled + take] = doc[lo : lo + take]
                filled, off, d = filled + take, off + take, d + 1
            e, off = e + 1, 0
        return out

    def __getitem__(self, k: int) -> np.ndarray:
        """Sample k: seq_len + 1 token ids (int64)."""
        if self.tokens_per_epoch == 0:
            raise IndexError(f"source {self.name!r} has no tokens")
        b, r = divmod(int(k), self.block)
        s = b * self.block + int(self._block_perm(b)[r])
        return self._tokens(s * self.seq_len, self.seq_len + 1)


class Blend:
    """The sequence of samples of several sources mixed by weight (Megatron's greedy rule)."""

    def __init__(self, sources: list[SourceSamples], weights: list[float]):
        total = float(sum(weights))
        if not sources or total <= 0:
            raise ValueError("nothing to blend: no source with tokens and a positive weight")
        self.sources = sources
        self.weights = np.asarray(weights, dtype=np.float64) / total
        self.consumed = 0
        self.counts = np.zeros(len(sources), dtype=np.int64)

    def next_indices(self, n: int) -> list[tuple[int, int]]:
        """The next n samples as (source, index in source), advancing the position."""
        out = []
        for _ in range(n):
            s = int(np.argmax(self.weights * (self.consumed + 1) - self.counts))
            out.append((s, int(self.counts[s])))
            self.counts[s] += 1
            self.consumed += 1
        return out

    def get(self, pairs: list[tuple[int, int]]) -> np.ndarray:
        """(len(pairs), seq_len + 1) int64."""
        return np.stack([self.sources[s][i] for s, i in pairs])

    def state_dict(self) -> dict:
        return {"consumed": self.consumed, "counts": self.counts.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.consumed = int(state["consumed"])
        self.counts = np.asarray(state["counts"], dtype=np.int64)


class ManifestData:
    """Train and validation samples of a `prepare` output (OUT/manifest.json)."""

    def __init__(
        self,
        manifest: str | Path,
        seq_len: int,
        seed: int = 1234,
        valid_fraction: float = 0.01,
        weights: dict[str, float] | None = None,
    ):
        path = manifest_path(manifest)
        # a manifest that is not tokenmill's, or a damaged or missing shard, is refused here
        # by name (ManifestError, DamagedShards: ValueErrors), not as an IndexError mid-run;
        # the check is structural (the .idx files and file sizes), not a SHA-256 of the data
        self.manifest = load_manifest(path)
        self.root = path.parent
        require_intact(self.root, self.manifest)
        self.seq_len, self.seed, self.valid_fraction = seq_len, seed, valid_fraction
        self.vocab_size = int(self.manifest["tokenizer"]["vocab_size"])
        self.eod_id = self.manifest["tokenizer"].get("eod_id")
        mixture = dict(weights if weights is not None else self.manifest["mixture"])
        known = {s["source"] for s in self.manifest["shards"]}
        unknown = sorted(set(mixture) - known) if weights is not None else []
        if unknown:
            raise ValueError(
                f"{path}: no source {', '.join(map(repr, unknown))} in its shards (sources: "
                f"{', '.join(sorted(known))})"
            )

        readers, prefixes, by_source = [], [], {}
        for shard in self.manifest["shards"]:
            if not shard["tokens"]:
                continue
            reader = ShardReader(self.root / shard["prefix"])
            r = len(readers)
            readers.append(reader)
            prefixes.append(shard["prefix"])
            sizes = np.asarray(reader.sizes, dtype=np.int64)
            rows = np.stack([np.full(len(sizes), r), np.arange(len(sizes)), sizes], axis=1)
            by_source.setdefault(shard["source"], []).append(rows[sizes > 0])
        self.readers = readers
        self.vocab = Vocabulary(self.vocab_size, prefixes)

        train, valid = [], []
        for name in sorted(by_source):
            if mixture.get(name, 0) <= 0:
                continue
            docs = np.concatenate(by_source[name])
            n_valid = 0
            if valid_fraction > 0 and len(docs) >= 2:
                n_valid = min(len(docs) - 1, max(1, math.ceil(valid_fraction * len(docs))))
            split = len(docs) - n_valid
            args = (readers, docs[:split], seq_len, seed, self.vocab)
            train.append((name, SourceSamples(name, *args)))
            if n_valid:
                args = (readers, docs[split:], seq_len, seed, self.vocab)
                valid.append((name, SourceSamples(name, *args)))
        if not train:
            raise ValueError(f"{path}: no shard with tokens for a source with a positive weight")
        self.source_names = [n for n, _ in train]
        self.train = Blend([s for _, s in train], [mixture[n] for n, _ in train])
        self._valid = [(s, mixture[n]) for n, s in valid]

    def short_valid(self) -> dict[str, int]:
        """{source: held-out tokens} of the sources whose held-out slice is shorter than one
        sample (seq_len + 1 tokens): their validation samples repeat those tokens."""
        return {
            s.name: s.tokens_per_epoch
            for s, _ in self._valid
            if s.tokens_per_epoch < self.seq_len + 1
        }

    def valid_batch(self, n: int) -> np.ndarray | None:
        """The first n samples of the held-out blend (the same ones every time), or None."""
        if not self._valid:
            return None
        blend = Blend([s for s, _ in self._valid], [w for _, w in self._valid])
        return blend.get(blend.next_indices(n))

    def tokenizer_digest(self) -> str:
        """SHA-256 of the manifest's tokenizer.json (token ids mean the same only where equal)."""
        path = self.root / self.manifest["tokenizer"]["path"]
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""

    def require_same_tokenizer(self, other: ManifestData, what: str) -> None:
        """ValueError unless `other`'s shards were written with the same tokenizer."""
        mine, theirs = self.tokenizer_digest(), other.tokenizer_digest()
        if self.vocab_size != other.vocab_size or mine != theirs:
            raise ValueError(
                f"{what} {other.root}: its shards were written with another tokenizer than "
                f"{self.root}'s (vocab_size {other.vocab_size} vs {self.vocab_size}, "
                "tokenizer.json differs): losses would not compare. Prepare both with the same "
                "`tokenizer:` in the config"
            )

    def fingerprint(self) -> str:
        """What decides the samples: a resumed run must match it."""
        key = {
            "seq_len": self.seq_len,
            "seed": self.seed,
            "valid_fraction": self.valid_fraction,
            "weights": self.train.weights.tolist(),
            "sources": self.source_names,
            "shards": [(s["prefix"], s["tokens"]) for s in self.manifest["shards"]],
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def state_dict(self) -> dict:
        return {**self.train.state_dict(), "fingerprint": self.fingerprint()}

    def check_state(self, state: dict) -> None:
        """Refuse a checkpoint's sampler state written for other data."""
        if state.get("fingerprint") != self.fingerprint():
            raise ValueError(
                "the checkpoint was written for other data (manifest, seq_len, seed or weights "
                "differ): resume with the same settings, or start a fresh run in another folder"
            )

    def load_state_dict(self, state: dict) -> None:
        self.check_state(state)
        self.train.load_state_dict(state)
