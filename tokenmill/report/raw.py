"""Statistics of raw corpus files, before any processing: `tokenmill stats FILES...`.

Streams every record once, in batches, with the same readers, language ID and quality rules as
`prepare`, and counts what `prepare` would see: bad records by reason, languages and LID
scores, lengths (characters, and tokens with a tokenizer), and what the filter settings would
remove. The result has the shape of stats.json (`"kind": "raw"`), so the same report renders it.
Files are found and their formats told as `prepare`'s sources are (the readers' `expand_inputs`
and formats table), and scanned in parallel as calls of the executor that runs every parallel
step (`pipelines.executor`).

Memory stays bounded whatever the corpus size: counters and fixed-bin histograms, one batch
of documents, and a duplicate sample of at most `sample_cap` hashes (see `HashSample`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from tokenmill import hist
from tokenmill.filters.base import merge_rewrites
from tokenmill.report.stats import empty_counts, merge_errors


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
        from tokenmill.pipelines.readers.formats import default_rules

        return build_filters(qc.filter_names(source, default_rules(fmt)), qc)
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
    """The reader format of a file, as the formats table tells it: from its name
    (`format_by_suffix`), else from its first record's keys (`format_by_record`)."""
    from tokenmill.pipelines.readers import FORMATS, format_by_record, format_by_suffix

    fmt = format_by_suffix(path)
    if fmt is not None:
        return fmt
    rec = _first_record(path)
    if rec is None:
        raise ValueError(
            f"cannot tell the format of {path}: its first record is not a JSON object. "
            f"Pass --format (one of {', '.join(FORMATS)})"
        )
    return format_by_record(rec)


def expand(paths: Iterable[str]) -> list[str]:
    """Files named by paths, globs, URLs (as a source's `paths` are expanded: `expand_inputs`)
    and folders (searched recursively for the formats table's corpus file endings), in order,
    without repeats."""
    from tokenmill.pipelines.readers import CORPUS_SUFFIXES, expand_inputs, is_url, local_path

    files: list[str] = []
    for p in paths:
        folder = None if is_url(p) else local_path(p)
        if folder is not None and os.path.isdir(folder):
            hits = sorted(
                os.path.join(root, f)
                for root, _, names in os.walk(folder)
                for f in names
                if f.lower().endswith(CORPUS_SUFFIXES)
            )
        else:
            try:
                hits = expand_inputs([p], "raw")
            except FileNotFoundError:
                hits = []
        if not hits:
            raise FileNotFoundError(f"no corpus files at {local_path(p)!r}")
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
    from tokenmill.pipelines.readers import expand_inputs

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


class _RawTally:
    """What a raw scan counts on top of the shared document pass: kept bytes and tokens per
    language, the duplicate sample, and the kept-length and token histograms."""

    def __init__(self, st: ScanSettings, tok):
        from tokenmill.filters.exact import normalize

        self.tok = tok
        self.norm = normalize if st.normalize else (lambda t: t)
        self.sample = HashSample(st.sample_cap)
        self.langs: dict[str, Counter] = defaultdict(Counter)  # bytes_kept, tokens
        self.n_kept = self.b_kept = self.t_in = self.t_kept = 0
        self.hists = {name: [0] * hist.LENGTH_BINS for name in ("chars_in", "chars_kept")}
        if tok is not None:
            self.hists |= {n: [0] * hist.LENGTH_BINS for n in ("tokens_in", "tokens_kept")}

    def add(self, b) -> None:
        """One batch of the pass (a `docpass.Batch`)."""
        import xxhash

        if not b.docs:
            return
        # hashes of the texts as read (before any rule rewrote them)
        hashes = np.fromiter(
            (xxhash.xxh3_64_intdigest(self.norm(t).encode("utf-8")) for t in b.texts_in),
            np.uint64,
            len(b.texts_in),
        )
        self.sample.add(hashes)
        ntok = None
        if self.tok is not None:  # + 1: the end-of-document token prepare appends
            # tokens of the text as prepare would encode it (after any rewriting filter)
            enc = self.tok.encode_batch(b.texts, add_special_tokens=False)
            ntok = [len(e.ids) + 1 for e in enc]
            self.t_in += sum(ntok)
            self._fold("tokens_in", ntok)
        kept = b.kept()
        for i in kept:
            lc = self.langs[b.langs[i]]
            nbytes = b.docs[i][1].nbytes  # as the rules left the text
            self.n_kept += 1
            self.b_kept += nbytes
            lc["bytes_kept"] += nbytes
            if ntok is not None:
                lc["tokens"] += ntok[i]
                self.t_kept += ntok[i]
        self._fold("chars_kept", [len(b.texts[i]) for i in kept])
        if ntok is not None:
            self._fold("tokens_kept", [ntok[i] for i in kept])

    def _fold(self, name: str, values: list[int]) -> None:
        # fixed-bin histograms absorb each batch's lengths, so memory stays flat
        if values:
            self.hists[name] = hist.add(self.hists[name], hist.length_hist(values))

    def languages(self, dp) -> dict:
        """Per language: the pass's counts with kept bytes and tokens."""
        out = {}
        for la, c in dp.language_counts().items():
            extra = self.langs.get(la, {})
            out[la] = {
                **empty_counts(),
                **c,
                "bytes_kept": extra.get("bytes_kept", 0),
                "tokens": extra.get("tokens", 0),
                "removed": dict(sorted(c["removed"].items())),
            }
        return out


