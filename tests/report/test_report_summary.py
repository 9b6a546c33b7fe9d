"""The report's derived numbers: funnel steps, histogram summaries, stage rates."""

from __future__ import annotations

from tokenmill.report import summary


def test_steps_follow_the_pipeline_whatever_the_reasons():
    reasons = [
        "dedup:near",
        "quality:gopher:too_few_stop_words",
        "pii:emails",
        "input:invalid_json",
        "dedup:exact",
        "langid:below_threshold",
        "quality:too_short",
    ]
    assert summary.ordered_steps(reasons) == [
        "input",
        "langid",
        "quality",
        "pii",
        "dedup:exact",
        "dedup:near",
    ]


def test_funnel_chains_steps_and_ends_at_kept():
    counts = {
        "documents_in": 100,
        "documents_kept": 80,
        "removed": {"quality:too_short": 5, "input:empty": 3, "dedup:exact": 10, "quality:x": 2},
    }
    steps = summary.funnel(counts)
    assert [s["step"] for s in steps] == ["input", "quality", "dedup:exact"]
    assert [(s["documents_in"], s["documents_out"]) for s in steps] == [
        (100, 97),
        (97, 90),
        (90, 80),
    ]
    assert steps[1]["reasons"] == {"quality:too_short": 5, "quality:x": 2}
    assert summary.unaccounted(counts) == 0
    assert summary.unaccounted({**counts, "documents_kept": 79}) == 1


def test_length_summaries_from_log2_bins():
    h = [0] * 32
    h[9], h[10] = 10, 30  # 10 documents of 512-1023 chars, 30 of 1024-2047
    assert summary.length_quantile(h, 0.1) == "512-1K"
    assert summary.length_quantile(h, 0.5) == "1K-2K"
    assert summary.length_quantile([0] * 32, 0.5) is None
    assert summary.trim_range(h) == (8, 12)
    assert summary.length_bin_labels()[:3] == ["0", "2", "4"]


def test_stage_rates_and_resumed_stages():
    rows = summary._stage_rows(
        {
            "tokenize": {
                "tasks": 2,
                "ran": 2,
                "skipped": 0,
                "wall_s": 2.0,
                "task_s": 3.0,
                "documents": 10,
                "bytes_in": 4_000_000,
                "tokens": 1000,
            },
            "process": {
                "tasks": 2,
                "ran": 1,
                "skipped": 1,
                "wall_s": 1.0,
                "task_s": 1.0,
                "documents_in": 20,
                "documents_kept": 15,
            },
            "near": {
                "tasks": 1,
                "ran": 1,
                "skipped": 0,
                "wall_s": 0.5,
                "task_s": 0.5,
                "edges": 7,
                "cluster_sizes": {"2": 3},
            },
        }
    )
    assert [r["stage"] for r in rows] == ["process", "near", "tokenize"]
    process, near, tokenize = rows
    assert (process["in"], process["out"], process["documents_per_s"]) == (20, 15, None)
    assert process["resumed"]
    assert tokenize["documents_per_s"] == 5 and tokenize["mb_per_s"] == 2
    assert tokenize["tokens_per_s"] == 500
    assert near["other"] == {"edges": 7}


def _two_shards(root):
    """Two shards written by the project's writer and their manifest entries (version 2)."""
    import numpy as np

    from tokenmill.shards.megatron import ShardWriter
    from tokenmill.shards.verify import shard_file_records

    shards = []
    for name, lengths in (("a_00000", [3, 5, 2]), ("a_00001", [4, 1])):
        prefix = root / "shards" / "a" / name
        with ShardWriter(prefix, np.uint16) as w:
            for n in lengths:
                w.write(np.arange(n))
        shards.append(
            {
                "prefix": f"shards/a/{name}",
                "source": "a",
                "documents": len(lengths),
                "tokens": sum(lengths),
                "files": shard_file_records(prefix),
            }
        )
    return {"tokenizer": {"dtype": "uint16", "vocab_size": 100}, "shards": shards}


def test_shard_checks_name_damage(tmp_path):
    manifest = _two_shards(tmp_path)
    assert [r["check"] for r in summary.check_shards(manifest, None)] == [None, None]
    rows = summary.check_shards(manifest, tmp_path)
    assert [(r["check"], r["idx_documents"], r["idx_tokens"]) for r in rows] == [
        ("ok", 3, 10),
        ("ok", 2, 5),
    ]
    assert [r["max_document_tokens"] for r in rows] == [5, 4]
    assert summary.damaged_shards({"shards": rows}) == []
    # 5 uint16 tokens are 10 bytes; cut the second shard's .bin to 7
    with open(tmp_path / "shards/a/a_00001.bin", "r+b") as f:
        f.truncate(7)
    rows = summary.check_shards(manifest, tmp_path)
    assert rows[0]["check"] == "ok"
    assert rows[1]["check"] == (
        "damaged: .bin is 7 bytes but the index's sizes add up to 5 uint16 tokens = 10 bytes "
        "(truncated)"
    )
    assert summary.damaged_shards({"shards": rows}) == [rows[1]]
