"""Tests of tokenmill/pipelines/readers/parquet.py that its mutation run asked for
(docs/TESTING.md).

Every file is written by pyarrow in the test, and what the reader yields is compared, row by
row, with a plain pyarrow reading of the same bytes (`pq.read_table`, `read_row_group`) and the
record rules written out here: a row is a Doc when its text is a non-blank str, its url the
`url` column's str (else None), and every set-aside row and every error is checked whole
(reason, raw, line; FileError reason and detail). Damage is made in the bytes of one page or
cut, so the rows before it must come back and the rest be counted by reason.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_readers_damage import read_all

from tokenmill.pipelines.readers import Bad, Doc, count_records, read_records

# every test here takes well under a second: a mutant that stops a loop from advancing fails
# instead of hanging (mutation testing, docs/TESTING.md)
pytestmark = pytest.mark.timeout(30)


# ---- the oracle ---------------------------------------------------------------------------------


def expected(i: int, text, url=None, max_doc_bytes: int = 10_000_000) -> tuple:
    """What the reader must give for row `i`: the record rules, written out plainly."""
    if not isinstance(text, str):
        return (i, "bad", "input:missing_text", None, i + 1)
    try:
        data = text.encode("utf-8")
        if isinstance(url, str):
            url.encode("utf-8")
    except UnicodeEncodeError:
        return (i, "bad", "input:invalid_utf8", None, i + 1)
    if not text.strip():
        return (i, "bad", "input:empty", None, i + 1)
    if len(data) > max_doc_bytes:
        return (i, "bad", "input:too_large", None, i + 1)
    return (i, "doc", text, url if isinstance(url, str) else None, len(data), {})


def unreadable(i: int) -> tuple:
    return (i, "bad", "input:unreadable_rows", None, i + 1)


def view(got) -> list[tuple]:
    """The reader's output as tuples comparable with `expected`: every field of a Doc or Bad."""
    out = []
    for i, d in got:
        if isinstance(d, Doc):
            out.append((i, "doc", d.text, d.url, d.nbytes, d.meta))
        else:
            assert type(d) is Bad
            out.append((i, "bad", str(d), d.raw, d.line))
    return out


def pyarrow_rows(path, text_key: str = "text", url: str | None = "url") -> list[tuple]:
    """Every row of an undamaged file, read whole by pyarrow, with the record rules."""
    table = pq.read_table(path)
    texts = table.column(text_key).to_pylist()
    urls = table.column(url).to_pylist() if url else [None] * len(texts)
    return [expected(i, t, u) for i, (t, u) in enumerate(zip(texts, urls, strict=True))]


def write(path, columns: dict, group: int, **kw):
    pq.write_table(pa.table(columns), path, row_group_size=group, use_dictionary=False, **kw)
    return path


def groups_of(path) -> list[tuple[int, int]]:
    """`(first row, rows)` of each row group, from the footer."""
    md, out, first = pq.ParquetFile(path).metadata, [], 0
    for g in range(md.num_row_groups):
        out.append((first, md.row_group(g).num_rows))
        first += md.row_group(g).num_rows
    return out


def damage_detail(path, errors: list[tuple[int, int, int, Exception]]) -> str:
    """The FileError detail for damaged row groups `(g, lo, hi, exception)`."""
    named = "; ".join(
        f"row group {g} (rows {lo}-{hi - 1}): {type(e).__name__}: {e}"
        for g, lo, hi, e in errors[:3]
    )
    return (
        f"{path}: {len(errors)} row group(s) cannot be decoded, their rows are counted as "
        f"input:unreadable_rows: {named}"
    )


# ---- rows, columns, slices ----------------------------------------------------------------------

N = 12_000  # three row groups of 5,000, 5,000 and 2,000 rows: 4,096 + 904 rows a batch


