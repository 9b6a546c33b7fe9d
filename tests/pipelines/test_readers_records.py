"""The record helpers every format shares (readers/records.py): `make_doc`'s reasons and
UTF-8 sizes, `get_dotted`, `meta_json`, `decode_json`, `Bad` and `FileError`, each against a
plain reading (`str.encode`, `json`, nested indexing)."""

from __future__ import annotations

import json
import math

import pytest

from tokenmill.pipelines.readers.records import (
    Bad,
    Doc,
    FileError,
    decode_json,
    get_dotted,
    make_doc,
    meta_json,
)

# every test here takes under a second: a mutant that stops a loop from advancing fails
# instead of hanging (mutation testing, docs/TESTING.md)
pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    "text",
    [
        "plain ascii text",
        "x",
        "héllo wörld",
        "日本語のテキスト",
        "emoji 😀 and more",
        "  leading and trailing  ",
        "\u3000word\u3000",  # ideographic spaces around a word
        "a\x00b",
    ],
)
def test_a_doc_keeps_its_text_and_counts_its_utf8_bytes(text):
    doc = make_doc(text, "https://example.com/p", {"k": 1})
    assert doc == Doc(text, "https://example.com/p", {"k": 1}, len(text.encode("utf-8")))


@pytest.mark.parametrize(
    "text,reason",
    [
        (None, "input:missing_text"),
        (5, "input:missing_text"),
        (["a"], "input:missing_text"),
        (b"bytes", "input:missing_text"),
        ("", "input:empty"),
        (" ", "input:empty"),
        (" \n\t\r ", "input:empty"),
        ("\u3000\u2003\xa0", "input:empty"),  # non-ASCII white space only
        ("\ud800", "input:invalid_utf8"),  # a lone surrogate from a JSON escape
        ("text \udfff more", "input:invalid_utf8"),
        (" \ud800 ", "input:invalid_utf8"),
    ],
)
def test_a_text_that_makes_no_doc_gets_its_reason(text, reason):
    assert make_doc(text, None, {}) == reason


def test_the_url():
    assert make_doc("t", None, {}).url is None
    assert make_doc("t", 42, {}).url is None  # not a str: dropped, the doc kept
    assert make_doc("t", ["u"], {}).url is None
    assert make_doc("t", "https://例え.jp/ä", {}).url == "https://例え.jp/ä"
    assert make_doc("t", "", {}).url == ""
    assert make_doc("t", "https://x/\ud800", {}) == "input:invalid_utf8"
    assert make_doc("", "https://x/\ud800", {}) == "input:empty"  # the text is judged first
    assert make_doc(None, 5, {}) == "input:missing_text"


def test_get_dotted():
    rec = {"a": {"b": {"c": "deep"}, "x": 1}, "t": "top", "n": None, "l": [{"b": 2}]}
    assert get_dotted(rec, "t") == "top"
    assert get_dotted(rec, "a.b.c") == "deep"
    assert get_dotted(rec, "a.b") == {"c": "deep"}
    assert get_dotted(rec, "a.x") == 1
    for missing in ("missing", "a.missing", "a.b.c.d", "a.x.y", "n.y", "l.b", "t.x"):
        assert get_dotted(rec, missing) is None, missing


@pytest.mark.parametrize(
    "meta",
    [
        {},
        {"timestamp": "2019-04-25T12:57:54Z"},
        {"pile_set_name": "Pile-CC", "n": 3, "f": 1.5, "ok": True, "none": None},
        {"nested": {"list": [1, "two", {"three": 3}]}},
        {"unicode": "ünïcödé 日本 😀"},
        {"nan": math.nan, "inf": math.inf},  # json writes them (NaN, Infinity)
    ],
)
def test_meta_json_is_jsons_text(meta):
    assert meta_json(meta) == json.dumps(meta, ensure_ascii=False)


def test_meta_that_cannot_be_written_is_none():
    deep: dict = {}
    d = deep
    for _ in range(100_000):
        d["a"] = {}
        d = d["a"]
    loop: dict = {}
    loop["self"] = loop
    for meta in (deep, loop, {"s": "\ud800"}, {"k\udc00": 1}, {"b": b"bytes"}, {"o": object()}):
        assert meta_json(meta) is None


def test_decode_json():
    for text in ('{"a": [1, 2.5, "x", null, true]}', "[]", '"s"', "3", '{"u": "\\u00e9"}'):
        assert decode_json(text) == json.loads(text)
    with pytest.raises(ValueError):
        decode_json("{")
    with pytest.raises(ValueError):
        decode_json('{"a": 1} trailing')


def test_bad_is_its_reason_with_the_raw_record_and_line():
    b = Bad("input:invalid_json", b"{oops", 7)
    assert b == "input:invalid_json" and b.reason == "input:invalid_json"
    assert isinstance(b, str) and type(b.reason) is str
    assert (b.raw, b.line) == (b"{oops", 7)
    c = Bad("input:too_large")
    assert (c.raw, c.line) == (None, None)
    assert {"input:too_large": 0} | {c: 1} == {"input:too_large": 1}  # counts as its reason


def test_file_error_says_reason_and_detail():
    e = FileError("input:truncated_file", "x.json.gz: ends early")
    assert str(e) == "input:truncated_file: x.json.gz: ends early"
    assert (e.reason, e.detail) == ("input:truncated_file", "x.json.gz: ends early")
    assert isinstance(e, Exception)
