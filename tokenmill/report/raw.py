"""Statistics of raw corpus files, before any processing: `tokenmill stats FILES...`.

Streams every record once, in batches, with the same readers, language ID and quality rules as
`prepare`, and counts what `prepare` would see: bad records by reason, languages and LID
scores, lengths (characters, and tokens with a tokenizer), and what the filter settings would
remove. The result has the shape of stats.json (`"kind": "raw"`), so the same report renders it.

Memory stays bounded whatever the corpus size: counters and fixed-bin histograms, one batch
of documents, and a duplicate sample of at most `sample_cap` hashes (see `HashSample`).
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from tokenmill.filters.registry import apply_filters
from tokenmill.report import hist
from tokenmill.report.stats import EXAMPLES_PER_REASON, empty_counts, merge_errors

BATCH_DOCS = 1024
UNDETERMINED = "und"
_SUFFIXES = (
    ".json.gz",
    ".jsonl",
    ".jsonl.gz",
    ".jsonl.zst",
    ".json.zst",
    ".zst",
    ".json",
    ".parquet",
    ".txt.gz",
    ".txt",
)


@dataclass(frozen=True)
class RawInput:
    """One file of one source, read with `fmt`."""

    source: str
    fmt: str
    path: str
    text_key: str = "text"


@dataclass(frozen=True)
class ScanSettings:
    """What to apply while scanning: `prepare`'s filter settings (None turns a step off).

    `quality` is a config's `quality:` section as JSON; it is read with the config's own model,
    so the scan runs the rule sets `prepare` would run on each source."""

    languages: list[str] | str = "all"
    langid: dict | None = field(default_factory=lambda: {"threshold": 0.5})
    quality: dict | None = field(default_factory=lambda: _default_quality())
    max_doc_bytes: int = 10_000_000
    normalize: bool = True
    tokenizer: str | None = None
    limit: int | None = None  # records read per file
    sample_cap: int = 1 << 20


def _quality_model():
    from tokenmill.config import Config

    return type(Config.model_fields["quality"].default)


def _default_quality() -> dict:
    return _quality_model()().model_dump(mode="json")


def build_quality(section: dict | None, source: str, fmt: str) -> list:
    """The quality filters `prepare` runs on a source: the rule-set registry's choice for its
    format when the config has one, else the basic rules."""
    if section is None:
        return []
    qc = _quality_model().model_validate(section)
    if hasattr(qc, "filter_names"):
        from tokenmill.filters.registry import build_filters

        return build_filters(qc.filter_names(source, fmt), qc)
    from tokenmill.filters.quality import BasicQuality

    b = qc.basic
    return [BasicQuality(b.min_chars, b.min_words, b.max_symbol_fraction)] if b.enabled else []


# ---- inputs -----------------------------------------------------------------------------------


def _first_record(path: str) -> dict | None:
    from tokenmill.pipelines.readers import open_binary

    try:
        with open_binary(path) as f:
            for _ in range(100):
                line = f.readline(10_000_000)
                if not line:
                    return None
                if line.strip():
                    rec = json.loads(line)
                    return rec if isinstance(rec, dict) else None
    except (ValueError, OSError, EOFError):
        return None
    return None


def detect_format(path: str) -> str:
    """The reader format of a file, from its name and (JSON lines) its first record's keys."""
    from tokenmill.pipelines.readers import FORMATS

    name = path.lower().split("?", 1)[0]
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".txt", ".txt.gz")):
        return "oscar2019"
    rec = _first_record(path)
    if rec is None:
        raise ValueError(
            f"cannot tell the format of {path}: its first record is not a JSON object. "
            f"Pass --format (one of {', '.join(FORMATS)})"
        )
    if "content" in rec and "warc_headers" in rec:
        md = rec.get("metadata") or {}
        if "annotation" in md and "quality_warnings" not in md and "oscar2201" in FORMATS:
            return "oscar2201"
        return "oscar2301"
    if "text" in rec and "meta" in rec:
        return "pile"
    if "text" in rec and "url" in rec and "timestamp" in rec:
        return "c4"
    return "jsonl"


