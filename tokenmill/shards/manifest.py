"""OUT/manifest.json: the tokenizer, every shard with its counts, the mixture weights and the
`--data-path` string Megatron-DeepSpeed takes."""

from __future__ import annotations

import os
from pathlib import Path

from tokenmill.config import Config

MANIFEST_VERSION = 1


def build_manifest(cfg: Config, out: Path, shard_counts: list[dict]) -> dict:
    from tokenizers import Tokenizer

    from tokenmill.shards.megatron import dtype_for_vocab

    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    vocab = tok.get_vocab_size()
    shards = [
        {
            "prefix": os.path.relpath(c["prefix"], out),
            "source": c["source"],
            **({"lang": c["lang"]} if c.get("lang") else {}),
            "documents": c["documents"],
            "tokens": c["tokens"],
        }
        for c in shard_counts
    ]
    tokens = {s.name: 0 for s in cfg.sources}
    for s in shards:
        tokens[s["source"]] += s["tokens"]
    present = {s.name: s.weight for s in cfg.sources if tokens[s.name] > 0}
    total_w = sum(present.values()) or 1.0
    mixture = {name: w / total_w for name, w in present.items()}
    return {
        "version": MANIFEST_VERSION,
        "tokenizer": {
            "path": "tokenizer.json",
            "vocab_size": vocab,
            "eod_token": cfg.tokenizer.eod_token,
            "eod_id": tok.token_to_id(cfg.tokenizer.eod_token),
            "pad_id": tok.token_to_id(cfg.tokenizer.pad_token),
            "dtype": dtype_for_vocab(vocab).name,
        },
        "sources": {
            name: {"tokens": n, "weight": mixture.get(name, 0.0)} for name, n in tokens.items()
        },
        "shards": shards,
        "mixture": mixture,
        "budget": None,
        "data_path": data_path(shards, mixture, tokens),
    }


def data_path(shards: list[dict], mixture: dict[str, float], tokens: dict[str, int]) -> str:
    """Megatron's blended `--data-path "w1 prefix1 w2 prefix2 ..."`: each source gets its
    mixture weight, shared among its shards by their tokens (prefixes relative to OUT)."""
    parts = []
    for s in shards:
        if tokens[s["source"]] and s["tokens"]:
            w = mixture[s["source"]] * s["tokens"] / tokens[s["source"]]
            parts.append(f"{w:.6g} {s['prefix']}")
    return " ".join(parts)
