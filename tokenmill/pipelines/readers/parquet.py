"""Parquet: a record is a row; its text is the `text_key` column and its url the `url`
column where there is one. Rows are read row group by row group, so a damaged row group costs
its own rows only (each an `input:unreadable_rows`), and the file's FileError names them."""

from __future__ import annotations

from collections.abc import Iterator

from tokenmill.pipelines.readers.compression import file_error, open_raw
from tokenmill.pipelines.readers.inputs import is_url, local_path
from tokenmill.pipelines.readers.records import Bad, Doc, FileError, make_doc


def parquet_file(path: str):
    """The file's ParquetFile; FileError if it cannot be opened or its footer is unreadable."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(open_raw(path) if is_url(path) else local_path(path))
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for a broken footer
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise file_error(path, e) from e
        raise FileError(
            "input:corrupt_file",
            f"{path}: not a readable Parquet file ({type(e).__name__}: {e}); "
            "its footer (row groups, schema) is missing or damaged, so no row can be read",
        ) from e


def _values(column) -> list:
    """A column's values. Parquet writers need not check that a string column is UTF-8: where
    one is not, its values are decoded with the bad bytes as lone surrogates, which make_doc
    sets aside as input:invalid_utf8, so only their rows are lost, not the batch's."""
    try:
        return column.to_pylist()
    except UnicodeDecodeError:
        import pyarrow as pa

        return [
            None if v is None else v.decode("utf-8", "surrogateescape")
            for v in column.cast(pa.large_binary()).to_pylist()
        ]


def _parquet_rows(pf, path, cols, start, stop):
    """`(index, text, url)` of rows `start <= i < stop`, row group by row group; the rows of a
    row group that cannot be decoded come back as `(index, None, Bad)`, and after the last
    row a FileError names the damaged row groups."""
    import pyarrow as pa

    damaged = []
    first = 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        lo, hi = first, first + n
        first = hi
        if hi <= start or (stop is not None and lo >= stop):
            continue
        end = hi if stop is None else min(hi, stop)  # `stop` may fall inside the row group
        index = lo
        try:
            for batch in pf.iter_batches(batch_size=4096, row_groups=[g], columns=cols):
                batch = batch.slice(0, end - index)
                texts = _values(batch.column(0))
                urls = _values(batch.column(1)) if len(cols) > 1 else [None] * len(texts)
                for text, url in zip(texts, urls, strict=True):
                    yield index, text, url
                    index += 1
                if index >= end:
                    break
        except (pa.ArrowException, OSError, ValueError, EOFError) as e:
            damaged.append(f"row group {g} (rows {lo}-{hi - 1}): {type(e).__name__}: {e}")
            for i in range(max(index, start), end):
                yield i, None, Bad("input:unreadable_rows", None, i + 1)
        if stop is not None and hi >= stop:
            break
    if damaged:
        raise FileError(
            "input:corrupt_file",
            f"{path}: {len(damaged)} row group(s) cannot be decoded, their rows are counted as "
            f"input:unreadable_rows: {'; '.join(damaged[:3])}",
        )


def read_parquet(
    path: str, text_key: str, start: int, stop: int | None, max_doc_bytes: int
) -> Iterator[tuple[int, Doc | Bad]]:
    """`(index, Doc | Bad)` of rows `start <= index < stop`; FileError if the file or its
    `text_key` column cannot be read, or (after the last row) if row groups were damaged."""
    pf = parquet_file(path)
    names = pf.schema_arrow.names
    if text_key not in names:
        raise FileError("input:missing_text", f"{path}: no column {text_key!r}")
    cols = [text_key] + (["url"] if "url" in names and text_key != "url" else [])
    for i, text, url in _parquet_rows(pf, path, cols, start, stop):
        if i < start:
            continue
        if url.__class__ is Bad:
            yield i, url
            continue
        doc = make_doc(text, url, {})
        if type(doc) is str:
            doc = Bad(doc, None, i + 1)
        elif doc.nbytes > max_doc_bytes:
            doc = Bad("input:too_large", None, i + 1)
        yield i, doc


def count_parquet(path: str, max_doc_bytes: int) -> tuple[int, str | None]:
    """`(rows, None)` from the file's footer, or `(0, reason: detail)` if it is unreadable."""
    try:
        return parquet_file(path).metadata.num_rows, None
    except FileError as e:
        return 0, str(e)
