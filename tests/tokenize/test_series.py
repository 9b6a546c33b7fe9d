"""Token series: encode_series' files and counts against HF tokenizers' own encode, numpy and
pyarrow reading the files back, and counts and histogram bins worked out in plain Python;
TokenFiles' atomic promise (an error leaves nothing, a clean exit exactly the three files)."""

from __future__ import annotations

import json
import os
import traceback

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tmfixtures import sample_docs

from tokenmill.tokenize.bpe import train_bpe
from tokenmill.tokenize.series import (
    TOKEN_DOCS_SCHEMA,
    SeriesTally,
    TokenFiles,
    docs_table,
    encode_series,
)

pytestmark = pytest.mark.timeout(60)

EOD = "<|endoftext|>"
SUFFIXES = (".bin", ".docs.parquet", ".sizes.npy")


@pytest.fixture(scope="module")
def tok():
    texts = [r["text"] for r in sample_docs("c4")[:60]]
    return train_bpe(texts, 600, [EOD, "<|pad|>"])


# documents: (id, lang, text); "é" and "€" make bytes differ from characters, a text of
# 40,000 characters reaches a high length bin, the empty text is its EOD alone
DOCS = [
    ("d0", "en", "The cat sat on the mat."),
    ("d1", "de", "Der Hund läuft über die Straße, schnell."),
    ("d2", "en", ""),
    ("d3", "fr", "Un café coûte 2 €."),
    ("d4", "en", "word " * 8000),
    ("d5", "de", "Ein kurzer Satz."),
    ("d6", "de", "Noch einer, für die zweite Partie."),
    ("d7", "fr", "Été."),
]
# batches as _kept_batches yields them (never empty): mixed languages with "en" first (the
# dictionary is in order of appearance, not sorted), one language alone, mixed again
BATCHES = [(0, 5), (5, 7), (7, 8)]


def _batch(rows, scores=True) -> pa.RecordBatch:
    cols = {
        "id": [DOCS[i][0] for i in rows],
        "url": [f"https://x/{DOCS[i][0]}" for i in rows],
        "lang": [DOCS[i][1] for i in rows],
        "text": [DOCS[i][2] for i in rows],
    }
    if scores:
        cols["quality_score"] = pa.array([i / 8 for i in rows], pa.float32())
    return pa.RecordBatch.from_pydict(cols)


def _batches():
    return [_batch(range(a, b)) for a, b in BATCHES]


def _ids(tok, rows, eod) -> list[int]:
    out = []
    for i in rows:
        out += tok.encode(DOCS[i][2], add_special_tokens=False).ids + [eod]
    return out


def _sizes(tok, rows) -> list[int]:
    return [len(tok.encode(DOCS[i][2], add_special_tokens=False).ids) + 1 for i in rows]


def _bin(v: int) -> int:
    """The log2 length bin of `v` by hand: bin k holds [2**k, 2**(k+1)), 0 in bin 0."""
    return min(max(v, 1).bit_length() - 1, 31)


def _hist(values) -> list[int]:
    h = [0] * 32
    for v in values:
        h[_bin(v)] += 1
    return h


def _files(folder) -> list[str]:
    return sorted(os.listdir(folder))


def _check_series(base, tok, rows, eod):
    """BASE's three files hold exactly the documents `rows`, in order."""
    flat = np.fromfile(base + ".bin", np.uint16)
    assert flat.tolist() == _ids(tok, rows, eod)
    sizes = np.load(base + ".sizes.npy")
    assert sizes.dtype == np.int64 and sizes.tolist() == _sizes(tok, rows)
    docs = pq.read_table(base + ".docs.parquet")
    assert docs.schema == TOKEN_DOCS_SCHEMA
    assert docs.to_pydict() == {
        "id": [DOCS[i][0] for i in rows],
        "url": [f"https://x/{DOCS[i][0]}" for i in rows],
        "lang": [DOCS[i][1] for i in rows],
        "quality_score": [float(np.float32(i / 8)) for i in rows],
    }
    meta = pq.ParquetFile(base + ".docs.parquet").metadata
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            assert meta.row_group(g).column(c).compression == "ZSTD"


