"""Damaged inputs, in every format and codec: the readers yield exactly the records an
independent streaming decoder gets from the same bytes, then a FileError naming the compressed
offset; odd records and unreadable files are counted, never fatal.

The oracle is the codec's own streaming decompressor (zlib, zstandard, bz2, lzma) fed one byte
at a time, so it gives everything decodable before the damage, then `json.loads` per complete
line; for Parquet it is pyarrow reading row group by row group.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from tmfixtures import dumps, sample_docs

from tokenmill.pipelines import readers
from tokenmill.pipelines.readers import Bad, Doc, FileError, count_records, read_records

_ERRORS = (zlib.error, zstandard.ZstdError, OSError, lzma.LZMAError, EOFError)


def _decoder(kind: str):
    if kind == "gz":
        return zlib.decompressobj(wbits=31)
    if kind == "zst":
        return zstandard.ZstdDecompressor().decompressobj()
    return bz2.BZ2Decompressor() if kind == "bz2" else lzma.LZMADecompressor()


def stream_decode(data: bytes, kind: str) -> tuple[bytes, bool]:
    """(output, damaged): the codec's streaming decoder fed one byte at a time, a new one after
    each member's end (members may follow each other, as in concatenated gzip files)."""
    out, obj = [], _decoder(kind)
    for i in range(len(data)):
        if obj.eof:
            obj = _decoder(kind)
        try:
            out.append(obj.decompress(data[i : i + 1]))
        except _ERRORS:
            return b"".join(out), True
    return b"".join(out), not obj.eof


def complete_lines(data: bytes, damaged: bool) -> list[bytes]:
    """The lines a reader may use: on damage, only those whose newline was decoded."""
    lines = data.split(b"\n")
    if damaged or lines[-1] == b"":
        lines = lines[:-1]
    return [x.rstrip(b"\r") for x in lines]


def expected_jsonl(data: bytes, damaged: bool, key) -> list[str]:
    """Per non-blank complete line: its text, or "bad" where it is no JSON object with a
    string text."""
    out = []
    for line in complete_lines(data, damaged):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
            text = key(rec)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
            out.append("bad")
            continue
        out.append(text if isinstance(text, str) and text.strip() else "bad")
    return out


def compress(raw: bytes, kind: str) -> bytes:
    if kind == "gz":
        return gzip.compress(raw, compresslevel=6, mtime=0)
    if kind == "zst":
        # small blocks' worth of frames: several frames, so damage can fall in a later one
        c = zstandard.ZstdCompressor(level=3)
        third = len(raw) // 3
        return b"".join(c.compress(raw[i : i + third]) for i in range(0, len(raw), third))
    return bz2.compress(raw, 1) if kind == "bz2" else lzma.compress(raw)


def read_all(path: str, fmt: str, **kw) -> tuple[list, FileError | None]:
    got = []
    try:
        for item in read_records(path, fmt, **kw):
            got.append(item)
    except FileError as e:
        return got, e
    return got, None


def as_strings(got) -> list[str]:
    return [d.text if isinstance(d, Doc) else "bad" for _, d in got]


def damaged_versions(data: bytes) -> list[tuple[str, bytes]]:
    """Cuts at several points, and bits flipped in the middle of the stream."""
    out = [(f"cut {f}", data[: int(len(data) * f)]) for f in (0.0, 0.1, 0.37, 0.6, 0.93)]
    out.append(("cut last byte", data[:-1]))
    for f in (0.3, 0.55, 0.8):
        flipped = bytearray(data)
        at = int(len(data) * f)
        flipped[at] ^= 0x5A
        flipped[at + 7] ^= 0xFF
        out.append((f"flip {f}", bytes(flipped)))
    return out


FORMATS = {
    # format: (file name, codec, records, the text of a record)
    "c4": ("c4-train.00000-of-01024.json.gz", "gz", "c4", lambda r: r["text"]),
    "pile": ("00.jsonl.zst", "zst", "pile", lambda r: r["text"]),
    "oscar2301": ("fr_meta_part_1.jsonl.zst", "zst", "oscar", lambda r: r["content"]),
    "oscar2201": ("fr_meta_part_1.jsonl.gz", "gz", "oscar", lambda r: r["content"]),
    "jsonl-bz2": ("x.jsonl.bz2", "bz2", "c4", lambda r: r["text"]),
    "jsonl-xz": ("x.jsonl.xz", "xz", "pile", lambda r: r["text"]),
}


