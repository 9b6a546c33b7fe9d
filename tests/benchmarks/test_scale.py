"""benchmarks/scale.py at 200 MB: `prepare` on a cluster of separate `dask scheduler` and
`dask worker` processes (as on nodes, 2 GB per worker) and on a LocalCluster, checked against
the corpus generator's ground truth and against each other."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIZE = 200 * 10**6
MEMORY = "2GB"


@pytest.fixture(scope="module")
def scale():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("scale", ROOT / "benchmarks/scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_200mb_on_a_process_cluster_matches_the_truth_and_a_local_cluster(scale, tmp_path):
    folder = scale.corpus(tmp_path, SIZE, 0)
    cfg = scale.config(folder, tmp_path)
    with gzip.open(folder / "truth.jsonl.gz", "rt", encoding="utf-8") as f:
        truth = [json.loads(line) for line in f]
    text_bytes = json.loads((folder / "corpus.json").read_text())["text_bytes"]
    rows, digests, bytes_in = {}, {}, {}
    for mode in ("processes", "local"):
        out = tmp_path / f"out_{mode}"
        r = scale.run_prepare(cfg, out, mode, 2, MEMORY, tmp_path)
        rows[mode] = scale.summarize(SIZE, mode, r, 2, scale.dedup_truth(folder, out))
        bytes_in[mode] = r["stats"]["totals"]["bytes_in"]
        digests[mode] = json.loads((out / "manifest.json").read_text())["shards"]
    for mode, row in rows.items():
        # every document the generator wrote was read: its truth file is the independent count
        assert row["documents_in"] == len(truth), mode
        d = row["dedup"]
        assert d["exact_removed"] == 1.0, mode  # every exact copy the rules kept is removed
        assert d["recall"] >= 0.98, (mode, d)
        # merges of documents under the 0.8 threshold: verification drops such candidate
        # pairs, only chains of pairs above it remain (0.2% of the removals when measured)
        assert d["false_merges"] <= 0.005 * d["expected_removals"], (mode, d)
        near = d["near_removed"]
        assert near["0.95"] >= 0.99 and near["0.85"] >= 0.95, (mode, near)
        assert near["0.7"] <= 0.15, (mode, near)  # below the threshold: mostly kept
        # nothing near the memory limit; the client holds no corpus-sized state
        assert max(row["worker_peak_mb"]) < 2000 * 0.8, (mode, row["worker_peak_mb"])
        assert row["client_peak_mb"] < 400, (mode, row["client_peak_mb"])
        # each stage's tasks measured their worker's peak, under the limit too
        peaks = row["stage_peak_mb"]
        assert {"process", "tokenizer", "tokenize", "verify"} <= set(peaks), (mode, peaks)
        assert 100 < max(peaks.values()) < 2000 * 0.8, (mode, peaks)
    assert rows["processes"]["scheduler_peak_mb"] < 400
    # the text read is the text the generator wrote, to the byte
    assert bytes_in == {"processes": text_bytes, "local": text_bytes}
    assert digests["processes"] == digests["local"]  # byte-identical shards (SHA-256s)
