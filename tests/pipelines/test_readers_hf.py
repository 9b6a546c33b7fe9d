"""Tests of tokenmill/pipelines/readers/hf.py that its mutation run asked for (docs/TESTING.md).

Every input is written here in a form `datasets` loads offline: JSON lines, CSV, text, Parquet,
Arrow streams (what `Dataset.save_to_disk` writes), compressed or not, and a dataset folder whose
README declares configs. What the reader yields is compared, row by row and field by field,
with a plain reading of the same files (json, csv, str.splitlines, pyarrow) and the record rules
written out here; specs field by field, both ways, and every error whole (reason and detail).
Damage (a cut Arrow stream or gzip file, a damaged Parquet page, bytes that are not UTF-8) is
checked against pyarrow's or gzip's own reading of the same bytes. Where only the hub would
tell (a revision), a stand-in for `datasets.load_dataset` records the call it gets.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import lzma
import sys
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from test_readers_damage import read_all
from test_readers_parquet import view  # every field of a Doc or Bad, as tuples

from tokenmill.pipelines.readers import FileError, count_records, hf
from tokenmill.pipelines.readers.hf import HFSpec, expand_hf_spec, parse_hf_spec

# every test here takes a second or less: a mutant that stops a loop from advancing fails
# instead of hanging (mutation testing, docs/TESTING.md)
pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path_factory, require):
    """No network, and datasets' cache (its lock files) in a temporary folder."""
    datasets = require("datasets", "the hf reader format")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf-cache"))
    return datasets


# ---- the oracle ---------------------------------------------------------------------------------


def expected(i: int, text, url=None, meta=None, max_doc_bytes: int = 10_000_000) -> tuple:
    """What the reader must give for row `i`: the record rules, written out plainly."""
    if not isinstance(text, str):
        return (i, "bad", "input:missing_text", None, i + 1)
    if not text.strip():
        return (i, "bad", "input:empty", None, i + 1)
    if len(text.encode("utf-8")) > max_doc_bytes:
        return (i, "bad", "input:too_large", None, i + 1)
    url = url if isinstance(url, str) else None
    return (i, "doc", text, url, len(text.encode("utf-8")), meta or {})


def read_hf(path: str, **kw) -> tuple[list[tuple], FileError | None]:
    got, err = read_all(path, "hf", **kw)
    return view(got), err


def write_jsonl(path, rows: list[dict], compress=None):
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(compress(data) if compress else data)
    return path


def write_arrow(path, batches: list[pa.RecordBatch]):
    """An Arrow IPC stream, the format of `Dataset.save_to_disk`'s data files."""
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_stream(f, batches[0].schema) as w:
        for b in batches:
            w.write_batch(b)
    return path


def arrow_prefix(data: bytes) -> tuple[list[dict], Exception | None]:
    """The rows pyarrow reads from an Arrow stream's bytes, batch by batch (each validated,
    as datasets does), and the error that stops it."""
    rows: list[dict] = []
    try:
        for batch in pa.ipc.open_stream(pa.BufferReader(data)):
            batch.validate(full=True)
            rows += batch.to_pylist()
    except (OSError, pa.ArrowInvalid) as e:
        return rows, e
    return rows, None


# ---- rows, texts and meta -----------------------------------------------------------------------


def json_rows() -> list[dict]:
    """Rows with every kind of column: scalars and None kept as meta, lists, and objects kept
    only while their JSON is at most 4096 characters."""
    rows = []
    for i in range(8):
        rows.append(
            {
                "text": f"document {i} été",
                "url": f"https://example.com/{i}",
                "id": i,
                "score": i / 4,
                "ok": i % 2 == 0,
                "lang": "fr",
                "nothing": None,
                "tags": ["a", str(i)],
                "small": {"k": i, "v": "x"},
                # json.dumps(big) is 4096 characters for row 0, 4097 for row 1
                "big": {"k": "x" * (4087 + (i == 1))},
            }
        )
    rows[2]["text"] = None
    rows[3]["text"] = " \n\t "
    rows[4]["text"] = ""
    rows[5]["url"] = None
    return rows