def _check_tally(tally, tok, groups):
    rows = range(len(DOCS))
    sizes = _sizes(tok, rows)
    by_lang: dict = {}
    for i, n in zip(rows, sizes, strict=True):
        c = by_lang.setdefault(DOCS[i][1], {"documents": 0, "tokens": 0, "bytes": 0})
        c["documents"] += 1
        c["tokens"] += n
        c["bytes"] += len(DOCS[i][2].encode())
    assert tally.documents == len(DOCS)
    assert tally.tokens == sum(sizes)
    assert tally.bytes_kept == sum(len(d[2].encode()) for d in DOCS)
    assert tally.groups == groups
    # exact, and ints (the counts go to stats.json as they are)
    assert json.dumps({k: dict(v) for k, v in tally.by_lang.items()}, sort_keys=True) == (
        json.dumps(by_lang, sort_keys=True)
    )
    assert tally.histograms() == {
        "chars_kept": _hist(len(d[2]) for d in DOCS),
        "tokens_kept": _hist(sizes),
    }


def test_one_series_holds_every_document_encoded_with_its_eod(tok, tmp_path):
    eod = tok.token_to_id(EOD)
    base = str(tmp_path / "out" / "p0")
    tally = encode_series(tok, _batches(), eod, np.dtype(np.uint16), base, False)
    assert _files(tmp_path / "out") == sorted("p0" + s for s in SUFFIXES)
    _check_series(base, tok, range(len(DOCS)), eod)
    _check_tally(tally, tok, [""])
    # the histograms see a long document: not everything in the low bins
    assert tally.histograms()["chars_kept"][_bin(40_000)] == 1 and _bin(40_000) == 15


def test_split_languages_gives_one_series_per_language(tok, tmp_path):
    eod = tok.token_to_id(EOD)
    base = str(tmp_path / "out" / "p0")
    tally = encode_series(tok, _batches(), eod, np.dtype(np.uint16), base, True)
    langs = ["de", "en", "fr"]
    assert _files(tmp_path / "out") == sorted(f"p0.{g}{s}" for g in langs for s in SUFFIXES)
    for g in langs:
        _check_series(f"{base}.{g}", tok, [i for i, d in enumerate(DOCS) if d[1] == g], eod)
    _check_tally(tally, tok, langs)


def test_split_languages_with_one_language_per_batch(tok, tmp_path):
    """A batch of one language is written whole to that language's series."""
    eod = tok.token_to_id(EOD)
    base = str(tmp_path / "p0")
    de = [i for i, d in enumerate(DOCS) if d[1] == "de"]
    tally = encode_series(tok, [_batch(de[:1]), _batch(de[1:])], eod, np.uint16, base, True)
    assert _files(tmp_path) == sorted("p0.de" + s for s in SUFFIXES)
    _check_series(base + ".de", tok, de, eod)
    assert tally.groups == ["de"] and tally.documents == len(de)


def test_no_documents_still_give_the_one_series_and_empty_counts(tok, tmp_path):
    base = str(tmp_path / "p0")
    tally = encode_series(tok, [], tok.token_to_id(EOD), np.uint16, base, False)
    assert _files(tmp_path) == sorted("p0" + s for s in SUFFIXES)
    assert os.path.getsize(base + ".bin") == 0
    sizes = np.load(base + ".sizes.npy")
    assert sizes.dtype == np.int64 and sizes.shape == (0,)
    assert pq.read_table(base + ".docs.parquet").num_rows == 0
    assert (tally.documents, tally.tokens, tally.bytes_kept, tally.groups) == (0, 0, 0, [""])
    assert tally.histograms() == {"chars_kept": [0] * 32, "tokens_kept": [0] * 32}
    # split by language, no documents write no series at all
    assert encode_series(tok, [], 0, np.uint16, str(tmp_path / "q"), True).groups == []
    assert not any(f.startswith("q") for f in _files(tmp_path))