def expand(paths: Iterable[str]) -> list[str]:
    """Files named by paths, globs and folders (searched recursively for corpus files)."""
    files: list[str] = []
    for p in paths:
        if "://" in p and not p.startswith("file://"):
            files.append(p)  # a URL: the readers open it
            continue
        p = p.removeprefix("file://")
        if os.path.isdir(p):
            hits = sorted(
                os.path.join(root, f)
                for root, _, names in os.walk(p)
                for f in names
                if f.lower().endswith(_SUFFIXES)
            )
        elif glob.has_magic(p):
            hits = sorted(h for h in glob.glob(p, recursive=True) if os.path.isfile(h))
        else:
            hits = [p] if os.path.isfile(p) else []
        if not hits:
            raise FileNotFoundError(f"no corpus files at {p!r}")
        files.extend(hits)
    seen: set[str] = set()
    return [f for f in files if not (f in seen or seen.add(f))]


def collect_inputs(
    paths: list[str], fmt: str | None = None, text_key: str = "text", name: str | None = None
) -> list[RawInput]:
    """Inputs from command-line paths: one source per format (or all under `name`)."""
    out = []
    for f in expand(paths):
        ff = fmt or detect_format(f)
        out.append(RawInput(name or ff, ff, f, text_key))
    return out


def inputs_from_config(cfg) -> list[RawInput]:
    """Inputs of a prepare config's sources."""
    from tokenmill.pipelines import readers

    expand_inputs = getattr(readers, "expand_inputs", None)
    if expand_inputs is None:  # older readers: local paths only
        from tokenmill.pipelines.prepare import expand_paths as expand_inputs
    return [
        RawInput(s.name, s.format, f, s.text_key)
        for s in cfg.sources
        for f in expand_inputs(s.paths, s.name)
    ]


def settings_from_config(cfg=None, **overrides) -> ScanSettings:
    """Scan settings from a prepare config's languages, langid, quality, input and dedup
    sections (without a config: their defaults)."""
    if cfg is None:
        return ScanSettings(**overrides)
    base = {
        "languages": cfg.languages,
        "langid": (
            {
                "threshold": cfg.langid.threshold,
                "thresholds": dict(cfg.langid.thresholds),
                "model_path": cfg.langid.model_path,
            }
            if cfg.langid.enabled
            else None
        ),
        "quality": cfg.quality.model_dump(mode="json"),
        "max_doc_bytes": cfg.input.max_doc_bytes,
        "normalize": cfg.dedup.normalize,
    }
    return ScanSettings(**{**base, **overrides})


# ---- duplicate sample -------------------------------------------------------------------------


class HashSample:
    """Distinct sampling of 64-bit text hashes in O(cap) memory (Gibbons, VLDB 2001).

    Every occurrence of a hash below 2**(64 - level) is counted; when more than `cap` distinct
    hashes are held, `level` goes up by one and the upper half is dropped. A sampled text keeps
    all its copies, so the sample's cluster sizes are exact and, scaled by 2**level, estimate
    the corpus's (exact while level is 0). Samples of parts merge into the sample of the whole.
    """

    def __init__(self, cap: int = 1 << 20):
        self.cap = cap
        self.level = 0
        self.values = np.empty(0, np.uint64)
        self.counts = np.empty(0, np.int64)
        self._pending: list[np.ndarray] = []
        self._n_pending = 0

    def _keep(self, h: np.ndarray) -> np.ndarray:
        return h if self.level == 0 else h[h < np.uint64(1 << (64 - self.level))]

    def add(self, hashes: np.ndarray) -> None:
        h = self._keep(np.asarray(hashes, np.uint64))
        if len(h):
            self._pending.append(h)
            self._n_pending += len(h)
            if self._n_pending > self.cap:
                self._compact()

    def _compact(self, extra: list[tuple[np.ndarray, np.ndarray]] = ()) -> None:
        vals = [self.values, *self._pending, *(v for v, _ in extra)]
        cnts = [
            self.counts,
            *(np.ones(len(p), np.int64) for p in self._pending),
            *(c for _, c in extra),
        ]
        self._pending, self._n_pending = [], 0
        v, inv = np.unique(np.concatenate(vals), return_inverse=True)
        c = np.bincount(inv, weights=np.concatenate(cnts), minlength=len(v)).astype(np.int64)
        while len(v) > self.cap:
            self.level += 1
            keep = v < np.uint64(1 << (64 - self.level))
            v, c = v[keep], c[keep]
        self.values, self.counts = v, c

    def merge(self, other: HashSample) -> None:
        other._compact()
        self.level = max(self.level, other.level)
        ov, oc = other.values, other.counts
        if self.level:
            keep = ov < np.uint64(1 << (64 - self.level))
            ov, oc = ov[keep], oc[keep]
        self._pending = [self._keep(p) for p in self._pending]
        if self.level:
            keep = self.values < np.uint64(1 << (64 - self.level))
            self.values, self.counts = self.values[keep], self.counts[keep]
        self._compact([(ov, oc)])

    def result(self) -> dict:
        """Cluster sizes and duplicates, scaled to the whole input."""
        self._compact()
        scale = 1 << self.level
        sizes = Counter(int(n) for n in self.counts if n > 1)
        dups = int((self.counts - 1).sum()) if len(self.counts) else 0
        return {
            "exact": self.level == 0,
            "sampled_fraction": 1 / scale,
            "documents_sampled": int(self.counts.sum()),
            "duplicates_estimate": dups * scale,
            "cluster_sizes": {str(k): v * scale for k, v in sorted(sizes.items())},
            "note": (
                "Exact duplicates among the valid documents (texts compared after the same "
                "normalization as dedup:exact)."
                if self.level == 0
                else f"Estimated from a hash sample of 1/{scale} of the distinct texts "
                "(every copy of a sampled text is counted), scaled up."
            ),
        }


