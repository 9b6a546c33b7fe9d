"""`tokenmill prepare` end to end: real Dask workers, real fastText, real tokenizers.

One corpus (conftest.make_corpus: three sources in their real layouts, bad records included)
is prepared with 2 workers, with 1 worker, and killed with SIGKILL midway then resumed; the
three runs must give byte-identical shards.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_readers_damage import complete_lines, stream_decode
from tokenizers import Tokenizer

from tokenmill.config import load_config
from tokenmill.pipelines.prepare import ConfigMismatch, prepare

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from megatron.core.datasets.indexed_dataset import IndexedDataset

pytestmark = pytest.mark.distributed


def _shard_bytes(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted((out / "shards").rglob("*"))
        if p.is_file()
    }


def _input_texts(cfg) -> dict[str, str]:
    """id -> text of every input record, read straight from the files (not our readers)."""
    import zstandard

    from tokenmill.pipelines.prepare import expand_paths

    texts = {}
    for src in cfg.sources:
        files = expand_paths(src.paths, src.name)
        root = os.path.commonpath([os.path.dirname(f) for f in files])
        key = "content" if src.format == "oscar2301" else "text"
        for f in files:
            raw = open(f, "rb").read()
            raw = (
                gzip.decompress(raw)
                if f.endswith(".gz")
                else zstandard.ZstdDecompressor().stream_reader(raw).read()
            )
            for i, line in enumerate(raw.split(b"\n")):
                try:
                    texts[f"{src.name}/{os.path.relpath(f, root)}/{i}"] = json.loads(line)[key]
                except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                    pass
    return texts


def _decompress(path: str) -> bytes:
    import zstandard

    raw = open(path, "rb").read()
    if path.endswith(".gz"):
        return gzip.decompress(raw)
    return zstandard.ZstdDecompressor().stream_reader(raw).read()


def _input_counts(cfg) -> dict[str, int]:
    """Records (non-blank lines) per source, read straight from the files (not our readers)."""
    from tokenmill.pipelines.prepare import expand_paths

    return {
        src.name: sum(
            sum(1 for line in _decompress(f).split(b"\n") if line.strip())
            for f in expand_paths(src.paths, src.name)
        )
        for src in cfg.sources
    }


def _untimed(stats: dict) -> dict:
    """stats.json less what a rerun of the same OUT changes: timings and tasks run/skipped."""
    return {k: v for k, v in stats.items() if k not in ("wall_s", "stages")}


def _kept_per_source(out: Path) -> dict[str, int]:
    """Documents in the shards per source, from the shards' own doc lists."""
    kept: dict[str, int] = {}
    for shard in json.loads((out / "manifest.json").read_text())["shards"]:
        n = len(IndexedDataset(str(out / shard["prefix"])))
        kept[shard["source"]] = kept.get(shard["source"], 0) + n
    return kept


