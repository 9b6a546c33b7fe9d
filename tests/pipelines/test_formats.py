"""The readers' table of formats: what config validation, raw stats and the quality defaults
read from it agrees with what each of them did on its own, and dispatch by format name."""

from __future__ import annotations

import gzip
import io
import json

import pytest
import zstandard
from tmfixtures import DATA, dumps, write_gz_lines

from tokenmill.config import SAMPLE_CONFIG, ConfigError, Format, load_config
from tokenmill.filters.registry import QualityConfig
from tokenmill.pipelines import readers
from tokenmill.pipelines.readers import (
    CORPUS_SUFFIXES,
    FORMATS,
    compression,
    count_records,
    default_rules,
    expand_inputs,
    format_by_record,
    format_by_suffix,
    read_records,
)
from tokenmill.report import raw

NAMES = ("c4", "pile", "oscar2301", "oscar2201", "oscar2109", "oscar2019", "jsonl", "parquet", "hf")


def _first_record(path: str) -> dict:
    """A file's first record, read with gzip / zstandard and json (not our readers)."""
    data = open(path, "rb").read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    else:
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return json.loads(data.split(b"\n", 1)[0])


def test_config_takes_the_table_formats_and_names_them_in_one_line(tmp_path):
    assert tuple(FORMATS) == NAMES
    assert Format.__args__ == NAMES
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sources: [{name: web, format: csv, paths: [x]}]\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    known = ", ".join(repr(n) for n in NAMES[:-1]) + f" or {NAMES[-1]!r}"
    assert err.value.lines == [f"{cfg}: sources[0].format: must be one of {known} (got 'csv')"]


def test_default_rules_are_the_rule_sets_a_source_gets():
    quality = QualityConfig()
    for name, spec in FORMATS.items():
        assert quality.filter_names("src", default_rules(name)) == list(spec.default_rules), name
        assert spec.default_rules[0] == "basic", name


def test_the_bundled_corpora_are_told_by_name_and_first_record():
    cfg = load_config(SAMPLE_CONFIG)
    for src in cfg.sources:
        for path in expand_inputs(src.paths, src.name):
            assert path.endswith(FORMATS[src.format].suffixes), path
            assert format_by_suffix(path) is None, path  # JSON lines: their names do not say
            assert format_by_record(_first_record(path)) == src.format, path


@pytest.mark.parametrize(
    ("rec", "fmt"),
    [
        ({"text": "t", "url": "u", "timestamp": "2019"}, "c4"),
        ({"text": "t", "meta": {"pile_set_name": "Pile-CC"}}, "pile"),
        ({"text": "t", "meta": {}, "url": "u", "timestamp": "2019"}, "pile"),
        ({"content": "t", "warc_headers": {}, "metadata": {"annotation": None}}, "oscar2201"),
        ({"content": "t", "warc_headers": {}, "metadata": {"quality_warnings": None}}, "oscar2301"),
        (
            {"content": "t", "warc_headers": {}, "metadata": {"annotation": [], "categories": []}},
            "oscar2201",
        ),
        (
            {
                "content": "t",
                "warc_headers": {},
                "metadata": {"annotation": [], "quality_warnings": []},
            },
            "oscar2301",
        ),
        (
            {"content": "t", "warc_headers": {}, "text": "t", "url": "u", "timestamp": "x"},
            "oscar2301",
        ),
        ({"content": "t", "warc_headers": {}, "text": "t", "meta": {}}, "oscar2301"),
        ({"text": "t", "url": "u"}, "jsonl"),
        ({"body": {"text": "t"}}, "jsonl"),
        # OSCAR needs both content and warc_headers: either alone is another format
        ({"content": "t", "metadata": {"annotation": []}}, "jsonl"),
        ({"text": "t", "meta": {}, "warc_headers": {}}, "pile"),
    ],
)
def test_a_first_record_says_its_format_as_raw_stats_tells_it(tmp_path, rec, fmt):
    assert format_by_record(rec) == fmt
    path = write_gz_lines(tmp_path / "x.jsonl.gz", [dumps(rec)])
    assert raw.detect_format(str(path)) == fmt