def _scan_tools(inp: RawInput, st: ScanSettings):
    """The language ID, quality filters and tokenizer a scan of `inp` uses (None: off)."""
    langid = tok = None
    if st.langid is not None:
        from tokenmill.filters.langid import LanguageId

        langid = LanguageId(
            st.languages,
            st.langid.get("threshold", 0.5),
            st.langid.get("thresholds"),
            st.langid.get("model_path"),
        )
    if st.tokenizer:
        from tokenmill.tokenize.bpe import load_tokenizer

        tok = load_tokenizer(st.tokenizer)
    return langid, build_quality(st.quality, inp.source, inp.fmt), tok


def scan_file(inp: RawInput, st: ScanSettings) -> dict:
    """Counts of one file (a pure function of the file and the settings): `prepare`'s
    document pass (`tokenmill.pipelines.docpass`), with the raw scan's extras on top."""
    from tokenmill.pipelines.docpass import DocumentPass
    from tokenmill.pipelines.readers import read_records

    t0 = time.perf_counter()
    langid, quality, tok = _scan_tools(inp, st)
    dp = DocumentPass(inp.path, langid, quality, st.max_doc_bytes)
    tally = _RawTally(st, tok)
    records = read_records(
        inp.path, inp.fmt, text_key=inp.text_key, stop=st.limit, max_doc_bytes=st.max_doc_bytes
    )
    for batch in dp.batches(records):
        tally.add(batch)
    # the records before any damage are counted; the damage is reported
    errors = [{"path": inp.path, "reason": e.reason, "detail": e.detail} for e in dp.damage]
    return {
        "source": inp.source,
        "path": inp.path,
        "documents_in": dp.documents_in,
        "bytes_in": dp.bytes_in,
        "documents_kept": tally.n_kept,
        "bytes_kept": tally.b_kept,
        "tokens_in": tally.t_in if tok is not None else None,
        "tokens": tally.t_kept if tok is not None else None,
        "removed": dict(dp.removed),
        "rewritten": dp.rewritten.to_json(),
        "languages": tally.languages(dp),
        "histograms": {**tally.hists, **dp.histograms()},
        "errors": errors + dp.example_errors(),
        "wall_s": time.perf_counter() - t0,
        "sample": tally.sample,
    }


# ---- the whole scan ---------------------------------------------------------------------------


_COUNTS = ("documents_in", "bytes_in", "documents_kept", "bytes_kept")


