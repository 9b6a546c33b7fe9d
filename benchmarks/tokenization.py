"""Tokenize-stage and shard-read throughput against the reference tools, in one run (issue 6).

    python benchmarks/tokenization.py [--out /tmp/tokbench_out] [--repeat 9] [--threads N]
        [--replicate 1] [--gpt2-vocab 50257] [--write benchmarks/RESULTS.md]

Text: the kept documents of a real `tokenmill prepare` output (OUT/work/docs/*/*.parquet,
run on the bundled sample first if OUT is missing), concatenated (x --replicate) into one
partition parquet. Tokenizers: OUT/tokenizer.json (the run's 8k BPE) and, with --gpt2-vocab,
a byte-level BPE of that size trained offline with `tokenmill.tokenize.bpe.train_bpe` on the
same text (min_frequency=1, which is the same as min_frequency=2 on the text doubled).

Encode, every method on the same documents and tokenizer.json, each document + EOD:
  tokenmill.tokenize_partition   the stage task: parquet in -> encode_batch_fast -> raw .bin
                                 tokens + sizes.npy + docs parquet (id, url, lang)
  ... + write_shard              the same, then its Megatron .bin/.idx shard (prepare's next
                                 step: a byte copy of the .bin, sizes -> .idx, docs sidecar)
  encode_documents + ShardWriter the library call in 1024-doc batches, straight to .bin/.idx
  raw encode_batch               one `Tokenizer.encode_batch(all texts)`, ids left in Python
  raw encode_batch_fast          the same with `encode_batch_fast` (no offsets), which
                                 tokenmill calls: the bound on what the stage can reach
  megatron loop, 1 proc          preprocess_data.py's Encoder.encode per JSON line (encode().ids,
                                 + EOD) and IndexedDatasetBuilder.add_document, in one process
  megatron Pool(T)               the same as preprocess_data.py --workers T: Pool.imap(.., 32)
                                 (pool started before the clock, as its "startup" is excluded)
  datatrove DocumentTokenizer    ParquetReader -> DocumentTokenizer (eos_token, no shuffle)
Each repetition runs every method once, in a fresh seeded random order: a rotation would keep
each method behind the same neighbour every time, and neighbours matter (measured: right after
datatrove's run in the same process, encode_documents took 10-20% longer while raw encode_batch
barely changed). So noise and order effects hit all of them alike. Medians and bests, and a
paired ratio: the median over rounds of raw encode_batch's time / the method's time in the
same round, which cancels the load swings that last longer than a round.
Every method's output is checked to hold the same number of tokens.

Shard reads: random sequence indices, each sequence copied out (np.array), on one shard of the
encoded text written by ShardWriter (uint16, and an int32 copy), `ShardReader[i]` vs
megatron-core `IndexedDataset[i]`; sequences compared for equality first.

Threads: RAYON_NUM_THREADS=--threads (default: all cores) and TOKENIZERS_PARALLELISM=true are
set before `tokenizers` is imported; the megatron Pool uses the same number of processes.
"""

from __future__ import annotations

import os
import sys

# `python benchmarks/x.py` puts benchmarks/ first on sys.path: drop it, so that no sibling file
# shadows an installed or standard-library module.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse  # noqa: E402

if __name__ == "__main__":  # thread settings must precede the first import of tokenizers
    _pre = argparse.ArgumentParser(add_help=False)
    _pre.add_argument("--threads", type=int, default=os.cpu_count())
    _threads = _pre.parse_known_args()[0].threads
    os.environ["RAYON_NUM_THREADS"] = str(_threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true"

import glob  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

EOD = "<|endoftext|>"


# ---- inputs ---------------------------------------------------------------------------------


def ensure_prepared(out: Path) -> None:
    if not (out / "tokenizer.json").exists():
        print(f"running `tokenmill prepare --out {out} -q` ...", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "tokenmill", "prepare", "--out", str(out), "-q"], check=True
        )


def build_partition(out: Path, replicate: int, path: Path) -> list[str]:
    """All kept documents of the run as one partition parquet (x replicate); their texts."""
    files = sorted(glob.glob(str(out / "work" / "docs" / "*" / "*.parquet")))
    if not files:
        sys.exit(f"no kept documents under {out}/work/docs")
    table = pa.concat_tables(
        [pq.read_table(f, columns=["id", "url", "lang", "text"]) for f in files]
    )
    if replicate > 1:
        table = pa.concat_tables([table] * replicate)
    pq.write_table(table, path, compression="zstd")
    return table.column("text").to_pylist()