@pytest.mark.parametrize("name", list(FORMATS))
def test_damaged_json_lines_yield_exactly_what_a_streaming_decoder_gets(tmp_path, name):
    file_name, kind, sample, key = FORMATS[name]
    fmt = name.split("-")[0]
    recs = sample_docs(sample)[:400]
    raw = b"".join(dumps(r) + b"\n" for r in recs)
    whole = compress(raw, kind)
    path = tmp_path / file_name
    seen_flip_error = False
    for label, data in damaged_versions(whole):
        path.write_bytes(data)
        out, damaged = stream_decode(data, kind)
        expected = expected_jsonl(out, damaged, key)
        got, err = read_all(str(path), fmt)
        assert as_strings(got) == expected, label
        assert [i for i, _ in got] == list(range(len(expected))), label
        assert (err is not None) == damaged, label
        assert count_records(str(path), fmt)[0] == len(expected), label
        if err is not None:
            assert err.reason in ("input:truncated_file", "input:corrupt_file"), label
            assert str(path) in err.detail and "at compressed byte" in err.detail, label
            if label.startswith("cut") and err.reason == "input:truncated_file":
                assert f"at compressed byte {len(data):,}" in err.detail, label
            seen_flip_error |= label.startswith("flip")
    assert seen_flip_error  # a flipped bit was found, not only cuts


