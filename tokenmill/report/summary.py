"""The numbers of a report, derived once from stats.json (and the manifest and shards) for the
HTML page, the terminal tables and `tokenmill stats --json` alike.

Removal reasons are grouped into funnel steps by their prefix (`langid:below_threshold` ->
`langid`); dedup reasons are steps of their own (`dedup:exact`, `dedup:near`). Steps run in the
pipeline's order: input, langid, quality, any other filter, then dedup. Unknown reasons and
stages are shown as they come, so new filters need no change here.
"""

from __future__ import annotations

import math
from pathlib import Path

from tokenmill.report import hist

DEFAULT_BUDGETS = ("112B", "350B")
_KNOWN_STEPS = {"input": 0, "langid": 1, "quality": 2}
# Dedup stages in stats["stages"] and the removal reason each one produces.
DEDUP_STAGE_REASON = {"dedup": "dedup:exact", "near": "dedup:near", "dedup.near": "dedup:near"}
# Stage counts that measure work, in order of preference, for throughput.
_DOC_KEYS = ("documents_in", "records", "hashes", "documents")
_STAGE_META = ("tasks", "ran", "skipped", "wall_s", "task_s")


def step_of(reason: str) -> str:
    """The funnel step a removal reason belongs to."""
    return reason if reason.startswith("dedup:") else reason.split(":", 1)[0]


def _step_key(step: str) -> tuple:
    if step in _KNOWN_STEPS:
        return (_KNOWN_STEPS[step], step)
    if step.startswith("dedup:"):
        return (5, {"dedup:exact": 0, "dedup:near": 1}.get(step, 2), step)
    return (3, step)  # other filters run before dedup


def ordered_steps(reasons) -> list[str]:
    return sorted({step_of(r) for r in reasons}, key=_step_key)


def funnel(counts: dict) -> list[dict]:
    """Documents in, removed (by reason) and out of every step, for one source or language.

    The last row's documents_out is documents_kept when the counts add up; a `check` row says
    how many documents are unaccounted for otherwise."""
    removed: dict[str, int] = counts.get("removed", {})
    rows = []
    left = counts["documents_in"]
    for step in ordered_steps(removed):
        reasons = {r: n for r, n in removed.items() if step_of(r) == step}
        n = sum(reasons.values())
        rows.append(
            {
                "step": step,
                "documents_in": left,
                "removed": n,
                "documents_out": left - n,
                "reasons": dict(sorted(reasons.items(), key=lambda x: -x[1])),
            }
        )
        left -= n
    return rows


def rewrites(sources: dict, totals: dict) -> dict:
    """Per rewriting rule (`quality:pii`): documents it changed per source and in total, their
    bytes before and after it, and per kind of change (`email`) its counts per source and in
    total. Empty when no rule rewrote anything (or stats.json predates `rewritten`)."""
    out: dict[str, dict] = {}
    for rule, t in (totals.get("rewritten") or {}).items():
        per = {n: (s.get("rewritten") or {}).get(rule) for n, s in sources.items()}
        out[rule] = {
            "documents": {n: (c or {}).get("documents", 0) for n, c in per.items()},
            "total": t["documents"],
            "bytes_in": t["bytes_in"],
            "bytes_out": t["bytes_out"],
            "counts": {
                kind: {
                    **{n: (c or {}).get("counts", {}).get(kind, 0) for n, c in per.items()},
                    "total": total,
                }
                for kind, total in t["counts"].items()
            },
        }
    return out


LOW_SCORE = "quality:fasttext:low_score"  # fasttext_quality's reason


def quality_scores(stats: dict) -> dict:
    """Per source whose documents a scoring rule judged (fasttext_quality): the histogram of
    their scores, how many were scored, and how many it removed as below `min_score`."""
    out = {}
    for name, s in stats["sources"].items():
        h = (s.get("histograms") or {}).get("quality_score")
        if h:
            out[name] = {
                "histogram": h,
                "scored": sum(h),
                "removed": s["removed"].get(LOW_SCORE, 0),
            }
    return out


def unaccounted(counts: dict) -> int:
    """Documents neither kept nor removed under a reason (0 when in = kept + removed)."""
    return counts["documents_in"] - counts["documents_kept"] - sum(counts["removed"].values())