@pytest.fixture(scope="module")
def run2(corpus_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("run2")
    stats = prepare(load_config(corpus_config), out, workers=2, quiet=True)
    return out, stats


def test_outputs_exist_and_counts_add_up(run2, corpus_config):
    out, stats = run2
    for name in ("manifest.json", "stats.json", "report.html", "tokenizer.json", "config.yaml"):
        assert (out / name).exists(), name
    # (timings aside: another test may have rerun this OUT since, in random test order)
    assert _untimed(json.loads((out / "stats.json").read_text())) == _untimed(
        json.loads(json.dumps(stats))
    )
    expected_in = _input_counts(load_config(corpus_config))
    assert expected_in["c4"] == 123 and expected_in["pile"] == 121  # the fixture's make-up
    kept = _kept_per_source(out)
    for name, s in stats["sources"].items():
        assert s["documents_in"] == expected_in[name], name
        assert s["documents_in"] == s["documents_kept"] + sum(s["removed"].values()), name
        assert s["documents_kept"] == kept[name], name
        for lang, c in s["languages"].items():
            assert c["documents_in"] == c["documents_kept"] + sum(c["removed"].values()), lang
        assert sum(c["documents_in"] for c in s["languages"].values()) == s["documents_in"]
    c4 = stats["sources"]["c4"]["removed"]
    assert c4["input:invalid_json"] == 1
    assert c4["input:missing_text"] == 1
    assert c4["input:invalid_utf8"] == 1
    assert stats["sources"]["pile"]["removed"]["input:empty"] == 1
    # every bad record is named in the errors: file, record number and line
    examples = [e for e in stats["sources"]["c4"]["errors"] if "record" in e]
    assert sorted((e["reason"], e["record"], e["line"]) for e in examples) == [
        ("input:invalid_json", 60, 61),
        ("input:invalid_utf8", 62, 63),
        ("input:missing_text", 61, 62),
    ]
    assert all(e["path"].endswith("c4-train.00000-of-01024.json.gz") for e in examples)
    # the languages found with documents kept are the four files' OSCAR labels
    labels = {p.name.split("_")[0] for p in (corpus_config.parent / "oscar").iterdir()}
    langs = stats["sources"]["oscar"]["languages"]
    assert {k for k, c in langs.items() if c["documents_kept"]} == labels


def test_megatron_reads_every_shard_and_decodes_to_kept_text(run2, corpus_config):
    out, stats = run2
    manifest = json.loads((out / "manifest.json").read_text())
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    eod = manifest["tokenizer"]["eod_id"]
    texts = _input_texts(load_config(corpus_config))
    seen = 0
    for shard in manifest["shards"]:
        prefix = str(out / shard["prefix"])
        ds = IndexedDataset(prefix)
        ids = pq.read_table(prefix + ".docs.parquet").column("id").to_pylist()
        assert len(ds) == len(ids) == shard["documents"]
        assert int(ds.sequence_lengths.sum()) == shard["tokens"]
        for i, doc_id in enumerate(ids):
            seq = ds[i].tolist()
            assert seq[-1] == eod and eod not in seq[:-1]
            assert tok.decode(seq[:-1], skip_special_tokens=False) == texts[doc_id]
        seen += len(ids)
    assert seen == stats["totals"]["documents_kept"]
    # exact dedup removed every further copy of a kept text, and nothing else: the input
    # records (read independently) whose normalized text is a kept one's, less the kept ones
    from tokenmill.filters.exact import normalize

    kept_texts = set()
    for shard in manifest["shards"]:
        ids = pq.read_table(str(out / shard["prefix"]) + ".docs.parquet").column("id")
        kept_texts |= {normalize(texts[i]) for i in ids.to_pylist()}
    copies = sum(1 for t in texts.values() if isinstance(t, str) and normalize(t) in kept_texts)
    assert stats["totals"]["removed"]["dedup:exact"] == copies - len(kept_texts) > 0


def test_the_shards_stage_records_each_files_size_and_sha256(run2):
    """The shard writer hashes its files on the worker; its done JSON carries them, and the
    manifest takes them from there."""
    import hashlib

    out, _ = run2
    done = sorted((out / "work" / "shards").rglob("*.json"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(done) == len(manifest["shards"]) > 0
    by_prefix = {s["prefix"]: s for s in manifest["shards"]}
    for path in done:
        counts = json.loads(path.read_text())
        prefix = counts["prefix"]
        want = {
            suffix: {
                "bytes": os.path.getsize(f"{prefix}.{suffix}"),
                "sha256": hashlib.sha256(Path(f"{prefix}.{suffix}").read_bytes()).hexdigest(),
            }
            for suffix in ("bin", "idx", "docs.parquet")
        }
        assert counts["files"] == want, path
        assert by_prefix[os.path.relpath(prefix, out)]["files"] == want


def test_one_worker_gives_identical_shards(run2, corpus_config, tmp_path):
    out2, _ = run2
    prepare(load_config(corpus_config), tmp_path, workers=1, quiet=True)
    assert _shard_bytes(tmp_path) == _shard_bytes(out2)
    assert (tmp_path / "tokenizer.json").read_bytes() == (out2 / "tokenizer.json").read_bytes()


def test_sigkill_midway_then_resume_gives_identical_shards(run2, corpus_config, tmp_path):
    out2, _ = run2
    cmd = [
        sys.executable,
        "-m",
        "tokenmill",
        "prepare",
        str(corpus_config),
        "--out",
        str(tmp_path),
        "--workers",
        "2",
        "--quiet",
    ]
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    done = tmp_path / "work" / "docs"
    deadline = time.time() + 120
    while time.time() < deadline and not list(done.rglob("*.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI, the scheduler and every worker
    proc.wait()
    assert not (tmp_path / "manifest.json").exists(), "the run finished before it was killed"
    finished = len(list(done.rglob("*.json")))
    assert finished >= 1

    stats = prepare(load_config(corpus_config), tmp_path, workers=2, quiet=True)
    assert stats["stages"]["process"]["skipped"] >= finished
    assert _shard_bytes(tmp_path) == _shard_bytes(out2)


def test_rerun_of_a_complete_run_does_no_work_and_fresh_redoes_it(run2, corpus_config):
    out, _ = run2
    stats = prepare(load_config(corpus_config), out, workers=2, quiet=True)
    assert all(s["ran"] == 0 for s in stats["stages"].values() if "ran" in s)
    before = _shard_bytes(out)
    stats = prepare(load_config(corpus_config), out, workers=2, quiet=True, fresh=True)
    assert stats["stages"]["process"]["skipped"] == 0
    assert _shard_bytes(out) == before


def test_changed_config_is_refused_without_fresh(run2, corpus_config):
    out, _ = run2
    cfg = load_config(corpus_config)
    cfg.langid.threshold = 0.9
    with pytest.raises(ConfigMismatch, match="--fresh"):
        prepare(cfg, out, workers=1, quiet=True)


def test_a_given_large_vocabulary_tokenizer_gives_int32_shards(corpus_config, tmp_path):
    """tokenizer.path: an existing tokenizer.json is used as is; >= 65,500 ids -> int32."""
    from tmfixtures import sample_docs

    from tokenmill.tokenize.bpe import train_bpe

    texts = [r["text"] for r in sample_docs("c4")[:200]]
    tok = train_bpe(texts, 2000, ["</s>", "<pad>"])
    tok.add_special_tokens([f"<extra_{i}>" for i in range(70_000)])
    tok_path = tmp_path / "big.json"
    tok.save(str(tok_path))
    cfg = load_config(corpus_config)
    cfg.tokenizer.path = str(tok_path)
    cfg.tokenizer.eod_token = "</s>"
    cfg.dedup.minhash.enabled = False
    out = tmp_path / "out"
    prepare(cfg, out, workers=2, quiet=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tokenizer"]["dtype"] == "int32"
    assert manifest["tokenizer"]["vocab_size"] >= 70_000
    texts_by_id = _input_texts(cfg)
    for shard in manifest["shards"]:
        ds = IndexedDataset(str(out / shard["prefix"]))
        assert ds.index.dtype == np.int32
        ids = pq.read_table(str(out / shard["prefix"]) + ".docs.parquet").column("id").to_pylist()
        for i, doc_id in enumerate(ids):
            assert tok.decode(ds[i][:-1].tolist(), skip_special_tokens=False) == texts_by_id[doc_id]


def test_split_languages_gives_one_shard_series_per_language(corpus_config, tmp_path):
    cfg = load_config(corpus_config)
    oscar = next(s for s in cfg.sources if s.name == "oscar")
    oscar.split_languages = True
    stats = prepare(cfg, tmp_path, workers=2, quiet=True)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    by_lang = {}
    for shard in manifest["shards"]:
        if shard["source"] != "oscar":
            assert "lang" not in shard
            continue
        lang = shard["lang"]
        assert Path(shard["prefix"]).name.startswith(f"oscar_{lang}_")
        langs = pq.read_table(tmp_path / (shard["prefix"] + ".docs.parquet")).column("lang")
        assert set(langs.to_pylist()) == {lang}
        assert len(IndexedDataset(str(tmp_path / shard["prefix"]))) == shard["documents"]
        by_lang[lang] = by_lang.get(lang, 0) + shard["documents"]
    kept = {
        k: v["documents_kept"]
        for k, v in stats["sources"]["oscar"]["languages"].items()
        if v["documents_kept"]
    }
    assert by_lang == kept
    assert set(by_lang) == {
        p.name.split("_")[0] for p in (corpus_config.parent / "oscar").iterdir()
    }


def test_a_catalog_source_is_downloaded_then_prepared(corpus_config, tmp_path):
    """A source named by catalog entry is fetched (here from a mirror on 127.0.0.1) first."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(
        SimpleHTTPRequestHandler, directory=str(corpus_config.parent / "c4")
    )
    handler.log_message = lambda *a, **k: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg_path = tmp_path / "c.yaml"
        cfg_path.write_text(
            "sources:\n"
            "  - name: c4\n"
            "    catalog: {name: c4, variant: en, files: '0:2', dest: dl,\n"
            f"              base_url: 'http://127.0.0.1:{server.server_port}'}}\n"
            "tokenizer: {train: {vocab_size: 800}}\n"
        )
        stats = prepare(load_config(cfg_path), tmp_path / "out", workers=1, quiet=True)
    finally:
        server.shutdown()
    assert (tmp_path / "dl" / "en" / "c4-train.00001-of-01024.json.gz").exists()
    assert stats["sources"]["c4"]["files"] == 2
    served = sorted((corpus_config.parent / "c4" / "en").glob("*.json.gz"))[:2]
    assert stats["sources"]["c4"]["documents_in"] == sum(
        sum(1 for line in _decompress(str(f)).split(b"\n") if line.strip()) for f in served
    )
    assert stats["sources"]["c4"]["documents_kept"] == _kept_per_source(tmp_path / "out")["c4"]
    assert stats["config"]["sources"][0]["format"] == "c4"


def test_runs_on_an_existing_cluster_given_by_address(run2, corpus_config, tmp_path):
    from distributed import LocalCluster

    out2, _ = run2
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        prepare(
            load_config(corpus_config), tmp_path, scheduler=cluster.scheduler_address, quiet=True
        )
        assert len(cluster.workers) == 2  # the cluster outlives the run
    assert _shard_bytes(tmp_path) == _shard_bytes(out2)


def test_near_dedup_with_verification(corpus_config, tmp_path):
    cfg = load_config(corpus_config)
    cfg.dedup.minhash.verify = True
    stats = prepare(cfg, tmp_path, workers=2, quiet=True)
    assert stats["stages"]["near"]["edges"] >= 1
    assert "verify" in stats["stages"]
    # each document an edge names was hashed once, in its partition's verify.shingles task
    near = tmp_path / "work" / "dedup" / "near"
    per_file = []
    for f in sorted(near.glob("e[0-9]*.npy")):
        if f.name.count(".") == 1:  # the edge files (not .ends.npy, .verified.npy)
            e = np.load(f)
            per_file.append(set(e["u"].tolist()) | set(e["v"].tolist()))
    assert stats["stages"]["verify.ends"]["ends"] == sum(map(len, per_file))
    assert stats["stages"]["verify.shingles"]["documents"] == len(set().union(*per_file)) >= 2
    assert stats["stages"]["verify.shingles"]["tasks"] == len(
        list((near / "shingles").glob("*.json"))
    )
    expected_in = _input_counts(cfg)
    kept = _kept_per_source(tmp_path)
    for name, s in stats["sources"].items():
        assert s["documents_in"] == expected_in[name], name
        assert s["documents_kept"] == kept[name], name
        assert s["documents_in"] == s["documents_kept"] + sum(s["removed"].values())


def test_keep_removed_writes_every_removed_document_with_its_reason(corpus_config, tmp_path):
    from tokenmill.filters.exact import normalize

    cfg = load_config(corpus_config)
    cfg.keep_removed = True
    stats = prepare(cfg, tmp_path, workers=2, quiet=True)
    tables = [pq.read_table(p) for p in sorted((tmp_path / "removed").rglob("*.parquet"))]
    reasons = [r for t in tables for r in t.column("reason").to_pylist()]
    counted = {}
    for r in reasons:
        counted[r] = counted.get(r, 0) + 1
    assert counted == stats["totals"]["removed"]  # input:* removals included
    # an input removal keeps its raw line (invalid UTF-8 replaced), file and record number
    inputs = [row for t in tables for row in t.to_pylist() if row["reason"].startswith("input:")]
    by_reason = {row["reason"]: row for row in inputs}
    bad_utf8 = by_reason["input:invalid_utf8"]
    assert bad_utf8["text"] == b'{"text": "bad utf8 \xff\xfe here", "url": "u"}'.decode(
        "utf-8", "replace"
    )
    meta = json.loads(bad_utf8["meta"])
    assert meta["file"].endswith("c4-train.00000-of-01024.json.gz")
    assert (meta["record"], meta["line"]) == (62, 63)
    assert bad_utf8["id"].endswith("c4-train.00000-of-01024.json.gz/62")
    assert by_reason["input:invalid_json"]["text"] == '{"text": "broken'
    kept_ids = set()
    for shard in json.loads((tmp_path / "manifest.json").read_text())["shards"]:
        kept_ids |= set(
            pq.read_table(tmp_path / (shard["prefix"] + ".docs.parquet")).column("id").to_pylist()
        )
    texts = _input_texts(cfg)
    dedup = [t for t in tables if "kept_id" in t.column_names]
    assert dedup
    for t in dedup:
        for row in t.to_pylist():
            assert row["kept_id"] in kept_ids and row["kept_id"] != row["id"]
            if row["reason"] == "dedup:exact":
                assert normalize(texts[row["kept_id"]]) == normalize(row["text"])


def test_a_truncated_archive_is_reported_and_its_readable_records_kept(corpus_config, tmp_path):
    import shutil

    root = tmp_path / "corpus"
    shutil.copytree(corpus_config.parent, root)
    damaged = root / "pile" / "train" / "01.jsonl.zst"
    whole = damaged.read_bytes()
    cut = whole[: int(len(whole) * 0.9)]  # (at 0.6 no 128 KB block of this file is whole)
    damaged.write_bytes(cut)
    cfg = load_config(root / "config.yaml")
    cfg.dedup.minhash.enabled = False
    stats = prepare(cfg, tmp_path / "out", workers=1, quiet=True)
    pile = stats["sources"]["pile"]
    assert [e["reason"] for e in pile["errors"]] == ["input:truncated_file"]
    assert "01.jsonl.zst" in pile["errors"][0]["path"]
    assert f"at compressed byte {len(cut):,}" in pile["errors"][0]["detail"]
    # the undamaged file is read whole, the damaged one up to the damage: exactly the lines a
    # streaming decoder fed byte by byte gets
    out, truncated = stream_decode(cut, "zst")
    readable = sum(1 for line in complete_lines(out, truncated) if line.strip())
    undamaged = len(
        [x for x in _decompress(str(root / "pile/train/00.jsonl.zst")).split(b"\n") if x]
    )
    assert truncated and readable > 0
    assert pile["documents_in"] == undamaged + readable
    assert pile["documents_in"] == pile["documents_kept"] + sum(pile["removed"].values())


def test_damaged_files_and_odd_records_in_every_format_are_counted_exactly(tmp_path):
    """A corpus of damaged archives (cut, bits flipped), a file that is no archive, a truncated
    and a corrupt Parquet file, and records whose fields have the wrong type or nest 100,000
    deep: the run finishes; each source's documents_in is exactly what a byte-fed streaming
    decoder (pyarrow for Parquet) gets; every input removal is in OUT/removed; `tokenmill
    stats` on the same files counts the same."""
    import bz2

    import pyarrow as pa
    from test_readers_damage import compress, expected_jsonl
    from tmfixtures import dumps, sample_docs

    from tokenmill.report.raw import inputs_from_config, scan, settings_from_config

    root = tmp_path / "corpus"
    c4 = sample_docs("c4")
    oscar = sample_docs("oscar")
    expected: dict[str, int] = {}

    def damaged(path: Path, raw: bytes, kind: str, how: str) -> int:
        """Write `raw` compressed and damaged; the records a streaming decoder reads."""
        data = bytearray(compress(raw, kind))
        if how == "cut":
            data = data[: int(len(data) * 0.6)]
        else:
            data[len(data) // 2] ^= 0xFF
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(data))
        out, is_damaged = stream_decode(bytes(data), kind)
        assert is_damaged
        return len(expected_jsonl(out, is_damaged, lambda r: r))

    odd = [
        b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        dumps({"text": "a fine text here", "url": ["not", "a", "string"]}),
        b'{"text": "lone \\ud800 surrogate"}',
    ]
    lines = [dumps(r) for r in c4]  # (855 records)
    raw = b"\n".join(odd + lines) + b"\n"
    expected["c4"] = damaged(root / "c4" / "c4-train.00000-of-01024.json.gz", raw, "gz", "cut")
    raw = b"".join(dumps(r) + b"\n" for r in c4[300:])
    expected["c4"] += damaged(root / "c4" / "c4-train.00001-of-01024.json.gz", raw, "gz", "flip")
    (root / "c4" / "c4-train.00002-of-01024.json.gz").write_bytes(b"<html>not gzip</html>\n")

    recs = [{**r, "warc_headers": "a string"} if i == 3 else r for i, r in enumerate(oscar)]
    recs[5] = {**recs[5], "metadata": ["a", "list"]}
    raw = b"".join(dumps(r) + b"\n" for r in recs)
    expected["oscar"] = damaged(root / "oscar" / "fr_meta_part_1.jsonl.zst", raw, "zst", "flip")

    raw = b"".join(dumps(r) + b"\n" for r in c4[:800])
    expected["bz2"] = damaged(root / "bz2" / "x.jsonl.bz2", raw, "bz2", "cut")
    (root / "bz2" / "y.jsonl.bz2").write_bytes(bz2.compress(raw[: raw.index(b"\n") + 1]))
    expected["bz2"] += 1

    table = pa.table({"text": [r["text"] for r in c4[:300]]})
    (root / "pq").mkdir()
    pq.write_table(table, root / "pq" / "a.parquet", row_group_size=100, use_dictionary=False)
    data = bytearray((root / "pq" / "a.parquet").read_bytes())
    at = pq.ParquetFile(root / "pq" / "a.parquet").metadata.row_group(2).column(0).data_page_offset
    data[at : at + 24] = b"\xff" * 24
    (root / "pq" / "a.parquet").write_bytes(bytes(data))
    pq.write_table(table, root / "pq" / "b.parquet")
    whole = (root / "pq" / "b.parquet").read_bytes()
    (root / "pq" / "b.parquet").write_bytes(whole[: len(whole) // 2])
    expected["pq"] = 300  # a.parquet's rows, its unreadable group's included; b.parquet: none

    cfg_path = root / "config.yaml"
    cfg_path.write_text(
        "sources:\n"
        "  - {name: c4, format: c4, paths: ['c4/*.json.gz']}\n"
        "  - {name: oscar, format: oscar2301, paths: ['oscar/*.jsonl.zst']}\n"
        "  - {name: bz2, format: jsonl, paths: ['bz2/*.jsonl.bz2']}\n"
        "  - {name: pq, format: parquet, paths: ['pq/*.parquet']}\n"
        "input: {partition_docs: 400}\n"
        "keep_removed: true\n"
        "dedup: {minhash: {enabled: false}}\n"
        "tokenizer: {train: {vocab_size: 800}}\n"
    )
    cfg = load_config(cfg_path)
    stats = prepare(cfg, tmp_path / "out", workers=1, quiet=True)
    src = stats["sources"]
    assert {k: s["documents_in"] for k, s in src.items()} == expected

    def file_errors(name):
        return sorted(
            (Path(e["path"]).name, e["reason"]) for e in src[name]["errors"] if "record" not in e
        )

    assert file_errors("c4") == [
        ("c4-train.00000-of-01024.json.gz", "input:truncated_file"),
        ("c4-train.00001-of-01024.json.gz", "input:corrupt_file"),
        ("c4-train.00002-of-01024.json.gz", "input:corrupt_file"),
    ]
    assert file_errors("oscar") == [("fr_meta_part_1.jsonl.zst", "input:corrupt_file")]
    assert file_errors("bz2") == [("x.jsonl.bz2", "input:truncated_file")]
    assert file_errors("pq") == [
        ("a.parquet", "input:corrupt_file"),
        ("b.parquet", "input:corrupt_file"),
    ]
    assert src["pq"]["removed"]["input:unreadable_rows"] == 100
    c4_examples = {e["reason"]: e for e in src["c4"]["errors"] if "record" in e}
    assert (c4_examples["input:too_deep"]["record"], c4_examples["input:too_deep"]["line"]) == (
        0,
        1,
    )
    assert c4_examples["input:invalid_record"]["record"] == 1
    assert c4_examples["input:invalid_utf8"]["record"] == 2
    oscar_examples = [e["record"] for e in src["oscar"]["errors"] if "record" in e]
    assert oscar_examples[:2] == [3, 5]
    for s in src.values():
        assert s["documents_in"] == s["documents_kept"] + sum(s["removed"].values())

    # keep_removed: every removal, input:* included, is in OUT/removed with its reason
    tables = [pq.read_table(p) for p in sorted((tmp_path / "out" / "removed").rglob("*.parquet"))]
    counted: dict[str, int] = {}
    for t in tables:
        for r in t.column("reason").to_pylist():
            counted[r] = counted.get(r, 0) + 1
    assert counted == stats["totals"]["removed"]
    deep = [row for t in tables for row in t.to_pylist() if row["reason"] == "input:too_deep"]
    assert len(deep) == 1 and len(deep[0]["text"]) == 65_536  # the raw line, capped
    assert json.loads(deep[0]["meta"])["raw_bytes"] == len(odd[0])

    # `tokenmill stats` on the raw files reads and counts the same
    raw_stats = scan(inputs_from_config(cfg), settings_from_config(cfg))
    assert {k: s["documents_in"] for k, s in raw_stats["sources"].items()} == expected
    for name, s in raw_stats["sources"].items():
        assert s["removed"] == {
            k: v for k, v in src[name]["removed"].items() if not k.startswith("dedup:")
        }, name


def test_a_vanished_file_is_counted_under_errors_by_scan_and_process(tmp_path):
    """A file listed at the start and gone (or unreadable) by the time a task reads it: the
    task reports it and returns; it does not raise (which would end the run)."""
    from tokenmill.pipelines.stages import Partition, process_partition, scan_file

    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text("sources:\n  - {name: c4, format: c4, paths: ['x/*.json.gz']}\n")
    cfg = load_config(cfg_path)
    gone = str(tmp_path / "x" / "c4-train.00000-of-01024.json.gz")
    for fmt in ("c4", "parquet", "oscar2109"):
        scanned = scan_file(gone, fmt, cfg.input.max_doc_bytes)
        assert scanned["records"] == 0 and gone in scanned["error"], fmt
    part = Partition("c4", "c4", "text", gone, "c4-train.00000-of-01024.json.gz", 0, 0, 0, None, 0)
    counts = process_partition(part, cfg, str(tmp_path / "work"), buckets=1)
    assert counts["documents_in"] == 0
    assert [(e["path"], e["reason"]) for e in counts["errors"]] == [(gone, "input:unreadable_file")]