def test_docs_table_fills_missing_columns_with_typed_nulls():
    batch = pa.RecordBatch.from_pydict({"text": ["a", "b"], "lang": ["en", None], "id": ["x", "y"]})
    t = docs_table(batch)
    assert t.schema == TOKEN_DOCS_SCHEMA
    assert t.column("url").type == pa.string() and t.column("quality_score").type == pa.float32()
    assert t.to_pydict() == {
        "id": ["x", "y"],
        "url": [None, None],
        "lang": ["en", None],
        "quality_score": [None, None],
    }


def test_token_files_write_raw_tokens_sizes_and_docs(tmp_path):
    base = str(tmp_path / "s")
    flat = np.array([5, 300, 7, 0, 65535, 0], np.uint16)
    with TokenFiles(base) as out:
        out.write(_batch([0, 1], scores=False), flat[:4], np.array([3, 1], np.int64))
        out.write(_batch([2], scores=False), flat[4:], np.array([2], np.int64))
        # only the two temporaries until the clean exit
        names = _files(tmp_path)
        assert len(names) == 2 and all(f.startswith(".s.") for f in names)
    assert _files(tmp_path) == sorted("s" + s for s in SUFFIXES)
    raw = open(base + ".bin", "rb").read()
    assert raw == b"".join(int(v).to_bytes(2, "little") for v in flat)
    assert np.load(base + ".sizes.npy").tolist() == [3, 1, 2]
    assert pq.read_table(base + ".docs.parquet").to_pydict() == {
        "id": ["d0", "d1", "d2"],
        "url": ["https://x/d0", "https://x/d1", "https://x/d2"],
        "lang": ["en", "de", "en"],
        "quality_score": [None, None, None],
    }


class _Failure(Exception):
    """An error that needs its argument (contextlib makes one with `type()` when handed no
    exception object)."""

    def __init__(self, what):
        super().__init__(what)


def _fail():
    raise _Failure("disk full")


def test_an_error_inside_token_files_leaves_nothing_and_propagates_unchanged(tmp_path):
    base = str(tmp_path / "s")
    with pytest.raises(_Failure) as info:
        with TokenFiles(base) as out:
            out.write(_batch([0]), np.array([1, 0], np.uint16), np.array([2], np.int64))
            _fail()
    assert _files(tmp_path) == []  # no final file, no temporary
    assert str(info.value) == "disk full"
    # the traceback still reaches the line that raised
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-1] == "_fail"


def test_series_tally_counts_add_up_over_batches():
    """SeriesTally.add on its own: two batches, languages in different dictionary orders."""
    tally = SeriesTally()
    b1 = _batch([0, 1, 3])  # en, de, fr
    tally.add(
        b1,
        np.zeros(10),
        np.array([4, 5, 1]),
        np.array([0, 1, 2]),
        ["en", "de", "fr"],
        np.array([23, 41, 20]),
    )
    b2 = _batch([5, 2])  # de, en
    tally.add(b2, np.zeros(7), np.array([6, 1]), np.array([0, 1]), ["de", "en"], np.array([16, 0]))
    assert (tally.documents, tally.tokens, tally.bytes_kept) == (5, 17, 100)
    assert {k: dict(v) for k, v in tally.by_lang.items()} == {
        "en": {"documents": 2, "tokens": 5, "bytes": 23},
        "de": {"documents": 2, "tokens": 11, "bytes": 57},
        "fr": {"documents": 1, "tokens": 1, "bytes": 20},
    }
    assert all(type(n) is int for c in tally.by_lang.values() for n in c.values())
    assert tally.histograms() == {
        "chars_kept": _hist(len(DOCS[i][2]) for i in [0, 1, 3, 5, 2]),
        "tokens_kept": _hist([4, 5, 1, 6, 1]),
    }
