"""Shard integrity on a real `prepare` output: the manifest's sizes and SHA-256 (against
hashlib and megatron-core's reader), `tokenmill verify`, and every command that uses shards
(plan, inspect, stats, the trainer's data) refusing a damaged or missing shard by name, and a
manifest that is not tokenmill's in one line."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tokenmill.cli import app
from tokenmill.shards.manifest import FORMAT, MANIFEST_VERSION, ManifestError, load_manifest
from tokenmill.shards.megatron import ShardReader
from tokenmill.shards.verify import DamagedShards
from tokenmill.trainer.data import ManifestData

TARGET = "shards/c4/c4_00000"  # the shard the damage tests break


@pytest.fixture(scope="module")
def IndexedDataset(require):  # noqa: N802 - the reference reader's class
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return require("megatron.core.datasets.indexed_dataset").IndexedDataset


@pytest.fixture(scope="module")
def ref(prepared_out, IndexedDataset) -> dict:
    """The target shard as megatron-core reads it, before any damage."""
    ix = IndexedDataset(str(prepared_out / TARGET)).index
    return {
        "sequences": int(ix.sequence_count),
        "doc_entries": len(ix.document_indices),
        "tokens": int(ix.sequence_lengths.sum(dtype=np.int64)),
        "itemsize": int(ix.dtype_size),
        "pointers": [int(p) for p in ix.sequence_pointers[:8]],
        "idx_bytes": os.path.getsize(prepared_out / (TARGET + ".idx")),
        "parquet_bytes": os.path.getsize(prepared_out / (TARGET + ".docs.parquet")),
    }


def cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "4000"})
    text = " ".join((result.stdout + result.stderr).split())
    assert "Traceback" not in text
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, text


def flip(path, offset: int, value: int | None = None) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([old ^ 0x01 if value is None else value]))


# ---- the manifest records what was written -------------------------------------------------


def test_manifest_records_every_file_size_and_sha256(prepared_out, IndexedDataset):
    m = load_manifest(prepared_out)
    assert (m["format"], m["version"]) == (FORMAT, MANIFEST_VERSION)
    assert m["shards"]
    for s in m["shards"]:
        assert sorted(s["files"]) == ["bin", "docs.parquet", "idx"]
        for suffix, rec in s["files"].items():
            data = (prepared_out / f"{s['prefix']}.{suffix}").read_bytes()
            assert rec == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        ds = IndexedDataset(str(prepared_out / s["prefix"]))
        assert (len(ds), int(ds.index.sequence_lengths.sum())) == (s["documents"], s["tokens"])


def test_undamaged_output_passes_verify(prepared_out):
    m = load_manifest(prepared_out)
    total = sum(r["bytes"] for s in m["shards"] for r in s["files"].values())
    code, text = cli("verify", prepared_out)
    assert code == 0, text
    assert (
        f"ok: {len(m['shards'])} shards, {total / 1e6:,.1f} MB in {prepared_out}: "
        "structure, sizes and SHA-256 match the manifest"
    ) in text
    code, text = cli("verify", prepared_out / "manifest.json", "--quick", "--json")
    assert code == 0, text
    result = json.loads(text)
    assert (result["ok"], result["shards"], result["damaged"], result["checksums"]) == (
        True,
        len(m["shards"]),
        [],
        False,
    )


# ---- damage, one kind at a time --------------------------------------------------------------


def damage(out, kind: str, ref: dict) -> str:
    """Break TARGET in `out` one way; returns the problem every structural check must name."""
    p = out / TARGET
    bin_, idx, side = (p.with_name(p.name + s) for s in (".bin", ".idx", ".docs.parquet"))
    t, size = ref["tokens"], ref["tokens"] * ref["itemsize"]
    if kind == "bin truncated":
        os.truncate(bin_, size // 2)
        return (
            f".bin is {size // 2:,} bytes but the index's sizes add up to {t:,} uint16 tokens "
            f"= {size:,} bytes (truncated)"
        )
    if kind == "bin byte flipped":
        flip(bin_, size // 3)
        return ".bin does not match its SHA-256 in the manifest (same size: its bytes changed)"
    if kind == "idx truncated":
        os.truncate(idx, ref["idx_bytes"] - 8)
        return (
            f".idx is {ref['idx_bytes'] - 8:,} bytes but its header ({ref['sequences']:,} "
            f"sequences, {ref['doc_entries']:,} document-index entries) needs "
            f"{ref['idx_bytes']:,} (truncated)"
        )
    if kind == "idx dtype changed":
        flip(idx, 17, 4)  # int32's code: a valid code, the wrong width for these tokens
        return ".idx says int32 tokens but the manifest's tokenizer needs uint16"
    if kind == "idx dtype code unknown":
        flip(idx, 17, 5)
        return ".idx dtype code is 5, not 8 (uint16) or 4 (int32)"
    if kind == "idx pointer wrong":
        at = 34 + 4 * ref["sequences"] + 8 * 3
        with open(idx, "r+b") as f:
            f.seek(at)
            f.write(struct.pack("<q", ref["pointers"][3] + 2))
        return (
            f".idx pointers are not the running sum of its sizes (1 wrong, the first at "
            f"sequence 3: {ref['pointers'][3] + 2:,}, expected {ref['pointers'][3]:,})"
        )
    if kind == "idx document index wrong":
        at = 34 + 12 * ref["sequences"] + 8 * (ref["doc_entries"] - 1)
        with open(idx, "r+b") as f:
            f.seek(at)
            f.write(struct.pack("<q", ref["sequences"] - 1))
        return (
            f".idx document index does not run from 0 to its {ref['sequences']:,} "
            "sequences in order"
        )
    if kind == "bin missing":
        bin_.unlink()
        return ".bin is missing"
    if kind == "idx missing":
        idx.unlink()
        return ".idx is missing"
    if kind == "docs.parquet truncated":
        os.truncate(side, ref["parquet_bytes"] - 100)
        return (
            f".docs.parquet is {ref['parquet_bytes'] - 100:,} bytes, the manifest records "
            f"{ref['parquet_bytes']:,}"
        )
    raise AssertionError(kind)


STRUCTURAL = [
    "bin truncated",
    "idx truncated",
    "idx dtype changed",
    "idx dtype code unknown",
    "idx pointer wrong",
    "idx document index wrong",
    "bin missing",
    "idx missing",
    "docs.parquet truncated",
]


@pytest.mark.parametrize("kind", [*STRUCTURAL, "bin byte flipped"])
def test_verify_names_the_damaged_shard(out_copy, ref, kind):
    problem = damage(out_copy, kind, ref)
    n = len(load_manifest(out_copy)["shards"])
    code, text = cli("verify", out_copy)
    assert code == 1, text
    assert f"DAMAGED {TARGET} " in text and problem in text
    assert text.count("DAMAGED") == 1
    assert f"1 of {n} shards damaged or missing in {out_copy}" in text
    code, text = cli("verify", out_copy, "--json")
    assert code == 1
    damaged = json.loads(text)["damaged"]
    assert [d["prefix"] for d in damaged] == [TARGET] and problem in damaged[0]["problems"]
    code, text = cli("verify", out_copy, "--quick")
    if kind == "bin byte flipped":  # same size, same structure: only the checksum sees it
        assert code == 0, text
    else:
        assert code == 1 and f"DAMAGED {TARGET} " in text and problem in text


@pytest.mark.parametrize("kind", STRUCTURAL)
def test_plan_refuses_the_damaged_shard(out_copy, ref, kind):
    problem = damage(out_copy, kind, ref)
    code, text = cli("plan", out_copy, "--budget", "1B")
    assert code == 1, text
    assert f"{TARGET}: {problem}" in text
    assert "--data-path" not in text


@pytest.mark.parametrize("kind", STRUCTURAL)
def test_inspect_refuses_the_damaged_shard(out_copy, ref, kind):
    problem = damage(out_copy, kind, ref)
    code, text = cli("inspect", out_copy / TARGET, "--limit", "1")
    assert code == 1, text
    assert f"error: {out_copy / TARGET} is damaged: " in text and problem in text


@pytest.mark.parametrize("kind", STRUCTURAL)
def test_stats_reports_the_damaged_shard(out_copy, ref, kind):
    problem = damage(out_copy, kind, ref)
    n = len(load_manifest(out_copy)["shards"])
    code, text = cli("stats", out_copy, "--json")
    assert code == 1
    report = json.loads(text[: text.rindex("}") + 1])["report"]
    checks = {r["prefix"]: r["check"] for r in report["shards"]}
    assert checks.pop(TARGET).startswith("damaged: ") and problem in text
    assert set(checks.values()) == {"ok"}
    assert f"error: 1 of {n} shards in {out_copy} are damaged or missing" in text
    html = " ".join((out_copy / "report.html").read_text().split())
    assert f"<p class='bad'>1 of {n} shards are damaged or missing: {TARGET}: damaged:" in html


@pytest.mark.parametrize("kind", STRUCTURAL)
def test_training_data_refuses_the_damaged_shard(out_copy, ref, kind):
    problem = damage(out_copy, kind, ref)
    with pytest.raises(DamagedShards) as e:
        ManifestData(out_copy, seq_len=64)
    assert [s.prefix for s in e.value.bad] == [TARGET]
    assert f"{TARGET}: {problem}" in str(e.value)


def test_every_damaged_shard_is_named(out_copy, ref, prepared_out):
    damage(out_copy, "bin truncated", ref)
    other = load_manifest(out_copy)["shards"][-1]["prefix"]
    (out_copy / (other + ".idx")).unlink()
    code, text = cli("verify", out_copy)
    assert code == 1 and text.count("DAMAGED") == 2
    assert f"DAMAGED {TARGET} " in text and f"DAMAGED {other} .idx is missing" in text
    with pytest.raises(DamagedShards, match=f"2 of .* shards .*{TARGET}: .*{other}: .idx is"):
        ManifestData(out_copy, seq_len=64)


def test_the_reference_reader_opens_a_truncated_bin_without_complaint(
    out_copy, ref, IndexedDataset
):
    """Why the check exists: megatron-core (and our reader) open a cut .bin; the damage shows
    only when training reaches the missing tokens."""
    damage(out_copy, "bin truncated", ref)
    assert len(IndexedDataset(str(out_copy / TARGET))) == ref["sequences"]
    assert len(ShardReader(out_copy / TARGET)) == ref["sequences"]


def test_shard_reader_refuses_a_truncated_idx(out_copy, ref):
    damage(out_copy, "idx truncated", ref)
    with pytest.raises(ValueError, match=r"c4_00000\.idx is .* bytes but its header needs"):
        ShardReader(out_copy / TARGET)


# ---- manifests that are not tokenmill's -----------------------------------------------------


def _bad_manifests(m: dict) -> list[tuple[str, object, str]]:
    no_files = json.loads(json.dumps(m))
    del no_files["shards"][0]["files"]
    no_tokens = json.loads(json.dumps(m))
    del no_tokens["shards"][1]["tokens"]
    escaping = json.loads(json.dumps(m))
    escaping["shards"][0]["prefix"] = "../elsewhere/c4_00000"
    return [
        ("empty object", {}, "is not a tokenmill manifest: it has no 'format' or 'version' key"),
        ("list", [], "is not a tokenmill manifest: it holds a list, not a JSON object"),
        ("other format", {**m, "format": "other"}, "its format is 'other', not"),
        ("future version", {**m, "version": 99}, "manifest version 99 is not one this"),
        (
            "missing keys",
            {k: v for k, v in m.items() if k not in ("shards", "mixture")},
            "lacks keys 'shards', 'mixture': rerun `tokenmill prepare`",
        ),
        ("shard without files", no_files, "shards[0] lacks the sizes and checksums"),
        ("shard without tokens", no_tokens, "shards[1] lacks 'tokens'"),
        ("prefix outside OUT", escaping, "is not a path inside OUT"),
    ]


BAD_MANIFESTS = [
    "empty object",
    "list",
    "other format",
    "future version",
    "missing keys",
    "shard without files",
    "shard without tokens",
    "prefix outside OUT",
]


@pytest.mark.parametrize("name", BAD_MANIFESTS)
def test_a_manifest_that_is_not_tokenmills_gets_one_clear_line(out_copy, name):
    cases = {c[0]: c for c in _bad_manifests(load_manifest(out_copy))}
    assert sorted(cases) == sorted(BAD_MANIFESTS)
    _, data, message = cases[name]
    (out_copy / "manifest.json").write_text(json.dumps(data))
    for args in (
        ["verify", out_copy],
        ["plan", out_copy],
        ["stats", out_copy],
        ["inspect", out_copy / TARGET],
    ):
        code, text = cli(*args)
        assert code == 1, (name, args, text)
        assert text.startswith(f"error: {out_copy / 'manifest.json'}") and message in text, (
            name,
            args,
            text,
        )
    with pytest.raises(ManifestError, match=message.replace("[", r"\[")) as e:
        ManifestData(out_copy, seq_len=64)
    assert "\n" not in str(e.value)


def test_manifest_that_is_not_json(out_copy):
    (out_copy / "manifest.json").write_text('{"format": "tokenmill-manifest", "ver')
    code, text = cli("plan", out_copy)
    assert code == 1 and f"error: {out_copy / 'manifest.json'} is not valid JSON" in text


def test_version_1_manifest_without_checksums_is_still_read(out_copy):
    m = load_manifest(out_copy)
    del m["format"]
    m["version"] = 1
    for s in m["shards"]:
        del s["files"]
    (out_copy / "manifest.json").write_text(json.dumps(m))
    code, text = cli("verify", out_copy)
    assert code == 0, text
    assert "structure and sizes (manifest version 1 records no checksums" in text
    assert len(ManifestData(out_copy, seq_len=64).readers) == len(m["shards"])
    os.truncate(out_copy / (TARGET + ".bin"), 10)
    code, text = cli("plan", out_copy)
    assert code == 1 and f"{TARGET}: .bin is 10 bytes" in text


# ---- building the manifest ------------------------------------------------------------------


def _counts(out) -> list[dict]:
    """The shard tasks' counts as prepare hands them to build_manifest (absolute prefixes)."""
    return [
        {
            "prefix": str(out / s["prefix"]),
            "source": s["source"],
            "lang": s.get("lang"),
            "documents": s["documents"],
            "tokens": s["tokens"],
        }
        for s in load_manifest(out)["shards"]
    ]