def length_bin_labels(n: int = hist.LENGTH_BINS) -> list[str]:
    """Lower bounds of the log2 bins: 0, 2, 4, ..., 1K, 2K, ..."""
    return ["0"] + [_short(2**k) for k in range(1, n)]


def score_bin_labels(n: int = hist.SCORE_BINS) -> list[str]:
    return [f"{k / n:.2f}" for k in range(n)]


def _short(v: float) -> str:
    for unit, scale in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if v >= scale:
            return f"{v / scale:g}{unit}"
    return f"{v:g}"


def trim_range(*histograms: list[int], pad: int = 1) -> tuple[int, int]:
    """The bin range [lo, hi) holding every non-zero bin of the histograms, padded."""
    nz = [i for h in histograms if h for i, v in enumerate(h) if v]
    if not nz:
        return 0, 0
    size = max(len(h) for h in histograms if h)
    return max(0, min(nz) - pad), min(size, max(nz) + 1 + pad)


def length_quantile(h: list[int], q: float) -> str | None:
    """The log2 bin that holds the q-quantile, as 'lo-hi' (histograms keep no finer detail)."""
    total = sum(h)
    if not total:
        return None
    target = q * total
    seen = 0
    for k, n in enumerate(h):
        seen += n
        if seen >= target and n:
            lo = 0 if k == 0 else 2**k
            return f"{_short(lo)}-{_short(2 ** (k + 1))}"
    return None


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _summary_row(name: str, s: dict) -> dict:
    return {
        "source": name,
        "documents_in": s["documents_in"],
        "documents_kept": s["documents_kept"],
        "removed": sum(s["removed"].values()),
        "kept_fraction": _ratio(s["documents_kept"], s["documents_in"]),
        "bytes_in": s["bytes_in"],
        "bytes_kept": s["bytes_kept"],
        "tokens": s.get("tokens"),
        "shards": s.get("shards"),
        "files": s.get("files"),
        "partitions": s.get("partitions"),
        # files damaged partway; the record examples beside them are counted under removed
        "errors": sum(1 for e in s.get("errors", []) if "record" not in e),
    }


def _language_rows(languages: dict, token_total: int) -> list[dict]:
    rows = []
    for lang, c in languages.items():
        rows.append(
            {
                "language": lang,
                "documents_in": c["documents_in"],
                "documents_kept": c["documents_kept"],
                "removed": sum(c["removed"].values()),
                "kept_fraction": _ratio(c["documents_kept"], c["documents_in"]),
                "bytes_in": c["bytes_in"],
                "bytes_kept": c["bytes_kept"],
                "tokens": c.get("tokens"),
                "token_share": _ratio(c.get("tokens") or 0, token_total),
                "removed_by_step": {
                    step: sum(n for r, n in c["removed"].items() if step_of(r) == step)
                    for step in ordered_steps(c["removed"])
                },
            }
        )
    rows.sort(key=lambda r: (-r["documents_in"], r["language"]))
    return rows


def _merge_languages(sources: dict) -> dict:
    merged: dict[str, dict] = {}
    for s in sources.values():
        for lang, c in s.get("languages", {}).items():
            m = merged.setdefault(
                lang,
                {
                    "documents_in": 0,
                    "bytes_in": 0,
                    "documents_kept": 0,
                    "bytes_kept": 0,
                    "tokens": 0,
                    "removed": {},
                    "sources": [],
                },
            )
            for k in ("documents_in", "bytes_in", "documents_kept", "bytes_kept"):
                m[k] += c[k]
            m["tokens"] += c.get("tokens") or 0
            for r, n in c["removed"].items():
                m["removed"][r] = m["removed"].get(r, 0) + n
            if "lang_score" in c:
                m["lang_score"] = hist.add(m.get("lang_score"), c["lang_score"])
    return merged


STAGE_ORDER = (
    "scan",
    "decontam",
    "process",
    "against",
    "dedup",
    "near",
    "dedup.near",
    "tokenizer",
    "tokenize",
    "shards",
)


