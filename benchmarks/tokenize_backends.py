"""Encoders on the same text (issue 19): raw HF tokenizers, raw tiktoken, the stage's path.

    python benchmarks/tokenize_backends.py [--repeat 5] [--threads 2] [--mb 0]
        [--write benchmarks/RESULTS.md]

Text: the bundled sample (tokenmill/data: C4, the Pile, OSCAR in eleven languages; 2,551
documents, 4.8 MB of UTF-8), or with --mb N documents recombined from its paragraphs
(seeded) up to N MB. Tokenizers, trained here (GPT-2's own tokenizer.json is not available
offline): tokenmill's `train_bpe` at the config's default vocabulary (32,000) and a GPT-2-style
`ByteLevelBPETokenizer` at GPT-2's size (50,257), both on the sample.

Methods, each over all documents, `--threads` threads each (RAYON_NUM_THREADS for HF, set
before `tokenizers` is imported; tiktoken's num_threads; the stage's encoder follows RAYON):
  hf encode_batch            one `Tokenizer.encode_batch(texts)`: the reference of the ratios
  hf encode_batch_fast       the same without character offsets
  tiktoken ordinary_batch    `Encoding.encode_ordinary_batch(texts)` on fastbpe's encoding
  stage path, hf             `encode_pipelined(tok, ...)`: the stage's call, 1024-document
                             batches, flat numpy ids + EOD + sizes (tokenizer.backend: hf)
  stage path, auto           the same through `partition_encoder(tok)` (the default: its first
                             batch is encoded by both and compared, then tiktoken)
  ... after its check        the same with the check done before the clock: the rate of the
                             rest of a partition (a default partition is 200,000 documents;
                             the check costs HF's time on its first 1,024)
Each round runs every method once, in a fresh seeded random order; medians over rounds, and
the paired ratio: the median over rounds of hf encode_batch's time / the method's time in the
same round (it cancels load swings longer than a round). Every method's ids (first round) are
checked equal.
"""

from __future__ import annotations

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse  # noqa: E402

