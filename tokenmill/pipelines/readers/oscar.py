"""The OSCAR formats that are not JSON lines: OSCAR 2019 (txt.gz, documents are blocks of
lines separated by blank lines) and OSCAR 21.09 (a txt.gz of text lines plus a jsonl.gz of
metadata, one line per document, naming its lines in the text file)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import closing
from typing import IO

from tokenmill.pipelines.readers import compression
from tokenmill.pipelines.readers.compression import (
    DAMAGE,
    count_until_damage,
    file_error,
    open_binary,
    read_chunks,
)
from tokenmill.pipelines.readers.inputs import is_url, local_path
from tokenmill.pipelines.readers.jsonl import count_lines
from tokenmill.pipelines.readers.lines import split_blocks, split_lines
from tokenmill.pipelines.readers.records import Bad, Doc, FileError, decode_json, make_doc

# ---- OSCAR 2019: blank-line separated blocks ---------------------------------------------------


def read_oscar2019(
    path: str, text_key: str, start: int, stop: int | None, max_doc_bytes: int
) -> Iterator[tuple[int, Doc | Bad]]:
    """`(index, Doc | Bad)` of the blocks `start <= index < stop` (`text_key` is unused: a
    block is all text); a damaged file ends in a FileError."""
    try:
        index = -1
        for raw in split_blocks(read_chunks(path), max_doc_bytes):
            index += 1
            if index < start:
                continue
            if stop is not None and index >= stop:
                return
            if raw is None:
                yield index, Bad("input:too_large")
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield index, Bad("input:invalid_utf8", raw)
                continue
            doc = make_doc(text, None, {})
            yield index, Bad(doc, raw) if type(doc) is str else doc
    except DAMAGE as e:
        raise file_error(path, e) from e


def count_blocks(path: str, max_doc_bytes: int) -> tuple[int, str | None]:
    """`(blocks, None)` of an OSCAR 2019 file, or with the count so far the error (`reason:
    detail`) that stopped it; blocks are split, not decoded."""
    return count_until_damage(path, split_blocks(read_chunks(path), max_doc_bytes))


# ---- OSCAR 21.09: text file + metadata file -------------------------------------------------

_OSCAR2109_TEXT = re.compile(r"(?P<stem>.+?)(?P<part>_part_\d+)?\.txt\.gz")


def oscar2109_meta_path(text_path: str) -> str:
    """The metadata file of an OSCAR 21.09 text file: `fr_part_3.txt.gz` ->
    `fr_meta_part_3.jsonl.gz`, `nn.txt.gz` -> `nn_meta.jsonl.gz` (the pairing the OSCAR-2109
    loading script checks)."""
    head, sep, name = text_path.rpartition("/")
    m = _OSCAR2109_TEXT.fullmatch(name)
    if m is None:
        raise FileError("input:missing_metadata", f"{text_path}: not an OSCAR 21.09 text file name")
    return f"{head}{sep}{m['stem']}_meta{m['part'] or ''}.jsonl.gz"


def _text_line(stream: IO[bytes], cap: int) -> bytes | None:
    """One line of an OSCAR 21.09 text file without its `\n` (a `\r` is text there), or None
    at the end of the file. Lines longer than `cap` are consumed and returned cut to `cap + 1`
    bytes, which is enough for the caller to see the document is too large."""
    line = stream.readline(cap + 1)
    if not line:
        return None
    if len(line) > cap and not line.endswith(b"\n"):
        while True:
            rest = stream.readline(compression.READ_BUFFER)
            if not rest or rest.endswith(b"\n"):
                break
        return line
    return line[:-1] if line.endswith(b"\n") else line


def read_oscar2109(
    path: str, text_key: str, start: int, stop: int | None, max_doc_bytes: int
) -> Iterator[tuple[int, Doc | Bad]]:
    """`(index, Doc | Bad)` of the documents `start <= index < stop` of an OSCAR 21.09 text
    file (`text_key` is unused). A record is a metadata line; its text is `nb_sentences` lines
    of the text file from line `offset` on. Both files stream side by side, so memory stays at
    one document."""
    buffer = compression.READ_BUFFER
    meta_path = _existing_meta_path(path)
    try:
        with open_binary(path) as text, closing(_metadata_chunks(meta_path)) as meta:
            line_no = 0
            index = -1
            blank = 0
            # metadata lines hold WARC headers, not text: the document cap is not theirs
            for raw in split_lines(meta, max(max_doc_bytes, buffer)):
                if raw is not None and (not raw or raw.isspace()):
                    blank += 1
                    continue
                index += 1
                if stop is not None and index >= stop:
                    return
                rec = _oscar2109_meta(raw)
                if type(rec) is not str and rec["offset"] < line_no:
                    rec = "input:invalid_record"  # its text would overlap the one before
                if type(rec) is str:
                    if index >= start:
                        yield index, Bad(rec, raw, index + blank + 1)
                    continue
                offset, count = rec["offset"], rec["nb_sentences"]
                while line_no < offset:
                    if _text_line(text, buffer) is None:
                        raise FileError(
                            "input:truncated_file",
                            f"{path}: text ends at line {line_no}, before offset {offset} of "
                            f"{meta_path} line {index + blank + 1}",
                        )
                    line_no += 1
                parts: list[bytes] = []
                size = 0
                for _ in range(count):
                    line = _text_line(text, max_doc_bytes)
                    if line is None:
                        raise FileError(
                            "input:truncated_file",
                            f"{path}: text ends inside document {index} (line {line_no})",
                        )
                    line_no += 1
                    size += len(line) + 1
                    if index >= start and size <= max_doc_bytes + 1:
                        parts.append(line)
                if index < start:
                    continue
                if size - 1 > max_doc_bytes:
                    yield index, Bad("input:too_large", raw, index + blank + 1)
                    continue
                yield index, _oscar2109_doc(rec, parts, raw, index + blank + 1)
            while text.read(buffer):  # to its end, so damage after the last document shows
                pass
    except DAMAGE as e:
        raise file_error(path, e) from e


def _metadata_chunks(meta_path: str) -> Iterator[bytes]:
    """`read_chunks` of a metadata file, whose damage is a FileError naming it: the compressed
    offset in the message is this file's, not the text file's."""
    try:
        yield from read_chunks(meta_path)
    except DAMAGE as e:
        raise file_error(meta_path, e) from e


def _oscar2109_doc(rec: dict, parts: list[bytes], raw: bytes, line: int) -> Doc | Bad:
    """The document of metadata record `rec` (metadata line `line`, bytes `raw`), whose text
    lines are `parts`."""
    headers = rec["headers"]
    meta = {
        "warc_record_id": headers.get("warc-record-id"),
        "warc_date": headers.get("warc-date"),
        "offset": rec["offset"],
        "nb_sentences": rec["nb_sentences"],
    }
    try:
        text = b"\n".join(parts).decode("utf-8")
    except UnicodeDecodeError:
        return Bad("input:invalid_utf8", raw, line)
    doc = make_doc(text, headers.get("warc-target-uri"), meta)
    return Bad(doc, raw, line) if type(doc) is str else doc


def _oscar2109_meta(raw: bytes | None) -> dict | str:
    """A metadata record (with `headers` a dict), or the reason it cannot be used."""
    if raw is None:
        return "input:too_large"
    try:
        rec = decode_json(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "input:invalid_utf8"
    except ValueError:
        return "input:invalid_json"
    except RecursionError:
        return "input:too_deep"
    if type(rec) is not dict:
        return "input:invalid_json"
    offset, count = rec.get("offset"), rec.get("nb_sentences")
    if type(offset) is not int or type(count) is not int or offset < 0 or count < 0:
        return "input:missing_text"
    headers = rec.get("headers")
    if headers is None:
        headers = {}
    if type(headers) is not dict:
        return "input:invalid_record"
    url = headers.get("warc-target-uri")
    if not (url is None or type(url) is str):
        return "input:invalid_record"
    rec["headers"] = headers
    return rec


def _existing_meta_path(path: str) -> str:
    """The metadata file of an OSCAR 21.09 text file; FileError `input:missing_metadata`
    where its name does not pair or a local one does not exist (a URL is found on reading)."""
    meta_path = oscar2109_meta_path(path)
    if not is_url(meta_path) and not os.path.exists(local_path(meta_path)):
        raise FileError("input:missing_metadata", f"{path}: no metadata file {meta_path}")
    return meta_path


def count_oscar2109(path: str, max_doc_bytes: int) -> tuple[int, str | None]:
    """`(documents, None)` of an OSCAR 21.09 text file (the non-blank lines of its metadata
    file), or with the count so far the error (`reason: detail`, naming the metadata file)
    that stopped it."""
    try:
        meta_path = _existing_meta_path(path)  # the reason the reader gives, not unreadable_file
    except FileError as e:
        return 0, str(e)
    # metadata lines hold WARC headers, not text: the document cap is not theirs
    return count_lines(meta_path, max(max_doc_bytes, compression.READ_BUFFER))
