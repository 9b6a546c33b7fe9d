"""OSCAR 2019 and OSCAR 21.09 (readers/oscar.py) record by record, against a plain reading of
the same bytes: 2019 files as `bytes.split` blocks, 21.09 text + metadata pairs as
`bytes.split` lines and `json.loads` per metadata line. Every record's index, every set-aside
record's reason, bytes and metadata line (blank lines counted), documents exactly at the size
cap and one byte either side, slices, the errors of a text file that ends too soon and of
damage in either file, the file name pairing, and the memory bound on long lines and on
documents over the cap.

(OSCAR 22.01 and 23.01 are JSON lines: tests/pipelines/test_readers_jsonl.py.)"""

from __future__ import annotations

import base64
import gzip
import io
import json
import random
import tracemalloc
from pathlib import Path

import pytest
from tmfixtures import dumps

from tokenmill.pipelines.readers import (
    Doc,
    FileError,
    compression,
    count_records,
    oscar2109_meta_path,
    read_records,
)
from tokenmill.pipelines.readers.oscar import _text_line, count_oscar2109

MAX = 40  # max_doc_bytes in these tests

# every test here takes about a second at most: a mutant that stops a loop from advancing
# fails instead of hanging (mutation testing, docs/TESTING.md)
pytestmark = pytest.mark.timeout(30)


def _as_tuples(items) -> list[tuple]:
    """Reader output in comparable form: a Bad is a str, so its bytes and line are compared
    explicitly (and that it is a Bad at all, not a bare reason string)."""
    out = []
    for i, d in items:
        if isinstance(d, Doc):
            out.append((i, "doc", d.text, d.url, d.meta, d.nbytes))
        else:
            out.append((i, type(d).__name__, str(d), d.raw, d.line))
    return out


def _doc(i, text: str, url=None, meta=None) -> tuple:
    return (i, "doc", text, url, {} if meta is None else meta, len(text.encode("utf-8")))


def _bad(i, reason: str, raw: bytes | None, line: int | None) -> tuple:
    return (i, "Bad", reason, raw, line)


def _read(path, fmt: str, **kw) -> tuple[list[tuple], FileError | None]:
    got = []
    try:
        for item in read_records(str(path), fmt, **kw):
            got.append(item)
    except FileError as e:
        return _as_tuples(got), e
    return _as_tuples(got), None


