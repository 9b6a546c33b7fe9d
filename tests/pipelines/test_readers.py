"""Readers: every format read as distributed; bad records counted by reason, never dropped."""

from __future__ import annotations

import gzip
import io
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from test_readers_damage import complete_lines, stream_decode
from tmfixtures import dumps, sample_docs, write_gz_lines, write_zst_lines

from tokenmill.pipelines import readers
from tokenmill.pipelines.readers import (
    Doc,
    FileError,
    count_records,
    expand_inputs,
    parse_hf_spec,
    read_records,
)


def _texts(items):
    return [d.text for _, d in items if isinstance(d, Doc)]


def test_c4_records_come_back_with_url_and_timestamp(tmp_path):
    recs = sample_docs("c4")[:20]
    path = write_gz_lines(tmp_path / "c4-train.00000-of-01024.json.gz", [dumps(r) for r in recs])
    got = list(read_records(str(path), "c4"))
    assert [i for i, _ in got] == list(range(20))
    assert _texts(got) == [r["text"] for r in recs]
    assert got[3][1].url == recs[3]["url"]
    assert got[3][1].meta["timestamp"] == recs[3]["timestamp"]
    assert got[3][1].nbytes == len(recs[3]["text"].encode())


def test_pile_and_oscar_fields(tmp_path):
    pile = sample_docs("pile")[:5]
    p = write_zst_lines(tmp_path / "00.jsonl.zst", [dumps(r) for r in pile])
    got = list(read_records(str(p), "pile"))
    assert _texts(got) == [r["text"] for r in pile]
    assert got[0][1].meta["pile_set_name"] == pile[0]["meta"]["pile_set_name"]

    oscar = sample_docs("oscar")[:5]
    o = write_zst_lines(tmp_path / "fr_meta_part_1.jsonl.zst", [dumps(r) for r in oscar])
    got = list(read_records(str(o), "oscar2301"))
    assert _texts(got) == [r["content"] for r in oscar]
    assert got[0][1].url == oscar[0]["warc_headers"]["warc-target-uri"]
    assert got[0][1].meta["identification"] == oscar[0]["metadata"]["identification"]


def test_bad_records_get_reasons(tmp_path):
    good = sample_docs("c4")[0]
    lines = [
        dumps(good),
        b'{"text": "unterminated',
        b"[1, 2, 3]",
        b'{"url": "https://example.org"}',
        b'{"text": 42}',
        b'{"text": "  \\n  "}',
        b'{"text": "caf\xe9 latin-1 bytes"}',
        b'{"text": "lone surrogate \\ud800 here"}',
        b"",  # a blank line is no record
        dumps(good),
    ]
    path = write_gz_lines(tmp_path / "x.json.gz", lines)
    got = [r if isinstance(r, str) else "ok" for _, r in read_records(str(path), "c4")]
    assert got == [
        "ok",
        "input:invalid_json",
        "input:invalid_json",
        "input:missing_text",
        "input:missing_text",
        "input:empty",
        "input:invalid_utf8",
        "input:invalid_utf8",
        "ok",
    ]
    assert count_records(str(path), "c4") == (9, None)


def test_huge_line_is_set_aside_without_reading_it_whole(tmp_path):
    big = dumps({"text": "word " * 50_000})
    path = write_gz_lines(
        tmp_path / "x.json.gz", [dumps({"text": "small doc"}), big, dumps({"text": "after"})]
    )
    got = list(read_records(str(path), "c4", max_doc_bytes=10_000))
    assert [r if isinstance(r, str) else r.text for _, r in got] == [
        "small doc",
        "input:too_large",
        "after",
    ]


