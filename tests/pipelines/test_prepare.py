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


@pytest.fixture(scope="module")
def run2(corpus_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("run2")
    stats = prepare(load_config(corpus_config), out, workers=2, quiet=True)
    return out, stats


def test_outputs_exist_and_counts_add_up(run2):
    out, stats = run2
    for name in ("manifest.json", "stats.json", "report.html", "tokenizer.json", "config.yaml"):
        assert (out / name).exists(), name
    assert json.loads((out / "stats.json").read_text()) == json.loads(json.dumps(stats))
    for name, s in stats["sources"].items():
        assert s["documents_in"] == s["documents_kept"] + sum(s["removed"].values()), name
        assert s["documents_kept"] > 0
        for lang, c in s["languages"].items():
            assert c["documents_in"] == c["documents_kept"] + sum(c["removed"].values()), lang
        assert sum(c["documents_in"] for c in s["languages"].values()) == s["documents_in"]
    c4 = stats["sources"]["c4"]["removed"]
    assert c4["input:invalid_json"] == 1
    assert c4["input:missing_text"] == 1
    assert c4["input:invalid_utf8"] == 1
    assert stats["sources"]["pile"]["removed"]["input:empty"] == 1
    assert stats["sources"]["oscar"]["languages"].keys() - {"und"}  # languages were found


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
    # kept documents are unique after exact dedup
    assert stats["totals"]["removed"].get("dedup:exact", 0) >= 1


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
    assert by_lang == kept and len(by_lang) >= 3


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
    assert stats["sources"]["c4"]["documents_kept"] > 0
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
    for s in stats["sources"].values():
        assert s["documents_in"] == s["documents_kept"] + sum(s["removed"].values())


def test_keep_removed_writes_every_removed_document_with_its_reason(corpus_config, tmp_path):
    from tokenmill.filters.exact import normalize

    cfg = load_config(corpus_config)
    cfg.keep_removed = True
    stats = prepare(cfg, tmp_path, workers=2, quiet=True)
    tables = [pq.read_table(p) for p in sorted((tmp_path / "removed").rglob("*.parquet"))]
    reasons = [r for t in tables for r in t.column("reason").to_pylist()]
    expected = {k: v for k, v in stats["totals"]["removed"].items() if not k.startswith("input:")}
    counted = {}
    for r in reasons:
        counted[r] = counted.get(r, 0) + 1
    assert counted == expected  # records with no readable text (input:*) are only counted
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
    n_whole = len(zstandard_lines(whole))
    damaged.write_bytes(whole[: int(len(whole) * 0.6)])
    cfg = load_config(root / "config.yaml")
    cfg.dedup.minhash.enabled = False
    stats = prepare(cfg, tmp_path / "out", workers=1, quiet=True)
    pile = stats["sources"]["pile"]
    assert [e["reason"] for e in pile["errors"]] == ["input:truncated_file"]
    assert "01.jsonl.zst" in pile["errors"][0]["path"]
    # the undamaged file is read whole, the damaged one up to the damage
    assert 60 <= pile["documents_in"] < 60 + n_whole
    assert pile["documents_in"] == pile["documents_kept"] + sum(pile["removed"].values())


def zstandard_lines(data: bytes) -> list[bytes]:
    import zstandard

    return [x for x in zstandard.ZstdDecompressor().stream_reader(data).read().split(b"\n") if x]