def _lines(data: bytes) -> list[bytes]:
    """A file's lines: a final newline ends the last line, a last line without one is a line."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


# ---- OSCAR 2019: blocks of non-blank lines -----------------------------------------------------


def _plain_2019(data: bytes, cap: int) -> list[tuple]:
    """The records of an OSCAR 2019 file read with bytes.split: runs of lines that are not blank
    (trailing `\r`s dropped; blank: only ASCII white space) joined by `\n`; over `cap` bytes
    joined, or with a line over `cap` bytes before its `\r`s are dropped, is too large."""
    blocks: list[list[tuple[bytes, bool]]] = [[]]
    for line in _lines(data):
        over = len(line) > cap
        line = line.rstrip(b"\r")
        if not over and not line.strip():
            blocks.append([])
        else:
            blocks[-1].append((line, over))
    out = []
    for block in [b for b in blocks if b]:
        i = len(out)
        raw = b"\n".join(line for line, _ in block)
        if any(over for _, over in block) or len(raw) > cap:
            out.append(_bad(i, "input:too_large", None, None))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            out.append(_bad(i, "input:invalid_utf8", raw, None))
            continue
        out.append(_bad(i, "input:empty", raw, None) if text.isspace() else _doc(i, text))
    return out


# lines of every kind a block can hold: text, ASCII white space (blank), white space only str
# knows (\x1c, NBSP, ideographic space: not blank, but an empty text), bytes that are not UTF-8,
# carriage returns, and lines at and around the cap
_2019_LINES = [
    b"Un document en fran\xc3\xa7ais.",
    b"short",
    b"",
    b"",
    b"   ",
    b"\t\x0b\x0c",
    b"\r",
    b"\x1c",
    b"\xc2\xa0\xe3\x80\x80",
    b"bad \xff byte",
    b"cr inside\rtext",
    b"ends in cr\r\r",
    b"x" * MAX,
    b"y" * (MAX + 1),
    b"z" * (MAX - 1) + b"\r",
    b"u" * MAX + b"\r",
    b"w" * 19,
    b"v" * 20,
]


def test_oscar2019_against_a_plain_reading(tmp_path):
    rng = random.Random(2019)
    path = tmp_path / "fr.txt.gz"
    for case in range(150):
        lines = [rng.choice(_2019_LINES) for _ in range(rng.randrange(0, 14))]
        data = b"\n".join(lines) + (b"\n" if rng.random() < 0.7 else b"")
        path.write_bytes(gzip.compress(data, mtime=0))
        expected = _plain_2019(data, MAX)
        got, err = _read(path, "oscar2019", max_doc_bytes=MAX)
        assert err is None and got == expected, (case, data)
        assert count_records(str(path), "oscar2019", MAX) == (len(expected), None), case


def test_oscar2019_records_set_aside_keep_their_bytes_and_reading_goes_on(tmp_path):
    blocks = [
        b"first document",
        b"y" * (MAX + 1),  # too large: no bytes kept
        b"after the large one",
        b"bad \xff byte\nsecond line",
        b"\x1c\n\xc2\xa0",  # white space to str, not to bytes: an empty document
        b"last",
    ]
    path = tmp_path / "fr.txt"
    path.write_bytes(b"\n\n".join(blocks) + b"\n")
    got, err = _read(path, "oscar2019", max_doc_bytes=MAX)
    assert err is None
    assert got == [
        _doc(0, "first document"),
        _bad(1, "input:too_large", None, None),
        _doc(2, "after the large one"),
        _bad(3, "input:invalid_utf8", blocks[3], None),
        _bad(4, "input:empty", blocks[4], None),
        _doc(5, "last"),
    ]


def test_oscar2019_slices(tmp_path):
    data = b"\n\n".join([b"a", b"y" * (MAX + 1), b"b\xff", b"c", b"\x1c", b"d\ne"]) + b"\n"
    path = tmp_path / "fr.txt.gz"
    path.write_bytes(gzip.compress(data, mtime=0))
    whole = _plain_2019(data, MAX)
    assert len(whole) == 6
    for start in range(8):
        for stop in [None, *range(8)]:
            got, err = _read(path, "oscar2019", start=start, stop=stop, max_doc_bytes=MAX)
            assert err is None
            assert got == whole[start:stop], (start, stop)


def test_oscar2019_damage_is_named_and_counted_alike(tmp_path):
    data = b"\n\n".join(b"document %d with some words" % i for i in range(400)) + b"\n"
    whole = gzip.compress(data, mtime=0)
    path = tmp_path / "fr.txt.gz"
    cut = whole[: len(whole) // 2]
    path.write_bytes(cut)
    got, err = _read(path, "oscar2019")
    assert err is not None and err.reason == "input:truncated_file"
    assert err.detail.startswith(f"{path}: ")
    assert f"at compressed byte {len(cut):,};" in err.detail
    n, error = count_records(str(path), "oscar2019")
    assert (n, error) == (len(got), str(err))


# ---- OSCAR 21.09: a text file and its metadata file ---------------------------------------------


def _headers(i: int) -> dict:
    """WARC headers as OSCAR 21.09 metadata carries them."""
    return {
        "warc-refers-to": f"<urn:uuid:ref-{i}>",
        "warc-date": f"2021-02-{i % 28 + 1:02d}T10:21:05Z",
        "content-type": "text/plain",
        "warc-record-id": f"<urn:uuid:rec-{i}>",
        "warc-type": "conversion",
        "warc-target-uri": f"https://example.org/{i}",
        "warc-identified-content-language": "fra",
    }


def _meta(offset, nb_sentences, headers=None, **extra) -> bytes:
    rec = {"headers": headers if headers is not None else _headers(offset), **extra}
    rec.update(offset=offset, nb_sentences=nb_sentences)
    return dumps(rec)


def _doc2109(i: int, text: str, offset: int, n: int) -> tuple:
    """The document a `_meta(offset, n)` record gives (with `_headers(offset)`)."""
    h = _headers(offset)
    fields = {
        "warc_record_id": h["warc-record-id"],
        "warc_date": h["warc-date"],
        "offset": offset,
        "nb_sentences": n,
    }
    return _doc(i, text, h["warc-target-uri"], fields)


def _pair(folder: Path, text: bytes, meta: bytes, level: int = 9) -> Path:
    """A text file and its metadata file as OSCAR 21.09 names and packs them: fr_part_3.txt.gz
    and fr_meta_part_3.jsonl.gz, gzip."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fr_part_3.txt.gz").write_bytes(gzip.compress(text, level, mtime=0))
    (folder / "fr_meta_part_3.jsonl.gz").write_bytes(gzip.compress(meta, mtime=0))
    return folder / "fr_part_3.txt.gz"