def _text(i: int) -> str | None:
    if i % 997 == 3:
        return None
    if i % 1009 == 5:
        return "  \t\n"
    return f"document {i} " + ("é" * (i % 5)) + ("😀" if i % 7 == 0 else "")


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A file whose text column is neither first nor alone: id, url (some nulls), text, lang."""
    path = tmp_path_factory.mktemp("parquet") / "wide.parquet"
    return write(
        path,
        {
            "id": list(range(N)),
            "url": [None if i % 11 == 0 else f"https://e.org/{i}?q=ü" for i in range(N)],
            "text": [_text(i) for i in range(N)],
            "lang": ["fr"] * N,
        },
        5000,
        compression="zstd",
    )


def test_every_row_text_and_url_as_pyarrow_reads_them(wide):
    assert groups_of(wide) == [(0, 5000), (5000, 5000), (10000, 2000)]
    oracle = pyarrow_rows(wide)
    got, err = read_all(str(wide), "parquet")
    assert err is None
    assert view(got) == oracle
    assert sum(1 for r in oracle if r[1] == "doc" and r[3] is not None) > 10_000  # urls kept
    assert count_records(str(wide), "parquet") == (N, None)


@pytest.mark.parametrize(
    "start, stop",
    [
        (0, None),
        (0, 1),
        (0, 4096),  # the end of the first batch
        (0, 4097),
        (100, 4200),
        (4095, 5001),  # across a row group boundary
        (4999, 10001),
        (5000, 10000),  # exactly one row group
        (5000, 5000),  # empty, at a row group boundary
        (7000, 7000),  # empty, inside a row group
        (9999, 12000),
        (11999, None),
        (12000, None),
        (13000, None),
        (0, 13000),
        (7000, 6000),
    ],
)
def test_a_slice_is_exactly_its_rows(wide, start, stop):
    oracle = pyarrow_rows(wide)
    got, err = read_all(str(wide), "parquet", start=start, stop=stop)
    assert err is None
    assert view(got) == oracle[start:stop]


def test_slices_of_any_size_add_up_to_the_file(wide):
    """As scan cuts a file into partitions of `partition_docs` rows: every row in exactly one,
    whether the cuts fall on row groups, batches, or inside them."""
    whole = view(read_records(str(wide), "parquet"))
    for step in (1000, 4096, 5000, 7001):
        cuts = list(range(0, N, step))
        parts = []
        for k, start in enumerate(cuts):
            stop = None if k == len(cuts) - 1 else start + step
            parts += view(read_records(str(wide), "parquet", start=start, stop=stop))
        assert parts == whole, step


def test_another_text_column_and_the_url_column_as_text(tmp_path):
    path = write(
        tmp_path / "x.parquet",
        {"url": ["https://a/0", "https://a/1", None], "body": ["first body", None, "third"]},
        2,
    )
    got, err = read_all(str(path), "parquet", text_key="body")
    assert err is None and view(got) == pyarrow_rows(path, "body")
    # the url column as the text: no url of its own
    got, err = read_all(str(path), "parquet", text_key="url")
    assert err is None and view(got) == pyarrow_rows(path, "url", url=None)
    assert view(got)[0] == (0, "doc", "https://a/0", None, 11, {})


def test_a_file_without_the_text_column(tmp_path):
    path = write(tmp_path / "x.parquet", {"url": ["https://a/0"], "content": ["text"]}, 10)
    got, err = read_all(str(path), "parquet")
    assert got == [] and err is not None
    assert (err.reason, err.detail) == ("input:missing_text", f"{path}: no column 'text'")
    assert str(err) == f"input:missing_text: {path}: no column 'text'"
    assert count_records(str(path), "parquet") == (1, None)  # counting needs no column


def test_an_empty_file(tmp_path):
    path = write(tmp_path / "x.parquet", {"text": pa.array([], pa.string())}, 10)
    assert read_all(str(path), "parquet") == ([], None)
    assert count_records(str(path), "parquet") == (0, None)


# ---- odd values ---------------------------------------------------------------------------------


def test_nulls_empty_blank_and_non_ascii_texts(tmp_path):
    texts = ["ok", None, "", "  \t\n", "\u3000\u2003", "fine é", "日本語", "a\x00b", " x "]
    urls = [None, "u1", "u2", "u3", "u4", None, "https://例え.jp/", "u7", "u8"]
    path = write(tmp_path / "x.parquet", {"text": texts, "url": urls}, 4)
    got, err = read_all(str(path), "parquet")
    assert err is None
    assert view(got) == [
        expected(i, t, u) for i, (t, u) in enumerate(zip(texts, urls, strict=True))
    ]
    assert [r[2] for r in view(got) if r[1] == "bad"] == [
        "input:missing_text",
        "input:empty",
        "input:empty",
        "input:empty",
    ]


@pytest.mark.parametrize(
    "column",
    [
        pa.array([1, None, 3], pa.int64()),
        pa.array([1.5, 2.5, None], pa.float64()),
        pa.array([True, False, None], pa.bool_()),
        pa.array([b"bytes, not text", b"", None], pa.binary()),
        pa.array([["a", "list"], [], None], pa.list_(pa.string())),
        pa.array([{"a": "struct"}, {"a": "b"}, None], pa.struct([("a", pa.string())])),
    ],
    ids=["int64", "float64", "bool", "binary", "list", "struct"],
)
def test_a_text_column_that_is_not_strings_is_missing_text(tmp_path, column):
    path = write(tmp_path / "x.parquet", {"text": column, "url": ["u0", "u1", "u2"]}, 2)
    got, err = read_all(str(path), "parquet")
    assert err is None
    assert view(got) == [expected(i, None) for i in range(3)]


def test_a_url_column_that_is_not_strings_is_dropped(tmp_path):
    for urls in (pa.array([7, None, 9], pa.int64()), pa.array([b"https://b/", None, b"x"])):
        path = write(tmp_path / "x.parquet", {"text": ["a", "b", "c"], "url": urls}, 2)
        got, err = read_all(str(path), "parquet")
        assert err is None
        assert view(got) == [expected(i, t, None) for i, t in enumerate("abc")]


def test_large_texts_and_max_doc_bytes_at_the_edge(tmp_path):
    big = "é" * 1_500_000 + "x"  # 3,000,001 UTF-8 bytes
    texts = ["a" * 10, "é" * 5, "é" * 5 + "a", "b" * 11, big, "c"]
    path = write(tmp_path / "x.parquet", {"text": pa.array(texts, pa.large_string())}, 3)
    for limit in (10, 11, 3_000_000, 3_000_001):
        got, err = read_all(str(path), "parquet", max_doc_bytes=limit)
        assert err is None
        assert view(got) == [expected(i, t, None, limit) for i, t in enumerate(texts)], limit
    got = read_all(str(path), "parquet", max_doc_bytes=10)[0]
    assert [r[2] for r in view(got)[2:5]] == ["input:too_large"] * 3
    assert view(got)[1] == (1, "doc", "é" * 5, None, 10, {})  # exactly the limit: kept


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_invalid_utf8_sets_aside_only_its_row(tmp_path, kind):
    """Parquet writers need not check a string column's UTF-8. The row holding bad bytes is
    `input:invalid_utf8`, its batch's other rows are read (the oracle decodes each value's
    bytes with Python's strict UTF-8), and the file is not called damaged."""
    n = 100
    texts = [f"text {i} ü".encode() for i in range(n)]
    urls = [f"https://e/{i}".encode() for i in range(n)]
    texts[5] = b"bad \xff\xfe bytes"
    texts[41] = b"\xc3"  # a cut two-byte sequence
    texts[99] = b"last \xed\xa0\x80"  # an encoded surrogate
    texts[7] = None
    urls[60] = b"https://e/\x80"
    urls[61] = None

    def column(values):
        return pa.array(values, pa.binary()).view(pa.string()).cast(kind, safe=False)

    path = write(tmp_path / "x.parquet", {"text": column(texts), "url": column(urls)}, 40)
    with pytest.raises(UnicodeDecodeError):
        pq.read_table(path).column("text").to_pylist()  # what a plain reading meets

    def decoded(b):
        try:
            return None if b is None else b.decode("utf-8")
        except UnicodeDecodeError:
            return "\udcff"  # any lone surrogate: the row cannot be written as UTF-8

    want = [
        expected(i, decoded(t), decoded(u))
        for i, (t, u) in enumerate(zip(texts, urls, strict=True))
    ]
    assert [i for i, *r in want if r[1] == "input:invalid_utf8"] == [5, 41, 60, 99]
    got, err = read_all(str(path), "parquet")
    assert err is None
    assert view(got) == want


