"""The per-document pass that `prepare`'s process stage and `tokenmill stats` share.

    read -> set bad input aside by reason -> language ID -> quality filters
         -> decontamination (with evaluation sets) -> counts

`DocumentPass` takes an input's records in batches (`batches`) and, per batch, sorts each
record into a valid document or an `input:*` reason, runs language ID and the quality rules,
and counts documents and bytes in, kept and removed per reason, per language, with the
LID-score and length histograms, the histogram of a scoring rule's scores (`quality_score`:
`fasttext_quality`'s, of every document it judged, kept or not), and what the rules rewrote
(`rewritten`: per rule, documents changed and the rule's counts by kind). What a caller does
on top (write the kept documents and their hashes; or sample hashes and count tokens) it does
with the `Batch` it gets back.

Damage met while reading ends the records (not the pass): the batch being filled at that
moment is processed like any other, and the error is kept in `damage`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tokenmill import hist
from tokenmill.filters.base import Rewrites
from tokenmill.filters.registry import apply_filters
from tokenmill.pipelines.readers import Bad, Doc, FileError, meta_json

BATCH_DOCS = 1024
UNDETERMINED = "und"  # language of records that never reached language ID
EXAMPLES_PER_REASON = 5  # records named per reason per task (and per source in stats)


class LangCounts:
    """documents in / kept / removed by reason, per language."""

    def __init__(self):
        self.by_lang: dict[str, dict] = defaultdict(
            lambda: {"documents_in": 0, "bytes_in": 0, "documents_kept": 0, "removed": Counter()}
        )

    def add(self, lang: str, nbytes: int, reason: str | None) -> None:
        c = self.by_lang[lang]
        c["documents_in"] += 1
        c["bytes_in"] += nbytes
        if reason is None:
            c["documents_kept"] += 1
        else:
            c["removed"][reason] += 1

    def to_json(self) -> dict:
        return {k: {**v, "removed": dict(v["removed"])} for k, v in sorted(self.by_lang.items())}


@dataclass
class Batch:
    """One batch after the pass. `docs` are the valid documents (record index, document, its
    meta as JSON), their text as the rules left it; `texts_in` the texts before any rule
    rewrote them; `langs`, `scores` (LID), `quality_scores` (a scoring rule's; None where none
    judged the document), `reasons` (None: kept) align with `docs`. `set_aside` are the
    records removed for an `input:*` reason (record index, record, reason)."""

    docs: list[tuple[int, Doc, str]] = field(default_factory=list)
    set_aside: list[tuple[int, Bad | Doc, str]] = field(default_factory=list)
    texts_in: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    langs: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    quality_scores: list[float | None] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)

    def kept(self) -> list[int]:
        return [i for i, r in enumerate(self.reasons) if r is None]


def batches(items: Iterable, n: int = BATCH_DOCS) -> Iterator[list]:
    """`items` in lists of `n` (the last one shorter)."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