def _plain_2109(text: bytes, meta: bytes, cap: int, meta_cap: int, path: Path):
    """(records, the error's (reason, detail) or None) of an OSCAR 21.09 pair, read with
    bytes.split and json.loads: each metadata line that is not blank is a record naming its
    text, `nb_sentences` lines of the text file from line `offset` on (a `\r` is text there)."""
    lines = _lines(text)
    meta_path = str(path).replace("_part_3.txt.gz", "_meta_part_3.jsonl.gz")
    out: list[tuple] = []
    used = 0  # text lines taken by documents so far
    index = -1
    for number, line in enumerate(_lines(meta), 1):
        over = len(line) > meta_cap
        line = line.rstrip(b"\r")
        if not over and not line.strip():
            continue
        index += 1
        if over:
            out.append(_bad(index, "input:too_large", None, number))
            continue
        reason, rec = None, None
        try:
            rec = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            reason = "input:invalid_utf8"
        except RecursionError:
            reason = "input:too_deep"
        except ValueError:
            reason = "input:invalid_json"
        if reason is None and not isinstance(rec, dict):
            reason = "input:invalid_json"
        if reason is None:
            offset, n = rec.get("offset"), rec.get("nb_sentences")
            headers = rec.get("headers", None)
            headers = {} if headers is None else headers
            if not all(type(v) is int and v >= 0 for v in (offset, n)):
                reason = "input:missing_text"
            elif not isinstance(headers, dict):
                reason = "input:invalid_record"
            elif not isinstance(headers.get("warc-target-uri"), str | None):
                reason = "input:invalid_record"
            elif offset < used:
                reason = "input:invalid_record"  # overlaps the document before
        if reason is not None:
            out.append(_bad(index, reason, line, number))
            continue
        if offset > len(lines):
            detail = (
                f"{path}: text ends at line {len(lines)}, before offset {offset} of "
                f"{meta_path} line {number}"
            )
            return out, ("input:truncated_file", detail)
        if offset + n > len(lines):
            detail = f"{path}: text ends inside document {index} (line {len(lines)})"
            return out, ("input:truncated_file", detail)
        body = b"\n".join(lines[offset : offset + n])
        used = offset + n
        if len(body) > cap:
            out.append(_bad(index, "input:too_large", line, number))
            continue
        try:
            doc = body.decode("utf-8")
        except UnicodeDecodeError:
            out.append(_bad(index, "input:invalid_utf8", line, number))
            continue
        url = headers.get("warc-target-uri")
        if not doc or doc.isspace():
            out.append(_bad(index, "input:empty", line, number))
            continue
        try:
            if url is not None:
                url.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a JSON escape
            out.append(_bad(index, "input:invalid_utf8", line, number))
            continue
        fields = {
            "warc_record_id": headers.get("warc-record-id"),
            "warc_date": headers.get("warc-date"),
            "offset": offset,
            "nb_sentences": n,
        }
        out.append(_doc(index, doc, url, fields))
    return out, None