def test_file_names_that_say_their_format():
    assert format_by_suffix("/d/part-0.parquet") == "parquet"
    assert format_by_suffix("/d/FR.TXT.GZ") == "oscar2019"
    assert format_by_suffix("s3://b/fr_part_1.txt?versionId=3") == "oscar2019"
    assert format_by_suffix("https://h/p.parquet?a=1?b=2") == "parquet"  # the first ? ends it
    assert format_by_suffix("s3://b/x.parquet.gz") is None
    assert format_by_suffix("/d/x.jsonl.zst") is None


def test_raw_stats_finds_exactly_the_corpus_files_in_a_folder(tmp_path):
    names = [f"a{s}" for s in CORPUS_SUFFIXES] + ["B.JSONL.GZ", "notes.md", "x.csv", "y.gz", "z"]
    for n in names:
        (tmp_path / "sub" / n).parent.mkdir(exist_ok=True)
        (tmp_path / "sub" / n).write_bytes(b"")
    expected = sorted(
        str(tmp_path / "sub" / n) for n in names if n.lower().endswith(CORPUS_SUFFIXES)
    )
    assert len(expected) == len(CORPUS_SUFFIXES) + 1
    assert raw.expand([str(tmp_path)]) == expected


def test_an_unknown_format_is_a_clear_error(tmp_path):
    path = write_gz_lines(tmp_path / "x.jsonl.gz", [b'{"text": "t"}'])
    records = read_records(str(path), "csv")  # like every reader, raises on the first record
    with pytest.raises(ValueError, match=r"unknown format 'csv'; known: c4, pile, .*, hf$"):
        next(records)
    with pytest.raises(ValueError, match=r"unknown format 'csv'; known: c4, pile, .*, hf$"):
        count_records(str(path), "csv")


def test_read_buffer_set_on_the_package_is_the_one_the_readers_use(tmp_path, monkeypatch):
    """Tests shrink READ_BUFFER on the package to cut records across chunks; it must reach
    the compression module, where it is read, and come back after."""
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"0123456789" * 3)
    monkeypatch.setattr(readers, "READ_BUFFER", 7)
    monkeypatch.setattr(readers, "ZSTD_PIECE", 5)
    assert (compression.READ_BUFFER, compression.ZSTD_PIECE) == (7, 5)
    assert [len(c) for c in readers.read_chunks(str(path))] == [7, 7, 7, 7, 2]
    monkeypatch.undo()
    assert (compression.READ_BUFFER, compression.ZSTD_PIECE) == (1 << 20, 1 << 18)
    assert [len(c) for c in readers.read_chunks(str(path))] == [30]


def test_every_row_reads_and_counts_the_records_a_plain_reading_finds():
    """Dispatch through the table: each JSON lines row on the bundled files of its layout."""
    for fmt, pattern in [
        ("c4", "c4/en/*.json.gz"),
        ("pile", "pile/train/*.jsonl.zst"),
        ("oscar2301", "oscar/fr_meta/*.jsonl.zst"),
        ("jsonl", "c4/en/*.json.gz"),
    ]:
        for path in sorted(str(p) for p in DATA.glob(pattern)):
            data = open(path, "rb").read()
            if path.endswith(".gz"):
                data = gzip.decompress(data)
            else:
                data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
            recs = [json.loads(line) for line in data.splitlines() if line.strip()]
            key = "content" if fmt.startswith("oscar") else "text"
            got = list(read_records(path, fmt))
            assert [d.text for _, d in got] == [r[key] for r in recs], path
            assert count_records(path, fmt) == (len(recs), None), path


def test_default_rules_per_format_and_for_one_the_table_does_not_know():
    from tokenmill.pipelines.readers.formats import (
        FORMAT_NAMES,
        default_filter_sets,
        default_rules,
    )

    assert default_rules("no-such-format") == ("basic",)
    sets = default_filter_sets()
    assert sorted(sets) == sorted(FORMAT_NAMES)
    assert all(sets[name] == list(default_rules(name)) for name in FORMAT_NAMES)
    assert sets["c4"] != sets["oscar2301"], "the table's rules differ by format"
