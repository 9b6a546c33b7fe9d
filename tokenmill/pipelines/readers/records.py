"""What readers yield and raise: `Doc` (a record read), `Bad` (a record set aside, by reason),
`FileError` (a file read only in part, or not at all), and the helpers every format shares to
make them: `make_doc` (text and url checks), `get_dotted` (a nested text field), `decode_json`
and `meta_json`."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(slots=True)
class Doc:
    text: str
    url: str | None
    meta: dict
    nbytes: int  # UTF-8 size of text


class Bad(str):
    """A record set aside: the str is its reason (`input:...`); `raw` holds the record's bytes
    (None where they were not kept, as for a line over max_doc_bytes) and `line` its 1-based
    line in the (decompressed) file where records are lines.

    A str subclass so that code that counts reasons keeps working; only bad records pay for it.
    """

    raw: bytes | None
    line: int | None

    def __new__(cls, reason: str, raw: bytes | None = None, line: int | None = None):
        self = super().__new__(cls, reason)
        self.raw = raw
        self.line = line
        return self

    @property
    def reason(self) -> str:
        return str(self)


class FileError(Exception):
    """A file could not be read to its end (truncated or corrupt archive, I/O error), or could
    not be opened at all."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def get_dotted(obj: dict, dotted: str):
    """`obj["a"]["b"]` for `dotted` "a.b"; None where a level is missing or not a dict."""
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def make_doc(text, url, meta) -> Doc | str:
    """A Doc of a record's fields, or the reason (`input:...`) they make none: text that is
    not a str, empty or blank, or text or url that cannot be written as UTF-8. A url that is
    not a str is dropped."""
    if not isinstance(text, str):
        return "input:missing_text"
    if text.isascii():  # most web text: its length is its UTF-8 size, no copy needed
        nbytes = len(text)
    else:
        try:
            nbytes = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogates from JSON escapes
            return "input:invalid_utf8"
    if not text or text.isspace():  # (str.strip() would copy the whole text)
        return "input:empty"
    if url is not None:
        if not isinstance(url, str):
            url = None
        elif not url.isascii():
            try:
                url.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate cannot be written out
                return "input:invalid_utf8"
    return Doc(text, url, meta, nbytes)


def meta_json(meta: dict) -> str | None:
    """A document's meta as the JSON text stages store, or None where it cannot be written
    (nested deeper than the json module goes from here, or lone surrogates in a string)."""
    try:
        out = json.dumps(meta, ensure_ascii=False)
        if not out.isascii():
            out.encode("utf-8")
    except (RecursionError, ValueError, TypeError, UnicodeEncodeError):
        return None
    return out


# a str -> object decoder without json.loads' type checks and bytes sniffing
decode_json = json.JSONDecoder().decode