# text lines: words, non-ASCII, white space of both kinds, not UTF-8, a `\r`, and lengths at the
# cap and one byte either side (a document of one line of MAX bytes is just small enough)
_TEXT_LINES = [
    b"Une ligne de texte.",
    b"deux",
    b"",
    b"  ",
    b"\x1c",
    b"\xe3\x80\x80",
    b"caf\xc3\xa9",
    b"not \xff utf-8",
    b"carriage\rreturn\r",
    b"m" * (MAX - 1),
    b"n" * MAX,
    b"o" * (MAX + 1),
    b"p" * 19,
    b"q" * 20,
]
_INVALID = "input:invalid_record"
# metadata lines that are no usable record, each with its reason (None: a blank line)
_ODD_META = [
    (b"", None),
    (b"   ", None),
    (b"\t\r", None),
    (b'{"offset": broken', "input:invalid_json"),
    (b"[1, 2]", "input:invalid_json"),
    (b'"a string"', "input:invalid_json"),
    (b'{"headers": {}, "offset": 0, "nb_sentences": "3"}', "input:missing_text"),
    (b'{"headers": {}, "offset": true, "nb_sentences": 1}', "input:missing_text"),
    (b'{"headers": {}, "nb_sentences": 1}', "input:missing_text"),
    (b'{"headers": {}, "offset": -1, "nb_sentences": 1}', "input:missing_text"),
    (b'{"headers": {}, "offset": 0, "nb_sentences": -1}', "input:missing_text"),
    # (offset 1 and no lines: where the text's first line has been read, an empty text)
    (b'{"headers": "a string", "offset": 1, "nb_sentences": 0}', "input:invalid_record"),
    (b'{"headers": {"warc-target-uri": 5}, "offset": 1, "nb_sentences": 0}', _INVALID),
    (b'{"headers": {"warc-target-uri": ["u"]}, "offset": 1, "nb_sentences": 0}', _INVALID),
    (b'{"headers": {}, "offset": 0, "nb_sentences": 1, "x": "\xff"}', "input:invalid_utf8"),
    (b"[" * 2040 + b"]" * 2040, "input:too_deep"),  # under the cap, deeper than json goes
    (b'{"pad": "' + b"p" * 5000 + b'"}', "input:too_large"),
    (b" " * 5000, "input:too_large"),  # blank, but over the metadata cap
]
META_CAP = 4096  # the metadata lines' cap in these tests: compression.READ_BUFFER, set below


@pytest.fixture
def small_buffer(monkeypatch):
    """Reads in 4 KiB pieces: the metadata cap (max(max_doc_bytes, READ_BUFFER)) is 4096 bytes,
    and lines longer than a piece cross piece boundaries."""
    monkeypatch.setattr(compression, "READ_BUFFER", META_CAP)


def _random_pair(rng: random.Random) -> tuple[bytes, bytes]:
    """A random OSCAR 21.09 pair: documents of 0 to 4 text lines with unused lines between them
    (some longer than a read piece), odd metadata lines between the records, records that
    overlap the one before, and now and then a last record asking for text past the end."""
    text: list[bytes] = []
    meta: list[bytes] = []
    for _ in range(rng.randrange(0, 9)):
        for _ in range(rng.choice([0, 0, 1, 2])):  # lines no record names
            text.append(rng.choice([b"", b"gap", b"g" * (META_CAP + 100)]))
        n = rng.randrange(0, 5)
        offset = len(text)
        text += [rng.choice(_TEXT_LINES) for _ in range(n)]
        kind = rng.random()
        if kind < 0.1:
            meta.append(_meta(offset, n, headers={}))
        elif kind < 0.15:
            meta.append(dumps({"offset": offset, "nb_sentences": n}))  # no headers at all
        elif kind < 0.2:
            meta.append(_meta(offset, n, headers={"warc-target-uri": "https://e/\ud800"}))
        elif kind < 0.25:
            h = {k: v for k, v in _headers(offset).items() if k != "warc-target-uri"}
            meta.append(_meta(offset, n, headers=h))
        else:
            meta.append(_meta(offset, n))
        while rng.random() < 0.3:
            meta.append(rng.choice(_ODD_META)[0])
        if rng.random() < 0.1:  # one that goes back into the text already read
            meta.append(_meta(max(0, offset - 1), 1))
    if rng.random() < 0.15:  # past the end of the text
        meta.append(_meta(len(text) + rng.choice([0, 1, 3]), rng.choice([0, 1, 2])))
    end = b"\n" if rng.random() < 0.8 else b""
    return b"\n".join(text) + end if text else b"", b"\n".join(meta) + end