def test_build_manifest_hashes_shards_whose_counts_carry_no_checksums(out_copy):
    from tokenmill.config import load_config
    from tokenmill.shards.manifest import build_manifest

    assert build_manifest(load_config(), out_copy, _counts(out_copy), jobs=2) == load_manifest(
        out_copy
    )


@pytest.mark.parametrize("kind", ["bin truncated", "idx pointer wrong", "bin missing"])
def test_build_manifest_refuses_a_shard_damaged_since_it_was_written(out_copy, ref, kind):
    """A rerun of a finished prepare rebuilds the manifest: it must not bless the damage."""
    from tokenmill.config import load_config
    from tokenmill.shards.manifest import ShardsChanged, build_manifest

    problem = damage(out_copy, kind, ref)
    with pytest.raises(ShardsChanged) as e:
        build_manifest(load_config(), out_copy, _counts(out_copy))
    msg = str(e.value)
    n = len(load_manifest(out_copy)["shards"])
    assert f"1 of {n} shards in {out_copy} no longer match what the shard stage wrote: " in msg
    assert f"{TARGET}: {problem}" in msg and "\n" not in msg


@pytest.mark.parametrize("command", ["plan", "inspect", "stats"])
def test_help_says_the_check_before_use_is_not_a_checksum(command):
    code, text = cli(command, "--help")
    assert code == 0
    assert "not SHA-256: `tokenmill verify OUT` does that" in text