# ---- one file ---------------------------------------------------------------------------------


def scan_file(inp: RawInput, st: ScanSettings) -> dict:
    """Counts of one file (a pure function of the file and the settings)."""
    import xxhash

    from tokenmill.filters.exact import normalize
    from tokenmill.pipelines.readers import FileError, meta_json, read_records

    t0 = time.perf_counter()
    langid = tok = None
    if st.langid is not None:
        from tokenmill.filters.langid import LanguageId

        langid = LanguageId(
            st.languages,
            st.langid.get("threshold", 0.5),
            st.langid.get("thresholds"),
            st.langid.get("model_path"),
        )
    quality = build_quality(st.quality, inp.source, inp.fmt)
    if st.tokenizer:
        from tokenmill.tokenize.bpe import load_tokenizer

        tok = load_tokenizer(st.tokenizer)

    langs: dict[str, dict] = defaultdict(empty_counts)
    scores: dict[str, list[float]] = defaultdict(list)  # this batch's, then folded
    score_hists: dict[str, list[int]] = {}
    removed: Counter = Counter()
    n_in = b_in = n_kept = b_kept = t_in = t_kept = 0
    chars_in, chars_kept, toks_in, toks_kept = [], [], [], []
    sample = HashSample(st.sample_cap)
    errors: list[dict] = []
    norm = normalize if st.normalize else (lambda t: t)
    records = read_records(
        inp.path, inp.fmt, text_key=inp.text_key, stop=st.limit, max_doc_bytes=st.max_doc_bytes
    )
    batch: list = []
    examples: dict[str, list[dict]] = {}  # the first records set aside per reason, as prepare

    def example(idx: int, reason: str, line: int | None) -> None:
        got = examples.setdefault(reason, [])
        if len(got) < EXAMPLES_PER_REASON:
            where = f"record {idx}" + (f", line {line}" if line is not None else "")
            got.append(
                {
                    "path": inp.path,
                    "reason": reason,
                    "record": idx,
                    "line": line,
                    "detail": f"{inp.path}: {where} set aside as {reason}",
                }
            )

    def flush() -> None:
        nonlocal b_in, n_kept, b_kept, t_in, t_kept
        docs = []
        for idx, item in batch:
            if isinstance(item, str):
                reason = str(item)
                removed[reason] += 1
                langs[UNDETERMINED]["documents_in"] += 1
                langs[UNDETERMINED]["removed"][reason] += 1
                example(idx, reason, getattr(item, "line", None))
            # as prepare does: too large, or a meta it could not write out (input:invalid_record)
            elif item.nbytes > st.max_doc_bytes or meta_json(item.meta) is None:
                too_large = item.nbytes > st.max_doc_bytes
                reason = "input:too_large" if too_large else "input:invalid_record"
                removed[reason] += 1
                lc = langs[UNDETERMINED]
                lc["documents_in"] += 1
                lc["bytes_in"] += item.nbytes
                lc["removed"][reason] += 1
                b_in += item.nbytes
                example(idx, reason, None)
            else:
                docs.append(item)
                b_in += item.nbytes
        batch.clear()
        if not docs:
            return
        texts = [d.text for d in docs]
        if langid is not None:
            lang, score, reasons = langid(texts)
            for la, sc in zip(lang, score, strict=True):
                scores[la].append(sc)
        else:
            lang, reasons = [UNDETERMINED] * len(docs), [None] * len(docs)
        hashes = np.fromiter(
            (xxhash.xxh3_64_intdigest(norm(t).encode("utf-8")) for t in texts),
            np.uint64,
            len(texts),
        )
        chars_in.extend(len(t) for t in texts)
        texts = apply_filters(quality, texts, lang, reasons)
        ntok = None
        if tok is not None:  # + 1: the end-of-document token prepare appends
            ntok = [len(e.ids) + 1 for e in tok.encode_batch(texts, add_special_tokens=False)]
            # tokens of the text as prepare would encode it (after any rewriting filter)
            toks_in.extend(ntok)
            t_in += sum(ntok)
        sample.add(hashes)
        for i, (d, r) in enumerate(zip(docs, reasons, strict=True)):
            lc = langs[lang[i]]
            lc["documents_in"] += 1
            lc["bytes_in"] += d.nbytes
            if r is None:
                nbytes = d.nbytes if texts[i] is d.text else len(texts[i].encode("utf-8"))
                n_kept += 1
                b_kept += nbytes
                lc["documents_kept"] += 1
                lc["bytes_kept"] += nbytes
                chars_kept.append(len(texts[i]))
                if ntok is not None:
                    lc["tokens"] += ntok[i]
                    t_kept += ntok[i]
                    toks_kept.append(ntok[i])
            else:
                removed[r] += 1
                lc["removed"][r] += 1

    hists = {name: [0] * hist.LENGTH_BINS for name in ("chars_in", "chars_kept")}
    if tok is not None:
        hists |= {"tokens_in": [0] * hist.LENGTH_BINS, "tokens_kept": [0] * hist.LENGTH_BINS}

    def fold() -> None:  # histograms absorb the per-batch lengths, so memory stays flat
        for name, values in (
            ("chars_in", chars_in),
            ("chars_kept", chars_kept),
            ("tokens_in", toks_in),
            ("tokens_kept", toks_kept),
        ):
            if name in hists and values:
                hists[name] = hist.add(hists[name], hist.length_hist(values))
                values.clear()
        for la, values in scores.items():
            score_hists[la] = hist.add(score_hists.get(la), hist.score_hist(values))
        scores.clear()

    try:
        for rec in records:
            n_in += 1
            batch.append(rec)
            if len(batch) == BATCH_DOCS:
                flush()
                fold()
    except FileError as e:  # the records before the damage are counted (flush below)
        errors.append({"path": inp.path, "reason": e.reason, "detail": e.detail})
    except Exception as e:  # noqa: BLE001 - one file never ends the scan: report it
        errors.append(
            {"path": inp.path, "reason": "input:read_error", "detail": f"{type(e).__name__}: {e}"}
        )
    flush()
    fold()
    languages = {}
    for la, c in sorted(langs.items()):
        entry = {**c, "removed": dict(sorted(c["removed"].items()))}
        if la in score_hists:
            entry["lang_score"] = score_hists[la]
        languages[la] = entry
    return {
        "source": inp.source,
        "path": inp.path,
        "documents_in": n_in,
        "bytes_in": b_in,
        "documents_kept": n_kept,
        "bytes_kept": b_kept,
        "tokens_in": t_in if tok is not None else None,
        "tokens": t_kept if tok is not None else None,
        "removed": dict(removed),
        "languages": languages,
        "histograms": hists,
        "errors": errors + [e for got in examples.values() for e in got],
        "wall_s": time.perf_counter() - t0,
        "sample": sample,
    }