class DocumentPass:
    """The shared pass over one input's records (see the module docstring).

    `langid` is a `LanguageId` or None (every document then is UNDETERMINED and kept by it),
    `quality` the filters `build_filters` made for the input's source."""

    def __init__(self, path: str, langid, quality: list, max_doc_bytes: int, decontam=None):
        self.path = path
        self.langid = langid
        self.quality = quality
        self.max_doc_bytes = max_doc_bytes
        self.decontam = decontam  # (texts, langs) -> per document its hits, or None
        self.decontam_items: dict[str, set[int]] = defaultdict(set)  # set -> items hit
        self.documents_in = 0
        self.bytes_in = 0
        self.removed: Counter = Counter()
        self.languages = LangCounts()
        self.examples: dict[str, list[dict]] = {}  # reason -> the first records set aside
        self.damage: list[FileError] = []
        self.chars_in = [0] * hist.LENGTH_BINS
        self.score_hists: dict[str, list[int]] = {}
        self.quality_hist: list[int] | None = None  # None: no scoring rule judged anything
        self.rewritten = Rewrites()

    def batches(self, records: Iterable) -> Iterator[Batch]:
        """Each batch of `records` ((index, Doc or reason) pairs) after the pass."""
        for items in batches(self._until_damage(records)):
            yield self.run(items)

    def _until_damage(self, records):
        try:
            yield from records
        except FileError as e:
            self.damage.append(e)
        except Exception as e:  # noqa: BLE001 - a reader bug must not end the run: report it
            self.damage.append(FileError("input:read_error", f"{type(e).__name__}: {e}"))

    def run(self, items: list) -> Batch:
        """One batch: bad input set aside, LID, the quality rules, the counts."""
        self.documents_in += len(items)
        out = self._sort_input(items)
        if not out.docs:
            return out
        out.texts_in = [d.text for _, d, _ in out.docs]
        in_bytes = [d.nbytes for _, d, _ in out.docs]  # before any rule rewrites a text
        self.chars_in = hist.add(self.chars_in, hist.length_hist([len(t) for t in out.texts_in]))
        n = len(out.docs)
        reasons: list[str | None] = [None] * n
        if self.langid is not None:
            langs, scores, reasons = self.langid(out.texts_in)
            self._fold_scores(langs, scores)
        else:
            langs, scores = [UNDETERMINED] * n, [0.0] * n
        urls = [d.url for _, d, _ in out.docs]
        quality_scores: list[float | None] = [None] * n
        texts = apply_filters(
            self.quality,
            list(out.texts_in),
            langs,
            reasons,
            fields={"url": urls},
            rewritten=self.rewritten,
            scores=quality_scores,
        )
        scored = [s for s in quality_scores if s is not None]
        if scored:
            self.quality_hist = hist.add(self.quality_hist, hist.score_hist(scored))
        for i, t in enumerate(texts):
            if t is not out.texts_in[i]:  # rewritten by a rule (C4's line filter, pii)
                doc = out.docs[i][1]
                doc.text = t
                doc.nbytes = len(t.encode("utf-8"))
        if self.decontam is not None:
            self._decontaminate(texts, langs, reasons)
        for i, r in enumerate(reasons):
            self.languages.add(langs[i], in_bytes[i], r)
            if r is not None:
                self.removed[r] += 1
        out.texts, out.langs, out.scores, out.reasons = texts, langs, scores, reasons
        out.quality_scores = quality_scores
        return out

    def _decontaminate(self, texts: list[str], langs: list[str], reasons: list) -> None:
        """Remove the kept documents that share an n-gram with an evaluation set, as
        `decontam:<first set they hit>`; note every set's items they hit."""
        kept = [i for i, r in enumerate(reasons) if r is None]
        hits = self.decontam([texts[i] for i in kept], [langs[i] for i in kept])
        for i, doc_hits in zip(kept, hits, strict=True):
            if doc_hits:
                reasons[i] = f"decontam:{doc_hits[0].name}"
                for h in doc_hits:
                    self.decontam_items[h.name].update(h.items)

    def _sort_input(self, items: list) -> Batch:
        """Valid documents apart from the records set aside for an `input:*` reason."""
        out = Batch()
        for idx, item in items:
            if isinstance(item, str):
                bad = item if isinstance(item, Bad) else Bad(item)
                self._set_aside(out, idx, bad, bad, 0)
                continue
            self.bytes_in += item.nbytes
            meta = meta_json(item.meta) if item.nbytes <= self.max_doc_bytes else None
            if meta is None:
                # (a meta that cannot be written out: nested too deep, lone surrogates)
                too_large = item.nbytes > self.max_doc_bytes
                reason = "input:too_large" if too_large else "input:invalid_record"
                self._set_aside(out, idx, item, Bad(reason), item.nbytes)
            else:
                out.docs.append((idx, item, meta))
        return out

    def _set_aside(self, out: Batch, idx: int, item, bad: Bad, nbytes: int) -> None:
        reason = str(bad)
        self.removed[reason] += 1
        self.languages.add(UNDETERMINED, nbytes, reason)
        self._example(idx, bad)
        out.set_aside.append((idx, item, reason))

    def _example(self, idx: int, bad: Bad) -> None:
        """Note (file, record) of an input removal, the first few per reason."""
        got = self.examples.setdefault(str(bad), [])
        if len(got) < EXAMPLES_PER_REASON:
            where = f"record {idx}" + (f", line {bad.line}" if bad.line is not None else "")
            got.append(
                {
                    "path": self.path,
                    "reason": str(bad),
                    "record": idx,
                    "line": bad.line,
                    "detail": f"{self.path}: {where} set aside as {bad}",
                }
            )

    def _fold_scores(self, langs: list[str], scores: list[float]) -> None:
        by_lang: dict[str, list[float]] = defaultdict(list)
        for lang, score in zip(langs, scores, strict=True):
            by_lang[lang].append(score)
        for lang, values in by_lang.items():
            self.score_hists[lang] = hist.add(self.score_hists.get(lang), hist.score_hist(values))

    def language_counts(self) -> dict:
        """Per language: documents and bytes in, documents kept, removed by reason, and (with
        language ID) the LID-score histogram."""
        languages = self.languages.to_json()
        for lang, h in self.score_hists.items():
            languages[lang]["lang_score"] = h
        return languages

    def histograms(self) -> dict[str, list[int]]:
        """The pass's histograms: `chars_in` (every valid document's length) and, where a
        scoring rule judged documents, `quality_score` (its scores)."""
        out = {"chars_in": self.chars_in}
        if self.quality_hist is not None:
            out["quality_score"] = self.quality_hist
        return out

    def example_errors(self) -> list[dict]:
        return [e for got in self.examples.values() for e in got]