def _readline_lines(data: bytes, max_bytes: int) -> list[bytes | None]:
    """What `split_lines` yields, the way readers did it before: BufferedReader.readline."""
    stream, out = io.BufferedReader(io.BytesIO(data), 7), []
    while line := stream.readline(max_bytes + 1):
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while (rest := stream.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            out.append(None)
        else:
            out.append(line.rstrip(b"\r\n"))
    return out


def test_lines_are_the_same_whatever_the_chunk_boundaries():
    rng = random.Random(7)
    pieces = [b"", b"\r", b"a", b"ab\r", b"x" * 9, b"y" * 10, b"z" * 11, b"w" * 40, b" \t"]
    for _ in range(400):
        data = b"\n".join(rng.choice(pieces) for _ in range(rng.randrange(8)))
        data += rng.choice([b"", b"\n", b"\r\n", b"tail", b"q" * 25])
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randrange(6))))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        max_bytes = rng.choice([1, 3, 10, 100])
        assert list(readers.split_lines(iter(chunks), max_bytes)) == _readline_lines(
            data, max_bytes
        )


def test_zstd_frames_padding_and_small_chunks(tmp_path, monkeypatch):
    recs = sample_docs("pile")[:40]
    frames = [
        zstandard.ZstdCompressor(level=3).compress(b"".join(dumps(r) + b"\n" for r in part))
        for part in (recs[:13], recs[13:14], recs[14:])
    ]
    path = tmp_path / "00.jsonl.zst"
    path.write_bytes(b"".join(frames) + b"\x00" * 100)  # zero padding after the last frame
    whole = [r["text"] for r in recs]
    # headers and records cut across input chunks and decompressed pieces
    for step in (64, 1000, 1 << 14):
        monkeypatch.setattr(readers, "READ_BUFFER", step)
        monkeypatch.setattr(readers, "ZSTD_PIECE", step)
        assert _texts(read_records(str(path), "pile")) == whole
        assert count_records(str(path), "pile") == (40, None)
        # truncated inside the first frame, then inside the third: exactly the records a
        # streaming decoder fed byte by byte gets come back, then the error
        for cut in (len(frames[0]) - 1, len(frames[0]) + len(frames[1]) + 9):
            data = b"".join(frames)[:cut]
            path.write_bytes(data)
            out, damaged = stream_decode(data, "zst")
            n = len(complete_lines(out, damaged))
            got = []
            with pytest.raises(FileError):
                got.extend(read_records(str(path), "pile"))
            assert damaged and _texts(got) == whole[:n]
            assert count_records(str(path), "pile")[0] == n
            path.write_bytes(b"".join(frames) + b"\x00" * 100)


def _zstd_decompressobj(data: bytes) -> tuple[bytes, bool]:
    """(output, damaged) the way readers decompressed zstd before: decompressobj per frame."""
    out, obj = [], zstandard.ZstdDecompressor().decompressobj()
    try:
        while data:
            if obj.eof:
                obj = zstandard.ZstdDecompressor().decompressobj()
            out.append(obj.decompress(data))
            data = obj.unused_data if obj.eof else b""
    except zstandard.ZstdError:
        return b"".join(out), True
    return b"".join(out), not obj.eof


def test_zstd_end_of_frame_is_told_at_every_cut(monkeypatch):
    rng = random.Random(3)
    cctx = zstandard.ZstdCompressor(level=3, write_checksum=True, write_content_size=False)
    data = (
        cctx.compress(b"some text, some more text\n" * 40)  # a compressed block
        + b"\x50\x2a\x4d\x18\x05\x00\x00\x00skip!"  # a skippable frame
        + zstandard.ZstdCompressor(level=1).compress(rng.randbytes(700))  # a raw block
        + cctx.compress(b"a" * 300_000)  # RLE blocks, more than one
    )
    for buffer in (7, 1 << 20):
        monkeypatch.setattr(readers, "READ_BUFFER", buffer)
        for cut in range(len(data) + 1):
            out, damaged = [], False
            try:
                out.extend(readers.inflate(io.BytesIO(data[:cut]), "zst"))
            except (EOFError, zstandard.ZstdError):
                damaged = True
            assert (b"".join(out), damaged) == _zstd_decompressobj(data[:cut]), cut


