"""Fuzzed inputs: whatever bytes a file holds and whatever JSON values its fields hold, a reader
raises nothing but FileError (and that only for damage), and yields one Doc or Bad per record,
numbered from 0 (so a record count is the number of non-blank lines)."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenmill.pipelines.readers import Bad, Doc, FileError, count_records, read_records

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# format -> its file name (the compression comes from the name)
NAMES = {
    "c4": "c4-train.00000-of-01024.json.gz",
    "pile": "00.jsonl.zst",
    "oscar2301": "fr_meta_part_1.jsonl.zst",
    "oscar2201": "fr_meta_part_1.jsonl.gz",
    "oscar2019": "fr.txt.gz",
    "jsonl": "x.jsonl",
    "jsonl-bz2": "x.jsonl.bz2",
    "jsonl-xz": "x.jsonl.xz",
}


def _compress(raw: bytes, name: str) -> bytes:
    if name.endswith(".gz"):
        return gzip.compress(raw, mtime=0)
    if name.endswith(".zst"):
        return zstandard.ZstdCompressor().compress(raw)
    if name.endswith(".bz2"):
        return bz2.compress(raw)
    if name.endswith(".xz"):
        return lzma.compress(raw)
    return raw


def _read(path: Path, fmt: str, **kw) -> tuple[list, FileError | None]:
    got, err = [], None
    try:
        for item in read_records(str(path), fmt, **kw):
            got.append(item)
    except FileError as e:
        err = e
    for n, (i, d) in enumerate(got):
        assert i == n
        assert isinstance(d, (Doc, Bad)), type(d)
        if isinstance(d, Doc):
            assert isinstance(d.text, str) and d.text.strip()
            assert d.nbytes == len(d.text.encode("utf-8"))
            assert d.url is None or isinstance(d.url, str)
            assert isinstance(d.meta, dict)
        else:
            assert str(d).startswith("input:")
    return got, err


def _non_blank_lines(raw: bytes) -> int:
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return sum(1 for x in lines if x.rstrip(b"\r").strip())


def _blocks(raw: bytes) -> int:
    n, inside = 0, False
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for x in lines:
        if x.rstrip(b"\r").strip():
            inside = True
        elif inside:
            n, inside = n + 1, False
    return n + inside


# ---- random bytes as a file's content -----------------------------------------------------------

# mostly line-shaped bytes with JSON-ish pieces, so that decoding gets somewhere
_pieces = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [b"\n", b"\r\n", b" ", b"{", b"}", b'"text"', b":", b'"', b"[", b"\xff", b"\\ud800"]
    ),
    st.just(b'{"text": "a document", "url": "u"}\n'),
)
random_content = st.lists(_pieces, max_size=40).map(b"".join)


@FUZZ
@given(fmt=st.sampled_from(sorted(NAMES)), raw=random_content)
def test_random_content_in_a_sound_archive_gives_one_item_per_record(fmt, raw):
    name = NAMES[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(_compress(raw, name))
        reader_fmt = fmt.split("-")[0]
        got, err = _read(path, reader_fmt)
        assert err is None
        expected = _blocks(raw) if fmt == "oscar2019" else _non_blank_lines(raw)
        assert len(got) == expected
        assert count_records(str(path), reader_fmt) == (expected, None)


@FUZZ
@given(
    fmt=st.sampled_from([*sorted(NAMES), "parquet"]),
    data=st.one_of(st.binary(max_size=300), random_content),
)
def test_random_bytes_as_the_file_itself_raise_only_file_errors(fmt, data):
    name = NAMES.get(fmt, "x.parquet")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        reader_fmt = fmt.split("-")[0]
        got, err = _read(path, reader_fmt)
        n, error = count_records(str(path), reader_fmt)
        assert (error is None) == (err is None)
        assert n == len(got)


@FUZZ
@given(text=random_content, meta=random_content)
def test_random_oscar2109_files(text, meta):
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp) / "fr_part_1.txt.gz"
        t.write_bytes(gzip.compress(text))
        (Path(tmp) / "fr_meta_part_1.jsonl.gz").write_bytes(gzip.compress(meta))
        got, err = _read(t, "oscar2109")
        if err is None:
            assert len(got) == _non_blank_lines(meta)
        assert count_records(str(t), "oscar2109") == (_non_blank_lines(meta), None)


# ---- random JSON values in every field a format reads --------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(blacklist_categories=()), max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _deep(n: int, kind: str) -> str:
    return ("[" * n + "]" * n) if kind == "list" else ('{"a":' * n + "1" + "}" * n)


# a field's value as JSON text: any JSON value, or one nested to any depth
field_json = st.one_of(
    json_values.map(json.dumps),
    st.builds(_deep, st.integers(0, 3000), st.sampled_from(["list", "dict"])),
)

FIELDS = {
    "c4": {"text": None, "url": None, "timestamp": None},
    "pile": {"text": None, "meta": {"pile_set_name": None}},
    "oscar2301": {
        "content": None,
        "warc_headers": {"warc-target-uri": None, "warc-record-id": None, "warc-date": None},
        "metadata": {
            "identification": None,
            "quality_warnings": None,
            "categories": None,
            "harmful_pp": None,
        },
    },
    "jsonl": {"body": {"content": None}, "url": None},
}
FIELDS["oscar2201"] = {
    **FIELDS["oscar2301"],
    "metadata": {"identification": None, "annotation": None},
}


def _record(shape, choose) -> str:
    """A record of `shape` as JSON text: each field a chosen JSON text, or, where the shape
    holds a dict, either the dict (its fields chosen the same way) or a chosen value."""
    parts = []
    for k, sub in shape.items():
        if isinstance(sub, dict) and choose("nested"):
            value = _record(sub, choose)
        else:
            value = choose("value")
        parts.append(f"{json.dumps(k)}: {value}")
    return "{" + ", ".join(parts) + "}"


@FUZZ
@given(fmt=st.sampled_from(sorted(FIELDS)), data=st.data(), n=st.integers(1, 4))
def test_any_json_value_in_any_field_is_a_doc_or_a_reason(fmt, data, n):
    def choose(what):
        if what == "nested":
            return data.draw(st.booleans())
        return data.draw(field_json)

    lines = [_record(FIELDS[fmt], choose).encode("utf-8", "surrogatepass") for _ in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / NAMES[fmt]
        path.write_bytes(_compress(b"\n".join(lines) + b"\n", NAMES[fmt]))
        got, err = _read(path, fmt, text_key="body.content")
        assert err is None and len(got) == n


@FUZZ
@given(data=st.data(), n=st.integers(1, 4))
def test_any_json_value_in_oscar2109_metadata(data, n):
    lines = []
    for _ in range(n):
        fields = {
            "headers": data.draw(
                st.one_of(
                    field_json,
                    st.builds(lambda v: '{"warc-target-uri": ' + v + "}", field_json),
                )
            ),
            "offset": data.draw(st.one_of(field_json, st.integers(0, 5).map(str))),
            "nb_sentences": data.draw(st.one_of(field_json, st.integers(0, 3).map(str))),
        }
        lines.append(("{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}").encode())
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp) / "fr_part_1.txt.gz"
        t.write_bytes(gzip.compress(b"one\ntwo\nthree\nfour\nfive\nsix\n" * 3))
        (Path(tmp) / "fr_meta_part_1.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines)))
        got, err = _read(t, "oscar2109")
        # only a record asking for lines past the text's end stops the file
        assert err is None and len(got) == n or err.reason == "input:truncated_file"


parquet_columns = st.one_of(
    st.lists(st.one_of(st.none(), st.text(max_size=30)), min_size=1, max_size=8),
    st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=8),
    st.lists(st.one_of(st.none(), st.binary(max_size=10)), min_size=1, max_size=8),
    st.lists(st.lists(st.text(max_size=5), max_size=3), min_size=1, max_size=8),
    st.lists(st.fixed_dictionaries({"a": st.text(max_size=5)}), min_size=1, max_size=8),
)


@FUZZ
@given(text=parquet_columns, url=parquet_columns)
def test_any_parquet_column_types(text, url):
    n = min(len(text), len(url))
    text, url = text[:n], url[:n]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.parquet"
        pq.write_table(
            pa.table({"text": pa.array(text), "url": pa.array(url)}), path, row_group_size=3
        )
        got, err = _read(path, "parquet")
        assert err is None and len(got) == n
        for (_, d), t in zip(got, text, strict=True):
            assert isinstance(d, Doc) == (isinstance(t, str) and bool(t.strip()))