def test_corrupt_data_is_found_at_its_exact_offset(tmp_path, monkeypatch):
    """The offset in the error is the byte whose decoding failed: the decoder fed every byte
    before it fails on none of them."""
    monkeypatch.setattr(readers, "READ_BUFFER", 4096)  # damage well inside a later chunk
    raw = b"".join(dumps(r) + b"\n" for r in sample_docs("c4")[:300])
    for kind in ("gz", "zst", "bz2", "xz"):
        data = bytearray(compress(raw, kind))
        data[len(data) // 2] ^= 0xFF
        path = tmp_path / f"x.jsonl.{kind}"
        path.write_bytes(bytes(data))
        _, err = read_all(str(path), "jsonl")
        out, damaged = stream_decode(bytes(data), kind)
        assert damaged and err is not None, kind
        offset = int(err.detail.split("at compressed byte ")[1].split(";")[0].replace(",", ""))
        before, damaged_before = stream_decode(bytes(data[:offset]), kind)
        assert not (damaged_before and before != out), kind
        _, fails_at = stream_decode(bytes(data[: offset + 1]), kind)
        assert fails_at, kind


def test_oscar2019_damaged(tmp_path):
    docs = [r["content"] for r in sample_docs("oscar")[:200]]
    raw = ("\n\n".join(docs) + "\n").encode()
    whole = compress(raw, "gz")
    path = tmp_path / "fr.txt.gz"
    for label, data in damaged_versions(whole):
        path.write_bytes(data)
        out, damaged = stream_decode(data, "gz")
        blocks, current = [], []
        for line in complete_lines(out, damaged):
            if line.strip():
                current.append(line)
            elif current:
                blocks.append(b"\n".join(current))
                current = []
        if current and not damaged:
            blocks.append(b"\n".join(current))
        expected = [b.decode("utf-8", "replace") for b in blocks]
        got, err = read_all(str(path), "oscar2019")
        texts = [d.text if isinstance(d, Doc) else expected[i] for i, d in got]
        assert texts == expected, label
        assert (err is not None) == damaged, label
        assert count_records(str(path), "oscar2019")[0] == len(expected), label


def _oscar2109_files(folder: Path, docs: list[str]) -> tuple[Path, Path]:
    body, metas = [], []
    for i, d in enumerate(docs):
        lines = d.split("\n")
        metas.append(
            {
                "headers": {"warc-target-uri": f"https://e/{i}"},
                "offset": len(body),
                "nb_sentences": len(lines),
            }
        )
        body += lines + [""]
    text = folder / "fr_part_1.txt.gz"
    meta = folder / "fr_meta_part_1.jsonl.gz"
    text.write_bytes(compress("\n".join(body).encode() + b"\n", "gz"))
    meta.write_bytes(compress(b"".join(dumps(m) + b"\n" for m in metas), "gz"))
    return text, meta


def test_oscar2109_damaged_text_or_metadata(tmp_path):
    docs = [r["content"] for r in sample_docs("oscar")[:150]]
    text, meta = _oscar2109_files(tmp_path, docs)
    whole_text, whole_meta = text.read_bytes(), meta.read_bytes()
    metas = [json.loads(x) for x in gzip.decompress(whole_meta).splitlines()]
    for label, data in damaged_versions(whole_text):
        text.write_bytes(data)
        out, damaged = stream_decode(data, "gz")
        lines = out.split(b"\n")  # (a \r is text in this format)
        lines = lines[:-1] if damaged or not lines[-1] else lines
        expected = []  # reading stops at the first document whose lines are not all there
        for m in metas:
            if m["offset"] + m["nb_sentences"] > len(lines):
                break
            body = b"\n".join(lines[m["offset"] : m["offset"] + m["nb_sentences"]])
            try:
                expected.append(body.decode("utf-8") if body.strip() else "bad")
            except UnicodeDecodeError:
                expected.append("bad")
        got, err = read_all(str(text), "oscar2109")
        assert [d.text if isinstance(d, Doc) else "bad" for _, d in got] == expected, label
        assert (err is not None) == (damaged or len(expected) < len(metas)), label
    text.write_bytes(whole_text)
    for label, data in damaged_versions(whole_meta):
        if label.startswith("flip"):
            continue  # (a flipped metadata line may name any offset: cuts suffice here)
        meta.write_bytes(data)
        out, damaged = stream_decode(data, "gz")
        n = len([x for x in complete_lines(out, damaged) if x.strip()])
        got, err = read_all(str(text), "oscar2109")
        assert [d.text for _, d in got] == docs[:n], label
        assert (err is not None) == damaged, label
        assert count_records(str(text), "oscar2109")[0] == n, label


# ---- Parquet ------------------------------------------------------------------------------------


def _parquet(path: Path, texts: list[str], group: int) -> None:
    table = pa.table({"text": texts, "url": [f"https://e/{i}" for i in range(len(texts))]})
    pq.write_table(table, path, row_group_size=group, compression="zstd", use_dictionary=False)


def test_truncated_parquet_is_a_file_error_with_no_rows(tmp_path):
    texts = [r["text"] for r in sample_docs("c4")[:200]]
    path = tmp_path / "x.parquet"
    _parquet(path, texts, 50)
    whole = path.read_bytes()
    for f in (0.0, 0.3, 0.9, 0.999):
        path.write_bytes(whole[: int(len(whole) * f)])
        with pytest.raises((pa.ArrowException, OSError)):  # the oracle: pyarrow cannot open it
            pq.ParquetFile(path)
        got, err = read_all(str(path), "parquet")
        assert got == [] and err is not None and err.reason == "input:corrupt_file"
        assert str(path) in err.detail
        n, error = count_records(str(path), "parquet")
        assert n == 0 and error.startswith("input:corrupt_file")


def test_corrupt_parquet_row_group_loses_only_its_rows(tmp_path):
    texts = [r["text"] for r in sample_docs("c4")[:200]]
    path = tmp_path / "x.parquet"
    _parquet(path, texts, 50)
    md = pq.ParquetFile(path).metadata
    data = bytearray(path.read_bytes())
    at = md.row_group(1).column(0).data_page_offset  # the page header of group 1's text
    data[at : at + 24] = b"\xff" * 24
    path.write_bytes(bytes(data))
    expected = []
    pf = pq.ParquetFile(path)
    for g in range(md.num_row_groups):
        try:
            expected += pf.read_row_group(g, columns=["text"]).column(0).to_pylist()
        except Exception:  # noqa: BLE001 - the oracle only needs to know it fails
            expected += ["input:unreadable_rows"] * md.row_group(g).num_rows
    assert expected.count("input:unreadable_rows") == 50
    got, err = read_all(str(path), "parquet")
    assert [d.text if isinstance(d, Doc) else str(d) for _, d in got] == expected
    assert [i for i, _ in got] == list(range(200))
    assert err is not None and err.reason == "input:corrupt_file" and "row group 1" in err.detail
    # slices: the damaged group's rows are in the slice that holds them, and only there
    sliced = read_all(str(path), "parquet", start=20, stop=60)[0]
    assert [i for i, _ in sliced] == list(range(20, 60))
    assert [str(d) for _, d in sliced[30:]] == ["input:unreadable_rows"] * 10
    clean, err = read_all(str(path), "parquet", start=100, stop=200)
    assert err is None and [d.text for _, d in clean] == texts[100:]


# ---- files that cannot be read at all ----------------------------------------------------------


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("x.json.gz", "c4"),
        ("x.jsonl.zst", "pile"),
        ("x.jsonl.bz2", "jsonl"),
        ("x.jsonl.xz", "jsonl"),
        ("x.parquet", "parquet"),
        ("fr.txt.gz", "oscar2019"),
    ],
)
def test_a_file_that_is_not_what_its_name_says_is_a_file_error(tmp_path, name, fmt):
    path = tmp_path / name
    path.write_bytes(b"<html>this is an error page, not a compressed file</html>\n" * 20)
    got, err = read_all(str(path), fmt)
    assert got == [] and err is not None
    assert err.reason == "input:corrupt_file" and str(path) in err.detail
    n, error = count_records(str(path), fmt)
    assert n == 0 and error is not None