def test_json_lines_rows_come_back_with_url_and_scalar_meta(tmp_path):
    rows = json_rows()
    path = write_jsonl(tmp_path / "part-0.jsonl", rows)
    plain = [json.loads(line) for line in path.read_text().splitlines()]
    meta_keys = ("id", "score", "ok", "lang", "nothing", "small", "big")
    oracle = [
        expected(
            i,
            r["text"],
            r["url"],
            {k: r[k] for k in meta_keys if k != "big" or i != 1},  # row 1's big is 4097
        )
        for i, r in enumerate(plain)
    ]
    assert len(json.dumps(plain[0]["big"])) == 4096 and len(json.dumps(plain[1]["big"])) == 4097
    got, err = read_hf(str(path))
    assert err is None and got == oracle
    assert got[2][2:] == ("input:missing_text", None, 3)
    assert got[3][2:] == ("input:empty", None, 4) and got[4][2:] == ("input:empty", None, 5)
    assert count_records(str(path), "hf") == (8, None)

    # slices keep the file's record numbers
    got, err = read_hf(str(path), start=3, stop=6)
    assert err is None and got == oracle[3:6]
    got, err = read_hf(str(path), start=6)
    assert err is None and got == oracle[6:]


def test_the_size_cap_is_on_utf8_bytes_and_keeps_a_text_of_exactly_the_cap(tmp_path):
    texts = ["é" * 50, "a" * 100, "é" * 51, "a" * 101, "b"]
    path = write_jsonl(tmp_path / "sizes.jsonl", [{"text": t} for t in texts])
    got, err = read_hf(str(path), max_doc_bytes=100)
    assert err is None and got == [expected(i, t, max_doc_bytes=100) for i, t in enumerate(texts)]
    assert [g[2] for g in got] == [
        "é" * 50,
        "a" * 100,
        "input:too_large",
        "input:too_large",
        "b",
    ]
    assert got[2][3:] == (None, 3) and got[3][3:] == (None, 4)


def test_a_nested_text_key_leaves_only_its_top_field_out_of_meta(tmp_path):
    rows = [
        {"doc": {"body": {"text": f"nested {i}"}, "lang": "en"}, "id": i, "url": f"u{i}"}
        for i in range(3)
    ]
    rows[1]["doc"]["body"]["text"] = None
    path = write_jsonl(tmp_path / "nested.jsonl", rows)
    plain = [json.loads(line) for line in path.read_text().splitlines()]
    oracle = [
        expected(i, r["doc"]["body"]["text"], r["url"], {"id": r["id"]})
        for i, r in enumerate(plain)
    ]
    got, err = read_hf(str(path), text_key="doc.body.text")
    assert err is None and got == oracle
    # a top-level text key: the nested object is meta (small enough)
    rows = [{"text": "t", "doc": {"body": {"x": 1}}}]
    path = write_jsonl(tmp_path / "flat.jsonl", rows)
    got, err = read_hf(str(path))
    assert err is None and got == [expected(0, "t", None, {"doc": {"body": {"x": 1}}})]