# ---- encode methods: each takes a fresh folder and returns tokens written (with EODs) -------


class Methods:
    def __init__(self, tok_path: str, part_path: str, texts: list[str], threads: int):
        from tokenmill.shards.megatron import dtype_for_vocab
        from tokenmill.tokenize.bpe import load_tokenizer

        self.tok_path, self.part_path, self.texts = tok_path, part_path, texts
        # The very instance tokenmill's tasks use (load_tokenizer caches one per process):
        # a BPE model caches the merges of the first 10,000 distinct words it meets and keeps
        # them, and which words those are made instances 3-4% apart on this text (measured);
        # one shared instance keeps that out of the comparison.
        self.raw = load_tokenizer(tok_path)
        self.vocab = self.raw.get_vocab_size()
        self.eod = self.raw.token_to_id(EOD)
        self.dtype = dtype_for_vocab(self.vocab)
        self.lines = [json.dumps({"text": t}, ensure_ascii=False) for t in texts]
        self.threads = threads
        self.extra: dict[str, list[float]] = {"+ write_shard": []}
        self._pool = None
        self._dt = None

    # tokenmill
    def tokenize_partition(self, d: Path) -> int:
        from tokenmill.pipelines.stages import tokenize_partition, write_shard

        base = str(d / "00000-0000")
        counts = tokenize_partition(
            "00000-0000", 0, self.part_path, [], [], self.tok_path, EOD, base
        )
        t0 = time.perf_counter()
        shard = write_shard(
            str(d / "s_00000"), [(base, 0, counts["documents"])], "b", counts["dtype"]
        )
        self.extra["+ write_shard"].append(time.perf_counter() - t0)
        assert shard["tokens"] == counts["tokens"]
        return counts["tokens"]

    def encode_documents(self, d: Path) -> int:
        from tokenmill.shards.megatron import ShardWriter
        from tokenmill.tokenize.bpe import load_tokenizer
        from tokenmill.tokenize.encode import encode_documents

        tok = load_tokenizer(self.tok_path)
        n = 0
        with ShardWriter(d / "s", self.dtype) as w:
            for b in pq.ParquetFile(self.part_path).iter_batches(1024, columns=["text"]):
                flat, sizes = encode_documents(
                    tok, b.column("text").to_pylist(), self.eod, self.dtype
                )
                w.write_many(flat, sizes)
                n += len(flat)
        return n

    # references
    def raw_encode_batch(self, d: Path) -> int:
        enc = self.raw.encode_batch(self.texts, add_special_tokens=False)
        return sum(len(e) for e in enc) + len(enc)

    def raw_encode_batch_fast(self, d: Path) -> int:
        enc = self.raw.encode_batch_fast(self.texts, add_special_tokens=False)
        return sum(len(e) for e in enc) + len(enc)

    def megatron_loop(self, d: Path) -> int:
        from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder

        b = IndexedDatasetBuilder(str(d / "m.bin"), dtype=DType.optimal_dtype(self.vocab))
        n = 0
        for line in self.lines:
            ids, lens, _ = _mg_encode(line, self.raw, self.eod)
            b.add_document(ids, lens)
            n += len(ids)
        b.finalize(str(d / "m.idx"))
        return n

    def megatron_pool(self, d: Path) -> int:
        from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder

        if self._pool is None:  # started once, outside the clock (preprocess_data's startup)
            ctx = multiprocessing.get_context("spawn")
            self._pool = ctx.Pool(
                self.threads, initializer=_mg_init, initargs=(self.tok_path, self.eod)
            )
            list(self._pool.imap(_mg_worker, self.lines[:64], 32))
        b = IndexedDatasetBuilder(str(d / "m.bin"), dtype=DType.optimal_dtype(self.vocab))
        n = 0
        for ids, lens, _ in self._pool.imap(_mg_worker, self.lines, 32):
            b.add_document(ids, lens)
            n += len(ids)
        b.finalize(str(d / "m.idx"))
        return n

    def datatrove(self, d: Path) -> int:
        from datatrove.pipeline.readers import ParquetReader
        from datatrove.pipeline.tokens.tokenizer import DocumentTokenizer

        folder = d.parent / "datatrove"  # one step (one loaded tokenizer) for all repetitions
        if self._dt is None:
            from loguru import logger

            logger.disable("datatrove")  # its per-run INFO lines
            self._dt = DocumentTokenizer(
                str(folder),
                self.tok_path,
                eos_token=EOD,
                shuffle_documents=False,
                save_final_metadata=False,
            )
        shutil.rmtree(folder, ignore_errors=True)
        reader = ParquetReader(
            str(Path(self.part_path).parent),
            glob_pattern=Path(self.part_path).name,
            read_metadata=False,
        )
        self._dt.run(reader.run(None, 0, 1), 0, 1)
        files = glob.glob(str(folder / "*.ds"))
        return sum(os.path.getsize(f) for f in files) // (2 if self.vocab <= 65536 else 4)

    def close(self):
        if self._pool is not None:
            self._pool.close()
            self._pool.join()