def test_oscar2109_against_a_plain_reading(tmp_path, small_buffer):
    rng = random.Random(2109)
    for case in range(150):
        text, meta = _random_pair(rng)
        path = _pair(tmp_path / str(case), text, meta)
        expected, error = _plain_2109(text, meta, MAX, META_CAP, path)
        got, err = _read(path, "oscar2109", max_doc_bytes=MAX)
        assert got == expected, case
        assert (err.reason, err.detail) == error if err else error is None, case
        n = len([x for x in _lines(meta) if len(x) > META_CAP or x.strip()])
        assert count_records(str(path), "oscar2109", MAX) == (n, None), case


def test_oscar2109_every_set_aside_record_keeps_its_bytes_and_metadata_line(tmp_path, small_buffer):
    text = b"\n".join([b"one", b"", b"two \xff", b"", b"\x1c", b"", b"y" * MAX, b"z", b"w"]) + b"\n"
    odd = [m for m, reason in _ODD_META if reason is not None]
    meta = [
        b"",  # line 1
        _meta(0, 1),  # line 2: document 0
        b"  \r",
        *odd,  # lines 4-18: documents 1-15
        _meta(2, 1),  # invalid_utf8 text: document 16, line 19
        b"\t",
        _meta(4, 1),  # "\x1c": an empty text, document 17, line 21
        _meta(5, 0),  # no lines at all: an empty text too, document 18, line 22
        _meta(6, 2),  # MAX + 2 bytes: too large, document 19, line 23
        _meta(7, 1),  # overlaps the one before: document 20, line 24
        _meta(8, 1, headers={"warc-target-uri": "https://e/\ud800"}),  # document 21, line 25
    ]
    path = _pair(tmp_path, text, b"\n".join(meta) + b"\n")
    got, err = _read(path, "oscar2109", max_doc_bytes=MAX)
    assert err is None
    assert got[0] == _doc2109(0, "one", 0, 1)
    # documents 1-15 on lines 4-18; a metadata line over the cap keeps no bytes
    odd_records = [
        _bad(i, reason, None if reason == "input:too_large" else m, i + 3)
        for i, (m, reason) in enumerate([x for x in _ODD_META if x[1]], 1)
    ]
    assert got[1:16] == odd_records
    assert got[16:] == [
        _bad(16, "input:invalid_utf8", meta[18], 19),
        _bad(17, "input:empty", meta[20], 21),
        _bad(18, "input:empty", meta[21], 22),
        _bad(19, "input:too_large", meta[22], 23),
        _bad(20, "input:invalid_record", meta[23], 24),
        _bad(21, "input:invalid_utf8", meta[24], 25),
    ]
    assert count_records(str(path), "oscar2109", MAX) == (22, None)


def test_oscar2109_metadata_fields(tmp_path):
    text = b"\n".join([b"a", b"b", b"c", b"d"]) + b"\n"
    no_url = {"warc-record-id": "<urn:uuid:x>", "warc-date": "2021-03-04T05:06:07Z"}
    meta = [
        _meta(0, 1),  # every header
        dumps({"offset": 1, "nb_sentences": 1}),  # no headers: a document without url
        dumps({"headers": None, "offset": 2, "nb_sentences": 1}),
        _meta(3, 1, headers=no_url),
    ]
    path = _pair(tmp_path, text, b"\n".join(meta))
    got, err = _read(path, "oscar2109")
    assert err is None
    h = _headers(0)
    none = {"warc_record_id": None, "warc_date": None}
    assert got == [
        _doc(
            0,
            "a",
            h["warc-target-uri"],
            {
                "warc_record_id": "<urn:uuid:rec-0>",
                "warc_date": "2021-02-01T10:21:05Z",
                "offset": 0,
                "nb_sentences": 1,
            },
        ),
        _doc(1, "b", None, {**none, "offset": 1, "nb_sentences": 1}),
        _doc(2, "c", None, {**none, "offset": 2, "nb_sentences": 1}),
        _doc(
            3,
            "d",
            None,
            {
                "warc_record_id": "<urn:uuid:x>",
                "warc_date": "2021-03-04T05:06:07Z",
                "offset": 3,
                "nb_sentences": 1,
            },
        ),
    ]


