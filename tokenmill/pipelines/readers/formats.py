"""The table of reader formats: one `FormatSpec` row per format, which everything that depends
on the format reads: `read_records` / `count_records` (the row's reader and record counter),
config validation (the names), raw stats (file name suffixes and first-record sniffing) and
the quality defaults (the rule sets a source of that format gets).

Adding a format is a reader (a function, or a `fields` function for a JSON lines layout) and
one row here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from tokenmill.pipelines.readers.hf import count_hf, read_hf
from tokenmill.pipelines.readers.jsonl import (
    c4_fields,
    count_lines,
    json_lines_reader,
    jsonl_fields,
    oscar2201_fields,
    oscar2301_fields,
    pile_fields,
)
from tokenmill.pipelines.readers.oscar import (
    count_blocks,
    count_oscar2109,
    read_oscar2019,
    read_oscar2109,
)
from tokenmill.pipelines.readers.parquet import count_parquet, read_parquet
from tokenmill.pipelines.readers.records import Bad, Doc

# (path, text_key, start, stop, max_doc_bytes) -> (index, Doc | Bad) of records start..stop-1;
# a generator, so nothing is opened before the first record is asked for
Reader = Callable[[str, str, int, "int | None", int], Iterator[tuple[int, Doc | Bad]]]
# (path, max_doc_bytes) -> (records, None), or (records before the damage, "reason: detail")
Counter = Callable[[str, int], tuple[int, "str | None"]]


@dataclass(frozen=True, slots=True)
class FormatSpec:
    """One reader format."""

    name: str  # what a config's `format:` says
    read: Reader
    count: Counter  # records without parsing them (partition planning)
    description: str
    # the rule sets a source of this format gets unless `quality.filter_sets` names its own
    default_rules: tuple[str, ...]
    # endings of its files as distributed (raw stats looks for them in folders)
    suffixes: tuple[str, ...] = ()
    # raw stats: the suffixes alone say the format (no JSON record to look at)
    by_suffix: bool = False
    # raw stats: whether a JSON lines file whose first record is `rec` is of this format; the
    # sniffs of the table's rows exclude one another, and `jsonl` takes what none claims
    sniff: Callable[[dict], bool] | None = None


def _oscar_record(rec: dict) -> bool:
    return "content" in rec and "warc_headers" in rec


def _oscar2201_record(rec: dict) -> bool:
    # 22.01 has `annotation` in its metadata, 23.01 `quality_warnings` (and maybe annotation)
    md = rec.get("metadata") or {}
    return _oscar_record(rec) and "annotation" in md and "quality_warnings" not in md


def _pile_record(rec: dict) -> bool:
    return "text" in rec and "meta" in rec and not _oscar_record(rec)


def _c4_record(rec: dict) -> bool:
    return (
        "text" in rec
        and "url" in rec
        and "timestamp" in rec
        and not _pile_record(rec)
        and not _oscar_record(rec)
    )


_GOPHER = ("basic", "gopher_repetition")  # already cleaned upstream: repetition rules only
_BIGSCIENCE = ("basic", "bigscience")
_JSON_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".json.gz", ".json.zst", ".zst")

_TABLE = (
    FormatSpec(
        "c4",
        json_lines_reader(c4_fields),
        count_lines,
        "C4 json.gz: text, url, timestamp",
        _GOPHER,
        (".json.gz",),
        sniff=_c4_record,
    ),
    FormatSpec(
        "pile",
        json_lines_reader(pile_fields),
        count_lines,
        "the Pile jsonl.zst: text, meta (pile_set_name)",
        _GOPHER,
        (".jsonl.zst",),
        sniff=_pile_record,
    ),
    FormatSpec(
        "oscar2301",
        json_lines_reader(oscar2301_fields),
        count_lines,
        "OSCAR 23.01 jsonl.zst: content, warc_headers, metadata",
        _BIGSCIENCE,
        (".jsonl.zst",),
        sniff=lambda r: _oscar_record(r) and not _oscar2201_record(r),
    ),
    FormatSpec(
        "oscar2201",
        json_lines_reader(oscar2201_fields),
        count_lines,
        "OSCAR 22.01 jsonl.gz: content, warc_headers, metadata with annotation",
        _BIGSCIENCE,
        (".jsonl.gz",),
        sniff=_oscar2201_record,
    ),
    FormatSpec(
        "oscar2109",
        read_oscar2109,
        count_oscar2109,
        "OSCAR 21.09 txt.gz of text lines + its _meta jsonl.gz (offset, nb_sentences)",
        _BIGSCIENCE,
        (".txt.gz",),
    ),
    FormatSpec(
        "oscar2019",
        read_oscar2019,
        count_blocks,
        "OSCAR 2019 txt(.gz): documents separated by blank lines",
        _BIGSCIENCE,
        (".txt", ".txt.gz"),
        by_suffix=True,
    ),
    FormatSpec(
        "jsonl",
        json_lines_reader(jsonl_fields),
        count_lines,
        "generic JSON lines (any codec): text at text_key (dotted), url",
        ("basic",),
        _JSON_SUFFIXES,
        sniff=lambda r: True,  # last of the sniffing rows: what no other format claims
    ),
    FormatSpec(
        "parquet",
        read_parquet,
        count_parquet,
        "Parquet: the text_key column, url column if any",
        ("basic",),
        (".parquet",),
        by_suffix=True,
    ),
    FormatSpec(
        "hf",
        read_hf,
        count_hf,
        "anything datasets.load_dataset(streaming=True) opens: a data file or a datasets: spec",
        ("basic",),
    ),
)

# name -> row, in table order: `fmt in FORMATS`, `", ".join(FORMATS)` and FORMATS[fmt] all work
FORMATS: Mapping[str, FormatSpec] = MappingProxyType({f.name: f for f in _TABLE})
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)
# every file name ending of a corpus file, for finding them in a folder
CORPUS_SUFFIXES: tuple[str, ...] = tuple(dict.fromkeys(s for f in _TABLE for s in f.suffixes))


def default_rules(fmt: str) -> tuple[str, ...]:
    """The quality rules a source of format `fmt` runs unless `quality.filter_sets` names its
    own (the table's `default_rules`; `basic` for a format the table does not know)."""
    spec = FORMATS.get(fmt)
    return spec.default_rules if spec is not None else ("basic",)


def default_filter_sets() -> dict[str, list[str]]:
    """The table's `default_rules` column: format name -> its rules."""
    return {name: list(spec.default_rules) for name, spec in FORMATS.items()}


def format_by_suffix(path: str) -> str | None:
    """The format a file's name alone says (Parquet, OSCAR 2019 text), or None: then it is JSON
    lines, to be told by `format_by_record`. Case and a URL's query are ignored."""
    name = path.lower().split("?", 1)[0]
    for f in _TABLE:
        if f.by_suffix and name.endswith(f.suffixes):
            return f.name
    return None


def format_by_record(rec: dict) -> str:
    """The JSON lines format whose first record is `rec` (`jsonl` if no other claims it)."""
    return next(f.name for f in _TABLE if f.sniff is not None and f.sniff(rec))


def unknown_format(fmt: str) -> ValueError:
    """The error for a format name not in the table, listing the known ones."""
    return ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