# Megatron-LM tools/preprocess_data.py, Encoder.encode without sentence splitting: the
# HuggingFace tokenizer's tokenize(text) is encode(text).ids; EOD appended (--append-eod).
_MG: dict = {}


def _mg_encode(json_line: str, tok, eod: int):
    data = json.loads(json_line)
    doc_ids, sentence_lens = [], []
    for sentence in [data["text"]]:
        ids = tok.encode(sentence, add_special_tokens=False).ids
        if len(ids) > 0:
            doc_ids.extend(ids)
            sentence_lens.append(len(ids))
    if len(doc_ids) > 0:
        doc_ids.append(eod)
        sentence_lens[-1] += 1
    return doc_ids, sentence_lens, len(json_line)


def _mg_init(tok_path: str, eod: int) -> None:
    from tokenizers import Tokenizer

    _MG["tok"], _MG["eod"] = Tokenizer.from_file(tok_path), eod


def _mg_worker(line: str):
    return _mg_encode(line, _MG["tok"], _MG["eod"])


METHODS = [
    ("tokenmill tokenize_partition", "tokenize_partition"),
    ("tokenmill encode_documents + ShardWriter", "encode_documents"),
    ("raw Tokenizer.encode_batch", "raw_encode_batch"),
    ("raw Tokenizer.encode_batch_fast", "raw_encode_batch_fast"),
    ("Megatron-style encode loop, 1 process", "megatron_loop"),
    ("Megatron-style Pool(T).imap(encode, 32)", "megatron_pool"),
    ("datatrove DocumentTokenizer", "datatrove"),
]


def bench_encode(
    tok_path: str,
    part_path: str,
    texts: list[str],
    repeat: int,
    threads: int,
    work: Path,
    methods: list[tuple[str, str]],
) -> tuple[dict[str, float], int]:
    m = Methods(tok_path, part_path, texts, threads)
    times: dict[str, list[float]] = {name: [] for name, _ in methods}
    tokens: dict[str, int] = {}
    # round 0, untimed, warms every method up (imports, tokenizer loads, the pool) on a few docs
    warm = Path(part_path).with_name("warm.parquet")
    pq.write_table(pq.read_table(part_path).slice(0, 200), warm)
    full = (m.part_path, m.texts, m.lines)
    m.part_path, m.texts, m.lines = str(warm), texts[:200], m.lines[:200]
    try:
        for r in range(repeat + 1):
            if r == 1:
                m.part_path, m.texts, m.lines = full
                tokens.clear()
            for name, attr in random.Random(r).sample(methods, len(methods)):
                d = work / f"{attr}_{r}"
                d.mkdir(parents=True)
                t0 = time.perf_counter()
                n = getattr(m, attr)(d)
                dt = time.perf_counter() - t0
                shutil.rmtree(d)
                if r:
                    times[name].append(dt)
                tokens[name] = n
            if r == 0:
                m.extra["+ write_shard"].clear()
    finally:
        m.close()
    if len(set(tokens.values())) != 1:
        raise SystemExit(f"the methods disagree on the token count: {tokens}")
    times["tokenmill tokenize_partition + write_shard"] = [
        a + b
        for a, b in zip(
            times["tokenmill tokenize_partition"], m.extra["+ write_shard"], strict=True
        )
    ]
    return times, next(iter(tokens.values()))


# ---- shard reads ----------------------------------------------------------------------------


