"""The JSON lines formats (readers/jsonl.py) record by record: every set-aside record carries
its reason, its bytes and its 1-based line (blank lines counted), against a plain reading of
the file's lines with `json`; the OSCAR 22.01 / 23.01 field maps against the records' own
dicts; a damaged file's count names the file."""

from __future__ import annotations

import gzip
import json

import pytest
from tmfixtures import dumps, sample_docs

from tokenmill.pipelines.readers import count_records, read_records
from tokenmill.pipelines.readers.jsonl import (
    _oscar_fields,
    c4_fields,
    json_lines_reader,
    jsonl_fields,
    oscar2201_fields,
    oscar2301_fields,
)
from tokenmill.pipelines.readers.records import Doc

MAX = 300  # max_doc_bytes in these tests

# every test here takes under a second: a mutant that stops a loop from advancing fails
# instead of hanging (mutation testing, docs/TESTING.md)
pytestmark = pytest.mark.timeout(30)


def _plain(lines: list[bytes], text_key: str = "text") -> list[tuple[int, str, bytes | None, int]]:
    """(record index, reason or "doc", raw bytes, line number) per non-blank line, read with
    `json` alone (the generic `jsonl` layout: the text at `text_key`)."""
    out, index = [], -1
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        index += 1
        if len(line) > MAX:
            out.append((index, "input:too_large", None, number))
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            out.append((index, "input:invalid_utf8", line, number))
            continue
        except RecursionError:
            out.append((index, "input:too_deep", line, number))
            continue
        except ValueError:
            out.append((index, "input:invalid_json", line, number))
            continue
        if not isinstance(rec, dict):
            out.append((index, "input:invalid_json", line, number))
            continue
        text = rec.get(text_key)
        if not isinstance(text, str):
            reason = "input:missing_text"
        elif not text.strip():
            reason = "input:empty"
        else:
            reason = "doc"
        out.append((index, reason, line, number))
    return out


def _got(items) -> list[tuple[int, str, bytes | None, int | None]]:
    return [
        (i, "doc", None, None) if isinstance(d, Doc) else (i, d.reason, d.raw, d.line)
        for i, d in items
    ]


def test_every_set_aside_record_has_its_bytes_and_line(tmp_path):
    lines = [
        b"",
        dumps({"text": "first"}),
        b"   ",
        b"",
        dumps({"text": "x" * 400}),  # over MAX
        b"\xff\xfe not utf-8",
        b"",
        b"[1, 2]",  # JSON, but no object
        b"{broken",
        b"\t",
        dumps({"text": ""}),
        dumps({"text": 5}),
        b"[" * 301,  # one byte over MAX
        b'{"text": "' + b"y" * (MAX - 12) + b'"}',  # exactly MAX: read
        b"[" * 140 + b"]" * 140,  # under MAX, but no object
        dumps({"text": "last", "url": 7}),
    ]
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    want = _plain(lines)
    got = _got(read_records(str(path), "jsonl", max_doc_bytes=MAX))
    assert [g[:2] for g in got] == [w[:2] for w in want]
    for g, w in zip(got, want, strict=True):
        if g[1] != "doc":
            assert g == w
    docs = [d for _, d in read_records(str(path), "jsonl", max_doc_bytes=MAX) if isinstance(d, Doc)]
    assert [(d.text, d.url) for d in docs] == [("first", None), ("y" * 288, None), ("last", None)]
    # a slice: the same records with the same line numbers
    sliced = _got(read_records(str(path), "jsonl", start=3, stop=8, max_doc_bytes=MAX))
    assert sliced == [g for g in got if 3 <= g[0] < 8]
    assert count_records(str(path), "jsonl", max_doc_bytes=MAX) == (len(want), None)


def test_too_deep_records_have_their_line(tmp_path):
    deep = b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    lines = [b"", b"", deep, b"", dumps({"text": 1})]
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n".join(lines))
    got = list(read_records(str(path), "c4"))
    assert [(i, d.reason, d.raw, d.line) for i, d in got] == [
        (0, "input:too_deep", deep, 3),
        (1, "input:missing_text", lines[4], 5),
    ]


def _oscar_records() -> list[dict]:
    recs = sample_docs("oscar")[:20]
    assert all("warc_headers" in r and "metadata" in r for r in recs)
    return recs


@pytest.mark.parametrize(
    "fields,extra",
    [
        (oscar2201_fields, ("annotation",)),
        (oscar2301_fields, ("quality_warnings", "categories", "harmful_pp")),
    ],
)
def test_oscar_fields_read_the_documented_keys(fields, extra):
    """OSCAR 22.01 / 23.01: `content`, the WARC target URI, and as meta the record id, the
    date, the identification and the release's own metadata keys. The field maps are built
    when the module loads; building one again here gives the same map."""
    for f in (fields, _oscar_fields(extra)):
        for rec in _oscar_records():
            h, md = rec["warc_headers"], rec["metadata"]
            assert f(rec, "text") == (
                rec["content"],
                h.get("warc-target-uri"),
                {
                    "warc_record_id": h.get("warc-record-id"),
                    "warc_date": h.get("warc-date"),
                    "identification": md.get("identification"),
                    **{k: md.get(k) for k in extra},
                },
            )
        bare = {"content": "text only"}
        assert f(bare, "text") == (
            "text only",
            None,
            {"warc_record_id": None, "warc_date": None, "identification": None}
            | {k: None for k in extra},
        )
        rec = _oscar_records()[0]
        for odd in (
            {**rec, "warc_headers": "str"},
            {**rec, "warc_headers": [1]},
            {**rec, "metadata": 3},
            {**rec, "metadata": "str"},
            {**rec, "warc_headers": {"warc-target-uri": 5}},
            {**rec, "warc_headers": {"warc-target-uri": ["u"]}},
        ):
            assert f(odd, "text") is None
        ok = {**rec, "warc_headers": None, "metadata": None}
        assert f(ok, "text")[:2] == (rec["content"], None)


def test_c4_and_generic_urls():
    assert c4_fields({"text": "t", "url": "u", "timestamp": "ts"}, "text") == (
        "t",
        "u",
        {"timestamp": "ts"},
    )
    assert c4_fields({"text": "t"}, "text") == ("t", None, {"timestamp": None})
    assert jsonl_fields({"a": {"b": "t"}, "url": "u"}, "a.b") == ("t", "u", {})
    for url in (5, ["u"], {"u": 1}, None):
        assert jsonl_fields({"text": "t", "url": url}, "text") == ("t", None, {})


def test_a_reader_made_from_a_field_map(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n".join(dumps(r) for r in _oscar_records()[:5]) + b"\n")
    read = json_lines_reader(oscar2301_fields)
    got = list(read(str(path), "text", 1, 4, 10_000_000))
    assert [i for i, _ in got] == [1, 2, 3]
    assert [d.text for _, d in got] == [r["content"] for r in _oscar_records()[1:4]]


def test_a_damaged_files_count_names_the_file(tmp_path):
    data = gzip.compress(b"".join(dumps(r) + b"\n" for r in sample_docs("c4")[:100]), mtime=0)
    path = tmp_path / "x.json.gz"
    cut = data[: len(data) // 2]
    path.write_bytes(cut)
    n, error = count_records(str(path), "c4")
    whole = gzip.decompress(data).split(b"\n")
    assert n < len(whole) - 1
    assert error == (
        f"input:truncated_file: {path}: compressed stream ends before its end marker "
        f"(truncated) at compressed byte {len(cut):,}; every record before it was read, the "
        "rest of the file is lost"
    )