def test_a_vanished_file_is_a_file_error(tmp_path):
    path = tmp_path / "gone.json.gz"
    for fmt in ("c4", "parquet", "oscar2019"):
        got, err = read_all(str(path), fmt)
        assert got == [] and err is not None and err.reason == "input:unreadable_file", fmt
        assert str(path) in err.detail
        assert count_records(str(path), fmt)[1].startswith("input:unreadable_file")


# ---- odd records --------------------------------------------------------------------------------


def test_fields_of_the_wrong_type_are_invalid_records(tmp_path):
    oscar = sample_docs("oscar")[0]
    odd = {
        "oscar2301": [
            {**oscar, "warc_headers": "a string"},
            {**oscar, "metadata": ["a", "list"]},
            {**oscar, "warc_headers": {"warc-target-uri": 5}},
            {**oscar, "metadata": {"identification": {"label": "fr"}, "categories": [1]}},
        ],
        "oscar2201": [{**oscar, "warc_headers": []}, {**oscar, "metadata": 3.5}],
        "c4": [
            {"text": "fine text", "url": ["list"]},
            {"text": "fine text", "timestamp": {"a": 1}},
            {"text": "fine text", "url": "https://e/ok"},
        ],
        "pile": [{"text": "fine text", "meta": "str"}, {"text": "fine", "meta": {"k": [1]}}],
        "jsonl": [{"text": "fine text", "url": 5}, {"text": {"deep": 1}}],
    }
    expected = {
        "oscar2301": ["input:invalid_record"] * 3 + [oscar["content"]],
        "oscar2201": ["input:invalid_record"] * 2,
        "c4": ["input:invalid_record", "input:invalid_record", "fine text"],
        "pile": ["input:invalid_record", "fine"],
        "jsonl": ["fine text", "input:missing_text"],
    }
    for fmt, recs in odd.items():
        lines = [dumps(r) for r in recs]
        path = tmp_path / f"{fmt}.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        got = list(read_records(str(path), fmt))
        assert [d.text if isinstance(d, Doc) else str(d) for _, d in got] == expected[fmt], fmt
        for i, d in got:
            if isinstance(d, Bad):
                assert d.raw == lines[i] and d.line == i + 1


def test_deep_nesting_and_blank_lines_give_record_and_line_numbers(tmp_path):
    deep = b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n".join([dumps({"text": "one"}), b"", deep, b"  ", b"[1]", b"x"]) + b"\n")
    got = list(read_records(str(path), "c4"))
    assert [(i, str(d), d.line) for i, d in got[1:]] == [
        (1, "input:too_deep", 3),
        (2, "input:invalid_json", 5),
        (3, "input:invalid_json", 6),
    ]
    assert got[1][1].raw == deep


def test_oscar2109_odd_metadata(tmp_path):
    docs = ["Doc one.", "Doc two.\nLine two.", "Doc three."]
    text, meta = _oscar2109_files(tmp_path, docs)
    metas = [json.loads(x) for x in gzip.decompress(meta.read_bytes()).splitlines()]
    lines = [
        dumps(metas[0]),
        dumps({**metas[1], "headers": "not a dict"}),
        dumps({**metas[1], "offset": True}),  # a bool is no line number
        b"[" * 50_000,  # deeper than json goes
        dumps({**metas[2], "offset": 0}),  # goes back: would overlap document one
        dumps(metas[2]),
    ]
    meta.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    got = [
        d.text if isinstance(d, Doc) else str(d) for _, d in read_records(str(text), "oscar2109")
    ]
    assert got == [
        docs[0],
        "input:invalid_record",
        "input:missing_text",
        "input:too_deep",
        "input:invalid_record",
        docs[2],
    ]
