"""The JSON lines formats: C4 (json.gz), the Pile (jsonl.zst), OSCAR 22.01 (jsonl.gz) and 23.01
(jsonl.zst), and generic JSON lines with the text at any (dotted) key.

One loop, `read_json_lines`, reads them all: it is the per-record hot path, so it stays one
function with its names bound locally. A format is only its `fields` function, which picks
`(text, url, meta)` out of a decoded record; `json_lines_reader(fields)` makes its reader.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from functools import partial

from tokenmill.pipelines.readers.compression import (
    DAMAGE,
    count_until_damage,
    file_error,
    read_chunks,
)
from tokenmill.pipelines.readers.lines import split_lines
from tokenmill.pipelines.readers.records import (
    Bad,
    Doc,
    decode_json,
    get_dotted,
    make_doc,
)

# `(text, url, meta)` of a decoded record (text still unchecked), or None if a field the format
# defines has the wrong type (the record is then `input:invalid_record`)
Fields = Callable[[dict, str], "tuple[object, object, dict] | None"]


def c4_fields(rec: dict, text_key: str) -> tuple[object, object, dict] | None:
    """C4: `text`, `url`, `timestamp` (kept as meta)."""
    url, ts = rec.get("url"), rec.get("timestamp")
    if not (url is None or type(url) is str) or not (ts is None or type(ts) is str):
        return None
    return rec.get("text"), url, {"timestamp": ts}


def pile_fields(rec: dict, text_key: str) -> tuple[object, object, dict] | None:
    """The Pile: `text` and a `meta` object (its `pile_set_name`...), kept whole."""
    meta = rec.get("meta")
    if meta is None:
        meta = {}
    elif type(meta) is not dict:
        return None
    return rec.get("text"), None, meta


def _oscar_fields(extra: tuple[str, ...]) -> Fields:
    """OSCAR 22.01 / 23.01: `content`, `warc_headers` and `metadata`, whose `extra` keys (they
    differ between the two releases) are kept as meta next to the WARC ids and language."""

    def fields(rec: dict, text_key: str) -> tuple[object, object, dict] | None:
        headers, md = rec.get("warc_headers"), rec.get("metadata")
        if headers is None:
            headers = {}
        if md is None:
            md = {}
        if type(headers) is not dict or type(md) is not dict:
            return None
        url = headers.get("warc-target-uri")
        if not (url is None or type(url) is str):
            return None
        meta = {
            "warc_record_id": headers.get("warc-record-id"),
            "warc_date": headers.get("warc-date"),
            "identification": md.get("identification"),
            **{k: md.get(k) for k in extra},
        }
        return rec.get("content"), url, meta

    return fields


oscar2201_fields = _oscar_fields(("annotation",))
oscar2301_fields = _oscar_fields(("quality_warnings", "categories", "harmful_pp"))


def jsonl_fields(rec: dict, text_key: str) -> tuple[object, object, dict]:
    """Generic JSON lines: the text at `text_key` (dotted for nested objects) and `url`; a
    generic layout, so a url of another type is only left out."""
    url = rec.get("url")
    return get_dotted(rec, text_key), url if isinstance(url, str) else None, {}


def read_json_lines(
    fields: Fields, path: str, text_key: str, start: int, stop: int | None, max_doc_bytes: int
) -> Iterator[tuple[int, Doc | Bad]]:
    """`(index, Doc | Bad)` of the non-blank lines `start <= index < stop` of a JSON lines
    file, each record's fields picked by `fields`; a damaged file ends in a FileError."""
    try:
        last = sys.maxsize if stop is None else stop
        decode = decode_json
        make = make_doc
        index = -1
        blank = 0  # blank lines so far: a record's line number is index + blank + 1
        for raw in split_lines(read_chunks(path), max_doc_bytes):
            if raw is not None and (not raw or raw.isspace()):
                blank += 1
                continue  # a blank line is no record
            index += 1
            if index < start:
                continue
            if index >= last:
                return
            if raw is None:
                yield index, Bad("input:too_large", None, index + blank + 1)
                continue
            try:
                rec = decode(raw.decode("utf-8"))  # strict UTF-8; skips json.loads' sniffing
            except UnicodeDecodeError:
                yield index, Bad("input:invalid_utf8", raw, index + blank + 1)
                continue
            except ValueError:
                yield index, Bad("input:invalid_json", raw, index + blank + 1)
                continue
            except RecursionError:
                yield index, Bad("input:too_deep", raw, index + blank + 1)
                continue
            if type(rec) is not dict:
                yield index, Bad("input:invalid_json", raw, index + blank + 1)
                continue
            got = fields(rec, text_key)
            doc = "input:invalid_record" if got is None else make(*got)
            if type(doc) is str:
                doc = Bad(doc, raw, index + blank + 1)
            yield index, doc
    except DAMAGE as e:
        raise file_error(path, e) from e


def json_lines_reader(fields: Fields):
    """The reader (see `formats.Reader`) of a JSON lines format whose records `fields` reads."""
    return partial(read_json_lines, fields)


def count_lines(path: str, max_doc_bytes: int, source: str | None = None) -> tuple[int, str | None]:
    """`(non-blank lines, None)` of `source` (default: `path`), or with the count so far the
    error (`reason: detail`, naming `path`) that stopped it; lines are split, not parsed."""
    lines = split_lines(read_chunks(path if source is None else source), max_doc_bytes)
    return count_until_damage(path, (r for r in lines if r is None or (r and not r.isspace())))