@pytest.mark.parametrize("last_newline", [b"\n", b""])
def test_oscar2109_documents_at_the_size_cap(tmp_path, last_newline):
    """One-line and multi-line documents of MAX - 1, MAX and MAX + 1 bytes (joined by `\n`),
    each followed by a one-line document, so a line read one too many shows."""
    docs = [
        [b"a" * (MAX - 1)],
        [b"b" * MAX],
        [b"c" * (MAX + 1)],
        [b"d" * 19, b"e" * 19],  # 39 bytes
        [b"f" * 19, b"g" * 20],  # 40
        [b"h" * 20, b"i" * 20],  # 41
        [b"j" * 12, b"k" * 12, b"l" * 14],  # 40
        [b"m" * 12, b"n" * 12, b"o" * 15],  # 41
        [b"p" * 9] * 4,  # 39
        [b"q" * MAX, b""],  # 41: an empty line still counts its newline
    ]
    text, meta = [], []
    for d in docs:
        for part in (d, [b"next"]):
            meta.append(_meta(len(text), len(part)))
            text += part
    path = _pair(tmp_path, b"\n".join(text) + last_newline, b"\n".join(meta))
    got, err = _read(path, "oscar2109", max_doc_bytes=MAX)
    assert err is None
    expected, offset = [], 0
    for d in docs:
        body = b"\n".join(d)
        i = len(expected)
        if len(body) > MAX:
            expected.append(_bad(i, "input:too_large", meta[i], i + 1))
        else:
            expected.append(_doc2109(i, body.decode(), offset, len(d)))
        expected.append(_doc2109(i + 1, "next", offset + len(d), 1))
        offset += len(d) + 1
    assert got == expected
    assert [g[2] for g in got if g[1] == "Bad"] == ["input:too_large"] * 4


def test_oscar2109_slices(tmp_path, small_buffer):
    text = b"\n".join([b"a", b"y" * (MAX + 1), b"\xff", b"", b"d", b"e"]) + b"\n"
    meta = [_meta(0, 1), b"", _meta(1, 1), b"{broken", _meta(2, 1), _meta(3, 1), _meta(4, 2)]
    path = _pair(tmp_path, text, b"\n".join(meta) + b"\n")
    whole, error = _plain_2109(text, b"\n".join(meta) + b"\n", MAX, META_CAP, path)
    assert error is None and [w[2] for w in whole] == [
        "a",
        "input:too_large",
        "input:invalid_json",
        "input:invalid_utf8",
        "input:empty",
        "d\ne",
    ]
    for start in range(8):
        for stop in [None, *range(8)]:
            got, err = _read(path, "oscar2109", start=start, stop=stop, max_doc_bytes=MAX)
            assert err is None and got == whole[start:stop], (start, stop)


