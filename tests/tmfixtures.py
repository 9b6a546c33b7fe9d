"""Test helpers: small corpora in each source's real on-disk format.

Imported by tests as `from tmfixtures import ...` (a unique module name: `conftest` is
ambiguous once several test folders have their own conftest.py).

The text is real: documents from the bundled sample (tokenmill/data), read here with plain
json/gzip/zstandard rather than tokenmill's own readers, so reader tests are not circular.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
from pathlib import Path

import zstandard

DATA = Path(__file__).resolve().parents[1] / "tokenmill" / "data"


def _jsonl(path: str) -> list[dict]:
    raw = open(path, "rb").read()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    elif path.endswith(".zst"):
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]


def sample_docs(kind: str) -> list[dict]:
    """Records of the bundled sample: kind is c4, pile or oscar (all languages)."""
    pattern = {
        "c4": "c4/en/*.json.gz",
        "pile": "pile/train/*.jsonl.zst",
        "oscar": "oscar/*_meta/*.jsonl.zst",
    }[kind]
    out: list[dict] = []
    for f in sorted(glob.glob(str(DATA / pattern))):
        out.extend(_jsonl(f))
    assert out, f"bundled sample has no {kind} files under {DATA}"
    return out


def write_gz_lines(path: Path, lines: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        for line in lines:
            f.write(line + b"\n")
    return path


def write_zst_lines(path: Path, lines: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh, zstandard.ZstdCompressor(level=3).stream_writer(fh) as w:
        for line in lines:
            w.write(line + b"\n")
    return path


def dumps(obj) -> bytes:
    return json.dumps(obj).encode()


def make_corpus(root: Path, n_per_file: int = 60, bad: bool = True) -> Path:
    """A three-source corpus in the real layouts, two files per source, with a few bad records
    when `bad`; returns the config path."""
    c4 = sample_docs("c4")
    pile = sample_docs("pile")
    oscar = sample_docs("oscar")
    for k in range(2):
        lines = [dumps(r) for r in c4[k * n_per_file : (k + 1) * n_per_file]]
        if bad and k == 0:
            lines += [
                b'{"text": "broken',
                b'{"url": "https://example.org/no-text"}',
                b'{"text": "bad utf8 \xff\xfe here", "url": "u"}',
            ]
        write_gz_lines(root / "c4" / "en" / f"c4-train.{k:05d}-of-01024.json.gz", lines)
        lines = [dumps(r) for r in pile[k * n_per_file : (k + 1) * n_per_file]]
        if bad and k == 1:
            lines += [dumps({"text": "   ", "meta": {"pile_set_name": "Pile-CC"}})]
        write_zst_lines(root / "pile" / "train" / f"{k:02d}.jsonl.zst", lines)
    by_lang: dict[str, list[dict]] = {}
    for r in oscar:
        by_lang.setdefault(r["metadata"]["identification"]["label"], []).append(r)
    for lang, recs in sorted(by_lang.items())[:4]:
        write_zst_lines(
            root / "oscar" / f"{lang}_meta" / f"{lang}_meta_part_1.jsonl.zst",
            [dumps(r) for r in recs[:n_per_file]],
        )
    cfg = root / "config.yaml"
    cfg.write_text(
        "sources:\n"
        "  - {name: c4, format: c4, paths: ['c4/en/*.json.gz']}\n"
        "  - {name: pile, format: pile, paths: ['pile/train/*.jsonl.zst']}\n"
        "  - {name: oscar, format: oscar2301, paths: ['oscar/*_meta/*.jsonl.zst']}\n"
        "input: {partition_docs: 25}\n"
        "tokenizer: {train: {vocab_size: 1200}}\n"
        "shards: {tokens_per_shard: 30000}\n"
    )
    return cfg


def shuffled_words(text: str, seed: int) -> str:
    """The text's words in a seeded random order (the same words, no longer language)."""
    import random

    words = text.split()
    random.Random(seed).shuffle(words)
    return " ".join(words)


_QUALITY_MODELS: dict[tuple, str] = {}


def quality_model(word_ngrams: int = 2, dim: int = 16) -> str:
    """A small fastText quality classifier, trained once per test process with fastText
    itself (not tokenmill): `__label__hq` for the bundled sample's Pile documents and its C4
    documents from the 401st on (tests use the first 400 as unseen text),
    `__label__lq` for the same with their words shuffled. Its path (a temporary folder)."""
    key = (word_ngrams, dim)
    if key not in _QUALITY_MODELS:
        import atexit
        import shutil
        import tempfile

        import fasttext

        tmp = Path(tempfile.mkdtemp(prefix="tokenmill-test-quality-"))
        atexit.register(shutil.rmtree, tmp, True)
        lines = []
        for k, r in enumerate(sample_docs("pile") + sample_docs("c4")[400:]):
            text = r["text"].replace("\n", " ")
            lines.append(f"__label__hq {text}\n")
            lines.append(f"__label__lq {shuffled_words(text, k)}\n")
        (tmp / "train.txt").write_text("".join(lines), encoding="utf-8")
        model = fasttext.train_supervised(
            input=str(tmp / "train.txt"),
            epoch=25,
            lr=0.5,
            wordNgrams=word_ngrams,
            dim=dim,
            bucket=50_000,
            thread=1,
            seed=0,
            verbose=0,
        )
        path = tmp / f"quality_{word_ngrams}_{dim}.bin"
        model.save_model(str(path))
        _QUALITY_MODELS[key] = str(path)
    return _QUALITY_MODELS[key]


def verify_here(edge_files: list[Path], docs: dict[int, str], threshold: float, ngram: int,
                work: Path) -> list[dict]:  # fmt: skip
    """Near dedup's three verify steps run in this process, as the stage runs them on
    workers: each edge file's ends, each partition's shingles, each edge file's check (the
    kept edges beside each edge file, as .verified.npy). The check's counts, per edge file."""
    from tokenmill.fsio import write_json
    from tokenmill.pipelines.stages.near import edge_ends, partition_shingles, verify_edges
    from tokenmill.pipelines.workdir import shingle_base

    ends = [str(f).removesuffix(".npy") + ".ends.npy" for f in edge_files]
    for f, e in zip(edge_files, ends, strict=True):
        edge_ends(str(f), e)
    write_json(work / "ends.json", ends)
    (work / "shingles").mkdir(exist_ok=True)
    for ordinal, path in docs.items():
        base = shingle_base(work / "shingles", ordinal)
        partition_shingles(ordinal, path, str(work / "ends.json"), ngram, base)
    return [
        verify_edges(
            str(f), str(work / "shingles"), threshold, str(f).removesuffix(".npy") + ".verified.npy"
        )  # fmt: skip
        for f in edge_files
    ]