def _stage_rows(stages: dict) -> list[dict]:
    """Per stage: tasks and times, what went in and out (documents, or what the stage counts:
    records, hashes), and rates over its wall time. A resumed stage (skipped tasks) gets no
    rates: its wall time covers only the tasks that ran."""
    rows = []
    order = {s: i for i, s in enumerate(STAGE_ORDER)}
    for name, st in sorted(stages.items(), key=lambda x: (order.get(x[0], len(order)), x[0])):
        wall = st.get("wall_s") or 0
        in_key = next((k for k in _DOC_KEYS if k in st), None)
        out_key = (
            "documents_kept"
            if "documents_kept" in st
            else ("documents" if "documents" in st and in_key != "documents" else None)
        )
        out = (
            st[out_key]
            if out_key
            else (
                st["hashes"] - st["duplicates"]
                if in_key == "hashes" and "duplicates" in st
                else None
            )
        )
        rate = bool(wall) and not st.get("skipped")
        shown = {*_STAGE_META, in_key, out_key, "bytes_in", "tokens"}
        rows.append(
            {
                "stage": name,
                **{k: st.get(k) for k in _STAGE_META},
                "measure": in_key,
                "in": st[in_key] if in_key else None,
                "out": out,
                "bytes_in": st.get("bytes_in"),
                "tokens": st.get("tokens"),
                "documents_per_s": st[in_key] / wall if in_key and rate else None,
                "mb_per_s": st["bytes_in"] / 1e6 / wall if "bytes_in" in st and rate else None,
                "tokens_per_s": st["tokens"] / wall if "tokens" in st and rate else None,
                "other": {
                    k: v
                    for k, v in sorted(st.items())
                    if k not in shown and isinstance(v, int | float) and not isinstance(v, bool)
                },
                "resumed": bool(st.get("skipped")),
            }
        )
    return rows


def _duplicates(stats: dict) -> list[dict]:
    removed = stats["totals"]["removed"]
    out = []
    entries = [(k, v) for k, v in stats.get("stages", {}).items() if "cluster_sizes" in v]
    if "duplicates" in stats:  # raw scan: a hash sample, over all sources then per source
        entries.append(("all sources", stats["duplicates"]))
        entries += [
            (n, s["duplicates"])
            for n, s in stats["sources"].items()
            if "duplicates" in s and len(stats["sources"]) > 1
        ]
    for name, st in entries:
        sizes = {int(k): int(v) for k, v in st["cluster_sizes"].items()}
        reason = DEDUP_STAGE_REASON.get(name)
        out.append(
            {
                "stage": name,
                "reason": reason,
                "removed": removed.get(reason) if reason else st.get("duplicates_estimate"),
                "clusters": sum(sizes.values()),
                "documents_in_clusters": sum(k * v for k, v in sizes.items()),
                "cluster_sizes": dict(sorted(sizes.items())),
                "note": st.get("note"),
            }
        )
    return out


def check_shards(manifest: dict, out: Path | None) -> list[dict]:
    """Manifest shards, each checked on disk when `out` holds them: the structural and size
    checks of tokenmill.shards.verify (no SHA-256: `tokenmill verify` does that). `check` is
    None (not checked), "ok", or "damaged: " and what is wrong."""
    from tokenmill.shards.verify import check_shards as verify_shards

    rows = [
        {k: s[k] for k in ("prefix", "source", "documents", "tokens")}
        for s in manifest.get("shards", [])
    ]
    for row in rows:
        row["check"] = None
    if out is None:
        return rows
    for row, st in zip(rows, verify_shards(out, manifest, sidecar=True), strict=True):
        if st.sequences is not None:
            row["idx_documents"] = st.sequences
        if st.tokens is not None:
            row["idx_tokens"] = st.tokens
            row["max_document_tokens"] = st.max_sequence
        row["check"] = "ok" if st.ok else "damaged: " + "; ".join(st.problems)
    return rows


def damaged_shards(report: dict) -> list[dict]:
    """The report's shard rows whose check found damage."""
    return [r for r in report.get("shards") or [] if r["check"] not in ("ok", None)]


def budgets(manifest: dict, names=DEFAULT_BUDGETS, order=()) -> dict[str, list[dict]]:
    """Per budget (e.g. '112B'), per source (in `order` first): tokens drawn and epochs, as
    `tokenmill plan` computes them."""
    from tokenmill.shards.plan import budget_plan, parse_count

    rank = {n: i for i, n in enumerate(order)}
    out = {}
    for name in names:
        rows = budget_plan(manifest, parse_count(name))
        rows.sort(key=lambda r: (rank.get(r["source"], len(rank)), r["source"]))
        for r in rows:  # JSON has no infinity
            if isinstance(r.get("epochs"), float) and math.isinf(r["epochs"]):
                r["epochs"] = None
        out[name] = rows
    return out