# ---- the whole scan ---------------------------------------------------------------------------


_COUNTS = ("documents_in", "bytes_in", "documents_kept", "bytes_kept")


def _merge(results: list[dict], inputs: list[RawInput], st: ScanSettings, wall: float) -> dict:
    with_tokens = st.tokenizer is not None
    sources: dict[str, dict] = {}
    samples: dict[str, HashSample] = {}
    formats: dict[str, set] = defaultdict(set)
    for inp in inputs:
        formats[inp.source].add(inp.fmt)
    for r in results:
        s = sources.setdefault(
            r["source"],
            {
                **{k: 0 for k in _COUNTS},
                "tokens": 0 if with_tokens else None,
                "removed": Counter(),
                "files": 0,
                "errors": [],
                "histograms": {},
                "languages": {},
            },
        )
        s["files"] += 1
        for k in _COUNTS:
            s[k] += r[k]
        if with_tokens:
            s["tokens"] += r["tokens"]
        s["removed"].update(r["removed"])
        s["errors"].append(r["errors"])
        for name, h in r["histograms"].items():
            s["histograms"][name] = hist.add(s["histograms"].get(name), h)
        for la, c in r["languages"].items():
            lc = s["languages"].setdefault(
                la, {**{k: 0 for k in _COUNTS}, "tokens": 0, "removed": Counter()}
            )
            for k in (*_COUNTS, "tokens"):
                lc[k] += c[k]
            lc["removed"].update(c["removed"])
            if "lang_score" in c:
                lc["lang_score"] = hist.add(lc.get("lang_score"), c["lang_score"])
        samples.setdefault(r["source"], HashSample(st.sample_cap)).merge(r["sample"])
    totals = {**{k: 0 for k in _COUNTS}, "tokens": 0 if with_tokens else None, "removed": Counter()}
    everything = HashSample(st.sample_cap)
    for name, s in sources.items():
        s["format"] = ", ".join(sorted(formats[name]))
        s["errors"] = merge_errors(s["errors"])
        s["removed"] = dict(sorted(s["removed"].items()))
        s["languages"] = {
            la: {**c, "removed": dict(sorted(c["removed"].items()))}
            for la, c in sorted(s["languages"].items())
        }
        s["duplicates"] = samples[name].result()
        everything.merge(samples[name])
        for k in _COUNTS:
            totals[k] += s[k]
        if with_tokens:
            totals["tokens"] += s["tokens"]
        totals["removed"].update(s["removed"])
    totals["removed"] = dict(sorted(totals["removed"].items()))
    task_s = sum(r["wall_s"] for r in results)
    read = {
        "tasks": len(results),
        "ran": len(results),
        "skipped": 0,
        "wall_s": round(wall, 3),
        "task_s": round(task_s, 3),
        "documents_in": totals["documents_in"],
        "bytes_in": totals["bytes_in"],
    }
    if with_tokens:
        read["tokens"] = sum(r["tokens_in"] for r in results)
    settings = asdict(st)
    return {
        "version": 1,
        "kind": "raw",
        "sources": sources,
        "totals": totals,
        "stages": {"scan": read},
        "duplicates": everything.result(),
        "histogram_bins": hist.DESCRIPTION,
        "wall_s": round(wall, 3),
        "config": {
            "inputs": [
                {"source": i.source, "format": i.fmt, "path": i.path, "text_key": i.text_key}
                for i in inputs
            ],
            "languages": settings["languages"],
            "langid": settings["langid"] or {"enabled": False},
            "quality": settings["quality"] or {"enabled": False},
            "input": {"max_doc_bytes": st.max_doc_bytes, "records_per_file": st.limit},
            "dedup": {"normalize": st.normalize, "sample_cap": st.sample_cap},
            "tokenizer": st.tokenizer,
        },
    }