def bench_reads(tok_path: str, texts: list[str], reads: int, repeat: int, work: Path) -> list:
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    from tokenmill.shards.megatron import ShardReader, ShardWriter, dtype_for_vocab
    from tokenmill.tokenize.bpe import load_tokenizer
    from tokenmill.tokenize.encode import encode_documents

    tok = load_tokenizer(tok_path)
    dtype = dtype_for_vocab(tok.get_vocab_size())
    flat, sizes = encode_documents(tok, texts, tok.token_to_id(EOD), dtype)
    rows = []
    for dt in (np.dtype(np.uint16), np.dtype(np.int32)):
        prefix = work / f"read_{dt.name}"
        with ShardWriter(prefix, dt) as w:
            w.write_many(flat.astype(dt), sizes)
        ours, ref = ShardReader(prefix), IndexedDataset(str(prefix))
        rng = np.random.default_rng(0)
        idx = rng.integers(0, len(ours), reads)
        for i in idx[:2000]:
            assert np.array_equal(ours[int(i)], ref[int(i)])
        ntok = int(sizes[idx].sum())

        def read_ours(idx=idx, ours=ours):
            for i in idx.tolist():
                np.array(ours[i])

        def read_ref(idx=idx, ref=ref):
            for i in idx.tolist():
                np.array(ref[i])

        t = {"ShardReader": [], "IndexedDataset": []}
        for _ in range(repeat):
            for name, fn in (("ShardReader", read_ours), ("IndexedDataset", read_ref)):
                t0 = time.perf_counter()
                fn()
                t[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in t.items()}
        rows.append((dt.name, len(ours), len(flat), reads, ntok, med))
    return rows


# ---- report ---------------------------------------------------------------------------------