def test_oscar2109_text_that_ends_too_soon(tmp_path):
    text = b"\n".join([b"one", b"", b"two", b"three"]) + b"\n"  # 4 lines
    head = [b"", _meta(0, 1), b"  "]  # document 0 on metadata line 2
    meta_path = tmp_path / "fr_meta_part_3.jsonl.gz"
    cases = [
        # the record's first line is past the end: where the text ends, which record asked
        (_meta(6, 1), "text ends at line 4, before offset 6 of {meta} line 4"),
        (_meta(5, 0), "text ends at line 4, before offset 5 of {meta} line 4"),
        # it starts inside the text and goes past its end
        (_meta(2, 3), "text ends inside document 1 (line 4)"),
        (_meta(4, 1), "text ends inside document 1 (line 4)"),
    ]
    for last, detail in cases:
        path = _pair(tmp_path, text, b"\n".join([*head, last]) + b"\n")
        got, err = _read(path, "oscar2109")
        assert [g[2] for g in got] == ["one"]
        assert err.reason == "input:truncated_file"
        assert err.detail == f"{path}: " + detail.format(meta=meta_path)
        # skipped records are read too: their text is needed to find the next one
        got, err = _read(path, "oscar2109", start=1)
        assert got == [] and err.reason == "input:truncated_file"
        got, err = _read(path, "oscar2109", stop=1)  # the record is never reached
        assert [g[2] for g in got] == ["one"] and err is None
    path = _pair(tmp_path, text, b"\n".join([*head, _meta(4, 0)]) + b"\n")  # at the end: empty
    got, err = _read(path, "oscar2109")
    assert err is None
    assert got == [_doc2109(0, "one", 0, 1), _bad(1, "input:empty", _meta(4, 0), 4)]


