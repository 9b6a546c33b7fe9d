"""Encoding: EOD appended, exact round trip, long documents cut into pieces, pipelined batches."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from tmfixtures import sample_docs

from tokenmill.tokenize.bpe import train_bpe
from tokenmill.tokenize.encode import (
    ENCODE_THREAD_NAME,
    encode_documents,
    encode_pipelined,
    name_os_thread,
    split_long,
)


def _tok():
    texts = [r["text"] for r in sample_docs("c4")[:300]]
    return train_bpe(texts, 1000, ["<|endoftext|>", "<|pad|>"]), texts


def test_eod_and_exact_round_trip():
    tok, texts = _tok()
    flat, sizes = encode_documents(tok, texts[:50], 0, np.dtype(np.uint16))
    assert sizes.sum() == len(flat)
    pos = 0
    for text, n in zip(texts[:50], sizes, strict=True):
        ids = flat[pos : pos + n].tolist()
        pos += n
        assert ids[-1] == 0 and 0 not in ids[:-1]
        assert tok.decode(ids[:-1], skip_special_tokens=False) == text
        assert ids[:-1] == tok.encode(text, add_special_tokens=False).ids


def test_split_long_keeps_every_character():
    text = "\n".join(r["text"] for r in sample_docs("pile")[:30])
    for limit in (500, 2000, 10_000):
        pieces = split_long(text, limit)
        assert "".join(pieces) == text
        assert all(len(p) <= limit for p in pieces)
    assert split_long("short", 10) == ["short"]
    assert "".join(split_long("x" * 95, 10)) == "x" * 95  # no break: hard cuts


def test_long_documents_are_encoded_in_pieces_and_still_decode_exactly():
    tok, texts = _tok()
    long_doc = "\n".join(texts[:40])
    batch = [texts[0], long_doc, texts[1]]
    flat, sizes = encode_documents(tok, batch, 0, np.dtype(np.int32), max_piece_chars=3000)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    for i, text in enumerate(batch):
        ids = flat[bounds[i] : bounds[i + 1]].tolist()
        assert ids[-1] == 0 and 0 not in ids[:-1]
        assert tok.decode(ids[:-1], skip_special_tokens=False) == text


def test_empty_documents_get_their_end_of_document_id():
    tok, texts = _tok()
    flat, sizes = encode_documents(tok, ["", texts[0], "", ""], 0, np.dtype(np.uint16))
    n = len(tok.encode(texts[0], add_special_tokens=False).ids)
    assert sizes.tolist() == [1, n + 1, 1, 1]
    assert flat[0] == 0 and flat[n + 1] == 0 and flat[-2:].tolist() == [0, 0]
    empty_flat, empty_sizes = encode_documents(tok, [], 0, np.dtype(np.uint16))
    assert len(empty_flat) == len(empty_sizes) == 0


def test_pipelined_batches_match_one_at_a_time_and_keep_their_order():
    tok, texts = _tok()
    long_doc = "\n".join(texts[:40])
    batches = [(i, texts[i * 37 : (i + 1) * 37]) for i in range(6)] + [(6, [long_doc, ""])]
    got = list(encode_pipelined(tok, iter(batches), 0, np.dtype(np.uint16), max_piece_chars=3000))
    assert [item for item, _, _ in got] == list(range(7))
    for (_, batch), (_, flat, sizes) in zip(batches, got, strict=True):
        want_flat, want_sizes = encode_documents(
            tok, batch, 0, np.dtype(np.uint16), max_piece_chars=3000
        )
        assert np.array_equal(flat, want_flat) and np.array_equal(sizes, want_sizes)
    assert list(encode_pipelined(tok, iter([]), 0, np.dtype(np.uint16))) == []


def test_pipelined_encoding_raises_the_error_of_a_bad_batch():
    tok, texts = _tok()
    batches = [(0, texts[:5]), (1, [None]), (2, texts[5:10])]  # type: ignore[list-item]
    it = encode_pipelined(tok, iter(batches), 0, np.dtype(np.uint16))
    assert next(it)[0] == 0
    with pytest.raises(TypeError):
        next(it)


def _os_thread_name() -> str:
    with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
        return f.read().strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OS thread names: Linux")
def test_encoding_runs_on_a_named_os_thread_whose_threads_inherit_the_name():
    """The name is how the end-to-end profile tells tokenizers' CPU time apart."""
    tok, texts = _tok()
    seen: list[str] = []

    class Recording:  # the real tokenizer, noting the OS name of the thread that calls it
        def encode_batch_fast(self, pieces, add_special_tokens):
            seen.append(_os_thread_name())
            return tok.encode_batch_fast(pieces, add_special_tokens=add_special_tokens)

        encode_batch = encode_batch_fast

    got = list(encode_pipelined(Recording(), iter([(0, texts[:5])]), 0, np.dtype(np.uint16)))
    assert seen == [ENCODE_THREAD_NAME] and len(got) == 1
    before = _os_thread_name()
    child: list[str] = []

    def named_then_start_child():
        name_os_thread("tm-test")
        t = threading.Thread(target=lambda: child.append(_os_thread_name()))
        t.start()
        t.join()
        child.append(_os_thread_name())

    t = threading.Thread(target=named_then_start_child)
    t.start()
    t.join()
    assert child == ["tm-test", "tm-test"]
    assert _os_thread_name() == before  # the caller's own name is untouched