@pytest.mark.parametrize("suffix", ["json.gz", "jsonl.zst"])
def test_truncated_archive_keeps_what_was_readable_then_reports(tmp_path, suffix):
    recs = sample_docs("c4")  # ~1 MB: zstd emits whole 128 KB blocks, so half must hold some
    writer = write_gz_lines if suffix.endswith("gz") else write_zst_lines
    path = writer(tmp_path / f"x.{suffix}", [dumps(r) for r in recs])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    got = []
    with pytest.raises(FileError) as err:
        for item in read_records(str(path), "c4"):
            got.append(item)
    assert err.value.reason == "input:truncated_file"
    out, damaged = stream_decode(data[: len(data) // 2], "gz" if suffix.endswith("gz") else "zst")
    n_readable = len(complete_lines(out, damaged))
    assert damaged and n_readable > 0
    assert _texts(got) == [r["text"] for r in recs[:n_readable]]
    n, error = count_records(str(path), "c4")
    assert error is not None and n == n_readable


def test_slices_partition_a_file_exactly(tmp_path):
    recs = sample_docs("pile")[:47]
    path = write_zst_lines(tmp_path / "00.jsonl.zst", [dumps(r) for r in recs])
    n, _ = count_records(str(path), "pile")
    assert n == 47
    pieces = []
    for start in range(0, n, 10):
        stop = start + 10 if start + 10 < n else None
        pieces.extend(read_records(str(path), "pile", start=start, stop=stop))
    assert [i for i, _ in pieces] == list(range(47))
    assert _texts(pieces) == [r["text"] for r in recs]


def test_oscar2019_blank_line_separated_documents(tmp_path):
    docs = [
        "First paragraph of doc one.\nSecond line of doc one.",
        "Doc two, one line.",
        "Doc three.\nWith two lines.",
    ]
    path = tmp_path / "fr.txt.gz"
    with gzip.open(path, "wb") as f:
        f.write("\n\n".join(docs).encode() + b"\n")
    got = list(read_records(str(path), "oscar2019"))
    assert _texts(got) == docs
    assert count_records(str(path), "oscar2019") == (3, None)


def test_generic_jsonl_and_parquet_with_text_key(tmp_path):
    recs = [
        {"body": {"content": f"document number {i}"}, "url": f"https://e/{i}"} for i in range(5)
    ]
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    got = list(read_records(str(path), "jsonl", text_key="body.content"))
    assert _texts(got) == [r["body"]["content"] for r in recs]
    assert got[1][1].url == "https://e/1"

    pq.write_table(pa.table({"content": ["a document", None, "another one"]}), tmp_path / "x.pq")
    got = list(read_records(str(tmp_path / "x.pq"), "parquet", text_key="content"))
    assert [r if isinstance(r, str) else r.text for _, r in got] == [
        "a document",
        "input:missing_text",
        "another one",
    ]
    with pytest.raises(FileError):
        list(read_records(str(tmp_path / "x.pq"), "parquet", text_key="nope"))


# ---- inputs beyond local paths: file://, fsspec URLs -------------------------------------------


@pytest.fixture
def memfs():
    import fsspec

    fs = fsspec.filesystem("memory")
    yield fs
    fs.store.clear()  # the memory filesystem is process-wide
    fs.pseudo_dirs[:] = [""]


def _c4_bytes(tmp_path, name, recs):
    return write_gz_lines(tmp_path / name, [dumps(r) for r in recs]).read_bytes()


def test_fsspec_urls_glob_read_and_count(tmp_path, memfs):
    recs = sample_docs("c4")[:30]
    for k in range(2):
        data = _c4_bytes(tmp_path, f"{k}.json.gz", recs[k * 15 : (k + 1) * 15])
        memfs.pipe(f"/corpus/c4/en/c4-train.{k:05d}-of-01024.json.gz", data)
    memfs.pipe("/corpus/c4/en/README.md", b"not an input")

    urls = expand_inputs(["memory://corpus/c4/en/*.json.gz"], "c4")
    assert [u.rsplit("/", 1)[1] for u in urls] == [
        "c4-train.00000-of-01024.json.gz",
        "c4-train.00001-of-01024.json.gz",
    ]
    assert all(u.startswith("memory://") for u in urls)
    got = [d for u in urls for _, d in read_records(u, "c4")]
    assert [d.text for d in got] == [r["text"] for r in recs]
    assert count_records(urls[1], "c4") == (15, None)
    assert expand_inputs([urls[0]], "c4") == [urls[0]]  # a plain URL, no glob

    data = memfs.cat(urls[0].removeprefix("memory://"))
    memfs.pipe("/corpus/broken.json.gz", data[: len(data) // 2])
    with pytest.raises(FileError) as e:
        list(read_records("memory://corpus/broken.json.gz", "c4"))
    assert e.value.reason == "input:truncated_file"


def test_file_urls_become_local_paths(tmp_path):
    recs = sample_docs("pile")[:4]
    p = write_zst_lines(tmp_path / "train" / "00.jsonl.zst", [dumps(r) for r in recs])
    got = expand_inputs([f"file://{tmp_path}/train/*.jsonl.zst"], "pile")
    assert got == [str(p)]
    assert _texts(read_records(f"file://{p}", "pile")) == [r["text"] for r in recs]


def test_expand_inputs_keeps_order_drops_repeats_and_reports_misses(tmp_path, memfs):
    a = write_gz_lines(tmp_path / "a.json.gz", [b"{}"])
    b = write_gz_lines(tmp_path / "b.json.gz", [b"{}"])
    assert expand_inputs([str(b), str(tmp_path / "*.json.gz")], "s") == [str(b), str(a)]
    with pytest.raises(FileNotFoundError, match="source 'mine'"):
        expand_inputs([str(tmp_path / "none-*.gz")], "mine")
    with pytest.raises(FileNotFoundError, match="memory://nowhere"):
        expand_inputs(["memory://nowhere/*.gz"], "mine")


# ---- hf: datasets streaming, local files only (no network) ---------------------------------------


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)


def test_hf_format_reads_local_json_and_parquet(tmp_path, offline):
    rows = [
        {"text": f"document {i}", "url": f"https://e/{i}", "source_id": i, "meta": {"k": i}}
        for i in range(6)
    ]
    rows[3]["text"] = None
    path = tmp_path / "part-0.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    got = list(read_records(str(path), "hf"))
    assert [i for i, _ in got] == list(range(6))
    assert got[3][1] == "input:missing_text"
    assert got[1][1].text == "document 1" and got[1][1].url == "https://e/1"
    assert got[1][1].meta == {"source_id": 1, "meta": {"k": 1}}
    assert _texts(read_records(str(path), "hf", start=2, stop=5)) == ["document 2", "document 4"]
    assert count_records(str(path), "hf") == (6, None)

    table = pa.table({"content": ["one doc", "two docs", "   "], "url": ["u1", None, "u3"]})
    pq.write_table(table, tmp_path / "part-0.parquet")
    got = list(read_records(str(tmp_path / "part-0.parquet"), "hf", text_key="content"))
    assert [d if isinstance(d, str) else d.text for _, d in got] == [
        "one doc",
        "two docs",
        "input:empty",
    ]
    assert count_records(str(tmp_path / "part-0.parquet"), "hf") == (3, None)


def test_hf_spec_is_read_shard_by_shard(tmp_path, offline):
    texts = []
    for k in range(3):
        lines = [{"text": f"file {k} doc {i}"} for i in range(4)]
        texts += [r["text"] for r in lines]
        (tmp_path / f"d{k}.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    spec = f"datasets:json?data_files={tmp_path}/*.jsonl&split=train"

    shards = expand_inputs([spec], "web")
    assert len(shards) == 3
    assert [(parse_hf_spec(s).shard, parse_hf_spec(s).num_shards) for s in shards] == [
        (0, 3),
        (1, 3),
        (2, 3),
    ]
    assert parse_hf_spec(shards[0]).data_files == [f"{tmp_path}/*.jsonl"]
    got = [d.text for s in shards for _, d in read_records(s, "hf")]
    assert got == texts
    assert count_records(shards[2], "hf") == (4, None)
    assert expand_inputs([shards[1]], "web") == [shards[1]]


def test_hf_spec_parsing():
    s = parse_hf_spec("datasets:allenai/c4?name=en&split=validation&shard=3&num_shards=8")
    assert (s.name, s.config, s.split, s.shard, s.num_shards) == (
        "allenai/c4",
        "en",
        "validation",
        3,
        8,
    )
    assert parse_hf_spec(s.to_string()) == s
    with pytest.raises(ValueError):
        parse_hf_spec("datasets:x?bogus=1")


# ---- OSCAR 22.01 and 21.09 ----------------------------------------------------------------------


def test_oscar2201_fields(tmp_path):
    recs = []
    for r in sample_docs("oscar")[:4]:
        md = r["metadata"]
        recs.append(
            {
                "content": r["content"],
                "warc_headers": r["warc_headers"],
                "metadata": {
                    "identification": md["identification"],
                    "annotation": ["short_sentences"],
                    "sentence_identifications": [],
                },
            }
        )
    path = write_gz_lines(tmp_path / "fr_meta_part_1.jsonl.gz", [dumps(r) for r in recs])
    got = list(read_records(str(path), "oscar2201"))
    assert _texts(got) == [r["content"] for r in recs]
    assert got[0][1].url == recs[0]["warc_headers"]["warc-target-uri"]
    assert got[0][1].meta["annotation"] == ["short_sentences"]


def _oscar2109(folder, docs: list[str | bytes], bad_meta_at: int | None = None):
    """Text file + metadata file as OSCAR 21.09 packs them: documents separated by a blank line,
    each meta record giving its first line (offset) and line count (nb_sentences)."""
    body: list[bytes] = []
    metas: list[bytes] = []
    for i, d in enumerate(docs):
        raw = d if isinstance(d, bytes) else d.encode()
        lines = raw.split(b"\n")
        meta = {
            "headers": {"warc-target-uri": f"https://e/{i}", "warc-record-id": f"<id{i}>"},
            "offset": len(body),
            "nb_sentences": len(lines),
        }
        metas.append(b'{"offset": broken' if i == bad_meta_at else dumps(meta))
        body += lines + [b""]
    text = write_gz_lines(folder / "fr_part_1.txt.gz", body)
    write_gz_lines(folder / "fr_meta_part_1.jsonl.gz", metas)
    return str(text)


def test_oscar2109_reads_documents_by_offset(tmp_path):
    docs = [
        "First document, line one.\nLine two.",
        "Second\rwith a carriage return inside.",
        b"Third \xff not utf-8",
        "Fourth, after a broken metadata line.\nAnd more.\nAnd more.",
        "Fifth.",
    ]
    path = _oscar2109(tmp_path, docs, bad_meta_at=2)
    got = list(read_records(path, "oscar2109"))
    assert [d if isinstance(d, str) else d.text for _, d in got] == [
        docs[0],
        docs[1],
        "input:invalid_json",
        docs[3],
        docs[4],
    ]
    assert got[3][1].url == "https://e/3"
    assert got[3][1].meta["nb_sentences"] == 3
    assert count_records(path, "oscar2109") == (5, None)
    sliced = list(read_records(path, "oscar2109", start=3, stop=5))
    assert [i for i, _ in sliced] == [3, 4] and _texts(sliced) == [docs[3], docs[4]]
    big = list(read_records(path, "oscar2109", max_doc_bytes=30))
    assert big[3][1] == "input:too_large" and big[4][1].text == "Fifth."

    path2 = _oscar2109(tmp_path / "x", docs[:2] + [b"Bad \xff bytes"])
    assert list(read_records(path2, "oscar2109"))[2][1] == "input:invalid_utf8"


def test_oscar2109_needs_its_metadata_file(tmp_path):
    path = write_gz_lines(tmp_path / "nn.txt.gz", [b"text"])
    with pytest.raises(FileError) as e:
        list(read_records(str(path), "oscar2109"))
    assert e.value.reason == "input:missing_metadata" and "nn_meta.jsonl.gz" in e.value.detail