def test_oscar2109_damage_names_the_damaged_file(tmp_path):
    """Damage in the text file names the text file, damage in the metadata file the metadata
    file: the compressed offset in the message is that file's. The count says the same."""
    docs = [b"document %d, its only line" % i for i in range(300)]
    text = b"\n".join(docs) + b"\n"
    meta = b"\n".join(_meta(i, 1, headers={"n": i * i}) for i in range(300)) + b"\n"
    path = _pair(tmp_path, text, meta)
    meta_path = tmp_path / "fr_meta_part_3.jsonl.gz"
    whole_text, whole_meta = path.read_bytes(), meta_path.read_bytes()

    cut = whole_text[: len(whole_text) // 2]
    path.write_bytes(cut)
    got, err = _read(path, "oscar2109")
    assert 0 < len(got) < 300 and [g[2] for g in got] == [d.decode() for d in docs[: len(got)]]
    assert err.reason == "input:truncated_file"
    assert err.detail.startswith(f"{path}: compressed stream ends before its end marker")
    assert f"at compressed byte {len(cut):,};" in err.detail
    assert count_records(str(path), "oscar2109") == (300, None)  # the metadata is whole

    # after the last document: the text is read to its end, so the damage still shows
    path.write_bytes(gzip.compress(text + b"unused line\n" * 5000, mtime=0)[:-30])
    got, err = _read(path, "oscar2109")
    assert len(got) == 300 and err.reason == "input:truncated_file"
    assert err.detail.startswith(f"{path}: ")

    path.write_bytes(whole_text)
    cut = whole_meta[: len(whole_meta) // 2]
    meta_path.write_bytes(cut)
    got, err = _read(path, "oscar2109")
    assert 0 < len(got) < 300 and [g[2] for g in got] == [d.decode() for d in docs[: len(got)]]
    assert err.reason == "input:truncated_file"
    assert err.detail.startswith(f"{meta_path}: compressed stream ends before its end marker")
    assert f"at compressed byte {len(cut):,};" in err.detail
    assert count_records(str(path), "oscar2109") == (len(got), str(err))


def test_oscar2109_file_names(tmp_path):
    assert oscar2109_meta_path("/d/fr_part_3.txt.gz") == "/d/fr_meta_part_3.jsonl.gz"
    assert oscar2109_meta_path("/d/x_part_1/nn.txt.gz") == "/d/x_part_1/nn_meta.jsonl.gz"
    assert oscar2109_meta_path("/a/_part_1.txt.gz") == "/a/_part_1_meta.jsonl.gz"
    assert oscar2109_meta_path("s3://b/oscar/fr_part_12.txt.gz") == (
        "s3://b/oscar/fr_meta_part_12.jsonl.gz"
    )
    assert oscar2109_meta_path("fr_part_2.txt.gz") == "fr_meta_part_2.jsonl.gz"
    for name in ("/d/.txt.gz", "/d/fr.jsonl.gz", "fr.txt", "/d/fr.txt.gz/"):
        with pytest.raises(FileError) as e:
            oscar2109_meta_path(name)
        assert (e.value.reason, e.value.detail) == (
            "input:missing_metadata",
            f"{name}: not an OSCAR 21.09 text file name",
        )
        assert count_oscar2109(name, MAX) == (0, str(e.value))
        assert count_records(name, "oscar2109") == (0, str(e.value))
        got, err = _read(name, "oscar2109")
        assert got == [] and str(err) == str(e.value)

    path = tmp_path / "fr_part_1.txt.gz"
    path.write_bytes(gzip.compress(b"text\n"))
    got, err = _read(path, "oscar2109")
    assert got == [] and (err.reason, err.detail) == (
        "input:missing_metadata",
        f"{path}: no metadata file {tmp_path / 'fr_meta_part_1.jsonl.gz'}",
    )
    # the scan stage's count gives the reader's reason, not input:unreadable_file
    assert count_oscar2109(str(path), MAX) == (0, str(err))
    assert count_records(str(path), "oscar2109") == (0, str(err))


# ---- the memory bound ---------------------------------------------------------------------------


class _Lines(io.BytesIO):
    """A text file that records the size asked of each readline, and fails a reader that keeps
    asking at the end of the file (instead of hanging)."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.sizes: list = []
        self.at_end = 0

    def readline(self, size=-1):
        self.sizes.append(size)
        line = super().readline(size)
        if not line:
            self.at_end += 1
            assert self.at_end < 20, "readline asked again and again at the end of the file"
        return line


def test_text_lines_are_cut_at_the_cap_and_read_in_bounded_pieces(monkeypatch):
    """`_text_line`'s contract: each line without its `\n` (a `\r` is text), a line over the
    cap consumed whole and returned cut to cap + 1 bytes, None at the end, and never a read of
    more than max(cap + 1, READ_BUFFER) bytes."""
    monkeypatch.setattr(compression, "READ_BUFFER", 8)
    rng = random.Random(7)
    for case in range(300):
        cap = rng.randrange(0, 13)
        lines = [
            rng.choice([b"", b"\r", b"a\rb"]) + b"x" * rng.randrange(0, 40)
            for _ in range(rng.randrange(0, 6))
        ]
        data = b"\n".join(lines) + (b"\n" if rng.random() < 0.6 else b"")
        stream = _Lines(data)
        got = []
        while (line := _text_line(stream, cap)) is not None:
            got.append(line)
            assert len(got) <= 10, (case, data)
        assert got == [x if len(x) <= cap else x[: cap + 1] for x in _lines(data)], (case, data)
        limit = max(cap + 1, 8)
        assert all(type(s) is int and 0 < s <= limit for s in stream.sizes), (case, stream.sizes)


def test_oscar2109_memory_stays_at_the_cap(tmp_path, monkeypatch):
    """Lines of megabytes, in a document or between documents, a document of many short lines
    over the cap, and megabytes of text after the last document are read in pieces, never
    held whole. (Random letters: a piece of compressed input then inflates to about a piece.)"""
    monkeypatch.setattr(compression, "READ_BUFFER", 16 << 10)
    rng = random.Random(5)

    def letters(n: int) -> bytes:
        return base64.b64encode(rng.randbytes(n * 3 // 4))

    big = 3 << 20
    text = [b"first", letters(big), b"second", letters(big), b"third"]
    text += [letters(480) for _ in range(big // 481)]  # many lines: 3 MB over the cap
    text += [b"last"]
    offsets = [(0, 1), (2, 1), (3, 1), (4, 1), (5, len(text) - 6), (len(text) - 1, 1)]
    tail = [letters(1000) for _ in range(big // 1001)]
    meta = b"\n".join(_meta(o, n) for o, n in offsets) + b"\n"
    path = _pair(tmp_path, b"\n".join(text + tail) + b"\n", meta, level=1)
    tracemalloc.start()
    try:
        got, err = _read(path, "oscar2109", max_doc_bytes=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err is None
    assert [g[2] for g in got] == [
        "first",
        "second",
        "input:too_large",
        "third",
        "input:too_large",
        "last",
    ]
    assert peak < 1 << 20, f"peak {peak:,} bytes"