def encode_table(
    title: str, times: dict[str, list[float]], ndocs: int, mb: float, ntok: int
) -> list:
    med = {name: statistics.median(v) for name, v in times.items()}
    ref = med["raw Tokenizer.encode_batch"]
    ref_fast = med["raw Tokenizer.encode_batch_fast"]
    lines = [
        f"**{title}**",
        "",
        "| method | s, median | s, best | docs/s | MB/s | tokens/s | vs raw encode_batch "
        "| vs raw encode_batch_fast | vs raw encode_batch, paired | vs raw encode_batch, best |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    raw = times["raw Tokenizer.encode_batch"]
    order = [METHODS[0][0], "tokenmill tokenize_partition + write_shard"] + [
        n for n, _ in METHODS[1:]
    ]
    for name in (n for n in order if n in times):
        s = med[name]
        lines.append(
            f"| {name} | {s:.2f} | {min(times[name]):.2f} | {ndocs / s:,.0f} | {mb / s:.2f} |"
            f" {ntok / s:,.0f} | {ref / s:.2f}x | {ref_fast / s:.2f}x |"
            f" {statistics.median(a / b for a, b in zip(raw, times[name], strict=True)):.2f}x |"
            f" {min(raw) / min(times[name]):.2f}x |"
        )
    return lines + [""]


def main() -> None:
    warnings.filterwarnings("ignore", message="Transformer Engine and Apex")  # megatron-core
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--out",
        type=Path,
        default=Path("/tmp/tokbench_out"),
        help="a `tokenmill prepare` output (made from the bundled sample if missing)",
    )
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="RAYON_NUM_THREADS, and the Megatron-style Pool's processes",
    )
    ap.add_argument("--replicate", type=int, default=1, help="repeat the kept documents N times")
    ap.add_argument(
        "--gpt2-vocab",
        type=int,
        default=50257,
        help="also train and measure a BPE of this size (0: skip)",
    )
    ap.add_argument("--reads", type=int, default=200_000, help="random sequence reads per run")
    ap.add_argument(
        "--skip",
        default="",
        help="comma-separated methods to leave out while iterating: "
        + ", ".join(a for _, a in METHODS[4:]),
    )
    ap.add_argument("--write", type=Path, default=None, help="append a section to this file")
    args = ap.parse_args()
    skip = {a for a in args.skip.split(",") if a}
    if skip - {a for _, a in METHODS[4:]}:
        ap.error(f"--skip takes only: {', '.join(a for _, a in METHODS[4:])}")
    methods = [(n, a) for n, a in METHODS if a not in skip]
    t_start = time.perf_counter()
    load0 = os.getloadavg()[0]

    ensure_prepared(args.out)
    work = Path(tempfile.mkdtemp(prefix="tokbench_"))
    try:
        part = work / "part" / "00000-0000.parquet"
        part.parent.mkdir()
        texts = build_partition(args.out, args.replicate, part)
        ndocs = len(texts)
        mb = sum(len(t.encode()) for t in texts) / 1e6
        toks = [("sample tokenizer", str(args.out / "tokenizer.json"))]
        train_note = ""
        if args.gpt2_vocab:
            from tokenmill.tokenize.bpe import train_bpe

            t0 = time.perf_counter()
            g = train_bpe(texts, args.gpt2_vocab, [EOD, "<|pad|>"], min_frequency=1)
            train_s = time.perf_counter() - t0
            g.save(str(work / "gpt2size.json"))
            toks.append(("GPT-2-size tokenizer", str(work / "gpt2size.json")))
            train_note = (
                f"GPT-2-size tokenizer: train_bpe(vocab_size={args.gpt2_vocab}) on this "
                f"text reached {g.get_vocab_size():,} ids in {train_s:.1f} s."
            )
        tables = []
        for label, path in toks:
            from tokenizers import Tokenizer

            vocab = Tokenizer.from_file(path).get_vocab_size()
            times, ntok = bench_encode(
                path, str(part), texts, args.repeat, args.threads, work / "enc", methods
            )
            tables += encode_table(
                f"{label} ({vocab:,} ids, {ntok:,} tokens incl. EOD)", times, ndocs, mb, ntok
            )
        reads = bench_reads(toks[0][1], texts, args.reads, args.repeat, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - t_start
    load1 = os.getloadavg()[0]

    cmd = "python benchmarks/tokenization.py" + "".join(f" {a}" for a in sys.argv[1:] if a)
    lines = [
        f"## Tokenize stage and shard reads: tokenization.py ({time.strftime('%Y-%m-%d')}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]})",
        "",
        f"Command: `RAYON_NUM_THREADS={args.threads} TOKENIZERS_PARALLELISM=true {cmd}` "
        f"(the script sets both; `--threads {args.threads}`), whole run {wall:.0f} s. "
        f"Text: the {ndocs:,} kept documents ({mb:.2f} MB UTF-8, x{args.replicate}) of "
        f"`tokenmill prepare` on the bundled sample, as one partition parquet. "
        f"Median (and best) of {args.repeat} runs per method, methods interleaved; the cores are "
        f"shared with other jobs (1-min load average {load0:.1f} at the start, {load1:.1f} at the "
        f"end, on {os.cpu_count()} cores), so single timings swing by 2x or more and ratios "
        f"by +-15%; the paired column is the median of the per-round ratios (the method and "
        f"raw encode_batch in the same round), which is the steadiest. MB/s counts UTF-8 text "
        f"bytes; tokens/s "
        f"counts the tokens written (EOD included); every method produced the same count. "
        f"tokenmill encodes with `encode_batch_fast` (the same ids as `encode_batch`, no "
        f"character offsets); the raw encode_batch_fast row is that call on all texts at once. "
        f"Megatron-style = tools/preprocess_data.py's Encoder.encode (tokenize = "
        f"`encode(text).ids`, --append-eod) + megatron-core IndexedDatasetBuilder; the Pool row "
        f"uses {args.threads} worker processes, started before the clock. datatrove "
        f"{_version('datatrove')}: ParquetReader -> DocumentTokenizer(eos_token, "
        f"shuffle_documents=False). tokenizers {_version('tokenizers')}.",
        "",
        *tables,
    ]
    if train_note:
        lines += [train_note, ""]
    lines += [
        f"**Shard random access** ({args.reads:,} random sequence indices, each copied out with "
        f"np.array; megatron-core {_version('megatron-core')} IndexedDataset(mmap) vs "
        f"tokenmill ShardReader on the same .bin/.idx; sequences checked equal)",
        "",
        "| dtype | sequences | tokens | ShardReader seq/s | ShardReader tokens/s | "
        "IndexedDataset seq/s | IndexedDataset tokens/s | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for dt, nseq, ntok_shard, n, ntok, med in reads:
        a, b = med["ShardReader"], med["IndexedDataset"]
        lines.append(
            f"| {dt} | {nseq:,} | {ntok_shard:,} | {n / a:,.0f} | {ntok / a:,.0f} | "
            f"{n / b:,.0f} | {ntok / b:,.0f} | {b / a:.2f}x |"
        )
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.write:
        if not args.write.exists():
            args.write.write_text(
                "# Benchmark results\n\nOne section per benchmark run; append, never rewrite.\n"
            )
        with open(args.write, "a") as f:
            f.write("\n" + text)


def _version(dist: str) -> str:
    from importlib.metadata import version

    try:
        return version(dist)
    except Exception:
        return "?"


if __name__ == "__main__":
    main()
