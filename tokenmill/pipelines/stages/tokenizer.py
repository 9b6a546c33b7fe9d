"""Stage `tokenizer`: byte-level BPE trained on a deterministic sample of the kept text, or
the config's tokenizer copied in (`WorkDir.tokenizer` either way).

Plans one task from the `process` counts (its sampling rate: `tokenizer.train.sample_bytes`
of the kept bytes) and the dedup results (duplicates are not sampled).
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tokenmill.config import Config
from tokenmill.fsio import atomic_path
from tokenmill.pipelines.engine import Task
from tokenmill.pipelines.stages.base import Counts, Run, Stage, summary
from tokenmill.pipelines.stages.dedup import duplicate_rows


@dataclass
class TokenizerCounts(Counts):
    PROGRESS = ("documents", "bytes_in")
    TOTALS = {"documents": "documents", "bytes_in": "bytes_in"}

    documents: int
    bytes_in: int  # of the sample the tokenizer was trained on
    vocab_size: int
    wall_s: float = 0.0


def sample_texts(
    docs_files: list[tuple[str, int]],
    bucket_files: list[str],
    rate: float,
    max_bytes: int,
    tally: Counter | None = None,
):
    """Kept, non-duplicate texts whose hash falls under `rate`, in global order, up to
    `max_bytes`: the same sample whatever the worker count. `tally` counts documents and
    bytes yielded."""
    cutoff = np.uint64(min(int(rate * 2**64), 2**64 - 1))
    tally = tally if tally is not None else Counter()
    for path, ordinal in docs_files:
        dups = duplicate_rows(ordinal, bucket_files)
        row0 = 0
        for batch in pq.ParquetFile(path).iter_batches(
            batch_size=4096, columns=["text", "hash_lo"]
        ):
            n = batch.num_rows
            rows = np.arange(row0, row0 + n)
            row0 += n
            sel = batch.column("hash_lo").to_numpy() <= cutoff
            if len(dups):
                sel &= ~np.isin(rows, dups)
            chosen = batch.column("text").filter(pa.array(sel))
            sizes = pc.binary_length(chosen).to_numpy(zero_copy_only=False).tolist()
            for text, size in zip(chosen.to_pylist(), sizes, strict=True):
                if tally["bytes"] + size > max_bytes:
                    return
                tally["documents"] += 1
                tally["bytes"] += size
                yield text


def train_tokenizer(
    cfg: Config,
    docs_files: list[tuple[str, int]],
    bucket_files: list[str],
    rate: float,
    out_path: str,
) -> dict:
    """Train the config's BPE on the sample; save it at `out_path`."""
    from tokenmill.tokenize.bpe import train_bpe

    t = cfg.tokenizer
    tally: Counter = Counter()
    texts = sample_texts(docs_files, bucket_files, rate, t.train.sample_bytes, tally)
    tok = train_bpe(texts, t.train.vocab_size, [t.eod_token, t.pad_token], t.train.min_frequency)
    with atomic_path(out_path) as tmp:
        tok.save(str(tmp))
    return TokenizerCounts(tally["documents"], tally["bytes"], tok.get_vocab_size()).to_json()


class TokenizerStage(Stage):
    name = "tokenizer"
    counts = TokenizerCounts

    def run(self, run: Run) -> None:
        path = run.wd.tokenizer()
        given = run.cfg.tokenizer.path
        if not given:
            return super().run(run)
        if not path.exists():
            with atomic_path(path) as tmp:
                shutil.copyfile(given, tmp)
        run.stages[self.name] = {"path": given, "trained": False}

    def tasks(self, run: Run) -> list[Task]:
        wd, cfg = run.wd, run.cfg
        kept_bytes = sum(c.bytes_kept for c in run.counts["process"])
        rate = min(1.0, cfg.tokenizer.train.sample_bytes / max(kept_bytes, 1))
        docs = [(str(wd.docs(p.source, p.key)), p.ordinal) for p in run.partitions]
        files = run.bucket_files + run.near_files
        args = (cfg, docs, files, rate, str(wd.tokenizer()))
        return [Task("train", train_tokenizer, args, wd.done_tokenizer())]

    def collect(self, run: Run, result, counts: list[TokenizerCounts]) -> None:
        run.stages[self.name] = {
            **summary(result, TokenizerCounts),
            **result.counts[0],
            "trained": True,
        }
