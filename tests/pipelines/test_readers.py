"""Readers: every format read as distributed; bad records counted by reason, never dropped."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import dumps, sample_docs, write_gz_lines, write_zst_lines

from tokenmill.pipelines.readers import Doc, FileError, count_records, read_records


def _texts(items):
    return [d.text for _, d in items if isinstance(d, Doc)]


def test_c4_records_come_back_with_url_and_timestamp(tmp_path):
    recs = sample_docs("c4")[:20]
    path = write_gz_lines(tmp_path / "c4-train.00000-of-01024.json.gz", [dumps(r) for r in recs])
    got = list(read_records(str(path), "c4"))
    assert [i for i, _ in got] == list(range(20))
    assert _texts(got) == [r["text"] for r in recs]
    assert got[3][1].url == recs[3]["url"]
    assert got[3][1].meta["timestamp"] == recs[3]["timestamp"]
    assert got[3][1].nbytes == len(recs[3]["text"].encode())


def test_pile_and_oscar_fields(tmp_path):
    pile = sample_docs("pile")[:5]
    p = write_zst_lines(tmp_path / "00.jsonl.zst", [dumps(r) for r in pile])
    got = list(read_records(str(p), "pile"))
    assert _texts(got) == [r["text"] for r in pile]
    assert got[0][1].meta["pile_set_name"] == pile[0]["meta"]["pile_set_name"]

    oscar = sample_docs("oscar")[:5]
    o = write_zst_lines(tmp_path / "fr_meta_part_1.jsonl.zst", [dumps(r) for r in oscar])
    got = list(read_records(str(o), "oscar2301"))
    assert _texts(got) == [r["content"] for r in oscar]
    assert got[0][1].url == oscar[0]["warc_headers"]["warc-target-uri"]
    assert got[0][1].meta["identification"] == oscar[0]["metadata"]["identification"]


def test_bad_records_get_reasons(tmp_path):
    good = sample_docs("c4")[0]
    lines = [
        dumps(good),
        b'{"text": "unterminated',
        b"[1, 2, 3]",
        b'{"url": "https://example.org"}',
        b'{"text": 42}',
        b'{"text": "  \\n  "}',
        b'{"text": "caf\xe9 latin-1 bytes"}',
        b'{"text": "lone surrogate \\ud800 here"}',
        b"",  # a blank line is no record
        dumps(good),
    ]
    path = write_gz_lines(tmp_path / "x.json.gz", lines)
    got = [r if isinstance(r, str) else "ok" for _, r in read_records(str(path), "c4")]
    assert got == [
        "ok",
        "input:invalid_json",
        "input:invalid_json",
        "input:missing_text",
        "input:missing_text",
        "input:empty",
        "input:invalid_utf8",
        "input:invalid_utf8",
        "ok",
    ]
    assert count_records(str(path), "c4") == (9, None)


def test_huge_line_is_set_aside_without_reading_it_whole(tmp_path):
    big = dumps({"text": "word " * 50_000})
    path = write_gz_lines(
        tmp_path / "x.json.gz", [dumps({"text": "small doc"}), big, dumps({"text": "after"})]
    )
    got = list(read_records(str(path), "c4", max_doc_bytes=10_000))
    assert [r if isinstance(r, str) else r.text for _, r in got] == [
        "small doc",
        "input:too_large",
        "after",
    ]


@pytest.mark.parametrize("suffix", ["json.gz", "jsonl.zst"])
def test_truncated_archive_keeps_what_was_readable_then_reports(tmp_path, suffix):
    recs = sample_docs("c4")  # ~1 MB: zstd emits whole 128 KB blocks, so half must hold some
    writer = write_gz_lines if suffix.endswith("gz") else write_zst_lines
    path = writer(tmp_path / f"x.{suffix}", [dumps(r) for r in recs])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    got = []
    with pytest.raises(FileError) as err:
        for item in read_records(str(path), "c4"):
            got.append(item)
    assert err.value.reason == "input:truncated_file"
    assert 0 < len(got) < len(recs)
    ok = _texts(got)
    assert ok == [r["text"] for r in recs[: len(ok)]]
    n, error = count_records(str(path), "c4")
    assert error is not None and n >= len(ok)


def test_slices_partition_a_file_exactly(tmp_path):
    recs = sample_docs("pile")[:47]
    path = write_zst_lines(tmp_path / "00.jsonl.zst", [dumps(r) for r in recs])
    n, _ = count_records(str(path), "pile")
    assert n == 47
    pieces = []
    for start in range(0, n, 10):
        stop = start + 10 if start + 10 < n else None
        pieces.extend(read_records(str(path), "pile", start=start, stop=stop))
    assert [i for i, _ in pieces] == list(range(47))
    assert _texts(pieces) == [r["text"] for r in recs]


def test_oscar2019_blank_line_separated_documents(tmp_path):
    docs = [
        "First paragraph of doc one.\nSecond line of doc one.",
        "Doc two, one line.",
        "Doc three.\nWith two lines.",
    ]
    path = tmp_path / "fr.txt.gz"
    with gzip.open(path, "wb") as f:
        f.write("\n\n".join(docs).encode() + b"\n")
    got = list(read_records(str(path), "oscar2019"))
    assert _texts(got) == docs
    assert count_records(str(path), "oscar2019") == (3, None)


def test_generic_jsonl_and_parquet_with_text_key(tmp_path):
    recs = [
        {"body": {"content": f"document number {i}"}, "url": f"https://e/{i}"} for i in range(5)
    ]
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    got = list(read_records(str(path), "jsonl", text_key="body.content"))
    assert _texts(got) == [r["body"]["content"] for r in recs]
    assert got[1][1].url == "https://e/1"

    pq.write_table(pa.table({"content": ["a document", None, "another one"]}), tmp_path / "x.pq")
    got = list(read_records(str(tmp_path / "x.pq"), "parquet", text_key="content"))
    assert [r if isinstance(r, str) else r.text for _, r in got] == [
        "a document",
        "input:missing_text",
        "another one",
    ]
    with pytest.raises(FileError):
        list(read_records(str(tmp_path / "x.pq"), "parquet", text_key="nope"))
