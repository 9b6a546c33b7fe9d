"""OUT/manifest.json without a prepare run: `build_manifest` over shards written here, checked
against the module's spec computed in plain Python (hashlib, the tokenizer's own vocabulary,
the mixture arithmetic); `load_manifest` / `check_manifest` on every way a file can fail to be
a manifest, each with its one-line message."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tmfixtures import sample_docs
from tokenizers import Tokenizer

from tokenmill.config import Config, SourceConfig
from tokenmill.shards.manifest import (
    ManifestError,
    ShardsChanged,
    build_manifest,
    check_manifest,
    data_path,
    load_manifest,
    manifest_path,
)
from tokenmill.shards.megatron import ShardWriter
from tokenmill.shards.verify import REWRITE_HINT
from tokenmill.tokenize.bpe import train_bpe

EOD, PAD = "<|endoftext|>", "<|pad|>"
REDO = "rerun `tokenmill prepare` to write a complete one"


# -- build_manifest -----------------------------------------------------------------------


def _config(weights: dict[str, float]) -> Config:
    return Config(
        sources=[
            SourceConfig(name=n, format="jsonl", paths=[f"{n}.jsonl"], weight=w)
            for n, w in weights.items()
        ]
    )


def _shard(out: Path, rel: str, sizes: list[int], docs: bool = True) -> dict:
    """A shard of `sizes` (uint16 tokens) under OUT; its count as the shard stage gives it."""
    prefix = out / rel
    with ShardWriter(prefix, np.uint16) as w:
        for k, n in enumerate(sizes):
            w.write(np.full(n, k % 7, dtype=np.uint16))
    if docs:
        pq.write_table(
            pa.table({"id": [str(i) for i in range(len(sizes))]}), f"{prefix}.docs.parquet"
        )
    return {"prefix": str(prefix), "documents": len(sizes), "tokens": sum(sizes)}


def _files(prefix: str) -> dict:
    """What the manifest promises for a shard's files: each one's size and SHA-256."""
    out = {}
    for suffix in ("bin", "idx", "docs.parquet"):
        p = Path(f"{prefix}.{suffix}")
        if p.exists():
            data = p.read_bytes()
            out[suffix] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return out


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory) -> Path:
    texts = [r["text"] for r in sample_docs("c4")[:200]]
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_bpe(texts, 400, [EOD, PAD]).save(str(path))
    return path


@pytest.fixture
def out(tmp_path, tokenizer_json) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / "tokenizer.json").write_bytes(tokenizer_json.read_bytes())
    return out


def test_build_manifest_matches_the_spec(out):
    cfg = _config({"web": 3.0, "code": 1.0, "unused": 5.0})
    counts = [
        {**_shard(out, "shards/web/s_00000", [4, 6]), "source": "web", "lang": "en"},
        {**_shard(out, "shards/web/s_00001", [30], docs=False), "source": "web", "lang": None},
        {**_shard(out, "shards/code/s_00000", [5, 5, 2]), "source": "code"},
        {**_shard(out, "shards/code/s_00001", [0, 0]), "source": "code", "lang": ""},
    ]
    m = build_manifest(cfg, out, counts, jobs=2)

    vocab = json.loads((out / "tokenizer.json").read_text())
    ids = {t["content"]: t["id"] for t in vocab["added_tokens"]}
    vocab_size = len(vocab["model"]["vocab"])
    assert vocab_size < 65_500
    assert m["format"] == "tokenmill-manifest" and m["version"] == 2
    assert m["tokenizer"] == {
        "path": "tokenizer.json",
        "vocab_size": vocab_size,
        "eod_token": EOD,
        "eod_id": ids[EOD],
        "pad_id": ids[PAD],
        "dtype": "uint16",
    }
    assert m["shards"] == [
        {
            "prefix": "shards/web/s_00000",
            "source": "web",
            "lang": "en",
            "documents": 2,
            "tokens": 10,
            "files": _files(counts[0]["prefix"]),
        },
        {
            "prefix": "shards/web/s_00001",
            "source": "web",
            "documents": 1,
            "tokens": 30,
            "files": _files(counts[1]["prefix"]),
        },
        {
            "prefix": "shards/code/s_00000",
            "source": "code",
            "documents": 3,
            "tokens": 12,
            "files": _files(counts[2]["prefix"]),
        },
        {
            "prefix": "shards/code/s_00001",
            "source": "code",
            "documents": 2,
            "tokens": 0,
            "files": _files(counts[3]["prefix"]),
        },
    ]
    assert set(m["shards"][1]["files"]) == {"bin", "idx"}  # no sidecar, none recorded
    # the mixture: the configured weights of the sources that have tokens, summing to 1
    assert m["mixture"] == {"web": 0.75, "code": 0.25}
    assert m["sources"] == {
        "web": {"tokens": 40, "weight": 0.75},
        "code": {"tokens": 12, "weight": 0.25},
        "unused": {"tokens": 0, "weight": 0.0},
    }
    assert m["budget"] is None
    # each source's weight shared among its shards by tokens; a shard without tokens left out
    assert m["data_path"] == (
        f"{0.75 * 10 / 40:.6g} shards/web/s_00000 {0.75 * 30 / 40:.6g} shards/web/s_00001 "
        f"{0.25:.6g} shards/code/s_00000"
    )
    check_manifest(m)  # what build_manifest writes, load_manifest reads


def test_build_manifest_of_one_source_and_without_sources_left(out):
    counts = [{**_shard(out, "shards/a/s_00000", [1]), "source": "a"}]  # one token
    m = build_manifest(_config({"a": 0.2, "b": 0.3}), out, counts)
    assert m["mixture"] == {"a": 1.0} and m["data_path"] == "1 shards/a/s_00000"
    assert m["sources"] == {"a": {"tokens": 1, "weight": 1.0}, "b": {"tokens": 0, "weight": 0.0}}
    m = build_manifest(_config({"a": 0.2}), out, [])
    assert m["shards"] == [] and m["mixture"] == {} and m["data_path"] == ""
    assert m["sources"] == {"a": {"tokens": 0, "weight": 0.0}}


def test_recorded_checksums_are_kept_not_recomputed(out):
    """Counts that carry `files` (hashed by the shard writer) go into the manifest as given."""
    c = {**_shard(out, "shards/a/s_00000", [3, 4]), "source": "a"}
    recorded = {k: {**v, "sha256": "ab" * 32} for k, v in _files(c["prefix"]).items()}
    m = build_manifest(_config({"a": 1.0}), out, [{**c, "files": recorded}])
    assert m["shards"][0]["files"] == recorded


def test_recorded_shards_are_not_read_again(out, monkeypatch):
    """Hashing is for counts without `files` only: the others were hashed by the worker that
    wrote them, and a large output is not read twice."""
    from tokenmill.shards import verify

    hashed, real = [], verify.sha256_file

    def recording(path, *args, **kwargs):
        hashed.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(verify, "sha256_file", recording)
    a = {**_shard(out, "shards/a/s_00000", [3]), "source": "a"}
    b = {**_shard(out, "shards/a/s_00001", [4]), "source": "a"}
    m = build_manifest(_config({"a": 1.0}), out, [{**a, "files": _files(a["prefix"])}, b])
    assert sorted(hashed) == ["s_00001.bin", "s_00001.docs.parquet", "s_00001.idx"]
    assert [s["files"] for s in m["shards"]] == [_files(a["prefix"]), _files(b["prefix"])]


def test_a_shard_of_the_wrong_token_dtype_stops_the_manifest(out):
    """The tokenizer's vocabulary needs uint16 shards: an int32 one is not what the shard
    stage wrote, however whole it is."""
    with ShardWriter(out / "shards/a/s_00000", np.int32) as w:
        w.write(np.array([1, 2]))
    c = {"prefix": str(out / "shards/a/s_00000"), "source": "a", "documents": 1, "tokens": 2}
    with pytest.raises(ShardsChanged) as e:
        build_manifest(_config({"a": 1.0}), out, [c])
    assert (
        "1 of 1 shards in" in str(e.value)
        and "shards/a/s_00000: .idx says int32 tokens but the manifest's tokenizer needs uint16"
        in str(e.value)
    )


def test_int32_tokenizer(out, tmp_path):
    """A vocabulary of 65,500 or more: the manifest says int32 (Megatron's threshold)."""
    vocab = json.loads((out / "tokenizer.json").read_text())
    words = vocab["model"]["vocab"]
    extra = 65_500 - len(words)
    for i in range(extra):
        words[f"zz{i}"] = len(words)
    (out / "tokenizer.json").write_text(json.dumps(vocab))
    with ShardWriter(out / "shards/a/s", np.int32) as w:
        w.write(np.array([1, 2]))
    c = {"prefix": str(out / "shards/a/s"), "source": "a", "documents": 1, "tokens": 2}
    m = build_manifest(_config({"a": 1.0}), out, [c])
    assert (
        m["tokenizer"]["vocab_size"]
        == Tokenizer.from_file(str(out / "tokenizer.json")).get_vocab_size()
        >= 65_500
    )
    assert m["tokenizer"]["dtype"] == "int32"


def test_shards_damaged_since_they_were_written_stop_the_manifest(out):
    counts = [{**_shard(out, f"shards/a/s_{i:05d}", [3, 4]), "source": "a"} for i in range(5)]
    for i in (0, 2, 3, 4):  # four of five shards lose their last token
        b = Path(counts[i]["prefix"] + ".bin")
        b.write_bytes(b.read_bytes()[:-2])
    with pytest.raises(ShardsChanged) as e:
        build_manifest(_config({"a": 1.0}), out, counts)
    problem = (
        ".bin is 12 bytes but the index's sizes add up to 7 uint16 tokens = 14 bytes (truncated)"
    )
    shown = "; ".join(f"shards/a/s_{i:05d}: {problem}" for i in (0, 2, 3))
    assert str(e.value) == (
        f"4 of 5 shards in {out} no longer match what the shard stage wrote: {shown}. "
        f"The manifest was not written; {REWRITE_HINT}"
    )


def test_data_path_weights():
    shards = [
        {"prefix": "p/a0", "source": "a", "tokens": 1},
        {"prefix": "p/b0", "source": "b", "tokens": 7},
        {"prefix": "p/a1", "source": "a", "tokens": 2},
        {"prefix": "p/c0", "source": "c", "tokens": 0},
    ]
    got = data_path(shards, {"a": 2 / 3, "b": 1 / 3}, {"a": 3, "b": 7, "c": 0})
    assert got == "0.222222 p/a0 0.333333 p/b0 0.444444 p/a1"
    assert data_path([], {}, {}) == ""


# -- manifest_path and load_manifest ------------------------------------------------------


def test_manifest_path(tmp_path):
    assert manifest_path(tmp_path) == tmp_path / "manifest.json"
    assert manifest_path(str(tmp_path)) == tmp_path / "manifest.json"
    f = tmp_path / "elsewhere.json"
    assert manifest_path(f) == f  # a file, whether or not it exists yet


def _valid(version: int = 2) -> dict:
    files = {"bin": {"bytes": 8, "sha256": "0" * 64}, "idx": {"bytes": 82, "sha256": "f" * 64}}
    shard = {"prefix": "shards/a/s_00000", "source": "a", "documents": 2, "tokens": 4}
    if version >= 2:
        shard["files"] = files
    m = {
        "version": version,
        "tokenizer": {"vocab_size": 1000, "dtype": "uint16"},
        "shards": [shard],
        "mixture": {"a": 1.0},
        "data_path": "1 shards/a/s_00000",
    }
    if version >= 2:
        m["format"] = "tokenmill-manifest"
    return m


def test_load_manifest_reads_a_folder_or_a_file(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(_valid()))
    assert load_manifest(tmp_path) == _valid()
    (tmp_path / "other.json").write_text(json.dumps(_valid(1)))
    assert load_manifest(tmp_path / "other.json") == _valid(1)


def test_load_manifest_of_a_missing_file(tmp_path):
    with pytest.raises(ManifestError) as e:
        load_manifest(tmp_path)
    assert str(e.value) == (
        f"{tmp_path / 'manifest.json'} not found: run `tokenmill prepare --out {tmp_path}` first"
    )


def test_load_manifest_of_bytes_that_are_not_utf8_or_not_json(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_bytes(b'{"version": "\xff"}')
    with pytest.raises(ManifestError, match="^") as e:
        load_manifest(path)
    assert str(e.value).startswith(f"{path} is not a tokenmill manifest: not UTF-8 text (")
    assert isinstance(e.value.__cause__, UnicodeDecodeError)
    path.write_text('{"format": "tokenmill-manifest", "ver')
    with pytest.raises(ManifestError) as e:
        load_manifest(path)
    assert str(e.value).startswith(f"{path} is not valid JSON (")
    assert str(e.value).endswith(
        "): a run that stopped while writing it leaves none; rerun `tokenmill prepare` to "
        "write it again"
    )
    assert isinstance(e.value.__cause__, json.JSONDecodeError)


def test_load_manifest_checks_what_it_read(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({**_valid(), "version": 3}))
    with pytest.raises(ManifestError) as e:
        load_manifest(tmp_path)
    assert str(e.value) == (
        f"{path}: manifest version 3 is not one this tokenmill reads (1, 2): upgrade "
        f"tokenmill, or {REDO}"
    )


@pytest.fixture
def ascii_locale():
    """LC_CTYPE=C: Python's default text encoding becomes ASCII (no UTF-8 mode here)."""
    import locale
    import sys

    if sys.flags.utf8_mode:
        pytest.skip("Python's UTF-8 mode ignores the locale")
    old = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    assert locale.getpreferredencoding(False) != "UTF-8"
    yield
    locale.setlocale(locale.LC_CTYPE, old)


def test_load_manifest_reads_utf8_whatever_the_locale(tmp_path, ascii_locale):
    m = _valid()
    m["shards"][0]["source"] = "café"
    m["mixture"] = {"café": 1.0}
    (tmp_path / "manifest.json").write_bytes(json.dumps(m, ensure_ascii=False).encode())
    assert load_manifest(tmp_path) == m


# -- check_manifest: one line for each way a file is not a manifest ------------------------


def _message(data, path="m.json") -> str:
    with pytest.raises(ManifestError) as e:
        check_manifest(data, path)
    return str(e.value)


def test_valid_manifests_pass():
    for version in (1, 2):
        check_manifest(_valid(version))
    m = _valid()
    m["shards"][0]["files"]["docs.parquet"] = {"bytes": 0, "sha256": "a" * 64}
    m["shards"][0].update(documents=0, tokens=0, prefix="a/./b..c/d")
    m["tokenizer"]["dtype"] = "int32"
    check_manifest(m)
    v1 = _valid(1)
    v1["shards"][0]["files"] = _valid()["shards"][0]["files"]  # version 1 may carry files
    check_manifest(v1)
    check_manifest({**_valid(), "shards": []})


def test_not_a_json_object():
    for data, kind in (
        ([], "a list"),
        ("x", "a string"),
        (None, "null"),
        (3, "a number"),
        (2.5, "a number"),
        (True, "a number"),
    ):
        assert _message(data) == (
            f"m.json is not a tokenmill manifest: it holds {kind}, not a JSON object"
        )


def test_no_format_or_version():
    assert _message({"tokenizer": {}}) == (
        "m.json is not a tokenmill manifest: it has no 'format' or 'version' key; give the "
        "manifest.json (or OUT folder) that `tokenmill prepare` wrote"
    )


def test_another_format():
    assert _message({**_valid(), "format": "mosaic"}) == (
        "m.json is not a tokenmill manifest: its format is 'mosaic', not 'tokenmill-manifest'"
    )


@pytest.mark.parametrize("version", [None, 0, 3, 99, -1, "2", 2.0, True, [2]])
def test_unreadable_versions(version):
    assert _message({**_valid(), "version": version}) == (
        f"m.json: manifest version {version!r} is not one this tokenmill reads (1, 2): "
        f"upgrade tokenmill, or {REDO}"
    )


def test_version_2_needs_its_format():
    m = _valid()
    del m["format"]
    assert _message(m) == "m.json is not a tokenmill manifest: version 2 without 'format'"
    v1 = _valid(1)
    assert "format" not in v1
    check_manifest(v1)


def test_missing_keys():
    m = _valid()
    del m["shards"]
    assert _message(m) == f"m.json lacks key 'shards': {REDO}"
    del m["data_path"]
    assert _message(m) == f"m.json lacks keys 'shards', 'data_path': {REDO}"
    for k in ("tokenizer", "mixture"):
        del m[k]
    assert _message(m) == (
        f"m.json lacks keys 'tokenizer', 'shards', 'mixture', 'data_path': {REDO}"
    )


@pytest.mark.parametrize(
    "key,value,kind",
    [
        ("tokenizer", [], "JSON object"),
        ("shards", {}, "JSON list"),
        ("mixture", [], "JSON object"),
        ("data_path", None, "string"),
    ],
)
def test_keys_of_the_wrong_type(key, value, kind):
    assert _message({**_valid(), key: value}) == f"m.json: {key!r} should be a {kind}: {REDO}"


@pytest.mark.parametrize("vocab", ["missing", None, "1000", 1000.0, True])
def test_vocab_size_must_be_an_integer(vocab):
    m = _valid()
    if vocab == "missing":
        del m["tokenizer"]["vocab_size"]
    else:
        m["tokenizer"]["vocab_size"] = vocab
    assert _message(m) == f"m.json: tokenizer.vocab_size is missing or not an integer: {REDO}"


@pytest.mark.parametrize("dtype", ["missing", "int64", "UINT16", None])
def test_token_dtype_must_be_megatrons(dtype):
    m = _valid()
    if dtype == "missing":
        del m["tokenizer"]["dtype"]
        dtype = None
    else:
        m["tokenizer"]["dtype"] = dtype
    assert _message(m) == (f"m.json: tokenizer.dtype is {dtype!r}, not 'uint16' or 'int32': {REDO}")


def _shard_message(change, version: int = 2, index: int = 1) -> str:
    m = _valid(version)
    m["shards"].append(json.loads(json.dumps(m["shards"][0])))
    change(m["shards"][index])
    return _message(m)


def test_a_shard_entry_that_is_not_an_object():
    m = _valid()
    m["shards"].append(["shards/a/s_00001"])
    assert _message(m) == f"m.json: shards[1] is not a JSON object: {REDO}"


@pytest.mark.parametrize("key", ["prefix", "source", "documents", "tokens"])
def test_a_shard_entry_lacking_a_key(key):
    assert _shard_message(lambda s: s.pop(key)) == f"m.json: shards[1] lacks {key!r}: {REDO}"


@pytest.mark.parametrize(
    "key,value",
    [
        ("prefix", ""),
        ("prefix", 5),
        ("prefix", None),
        ("source", 5),
        ("source", None),
        ("documents", -1),
        ("documents", "3"),
        ("documents", 3.0),
        ("documents", True),
        ("tokens", -1),
        ("tokens", None),
        ("tokens", 4.5),
        ("tokens", False),
    ],
)
def test_a_shard_entry_with_an_unusable_value(key, value):
    assert _shard_message(lambda s: s.update({key: value}), index=0) == (
        f"m.json: shards[0].{key} has an unusable value {value!r}: {REDO}"
    )


@pytest.mark.parametrize("prefix", ["/data/shards/s", "../s", "shards/../../s", ".."])
def test_a_shard_prefix_outside_out(prefix):
    assert _shard_message(lambda s: s.update(prefix=prefix)) == (
        f"m.json: shards[1].prefix {prefix!r} is not a path inside OUT: {REDO}"
    )


@pytest.mark.parametrize(
    "files",
    ["missing", None, [], {}, {"bin": {"bytes": 1, "sha256": "0" * 64}}, {"idx": {}}],
)
def test_a_version_2_shard_needs_its_bin_and_idx_records(files):
    def change(s):
        if files == "missing":
            del s["files"]
        else:
            s["files"] = files

    assert _shard_message(change) == (
        f"m.json: shards[1] lacks the sizes and checksums of its .bin and .idx: {REDO}"
    )


def test_a_version_1_shard_with_files_has_them_checked():
    def change(s):
        s["files"] = {"bin": {"bytes": 1, "sha256": "0" * 64}}

    assert _shard_message(change, version=1) == (
        f"m.json: shards[1] lacks the sizes and checksums of its .bin and .idx: {REDO}"
    )


def test_a_shard_file_record_of_an_unknown_file():
    def change(s):
        s["files"]["json"] = {"bytes": 1, "sha256": "0" * 64}

    assert _shard_message(change) == f"m.json: shards[1].files has an unknown file 'json': {REDO}"


@pytest.mark.parametrize(
    "record",
    [
        None,
        [],
        {"sha256": "0" * 64},
        {"bytes": "8", "sha256": "0" * 64},
        {"bytes": True, "sha256": "0" * 64},
        {"bytes": 8.0, "sha256": "0" * 64},
        {"bytes": 8},
        {"bytes": 8, "sha256": 0},
        {"bytes": 8, "sha256": "0" * 63},
        {"bytes": 8, "sha256": "0" * 65},
    ],
)
@pytest.mark.parametrize("suffix", ["bin", "idx", "docs.parquet"])
def test_a_shard_file_record_without_bytes_and_sha256(record, suffix):
    def change(s):
        s["files"][suffix] = record

    assert _shard_message(change) == (
        f"m.json: shards[1].files.{suffix} needs 'bytes' (an integer) and 'sha256' "
        f"(64 hex digits): {REDO}"
    )


def test_check_manifest_names_the_file_it_was_given(tmp_path):
    path = tmp_path / "sub" / "manifest.json"
    assert _message([], path) == (
        f"{path} is not a tokenmill manifest: it holds a list, not a JSON object"
    )
    with pytest.raises(ManifestError) as e:
        check_manifest([])
    assert str(e.value).startswith("manifest.json is not a tokenmill manifest")
