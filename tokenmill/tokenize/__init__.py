"""Tokenizer training (byte-level BPE, HF tokenizers) and fast batch encoding."""

from tokenmill.tokenize.bpe import load_tokenizer, train_bpe
from tokenmill.tokenize.encode import encode_documents

__all__ = ["encode_documents", "load_tokenizer", "train_bpe"]
