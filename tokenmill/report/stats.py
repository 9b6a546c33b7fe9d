"""Build OUT/stats.json from the counts every task left.

Per source and per language: documents and bytes in, documents kept, tokens, and every removed
document under one reason, so that documents_in == documents_kept + sum(removed). Per source
(and in the totals), `rewritten`: per rewriting rule (`quality:c4`, `quality:pii`), the
documents it changed, their bytes before and after it, and its counts by kind
(tokenmill.filters.base.Rewrites).

A source's `errors` lists every file that could not be read to its end (path, reason, detail
with the compressed offset of the damage), then, per `input:*` reason, the first
EXAMPLES_PER_REASON records set aside for it (path, reason, record, line, detail).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from tokenmill import hist
from tokenmill.config import Config
from tokenmill.filters.base import merge_rewrites
from tokenmill.pipelines.docpass import EXAMPLES_PER_REASON

STATS_VERSION = 1
__all__ = ["EXAMPLES_PER_REASON", "build_stats", "empty_counts", "merge_errors"]


def merge_errors(lists) -> list[dict]:
    """One source's errors from its tasks' lists, in task order: every file error (once), and
    the first EXAMPLES_PER_REASON record examples (entries with a `record`) per reason."""
    files: list[dict] = []
    seen: set[tuple] = set()
    examples: dict[str, list[dict]] = {}
    for errors in lists:
        for e in errors:
            if "record" not in e:
                # (slices of one file after its damage each meet it: one entry is enough)
                key = (e.get("path"), e["reason"], e.get("detail"))
                if key not in seen:
                    seen.add(key)
                    files.append(e)
                continue
            got = examples.setdefault(e["reason"], [])
            if len(got) < EXAMPLES_PER_REASON:
                got.append(e)
    return files + [e for reason in sorted(examples) for e in examples[reason]]


def empty_counts() -> dict:
    """Counts of one source or language: documents, bytes, tokens, removals by reason."""
    return {
        "documents_in": 0,
        "bytes_in": 0,
        "documents_kept": 0,
        "bytes_kept": 0,
        "tokens": 0,
        "removed": Counter(),
    }


def build_stats(
    cfg: Config,
    partitions,
    proc_counts: list,
    tok_counts: list,
    shard_counts: list,
    stages: dict,
    wall_s: float,
    decontam_counts: list | None = None,
) -> dict:
    """stats.json from the partitions and the typed counts of stages process, tokenize and
    shards (`tokenmill.pipelines.stages`), with the stages' summaries; with evaluation sets
    (`decontam_counts`, stage decontam), their `decontamination` section."""
    sources: dict[str, dict] = {}
    langs: dict[str, dict[str, dict]] = defaultdict(lambda: defaultdict(empty_counts))
    files: dict[str, set] = defaultdict(set)
    errors: dict[str, list[list]] = defaultdict(list)
    for s in cfg.sources:
        sources[s.name] = {
            **empty_counts(),
            "partitions": 0,
            "shards": 0,
            "histograms": {},
            "rewritten": {},
        }
    for part, pc, tc in zip(partitions, proc_counts, tok_counts, strict=True):
        src = sources[part.source]
        src["partitions"] += 1
        files[part.source].add(part.path)
        errors[part.source].append(pc.errors)
        src["documents_in"] += pc.documents_in
        src["bytes_in"] += pc.bytes_in
        src["removed"].update(pc.removed)
        src["rewritten"] = merge_rewrites(src["rewritten"], pc.rewritten)
        src["rewritten"] = merge_rewrites(src["rewritten"], tc.rewritten)  # span dedup
        src["documents_kept"] += tc.documents
        src["bytes_kept"] += tc.bytes_kept
        src["tokens"] += tc.tokens
        for name, h in {**pc.histograms, **tc.histograms}.items():
            src["histograms"][name] = hist.add(src["histograms"].get(name), h)
        for lang, c in pc.languages.items():
            lc = langs[part.source][lang]
            if "lang_score" in c:
                lc["lang_score"] = hist.add(lc.get("lang_score"), c["lang_score"])
            lc["documents_in"] += c["documents_in"]
            lc["bytes_in"] += c["bytes_in"]
            lc["removed"].update(c["removed"])
        for lang, c in tc.languages.items():
            lc = langs[part.source][lang]
            lc["documents_kept"] += c.get("documents", 0)
            lc["bytes_kept"] += c.get("bytes", 0)
            lc["tokens"] += c.get("tokens", 0)
            for reason in ("dedup:exact", "dedup:near", "dedup:against", "dedup:span"):
                if c.get(reason):
                    lc["removed"][reason] += c[reason]
                    src["removed"][reason] += c[reason]
    for sc in shard_counts:
        sources[sc.source]["shards"] += 1

    totals = {**empty_counts(), "rewritten": {}}
    for name, src in sources.items():
        src["files"] = len(files[name])
        src["errors"] = merge_errors(errors[name])
        src["removed"] = dict(sorted(src["removed"].items()))
        src["languages"] = {
            lang: {**c, "removed": dict(sorted(c["removed"].items()))}
            for lang, c in sorted(langs[name].items())
        }
        for k in ("documents_in", "bytes_in", "documents_kept", "bytes_kept", "tokens"):
            totals[k] += src[k]
        totals["removed"].update(src["removed"])
        totals["rewritten"] = merge_rewrites(totals["rewritten"], src["rewritten"])
    totals["removed"] = dict(sorted(totals["removed"].items()))
    out = {
        "version": STATS_VERSION,
        "sources": sources,
        "totals": totals,
        "stages": stages,
        "histogram_bins": hist.DESCRIPTION,
        "wall_s": round(wall_s, 3),
        "config": cfg.model_dump(mode="json"),
    }
    if decontam_counts:
        out["decontamination"] = decontamination(decontam_counts, proc_counts, totals["removed"])
    return out


ITEMS_LISTED = 50  # item numbers listed per evaluation set in stats.json


def decontamination(sets: list, proc_counts: list, removed: dict) -> dict:
    """Per evaluation set: its items (without text, too short to have an n-gram), n-grams,
    the documents removed for it, and the items the removed documents hit (how many, and
    the first ITEMS_LISTED numbers, 0-based in file order)."""
    hit: dict[str, set[int]] = defaultdict(set)
    for pc in proc_counts:
        for name, items in pc.decontam.items():
            hit[name].update(items)
    return {
        s.name: {
            "file": s.path,
            "items": s.items,
            "no_text": s.no_text,
            "too_short": s.too_short,
            "ngrams": s.ngrams,
            "documents_removed": removed.get(f"decontam:{s.name}", 0),
            "items_hit": len(hit[s.name]),
            "items_hit_first": sorted(hit[s.name])[:ITEMS_LISTED],
        }
        for s in sets
    }
