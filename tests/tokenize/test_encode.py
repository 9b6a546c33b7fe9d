"""Encoding: EOD appended, exact round trip, long documents cut into pieces, pipelined batches."""

from __future__ import annotations

import sys
import threading
import time

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

# Every test here takes about a second: a cut of split_long that does not advance loops for
# ever, and this makes it a failure rather than a hang (mutation testing, docs/TESTING.md).
pytestmark = pytest.mark.timeout(30)


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


# -- split_long against its spec, read in plain Python ------------------------------------


def _spec_pieces(text: str, limit: int) -> list[str]:
    """The docstring's rule: while more than `limit` characters are left, cut after the last
    newline in the second half of the next `limit` characters, else after the last space
    there, else at `limit`."""
    pieces, start = [], 0
    while len(text) - start > limit:
        half = text[start + limit // 2 : start + limit]
        for sep in ("\n", " "):
            if sep in half:
                end = start + limit // 2 + len(half) - half[::-1].index(sep)
                break
        else:
            end = start + limit
        pieces.append(text[start:end])
        start = end
    return [*pieces, text[start:]]


def test_split_long_cuts_where_its_docstring_says():
    rng = np.random.default_rng(7)
    real = "\n".join(r["text"] for r in sample_docs("pile")[:10])
    texts = [
        real,
        real.replace("\n", " "),  # spaces only
        "x" * 95,  # no break at all
        # newlines and spaces at random places: several in one window, some in the first
        # half of a window only, some at a window's very start
        "".join(rng.choice(list("ab \n"), p=[0.45, 0.45, 0.07, 0.03], size=5000)),
        "".join(rng.choice(list("abc\n"), p=[0.33, 0.33, 0.32, 0.02], size=3000)),
        "\n" * 50,
        " a" * 400,
    ]
    for text in texts:
        for limit in (1, 2, 3, 7, 10, 33, 100, 501, 2000, len(text) - 1, len(text)):
            if limit < 1:
                continue
            got = split_long(text, limit)
            assert got == _spec_pieces(text, limit), (text[:40], limit)
            assert "".join(got) == text and all(0 < len(p) <= limit for p in got)
    assert split_long("x" * 10, 10) == ["x" * 10]  # exactly the limit: one piece
    assert split_long("", 10) == [""]


def test_a_long_document_is_encoded_piece_by_piece():
    """Cut at `max_piece_chars` (here: hard cuts, no space or newline to cut at), each piece
    encoded on its own: the ids are the pieces' ids joined, which differ from encoding the
    document whole."""
    tok, texts = _tok()
    word = "".join(t.replace(" ", "").replace("\n", "") for t in texts[:5])[:2500]
    pieces = split_long(word, 700)
    assert [len(p) for p in pieces] == [700, 700, 700, 400]
    want = [i for p in pieces for i in tok.encode(p, add_special_tokens=False).ids]
    assert want != tok.encode(word, add_special_tokens=False).ids  # the cut shows in the ids
    batch = [texts[0], word, texts[1]]
    flat, sizes = encode_documents(tok, batch, 0, np.dtype(np.uint16), max_piece_chars=700)
    n0 = len(tok.encode(texts[0], add_special_tokens=False).ids)
    assert flat[n0 + 1 : n0 + 1 + len(want)].tolist() == want
    assert sizes.tolist()[1] == len(want) + 1
    got = list(
        encode_pipelined(tok, iter([("b", batch)]), 0, np.dtype(np.uint16), max_piece_chars=700)
    )
    assert got[0][0] == "b" and got[0][1].tolist() == flat.tolist()


def test_a_tokenizers_own_special_tokens_are_not_added():
    """A tokenizer.json whose post-processor adds a BOS (as Llama's does): documents hold their
    text's ids and the end-of-document id only."""
    from tokenizers.processors import TemplateProcessing

    tok, texts = _tok()
    bos = tok.token_to_id("<|pad|>")
    tok.post_processor = TemplateProcessing(single="<|pad|> $A", special_tokens=[("<|pad|>", bos)])
    assert tok.encode(texts[0]).ids[0] == bos  # the post-processor is active by default
    flat, sizes = encode_documents(tok, texts[:3], 0, np.dtype(np.uint16))
    want = [tok.encode(t, add_special_tokens=False).ids + [0] for t in texts[:3]]
    assert flat.tolist() == [i for ids in want for i in ids]
    assert sizes.tolist() == [len(ids) for ids in want]


class _Recording:
    """The real tokenizer, noting which batch call ran on which thread; each call holds its
    thread a little, so a second call submitted meanwhile needs a second thread."""

    def __init__(self, tok, fast: bool = True):
        self.tok, self.calls = tok, []
        if fast:
            self.encode_batch_fast = self._call("encode_batch_fast")

    def _call(self, name):
        def call(pieces, add_special_tokens):
            self.calls.append((name, threading.current_thread().name))
            time.sleep(0.05)
            return getattr(self.tok, name)(pieces, add_special_tokens=add_special_tokens)

        return call

    def __getattr__(self, name):
        if name == "encode_batch":
            return self._call("encode_batch")
        raise AttributeError(name)


@pytest.mark.parametrize("fast", [True, False])
def test_the_fast_batch_call_is_used_where_the_library_has_it(fast):
    tok, texts = _tok()
    rec = _Recording(tok, fast)
    flat, sizes = encode_documents(rec, texts[:4], 0, np.dtype(np.uint16))
    assert [c[0] for c in rec.calls] == ["encode_batch_fast" if fast else "encode_batch"]
    want_flat, want_sizes = encode_documents(tok, texts[:4], 0, np.dtype(np.uint16))
    assert flat.tolist() == want_flat.tolist() and sizes.tolist() == want_sizes.tolist()


@pytest.mark.parametrize("ahead", [1, 2])
def test_pipelined_encoding_reads_ahead_batches_on_ahead_threads(ahead):
    """`ahead` batches are taken (and encoded) beyond the one handed out, no more, on at most
    `ahead` threads of the pool."""
    tok, texts = _tok()
    rec = _Recording(tok)
    taken: list[int] = []

    def batches():
        for i in range(6):
            taken.append(i)
            yield i, texts[i * 5 : i * 5 + 5]

    seen = []
    kwargs = {} if ahead == 1 else {"ahead": ahead}
    for item, _, _ in encode_pipelined(rec, batches(), 0, np.dtype(np.uint16), **kwargs):
        seen.append((item, len(taken)))
    assert seen == [(i, min(i + 1 + ahead, 6)) for i in range(6)]
    threads = {name for _, name in rec.calls}
    assert len(rec.calls) == 6 and len(threads) == ahead
    assert all(name.startswith("tokenmill-encode") for name in threads)