# ---- damage -------------------------------------------------------------------------------------


def _damaged_groups(tmp_path):
    """8 row groups of 50 rows, zstd; the text column's page header of groups 1, 3, 4 and 6
    overwritten."""
    n = 400
    path = write(
        tmp_path / "x.parquet",
        {"url": [f"https://e/{i}" for i in range(n)], "text": [f"text {i} é" for i in range(n)]},
        50,
        compression="zstd",
    )
    md = pq.ParquetFile(path).metadata
    data = bytearray(path.read_bytes())
    for g in (1, 3, 4, 6):
        at = md.row_group(g).column(1).data_page_offset
        data[at : at + 24] = b"\xff" * 24
    path.write_bytes(bytes(data))
    return path


def _oracle_by_group(path, cols=("text", "url")):
    """Per row group, pyarrow's `read_row_group`: its rows, or the exception it raises."""
    pf = pq.ParquetFile(path)
    rows, errors = [], []
    for g, (lo, n) in enumerate(groups_of(path)):
        try:
            t = pf.read_row_group(g, columns=list(cols))
        except Exception as e:  # noqa: BLE001 - the oracle records what pyarrow raises
            rows += [unreadable(i) for i in range(lo, lo + n)]
            errors.append((g, lo, lo + n, e))
            continue
        texts, urls = t.column(0).to_pylist(), t.column(1).to_pylist()
        rows += [expected(lo + k, x, u) for k, (x, u) in enumerate(zip(texts, urls, strict=True))]
    return rows, errors


