"""Train a byte-level BPE tokenizer (GPT-2 style) or load an existing tokenizer.json.

Byte-level BPE with no normalizer round-trips exactly: decoding a document's ids gives back
its text byte for byte, which the shard tests rely on.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers


def train_bpe(
    texts: Iterable[str],
    vocab_size: int,
    special_tokens: list[str],
    min_frequency: int = 2,
) -> Tokenizer:
    """Train on `texts` (in the given order); special tokens take the first ids."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> Tokenizer:
    from tokenmill.memory import release_free_memory

    tok = Tokenizer.from_file(path)
    # parsing tokenizer.json leaves ~10 MB (32k vocabulary; more for BLOOM's 250k) of freed
    # heap that glibc keeps mapped: give it back, in every worker that loads a tokenizer
    release_free_memory()
    return tok


def load_tokenizer(path: str) -> Tokenizer:
    """Load once per process (cached on path and modification time)."""
    import os

    return _load(path, os.stat(path).st_mtime_ns)


def token_id(tok: Tokenizer, token: str) -> int:
    tid = tok.token_to_id(token)
    if tid is None:
        raise ValueError(
            f"the tokenizer has no {token!r} token; set tokenizer.eod_token to one it has"
        )
    return tid