def scan(
    inputs: list[RawInput],
    settings: ScanSettings,
    *,
    workers: int = 1,
    on_file: Callable[[dict], None] | None = None,
) -> dict:
    """Scan every input into a raw stats dict: one executor call per file, on a local cluster
    of `workers` processes (here, one file after another, with one worker or one file).
    `on_file` sees each file's counts as it finishes."""
    from tokenmill.pipelines.executor import Call, dask_client, run_calls

    t0 = time.perf_counter()
    calls = [Call(str(i), scan_file, (inp, settings)) for i, inp in enumerate(inputs)]
    n = min(workers, len(inputs))
    done = None if on_file is None else (lambda call, counts: on_file(counts))
    # a cluster's start costs a second or two: worth it only for more than one worker
    with dask_client(n) if n > 1 else contextlib.nullcontext() as client:
        results = run_calls(client, "scan", calls, on_result=done)
    return _merge(results, inputs, settings, time.perf_counter() - t0)


def _merge(results: list[dict], inputs: list[RawInput], st: ScanSettings, wall: float) -> dict:
    """The raw stats dict of the files' counts (`scan_file`, in input order)."""
    with_tokens = st.tokenizer is not None
    sources: dict[str, dict] = {}
    samples: dict[str, HashSample] = {}
    for r in results:
        s = sources.get(r["source"])
        if s is None:
            s = sources[r["source"]] = _empty_source(with_tokens)
            samples[r["source"]] = HashSample(st.sample_cap)
        _add_file(s, r, with_tokens)
        samples[r["source"]].merge(r["sample"])
    formats: dict[str, set] = defaultdict(set)
    for inp in inputs:
        formats[inp.source].add(inp.fmt)
    totals = {
        **{k: 0 for k in _COUNTS},
        "tokens": 0 if with_tokens else None,
        "removed": Counter(),
        "rewritten": {},
    }
    everything = HashSample(st.sample_cap)
    for name, s in sources.items():
        _finish_source(s, formats[name], samples[name])
        everything.merge(samples[name])
        for k in _COUNTS:
            totals[k] += s[k]
        if with_tokens:
            totals["tokens"] += s["tokens"]
        totals["removed"].update(s["removed"])
        totals["rewritten"] = merge_rewrites(totals["rewritten"], s["rewritten"])
    totals["removed"] = dict(sorted(totals["removed"].items()))
    read = {
        "tasks": len(results),
        "ran": len(results),
        "skipped": 0,
        "wall_s": round(wall, 3),
        "task_s": round(sum(r["wall_s"] for r in results), 3),
        "documents_in": totals["documents_in"],
        "bytes_in": totals["bytes_in"],
    }
    if with_tokens:
        read["tokens"] = sum(r["tokens_in"] for r in results)
    return {
        "version": 1,
        "kind": "raw",
        "sources": sources,
        "totals": totals,
        "stages": {"scan": read},
        "duplicates": everything.result(),
        "histogram_bins": hist.DESCRIPTION,
        "wall_s": round(wall, 3),
        "config": _config_section(inputs, st),
    }


def _empty_source(with_tokens: bool) -> dict:
    return {
        **{k: 0 for k in _COUNTS},
        "tokens": 0 if with_tokens else None,
        "removed": Counter(),
        "rewritten": {},
        "files": 0,
        "errors": [],
        "histograms": {},
        "languages": {},
    }


def _add_file(s: dict, r: dict, with_tokens: bool) -> None:
    """Add one file's counts `r` to its source's `s`: counts, removals, errors, histograms
    and the per-language counts."""
    s["files"] += 1
    for k in _COUNTS:
        s[k] += r[k]
    if with_tokens:
        s["tokens"] += r["tokens"]
    s["removed"].update(r["removed"])
    s["rewritten"] = merge_rewrites(s["rewritten"], r["rewritten"])
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


def _finish_source(s: dict, formats: set[str], sample: HashSample) -> None:
    """A source's sums as stats.json has them: its formats, merged errors, sorted removals
    and languages, and its duplicates."""
    s["format"] = ", ".join(sorted(formats))
    s["errors"] = merge_errors(s["errors"])
    s["removed"] = dict(sorted(s["removed"].items()))
    s["languages"] = {
        la: {**c, "removed": dict(sorted(c["removed"].items()))}
        for la, c in sorted(s["languages"].items())
    }
    s["duplicates"] = sample.result()


def _config_section(inputs: list[RawInput], st: ScanSettings) -> dict:
    """What the scan read and with which settings (the `config` of a raw stats dict)."""
    settings = asdict(st)
    return {
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
    }


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