def test_damaged_row_groups_lose_only_their_rows_counted_and_named(tmp_path):
    path = _damaged_groups(tmp_path)
    rows, errors = _oracle_by_group(path)
    assert [g for g, *_ in errors] == [1, 3, 4, 6]
    got, err = read_all(str(path), "parquet")
    assert view(got) == rows
    assert err is not None and err.reason == "input:corrupt_file"
    assert err.detail == damage_detail(path, errors)  # four groups, the first three named
    assert "row group 6" not in err.detail
    assert count_records(str(path), "parquet") == (400, None)  # the footer is whole


@pytest.mark.parametrize(
    "start, stop, named",
    [
        (0, 100, [1]),  # the slice ends where the damaged group ends
        (60, 160, [1, 3]),
        (20, 60, [1]),
        (100, 150, []),
        (200, 250, [4]),
        (340, None, [6]),
        (360, None, []),
    ],
)
def test_a_slice_counts_and_names_only_its_damaged_groups(tmp_path, start, stop, named):
    path = _damaged_groups(tmp_path)
    rows, errors = _oracle_by_group(path)
    got, err = read_all(str(path), "parquet", start=start, stop=stop)
    assert view(got) == rows[start:stop]
    if not named:
        assert err is None
    else:
        assert err.reason == "input:corrupt_file"
        assert err.detail == damage_detail(path, [e for e in errors if e[0] in named])


def test_damage_inside_a_row_group_keeps_the_batches_before_it(tmp_path):
    """A 10,000-row group with the row 4,096's value damaged (its length prefix, so the page
    still parses): the reader's first 4,096-row batch is whole, so every row before the
    damaged one is read; the rest of the group is unreadable_rows; the next group is read."""
    n = 12_000
    texts = [f"row-{i:05d}-" + "x" * 20 for i in range(n)]
    path = write(
        tmp_path / "x.parquet",
        {"text": texts},
        10_000,
        compression="none",
        data_page_size=1,
        write_statistics=False,
    )
    data = bytearray(path.read_bytes())
    assert data.count(b"row-04096-") == 1
    at = data.find(b"row-04096-")
    data[at - 4 : at] = b"\xff\xff\xff\x7f"  # PLAIN BYTE_ARRAY: a 4-byte length before each value
    path.write_bytes(bytes(data))
    with pytest.raises(pa.ArrowException) as e:
        pq.ParquetFile(path).read_row_group(0)
    pq.ParquetFile(path).read_row_group(1)  # the next group is whole

    want = [expected(i, t) for i, t in enumerate(texts)]
    want[4096:10_000] = [unreadable(i) for i in range(4096, 10_000)]
    got, err = read_all(str(path), "parquet")
    assert view(got) == want
    assert err.detail == damage_detail(path, [(0, 0, 10_000, e.value)])
    # the slice ending before the damaged row reads whole; the ones holding it count its rows
    got, err = read_all(str(path), "parquet", stop=4096)
    assert err is None and view(got) == want[:4096]
    for start, stop in ((4000, 4200), (4096, 10_000), (4096, None)):
        got, err = read_all(str(path), "parquet", start=start, stop=stop)
        assert view(got) == want[start:stop]
        assert err.detail == damage_detail(path, [(0, 0, 10_000, e.value)])