if __name__ == "__main__":  # thread settings must precede the first import of tokenizers
    _pre = argparse.ArgumentParser(add_help=False)
    _pre.add_argument("--threads", type=int, default=2)
    os.environ["RAYON_NUM_THREADS"] = str(_pre.parse_known_args()[0].threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true"

import glob  # noqa: E402
import gzip  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tokenmill" / "data"
EOD = "<|endoftext|>"


def sample_texts() -> list[str]:
    """The bundled sample's documents, read with plain gzip / zstandard / json."""
    import zstandard

    texts = []
    for pattern, key in (
        ("c4/en/*.json.gz", "text"),
        ("pile/train/*.jsonl.zst", "text"),
        ("oscar/*_meta/*.jsonl.zst", "content"),
    ):
        for f in sorted(glob.glob(str(DATA / pattern))):
            raw = open(f, "rb").read()
            if f.endswith(".gz"):
                raw = gzip.decompress(raw)
            else:
                raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
            texts += [json.loads(line)[key] for line in raw.decode().splitlines() if line.strip()]
    return texts


def recombined(texts: list[str], mb: float, seed: int = 0) -> list[str]:
    """Documents of the sample's paragraph counts, each of paragraphs drawn (seeded) from the
    whole sample, up to `mb` MB: new documents of real text, the same mix of languages."""
    rng = random.Random(seed)
    paras = [p for t in texts for p in t.split("\n") if p.strip()]
    counts = [max(1, t.count("\n") + 1) for t in texts]
    out, size = [], 0
    while size < mb * 1e6:
        doc = "\n".join(rng.choice(paras) for _ in range(rng.choice(counts)))
        out.append(doc)
        size += len(doc.encode())
    return out


def tokenizers_under_test(texts: list[str]) -> dict:
    from tokenizers import Tokenizer
    from tokenizers.implementations import ByteLevelBPETokenizer

    from tokenmill.tokenize.bpe import train_bpe

    gpt2 = ByteLevelBPETokenizer()
    gpt2.train_from_iterator(texts, vocab_size=50257, special_tokens=[EOD])
    return {
        "tokenmill train_bpe 32k": train_bpe(texts, 32000, [EOD, "<|pad|>"]),
        "GPT-2-style ByteLevelBPETokenizer 50k": Tokenizer.from_str(gpt2.to_str()),
    }


def methods(tok, threads: int) -> dict:
    """name -> (run, ids): `run(texts)` is timed, `ids(output)` (each text's ids) is not."""
    from tokenmill.tokenize.encode import encode_pipelined
    from tokenmill.tokenize.fastbpe import partition_encoder, plan_for

    plan = plan_for(tok)
    assert plan.encoding is not None, plan.reason
    eod = tok.token_to_id(EOD)
    dtype = np.dtype(np.uint16 if tok.get_vocab_size() < 65500 else np.int32)

    def stage(encoder, texts):
        batches = ((i, texts[i : i + 1024]) for i in range(0, len(texts), 1024))
        return [(flat, sizes) for _, flat, sizes in encode_pipelined(encoder, batches, eod, dtype)]

    def stage_ids(parts):
        flat = np.concatenate([f for f, _ in parts])
        sizes = np.concatenate([s for _, s in parts])
        return [x[:-1].tolist() for x in np.split(flat, np.cumsum(sizes)[:-1])]

    def auto(texts):
        encoder = partition_encoder(tok)  # a new partition's: checks its first batch
        out = stage(encoder, texts)
        assert encoder.backend == "tiktoken", encoder.reason
        return out

    def checked(texts):
        encoder = partition_encoder(tok)
        encoder.encode_batch_fast(texts[:1])  # the check, untimed: the rest of a long partition
        return stage(encoder, texts)

    def encodings(out):
        return [e.ids for e in out]

    return {
        "hf encode_batch": (lambda t: tok.encode_batch(t, add_special_tokens=False), encodings),
        "hf encode_batch_fast": (
            lambda t: tok.encode_batch_fast(t, add_special_tokens=False),
            encodings,
        ),
        "tiktoken ordinary_batch": (
            lambda t: plan.encoding.encode_ordinary_batch(t, num_threads=threads),
            list,
        ),
        "stage path, hf": (lambda t: stage(tok, t), stage_ids),
        "stage path, auto": (auto, stage_ids),
        "stage path, auto, after its check": (checked, stage_ids),
    }


def measure(tok, texts: list[str], threads: int, repeat: int, seed: int) -> dict:
    """Seconds per method per round; every method's ids (first round) checked equal."""
    runs = methods(tok, threads)
    rng = random.Random(seed)
    secs: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(repeat):
        order = list(runs)
        rng.shuffle(order)
        outputs = {}
        for name in order:
            run, ids = runs[name]
            t0 = time.perf_counter()
            out = run(texts)
            secs[name].append(time.perf_counter() - t0)
            if r == 0:
                outputs[name] = ids(out)
            del out
        if r == 0:
            want = outputs.pop("hf encode_batch")
            for name, got in outputs.items():
                assert got == want, f"{name}: ids differ from hf encode_batch"
            del outputs, want
    return secs


def table(secs: dict, mb: float) -> str:
    ref = secs["hf encode_batch"]
    rows = [
        "| method | median s | MB/s | vs hf encode_batch (medians) | paired ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in secs.items():
        med = statistics.median(s)
        paired = statistics.median(r / x for r, x in zip(ref, s, strict=True))
        rows.append(
            f"| {name} | {med:.3f} | {mb / med:.2f} | "
            f"{statistics.median(ref) / med:.2f}x | {paired:.2f}x |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mb", type=float, default=0, help="recombine the sample to this size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", help="append the results to this markdown file")
    args = ap.parse_args()

    import tiktoken
    import tokenizers

    sample = sample_texts()
    texts = recombined(sample, args.mb, args.seed) if args.mb else sample
    mb = sum(len(t.encode()) for t in texts) / 1e6
    toks = tokenizers_under_test(sample)
    load0 = os.getloadavg()[0]
    results = {
        name: measure(tok, texts, args.threads, args.repeat, args.seed)
        for name, tok in toks.items()
    }
    load1 = os.getloadavg()[0]
    cmd = "python benchmarks/tokenize_backends.py " + " ".join(sys.argv[1:])
    out = [
        f"## tokenize_backends.py: HF tokenizers vs tiktoken on the same text "
        f"({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores shared, "
        f"Python {platform.python_version()})\n",
        f"Command: `{cmd}` (tokenizers {tokenizers.__version__}, tiktoken "
        f"{tiktoken.__version__}). {len(texts):,} documents, {mb:.1f} MB of UTF-8 "
        f"({'recombined from ' if args.mb else ''}the bundled sample), {args.threads} threads "
        f"for every method, {args.repeat} rounds in seeded random order; ids checked equal "
        f"for every method. 1-min load average {load0:.1f} at the start, {load1:.1f} at the end.\n",
    ]
    for name, secs in results.items():
        out += [f"Tokenizer: {name} ({toks[name].get_vocab_size():,} ids).\n", table(secs, mb), ""]
    text = "\n".join(out)
    print(text)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