def test_parquet_meta_drops_lists_binary_and_objects_json_cannot_write(tmp_path):
    import datetime as dt

    when = dt.datetime(2024, 5, 1, 12, 30)
    table = pa.table(
        {
            "content": ["one", "two", "three"],
            "url": ["u1", None, "u3"],
            "n": pa.array([1, 2, 3], pa.int64()),
            "blob": [b"\x00", b"\x01", b"\x02"],
            "when": [when] * 3,
            "odd": [{"at": when}] * 3,
            "tags": [["x"], [], ["y", "z"]],
            "flag": [True, None, False],
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    plain = pq.read_table(path).to_pylist()
    oracle = [
        expected(i, r["content"], r["url"], {"n": r["n"], "flag": r["flag"]})
        for i, r in enumerate(plain)
    ]
    got, err = read_hf(str(path), text_key="content")
    assert err is None and got == oracle
    assert count_records(str(path), "hf") == (3, None)


def test_csv_and_text_files(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('text,n,f,b\n"a, b",1,1.5,true\nc,2,,false\n"   ",3,2.0,true\n')
    plain = list(csv.DictReader(path.read_text().splitlines()))
    metas = [{"n": 1, "f": 1.5, "b": True}, {"n": 2, "f": None, "b": False}, None]
    oracle = [
        expected(i, r["text"], None, m) for i, (r, m) in enumerate(zip(plain, metas, strict=True))
    ]
    got, err = read_hf(str(path))
    assert err is None and got == oracle
    assert got[2] == (2, "bad", "input:empty", None, 3)

    path = tmp_path / "t.txt"
    path.write_text("first line\n\n  third  \nlast")
    lines = path.read_text().splitlines()
    got, err = read_hf(str(path))
    assert err is None and got == [expected(i, t) for i, t in enumerate(lines)]
    assert count_records(str(path), "hf") == (4, None)


@pytest.mark.parametrize(
    "name, compress",
    [
        ("x.jsonl.gz", gzip.compress),
        ("x.JSON.BZ2", bz2.compress),
        ("x.jsonl.xz", lzma.compress),
        ("x.jsonl.zst", zstandard.ZstdCompressor().compress),
    ],
)
def test_compressed_files_are_read_by_the_builder_of_the_name_inside(tmp_path, name, compress):
    rows = [{"text": f"compressed {i}", "id": i} for i in range(5)]
    path = write_jsonl(tmp_path / name, rows, compress)
    got, err = read_hf(str(path))
    assert err is None and got == [
        expected(i, r["text"], None, {"id": i}) for i, r in enumerate(rows)
    ]
    # a file:// URL is its local path
    assert read_hf(f"file://{path}") == (got, None)


def test_arrow_files_as_save_to_disk_writes_them(tmp_path, offline):
    ds = offline.Dataset.from_dict(
        {"text": [f"saved {i}" for i in range(7)], "s": [{"x": i} for i in range(7)]}
    )
    ds.save_to_disk(str(tmp_path / "saved"), num_shards=2)
    files = sorted((tmp_path / "saved").glob("*.arrow"))
    assert len(files) == 2
    plain = []
    for f in files:
        rows, error = arrow_prefix(f.read_bytes())
        assert error is None
        plain += rows
    oracle = [expected(i, r["text"], None, {"s": r["s"]}) for i, r in enumerate(plain)]
    # each file, and the folder as a spec of the arrow builder, one spec per file
    texts = [r["text"] for r in plain]
    assert [g[2] for f in files for g in read_hf(str(f))[0]] == texts
    spec = f"datasets:arrow?data_files={tmp_path}/saved/*.arrow"
    shards = expand_hf_spec(spec)
    assert shards == [
        f"datasets:arrow?split=train&data_files={tmp_path}/saved/*.arrow&shard={k}&num_shards=2"
        for k in range(2)
    ]
    whole, err = read_hf(spec)
    assert err is None and whole == oracle
    assert [g[2] for s in shards for g in read_hf(s)[0]] == texts
    assert [count_records(s, "hf") for s in shards] == [(4, None), (3, None)]


# ---- damage -------------------------------------------------------------------------------------


def test_a_cut_arrow_stream_keeps_every_batch_before_the_cut(tmp_path):
    texts = [f"row {i} " + "w" * 30 for i in range(1000)]
    table = pa.table({"text": texts, "n": list(range(1000))})
    whole = write_arrow(tmp_path / "whole.arrow", table.to_batches(max_chunksize=100))
    data = whole.read_bytes()
    path = tmp_path / "cut.arrow"
    path.write_bytes(data[: len(data) * 55 // 100])
    rows, error = arrow_prefix(path.read_bytes())
    assert isinstance(error, OSError) and len(rows) == 500
    oracle = [expected(i, r["text"], None, {"n": r["n"]}) for i, r in enumerate(rows)]
    detail = f"{path}: {type(error).__name__}: {error}"

    got, err = read_hf(str(path))
    assert got == oracle and (err.reason, err.detail) == ("input:truncated_file", detail)
    assert count_records(str(path), "hf") == (500, f"input:truncated_file: {detail}")
    # a slice that ends before the cut reads no further; one past it meets the cut
    got, err = read_hf(str(path), start=120, stop=260)
    assert err is None and got == oracle[120:260]
    got, err = read_hf(str(path), start=450, stop=900)
    assert got == oracle[450:] and err.reason == "input:truncated_file"
    got, err = read_hf(str(path), start=700)
    assert got == [] and err.detail == detail


def test_a_batch_that_is_not_utf8_is_a_read_error_after_the_batches_before_it(tmp_path):
    good = pa.record_batch({"text": [f"t{i}" for i in range(5)]})
    offsets = pa.py_buffer(np.array([0, 2, 4], np.int32).tobytes())
    bad = pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"ok\xff\xfe")])
    path = write_arrow(tmp_path / "u.arrow", [good, good, pa.record_batch([bad], ["text"]), good])
    rows, error = arrow_prefix(path.read_bytes())
    assert isinstance(error, pa.ArrowInvalid) and len(rows) == 10
    detail = f"{path}: ArrowInvalid: {error}"
    got, err = read_hf(str(path))
    assert got == [expected(i, r["text"]) for i, r in enumerate(rows)]
    assert (err.reason, err.detail) == ("input:read_error", detail)
    assert count_records(str(path), "hf") == (10, f"input:read_error: {detail}")


def test_a_damaged_parquet_page_ends_the_rows_and_the_count_is_the_footers(tmp_path):
    texts = [f"line {i} " + "y" * 40 for i in range(3000)]
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"text": texts}), path, row_group_size=500, use_dictionary=False)
    pf = pq.ParquetFile(path)
    at = pf.metadata.row_group(3).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[at + 20 : at + 200] = b"\xff" * 180
    path.write_bytes(bytes(data))
    pf = pq.ParquetFile(path)
    for g in range(3):
        pf.read_row_group(g)
    with pytest.raises(OSError) as e:
        pf.read_row_group(3)

    got, err = read_hf(str(path))
    # datasets reads row groups ahead: what comes before the damage is whole groups of it
    assert got == [expected(i, t) for i, t in enumerate(texts[: len(got)])]
    assert 0 < len(got) <= 1500 and len(got) % 500 == 0
    assert (err.reason, err.detail) == ("input:truncated_file", f"{path}: OSError: {e.value}")
    # the counter reads the footer only (what the parquet format counts too)
    assert count_records(str(path), "hf") == (3000, None)
    assert count_records(str(path), "parquet") == (3000, None)