def test_checksums_the_shard_writer_recorded_are_kept(out_copy, ref):
    """Counts that carry `files` (recorded when the shard was written) go into the manifest as
    they are: a byte changed since then is not hashed into it, and verify names it."""
    from tokenmill.config import load_config
    from tokenmill.shards.manifest import build_manifest
    from tokenmill.shards.verify import shard_file_records

    counts = [{**c, "files": shard_file_records(c["prefix"])} for c in _counts(out_copy)]
    problem = damage(out_copy, "bin byte flipped", ref)
    m = build_manifest(load_config(), out_copy, counts)
    assert m == load_manifest(out_copy)
    (out_copy / "manifest.json").write_text(json.dumps(m))
    code, text = cli("verify", out_copy)
    assert code == 1 and f"DAMAGED {TARGET} {problem}" in text


def test_a_relative_out_given_from_another_folder_is_checked(out_copy, ref, monkeypatch):
    """OUT as a relative path from elsewhere (`cd somewhere && tokenmill verify ../x/out`)."""
    from tokenmill.shards.verify import check_shard, check_shards

    elsewhere = out_copy.parent / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rel = os.path.relpath(out_copy, elsewhere)
    assert rel.startswith("..")
    m = load_manifest(rel)
    statuses = check_shards(rel, m, sidecar=True, checksums=True)
    assert [s.problems for s in statuses] == [[]] * len(m["shards"])
    assert all(s.hashed for s in statuses)
    code, text = cli("verify", rel)
    assert code == 0, text
    problem = damage(out_copy, "bin byte flipped", ref)
    entry = next(e for e in m["shards"] if e["prefix"] == TARGET)
    assert check_shard(rel, entry, checksums=True).problems == [problem]
    code, text = cli("verify", rel)
    assert code == 1 and f"DAMAGED {TARGET} " in text and problem in text


def test_inspect_from_inside_shards_checks_against_the_manifest(out_copy, monkeypatch):
    """A shard swapped for another intact one is structurally sound: only the manifest sees
    it. Given as a path relative to OUT/shards, inspect must still find OUT's manifest."""
    p = out_copy / TARGET
    other = p.with_name(p.name[:-1] + "1")
    for suffix in (".bin", ".idx"):
        shutil.copyfile(other.with_name(other.name + suffix), p.with_name(p.name + suffix))
    monkeypatch.chdir(out_copy / "shards")
    code, text = cli("inspect", Path(TARGET).relative_to("shards"), "--limit", "1")
    assert code == 1, text
    assert "is damaged: " in text