def scan(
    inputs: list[RawInput],
    settings: ScanSettings,
    *,
    workers: int = 1,
    on_file: Callable[[dict], None] | None = None,
) -> dict:
    """Scan every input (files in parallel with `workers` processes) into a raw stats dict."""
    t0 = time.perf_counter()
    results: list[dict] = []
    if workers <= 1 or len(inputs) <= 1:
        for inp in inputs:
            results.append(scan_file(inp, settings))
            if on_file:
                on_file(results[-1])
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # fork where there is one: this process has not loaded fastText or a tokenizer (only
        # the workers do), and spawn would re-run a `__main__` without a main guard.
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(
            min(workers, len(inputs)), mp_context=mp.get_context(method)
        ) as pool:
            futures = [pool.submit(scan_file, inp, settings) for inp in inputs]
            for f in futures:
                results.append(f.result())
                if on_file:
                    on_file(results[-1])
    return _merge(results, inputs, settings, time.perf_counter() - t0)


def budget_manifest(stats: dict, weights: dict[str, float] | None = None) -> dict | None:
    """A manifest-shaped dict (sources' kept tokens, mixture) for budget coverage of a raw scan
    with token counts; None without them."""
    if stats["totals"].get("tokens") is None:
        return None
    present = {n: (weights or {}).get(n, 1.0) for n, s in stats["sources"].items() if s["tokens"]}
    total = sum(present.values()) or 1.0
    return {
        "shards": [
            {"prefix": "", "source": n, "documents": s["documents_kept"], "tokens": s["tokens"]}
            for n, s in stats["sources"].items()
        ],
        "mixture": {n: w / total for n, w in present.items()},
    }