def test_a_cut_gzip_file_is_truncated_also_where_datasets_meets_it_on_opening(tmp_path):
    # load_dataset reads a JSON file's first 10 MB to learn its columns: damage there comes
    # before the first row (it was input:read_error, unlike the same cut further on)
    rows = [{"text": f"doc {i}"} for i in range(2000)]
    whole = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(EOFError) as e:
        gzip.decompress(path.read_bytes())
    detail = f"{path}: EOFError: {e.value}"
    got, err = read_hf(str(path))
    assert got == [] and (err.reason, err.detail) == ("input:truncated_file", detail)
    assert isinstance(err.__cause__, EOFError)
    assert count_records(str(path), "hf") == (0, f"input:truncated_file: {detail}")


@pytest.mark.xfail(
    strict=True,
    reason="datasets decompresses .zst with zstandard's stream reader, which ends a cut frame "
    "silently: the last line comes back cut as if whole, the rest is lost unseen, and the "
    "reader and the counter call the file whole (not fixed in hf.py: it is below it)",
)
def test_a_cut_zstd_file_is_truncated(tmp_path):
    lines = [f"line {i} " + "z" * 40 for i in range(3000)]
    whole = zstandard.ZstdCompressor().compress("".join(t + "\n" for t in lines).encode())
    path = tmp_path / "cut.txt.zst"
    path.write_bytes(whole[: len(whole) * 9 // 10])
    got, err = read_hf(str(path))
    # today: 2592 rows, the last "line 2591 " and 31 of its 40 z, and no error
    assert err is not None and err.reason == "input:truncated_file"
    assert got == [expected(i, t) for i, t in enumerate(lines[: len(got)])]
    assert count_records(str(path), "hf")[1] is not None


@pytest.mark.parametrize("name", ["gone.jsonl", "gone.parquet"])
def test_a_missing_file_is_unreadable_for_the_reader_and_the_counter(tmp_path, name):
    # (the reader said input:read_error, the counter of a .parquet input:unreadable_file)
    path = tmp_path / name
    got, err = read_hf(str(path))
    assert got == [] and err.reason == "input:unreadable_file"
    assert isinstance(err.__cause__, FileNotFoundError)
    assert err.detail == f"{path}: cannot be opened (FileNotFoundError: {err.__cause__})"
    n, error = count_records(str(path), "hf")
    assert n == 0 and error.startswith(f"input:unreadable_file: {path}: cannot be opened (")


def test_a_file_datasets_cannot_open_is_a_read_error(tmp_path):
    path = tmp_path / "cut.parquet"
    pq.write_table(pa.table({"text": ["a", "b"]}), path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(pa.ArrowInvalid) as e:
        pq.ParquetFile(path)
    got, err = read_hf(str(path))
    assert got == [] and (err.reason, err.detail) == (
        "input:read_error",
        f"{path}: ArrowInvalid: {e.value}",
    )
    assert isinstance(err.__cause__, pa.ArrowInvalid)


def test_an_unsupported_file_name_is_an_error_that_says_what_is_read(tmp_path):
    path = tmp_path / "notes.docx"
    path.write_text("x")
    detail = (
        f"{path}: the hf format reads .parquet, .json(l), .csv, .txt or .arrow files "
        "(optionally compressed), or a datasets: spec"
    )
    got, err = read_hf(str(path))
    assert got == [] and type(err) is FileError
    assert (err.reason, err.detail) == ("input:unsupported_file", detail)
    assert count_records(str(path), "hf") == (0, f"input:unsupported_file: {detail}")


# ---- failures datasets wraps in its own types, and rows that are not objects --------------------


def stand_in(monkeypatch, items, error: BaseException | None = None):
    """`_hf_stream` replaced by a stream of `items`, then `error` raised (as a datasets builder
    that meets damage or a bug mid-stream would)."""

    def rows():
        yield from items
        if error is not None:
            raise error

    monkeypatch.setattr(hf, "_hf_stream", lambda path: rows())


def chained(outer: Exception, inner: Exception, cause: bool) -> Exception:
    """`outer` raised while handling `inner`: `from inner` (a cause) or not (a context)."""
    try:
        try:
            raise inner
        except Exception as e:
            if cause:
                raise outer from e
            raise outer  # noqa: B904 - a context only, as library code leaves it
    except Exception as e:
        return e


@pytest.mark.parametrize(
    "error, reason",
    [
        (EOFError("cut"), "input:truncated_file"),
        (zlib.error("bad block"), "input:truncated_file"),
        (chained(RuntimeError("wrapped"), EOFError("cut"), cause=True), "input:truncated_file"),
        (chained(ValueError("parse"), zlib.error("bad"), cause=False), "input:truncated_file"),
        (
            chained(KeyError("k"), chained(ValueError("v"), OSError("io"), True), True),
            "input:truncated_file",
        ),
        (ValueError("plain"), "input:read_error"),
        (chained(ValueError("v"), TypeError("t"), cause=False), "input:read_error"),
        (FileNotFoundError("a data file vanished"), "input:unreadable_file"),
    ],
)
def test_mid_stream_errors_are_damage_when_damage_caused_them(monkeypatch, error, reason):
    stand_in(monkeypatch, [{"text": "before"}, {"text": "also before"}], error)
    got, err = read_hf("x.jsonl")
    assert got == [expected(0, "before"), expected(1, "also before")]
    if reason == "input:unreadable_file":
        detail = f"x.jsonl: cannot be opened (FileNotFoundError: {error})"
    else:
        detail = f"x.jsonl: {type(error).__name__}: {error}"
    assert (err.reason, err.detail) == (reason, detail) and err.__cause__ is error
    assert count_records("x.jsonl", "hf") == (2, f"{reason}: {detail}")


def test_an_error_opening_is_a_read_error_naming_its_type(monkeypatch):
    def fail(path):
        raise RuntimeError("no such builder")

    monkeypatch.setattr(hf, "_hf_stream", fail)
    got, err = read_hf("x.jsonl")
    assert got == [] and (err.reason, err.detail) == (
        "input:read_error",
        "x.jsonl: RuntimeError: no such builder",
    )


def test_rows_that_are_not_objects_are_invalid_json_and_the_rest_is_read(monkeypatch):
    stand_in(monkeypatch, [{"text": "a"}, ["not", "a", "row"], None, {"text": "b", "url": 5}])
    got, err = read_hf("x.jsonl")
    assert err is None and got == [
        expected(0, "a"),
        (1, "bad", "input:invalid_json", None, 2),
        (2, "bad", "input:invalid_json", None, 3),
        expected(3, "b"),
    ]


def test_without_datasets_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    msg = "the `hf` reader format needs the `datasets` package: pip install 'tokenmill[hf]'"
    with pytest.raises(ImportError) as e:
        hf._import_datasets()
    assert str(e.value) == msg
    with pytest.raises(ImportError, match=r"pip install 'tokenmill\[hf\]'"):
        expand_hf_spec("datasets:json?data_files=x.jsonl")


# ---- specs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, want",
    [
        ("datasets:allenai/c4", HFSpec("allenai/c4")),
        (
            "datasets:allenai/c4?name=en&split=validation&revision=v1.2&shard=3&num_shards=8",
            HFSpec("allenai/c4", "en", "validation", "v1.2", [], 3, 8),
        ),
        ("datasets:x?config=fr&revision=main", HFSpec("x", config="fr", revision="main")),
        ("datasets:x?name=a&config=b", HFSpec("x", config="a")),
        ("datasets:x?split=a&split=b", HFSpec("x", split="b")),
        (
            "datasets:json?data_files=/d/a.jsonl&data_files=s3://b/*.json&data_files=/d/a.jsonl",
            HFSpec("json", data_files=["/d/a.jsonl", "s3://b/*.json", "/d/a.jsonl"]),
        ),
        # blank values are no values
        (
            "datasets:json?name=&config=&split=&revision=&data_files=&shard=&num_shards=",
            HFSpec("json"),
        ),
        ("datasets:x?data_files=my%20file.json", HFSpec("x", data_files=["my file.json"])),
    ],
)
def test_spec_fields(spec, want):
    got = parse_hf_spec(spec)
    assert got == want
    assert parse_hf_spec(got.to_string()) == got


@pytest.mark.parametrize(
    "spec, message",
    [
        ("allenai/c4", "not a datasets spec: 'allenai/c4' (expected datasets:NAME?...)"),
        ("dataset:x", "not a datasets spec: 'dataset:x' (expected datasets:NAME?...)"),
        ("datasets:?split=train", "bad datasets spec 'datasets:?split=train': unknown keys []"),
        (
            "datasets:x?splt=train&bogus=1",
            "bad datasets spec 'datasets:x?splt=train&bogus=1': unknown keys ['bogus', 'splt']",
        ),
        (
            "datasets:x?REVISION=a",
            "bad datasets spec 'datasets:x?REVISION=a': unknown keys ['REVISION']",
        ),
    ],
)
def test_spec_errors(spec, message):
    with pytest.raises(ValueError) as e:
        parse_hf_spec(spec)
    assert str(e.value) == message


def test_only_the_first_question_mark_starts_the_query():
    s = parse_hf_spec("datasets:json?data_files=https://h/x.json?v=1")
    assert s == HFSpec("json", data_files=["https://h/x.json?v=1"])


def test_spec_strings():
    spec = HFSpec(
        "allenai/c4",
        config="en",
        split="validation",
        revision="v1",
        data_files=["s3://b/my data/*.jsonl", "/x/y.json"],
        shard=2,
        num_shards=8,
    )
    assert spec.to_string() == (
        "datasets:allenai/c4?name=en&split=validation&revision=v1"
        "&data_files=s3://b/my%20data/*.jsonl&data_files=/x/y.json&shard=2&num_shards=8"
    )
    assert parse_hf_spec(spec.to_string()) == spec
    assert HFSpec("json").to_string() == "datasets:json?split=train"
    assert HFSpec("j", data_files=["a&b=c+d.json"]).to_string() == (
        "datasets:j?split=train&data_files=a%26b%3Dc%2Bd.json"
    )


# ---- what a spec asks datasets for --------------------------------------------------------------


class Recorder:
    """A stand-in for `datasets.load_dataset` that records its calls and `.shard`."""

    def __init__(self):
        self.calls: list = []

    def __call__(self, *args, **kwargs):
        self.calls.append(("load_dataset", args, kwargs))
        return self

    def shard(self, **kwargs):
        self.calls.append(("shard", (), kwargs))
        return self


def test_a_spec_becomes_the_load_dataset_call_it_names(monkeypatch, offline):
    rec = Recorder()
    monkeypatch.setattr(offline, "load_dataset", rec)
    spec = (
        "datasets:org/ds?name=en&split=validation&revision=abc123"
        "&data_files=file:///d/a.json&data_files=s3://b/c.json&shard=2&num_shards=4"
    )
    assert hf._hf_stream(spec) is rec
    kw = {
        "streaming": True,
        "split": "validation",
        "revision": "abc123",
        "data_files": ["/d/a.json", "s3://b/c.json"],
    }
    assert rec.calls == [
        ("load_dataset", ("org/ds", "en"), kw),
        ("shard", (), {"num_shards": 4, "index": 2}),
    ]
    rec.calls.clear()
    hf._hf_stream("datasets:org/ds")
    assert rec.calls == [("load_dataset", ("org/ds", None), {"streaming": True, "split": "train"})]
    rec.calls.clear()
    hf._hf_stream("file:///d/part.jsonl.gz")
    assert rec.calls == [
        (
            "load_dataset",
            ("json",),
            {"data_files": ["/d/part.jsonl.gz"], "split": "train", "streaming": True},
        )
    ]


def write_config_folder(root) -> dict[str, list[dict]]:
    """A dataset folder whose README declares two configs, two files each."""
    rows = {}
    for lang in ("en", "fr"):
        (root / lang).mkdir(parents=True)
        rows[lang] = []
        for k in range(2):
            part = [{"text": f"{lang} file {k} doc {i}", "k": k} for i in range(3)]
            write_jsonl(root / lang / f"{k}.jsonl", part)
            rows[lang] += [
                json.loads(x) for x in (root / lang / f"{k}.jsonl").read_text().splitlines()
            ]
    (root / "README.md").write_text(
        "---\nconfigs:\n- config_name: en\n  data_files: en/*.jsonl\n"
        "- config_name: fr\n  data_files: fr/*.jsonl\n---\n"
    )
    return rows


def test_a_config_of_a_dataset_folder(tmp_path):
    root = tmp_path / "ds"
    rows = write_config_folder(root)
    for lang, spec in (("fr", f"datasets:{root}?name=fr"), ("en", f"datasets:{root}?config=en")):
        oracle = [expected(i, r["text"], None, {"k": r["k"]}) for i, r in enumerate(rows[lang])]
        got, err = read_hf(spec)
        assert err is None and got == oracle
        shards = expand_hf_spec(spec)
        assert shards == [
            f"datasets:{root}?name={lang}&split=train&shard={k}&num_shards=2" for k in range(2)
        ]
        assert [g[2] for s in shards for g in read_hf(s)[0]] == [o[2] for o in oracle]
        assert [count_records(s, "hf") for s in shards] == [(3, None), (3, None)]
    # datasets ignores a revision of a local folder (an unknown keyword would be an error)
    got, err = read_hf(f"datasets:{root}?name=fr&revision=v9")
    assert err is None and [g[2] for g in got] == [r["text"] for r in rows["fr"]]
    # no config where there are several: datasets' own error, as a read error
    spec = f"datasets:{root}"
    got, err = read_hf(spec)
    assert got == [] and err.reason == "input:read_error"
    assert err.detail.startswith(f"{spec}: ValueError: Config name is missing.")


def test_a_spec_of_one_file_is_one_shard_and_a_shard_is_itself(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "one.jsonl", [{"text": "x"}, {"text": "y"}])
    spec = f"datasets:json?data_files={path}"
    assert expand_hf_spec(spec) == [
        f"datasets:json?split=train&data_files={path}&shard=0&num_shards=1"
    ]

    def never(path):
        raise AssertionError("a spec that names a shard is not opened to expand it")

    monkeypatch.setattr(hf, "_hf_stream", never)
    named = f"datasets:json?data_files={path}&shard=0&num_shards=5"
    assert expand_hf_spec(named) == [named]


def test_a_stream_that_does_not_say_its_shards_is_one(monkeypatch):
    monkeypatch.setattr(hf, "_hf_stream", lambda path: iter([]))
    assert expand_hf_spec("datasets:org/ds?name=en") == [
        "datasets:org/ds?name=en&split=train&shard=0&num_shards=1"
    ]


# ---- file names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, builder",
    [
        ("a/b.parquet", "parquet"),
        ("b.json", "json"),
        ("b.jsonl", "json"),
        ("b.csv", "csv"),
        ("b.txt", "text"),
        ("b.arrow", "arrow"),
        ("b.jsonl.gz", "json"),
        ("b.csv.zst", "csv"),
        ("b.txt.zstd", "text"),
        ("b.json.bz2", "json"),
        ("b.arrow.xz", "arrow"),
        ("B.JSONL.GZ", "json"),
        ("B.Csv.ZsT", "csv"),
        ("B.TXT.ZSTD", "text"),
        ("b.json.BZ2", "json"),
        ("b.parquet.Xz", "parquet"),
        ("s3://bkt/x y.parquet?versionId=3", "parquet"),
        ("https://h/x.jsonl.gz?a=1?b=x.csv", "json"),
    ],
)
def test_the_builder_is_the_name_inside_any_compression(path, builder):
    assert hf._builder_for(path) == builder


@pytest.mark.parametrize("path", ["b.gz", "b.json.tar", "b.gz.json.x", ".gz.csv.7z"])
def test_other_names_are_unsupported(path):
    with pytest.raises(FileError) as e:
        hf._builder_for(path)
    assert (e.value.reason, e.value.detail) == (
        "input:unsupported_file",
        f"{path}: the hf format reads .parquet, .json(l), .csv, .txt or .arrow files "
        "(optionally compressed), or a datasets: spec",
    )