def test_a_middle_cut_with_the_footer_kept(tmp_path):
    """Bytes lost inside row group 2 (as a bad copy can lose a block): the footer is whole,
    so groups 0 and 1 are read and every later row is counted, none silently lost."""
    n = 300
    path = write(
        tmp_path / "x.parquet",
        {"text": [f"text {i}" for i in range(n)], "url": [f"u{i}" for i in range(n)]},
        50,
        compression="zstd",
    )
    md = pq.ParquetFile(path).metadata
    data = path.read_bytes()
    at = md.row_group(2).column(0).data_page_offset + 10
    path.write_bytes(data[:at] + data[at + 200 :])
    rows, errors = _oracle_by_group(path)
    assert [g for g, *_ in errors][:1] == [2]
    assert rows[:100] == [expected(i, f"text {i}", f"u{i}") for i in range(100)]
    got, err = read_all(str(path), "parquet")
    assert view(got) == rows and len(got) == n
    assert err.reason == "input:corrupt_file" and err.detail == damage_detail(path, errors)


def test_a_cut_file_has_no_footer_and_is_a_file_error(tmp_path):
    """A Parquet file cut anywhere (inside a row group too) has lost its footer, where its
    schema and row group offsets are: pyarrow cannot open it, so no row can be read and the
    file is one `input:corrupt_file`."""
    path = write(tmp_path / "x.parquet", {"text": [f"t{i}" for i in range(200)]}, 50)
    whole = path.read_bytes()
    cut = pq.ParquetFile(path).metadata.row_group(2).column(0).data_page_offset + 5
    for size in (0, 3, cut, len(whole) - 1):
        path.write_bytes(whole[:size])
        with pytest.raises(Exception) as e:  # noqa: PT011 - the oracle: whatever pyarrow raises
            pq.ParquetFile(path)
        detail = (
            f"{path}: not a readable Parquet file ({type(e.value).__name__}: {e.value}); "
            "its footer (row groups, schema) is missing or damaged, so no row can be read"
        )
        got, err = read_all(str(path), "parquet")
        assert got == [] and (err.reason, err.detail) == ("input:corrupt_file", detail), size
        assert count_records(str(path), "parquet") == (0, f"input:corrupt_file: {detail}")


def test_a_missing_file_is_unreadable(tmp_path):
    path = tmp_path / "gone.parquet"
    with pytest.raises(FileNotFoundError) as e:
        pq.ParquetFile(str(path))
    detail = f"{path}: cannot be opened (FileNotFoundError: {e.value})"
    got, err = read_all(str(path), "parquet")
    assert got == [] and (err.reason, err.detail) == ("input:unreadable_file", detail)
    assert isinstance(err.__cause__, FileNotFoundError)
    assert count_records(str(path), "parquet") == (0, f"input:unreadable_file: {detail}")
    # a file:// URL is the local path
    got, err = read_all(f"file://{path}", "parquet")
    assert err.reason == "input:unreadable_file"


# ---- URLs ---------------------------------------------------------------------------------------


@pytest.fixture
def memfs():
    import fsspec

    fs = fsspec.filesystem("memory")
    yield fs
    fs.rm("/tm-parquet", recursive=True)


def test_fsspec_and_file_urls_read_the_same_rows(tmp_path, memfs, wide):
    memfs.pipe("/tm-parquet/wide.parquet", wide.read_bytes())
    url = "memory://tm-parquet/wide.parquet"
    oracle = pyarrow_rows(wide)
    got, err = read_all(url, "parquet", start=4000, stop=10_500)
    assert err is None and view(got) == oracle[4000:10_500]
    assert count_records(url, "parquet") == (N, None)
    got, err = read_all(f"file://{wide}", "parquet", stop=10)
    assert err is None and view(got) == oracle[:10]

    missing = "memory://tm-parquet/none.parquet"
    with pytest.raises(FileNotFoundError) as e:
        memfs.open("/tm-parquet/none.parquet", "rb")
    got, err = read_all(missing, "parquet")
    assert got == [] and err.reason == "input:unreadable_file"
    assert err.detail == f"{missing}: cannot be opened (FileNotFoundError: {e.value})"