def in_config_order(stats: dict) -> dict:
    """stats with its sources in the config's order (stats.json on disk sorts them by name), so
    a report is the same whether built from prepare's result or from the file."""
    config = stats.get("config") or {}
    entries = config.get("sources") or config.get("inputs") or []  # a run's, or a raw scan's
    names = [e.get("name", e.get("source")) for e in entries if isinstance(e, dict)]
    order = {n: i for i, n in reversed(list(enumerate(names)))}
    # stable: sources the config does not name keep their order, after the others
    sources = dict(sorted(stats["sources"].items(), key=lambda x: order.get(x[0], len(order))))
    return {**stats, "sources": sources}


def build(
    stats: dict,
    manifest: dict | None = None,
    *,
    out: Path | None = None,
    budget_names=DEFAULT_BUDGETS,
) -> dict:
    """Every section of the report as plain data (JSON-ready)."""
    stats = in_config_order(stats)
    sources = stats["sources"]
    total = dict(stats["totals"])
    for k in ("shards", "files", "partitions"):
        if any(k in s for s in sources.values()):
            total[k] = sum(s.get(k) or 0 for s in sources.values())
    total["errors"] = [e for s in sources.values() for e in s.get("errors", [])]
    token_total = stats["totals"].get("tokens") or 0
    report: dict = {
        "kind": stats.get("kind", "run"),
        "summary": {
            "sources": [_summary_row(n, s) for n, s in sources.items()],
            "total": _summary_row("total", total),
        },
        "funnel": {n: funnel(s) for n, s in sources.items()} | {"total": funnel(total)},
        "unaccounted": {n: unaccounted(s) for n, s in sources.items()},
        "removals": {},
        "lengths": {},
        "languages": {
            "all": _language_rows(_merge_languages(sources), token_total),
            **{
                n: _language_rows(s.get("languages", {}), s.get("tokens") or 0)
                for n, s in sources.items()
            },
        },
        "duplicates": _duplicates(stats),
        "decontamination": stats.get("decontamination") or {},
        "stages": _stage_rows(stats.get("stages", {})),
        "wall_s": stats.get("wall_s"),
    }
    reasons = sorted(stats["totals"]["removed"], key=lambda r: (_step_key(step_of(r)), r))
    report["removals"] = {
        r: {
            **{n: s["removed"].get(r, 0) for n, s in sources.items()},
            "total": stats["totals"]["removed"][r],
        }
        for r in reasons
    }
    report["rewrites"] = rewrites(sources, stats["totals"])
    for n, s in sources.items():
        h = s.get("histograms", {})
        report["lengths"][n] = {
            "bytes_per_document_in": _ratio(s["bytes_in"], s["documents_in"]),
            "bytes_per_document_kept": _ratio(s["bytes_kept"], s["documents_kept"]),
            "tokens_per_document": _ratio(s.get("tokens") or 0, s["documents_kept"])
            if s.get("tokens") is not None
            else None,
            "bytes_per_token": _ratio(s["bytes_kept"], s.get("tokens") or 0),
            **{
                f"{name}_{q}": length_quantile(values, p)
                for name, values in h.items()
                if name not in hist.SCORE_HISTOGRAMS
                for q, p in (("p10", 0.1), ("median", 0.5), ("p90", 0.9))
            },
        }
    report["quality_scores"] = quality_scores(stats)
    if manifest is not None and manifest.get("shards") and report["kind"] == "run":
        report["shards"] = check_shards(manifest, out)
        cap = (stats.get("config", {}).get("shards") or {}).get("tokens_per_shard")
        report["tokens_per_shard"] = cap
        for r in report["shards"]:
            r["fill"] = _ratio(r["tokens"], cap) if cap else None
    if manifest is not None and manifest.get("mixture"):
        report["budgets"] = budgets(manifest, budget_names, list(sources))
        mix = manifest["mixture"]
        report["mixture"] = {n: mix[n] for n in [*sources, *sorted(mix)] if n in mix}
    if manifest is not None and manifest.get("tokenizer"):
        report["tokenizer"] = dict(sorted(manifest["tokenizer"].items()))
    return report
