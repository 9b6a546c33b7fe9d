"""`tokenmill quality train`: a classifier of real text vs. the same text word-shuffled, its
printed precision and recall equal to a computation of our own (json/gzip/zstandard reading,
the documented hash split, fastText's public predict), a deterministic model, clear errors."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import xxhash
from tmfixtures import sample_docs, shuffled_words, write_gz_lines, write_zst_lines

CMD = [sys.executable, "-m", "tokenmill", "quality", "train"]
FAST = ["--dim", "16", "--bucket", "50000", "--epoch", "25", "--lr", "0.5", "--holdout", "0.2"]
HQ, LQ = "__label__hq", "__label__lq"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Positive: the sample's C4 and Pile documents under the key `body` (a .gz and a .zst
    file, with a broken record); negative: each of them with its words shuffled (.jsonl)."""
    root = tmp_path_factory.mktemp("quality")
    texts = [r["text"] for r in sample_docs("c4") + sample_docs("pile")]
    body = [json.dumps({"body": t}).encode() for t in texts]
    write_gz_lines(root / "pos" / "a.jsonl.gz", body[:700] + [b'{"body": "broken'])
    write_zst_lines(root / "pos" / "b.jsonl.zst", body[700:])
    shuffled = [shuffled_words(t, i) for i, t in enumerate(texts)]
    (root / "neg.jsonl").write_text("".join(json.dumps({"body": t}) + "\n" for t in shuffled))
    return root, texts, shuffled


def _held_out(text: str, share: float, seed: int) -> bool:
    """The split as the command documents it: xxh64 of the UTF-8 text under the seed."""
    return xxhash.xxh64_intdigest(text.encode("utf-8"), seed) < share * 2**64


def _printed(stdout: str) -> dict[str, list[str]]:
    """The printed table's rows: label -> precision, recall, f1, documents."""
    return {
        line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line.startswith("__")
    }


def test_train_prints_what_its_model_scores_on_the_held_out_documents(corpus, tmp_path):
    from fasttext.FastText import _FastText

    root, texts, shuffled = corpus
    model = tmp_path / "m" / "q.bin"
    args = ["--positive", str(root / "pos" / "*.gz"), "--positive", str(root / "pos" / "*.zst")]
    args += ["--negative", str(root / "neg.jsonl"), "--out", str(model), "--text-key", "body"]
    proc = run(*args, *FAST, "--metrics", str(tmp_path / "m.json"))
    assert proc.returncode == 0, proc.stderr

    held = [(HQ, t) for t in texts if _held_out(t, 0.2, 0)]
    held += [(LQ, t) for t in shuffled if _held_out(t, 0.2, 0)]
    lines = proc.stdout.splitlines()
    n, held_hq = len(texts), sum(1 for g, _ in held if g == HQ)
    held_lq = len(held) - held_hq
    assert lines[0] == (
        f"positive: {HQ}, 2 files, {n:,} documents ({n - held_hq:,} to train, {held_hq:,} held "
        "out), 1 record set aside"
    )
    assert lines[1] == (
        f"negative: {LQ}, 1 file, {n:,} documents ({n - held_lq:,} to train, {held_lq:,} held out)"
    )
    # the oracle: fastText's own predictions of the saved model on the held-out texts
    m = _FastText(model_path=str(model))
    labels, _ = m.predict([t.replace("\n", " ").replace("\r", " ") for _, t in held], k=1)
    pred = [lab[0] for lab in labels]
    gold = [g for g, _ in held]
    printed = _printed(proc.stdout)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert [s["label"] for s in metrics["held_out"]] == [HQ, LQ]
    for label, got in zip((HQ, LQ), metrics["held_out"], strict=True):
        tp = sum(g == p == label for g, p in zip(gold, pred, strict=True))
        precision, recall = tp / pred.count(label), tp / gold.count(label)
        f1 = 2 * precision * recall / (precision + recall)
        assert (got["precision"], got["recall"], got["documents"]) == (
            pytest.approx(precision, abs=1e-12),
            pytest.approx(recall, abs=1e-12),
            gold.count(label),
        )
        assert got["f1"] == pytest.approx(f1, abs=1e-12)
        assert printed[label] == [
            f"{precision:.4f}",
            f"{recall:.4f}",
            f"{f1:.4f}",
            f"{gold.count(label):,}",
        ]
        # real text and its shuffled words are told apart (word bigrams: the order)
        assert precision > 0.8 and recall > 0.8, printed
    accuracy = sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)
    assert f"accuracy {accuracy:.4f}" in lines
    assert metrics["classes"][0]["set_aside"] == {"input:invalid_json": 1}
    assert metrics["params"] == {
        "epoch": 25,
        "lr": 0.5,
        "wordNgrams": 2,
        "dim": 16,
        "bucket": 50000,
        "minCount": 1,
        "thread": 1,
        "seed": 0,
    }
    # one thread: the same model again, byte for byte; no temporary files left beside it
    again = tmp_path / "again.bin"
    proc = run(*[a if a != str(model) else str(again) for a in args], *FAST)
    assert proc.returncode == 0, proc.stderr
    assert again.read_bytes() == model.read_bytes()
    assert sorted(p.name for p in model.parent.iterdir()) == ["q.bin"]


def test_a_damaged_file_gives_what_it_holds_before_the_damage(corpus, tmp_path):
    root, texts, _ = corpus
    blob = gzip.compress(b"".join(json.dumps({"text": t}).encode() + b"\n" for t in texts[:60]))
    cut = blob[: len(blob) // 2]
    (tmp_path / "cut.jsonl.gz").write_bytes(cut)
    part = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut)
    readable = part.count(b"\n")  # whole lines before the damage
    (tmp_path / "neg.jsonl").write_text(
        "".join(json.dumps({"text": shuffled_words(t, 1)}) + "\n" for t in texts[:60])
    )
    proc = run(
        "--positive", str(tmp_path / "cut.jsonl.gz"), "--negative", str(tmp_path / "neg.jsonl"),
        "--out", str(tmp_path / "q.bin"), "--word-ngrams", "1", "--dim", "8", "--holdout", "0.3",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f", {readable:,} documents (" in proc.stdout.splitlines()[0]
    assert "damaged" in proc.stderr and str(tmp_path / "cut.jsonl.gz") in proc.stderr


def _fails(*args: str) -> str:
    proc = run(*args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == ""
    return proc.stderr.strip()


def test_clear_errors(corpus, tmp_path):
    root, texts, _ = corpus
    pos, neg = str(root / "pos" / "*.gz"), str(root / "neg.jsonl")
    out = ["--out", str(tmp_path / "q.bin")]
    missing = str(tmp_path / "nothing" / "*.jsonl")
    assert _fails("--positive", missing, "--negative", neg, *out) == (
        f"error: --positive: no files match {missing!r}"
    )
    assert _fails("--positive", pos, "--negative", str(root / "pos" / "*"), *out) == (
        f"error: {root / 'pos' / 'a.jsonl.gz'} is among both the --positive and the --negative "
        "files"
    )
    # the files hold `body`, not the default `text`: nothing to train on, and why
    assert _fails("--positive", pos, "--negative", neg, *out) == (
        "error: --positive: no documents in 1 file (records set aside: input:invalid_json 1, "
        "input:missing_text 700) (JSON lines with a text field: see --text-key)"
    )
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps({"body": t}) + "\n" for t in texts[:4]))
    assert _fails("--positive", pos, "--negative", str(few), "--text-key", "body", *out) == (
        "error: too few documents: --negative has 4 in 1 file, each class needs at least 10"
    )
    # ten documents, none of which the split holds out at 1%
    ten = [t for t in texts if not _held_out(t, 0.01, 0)][:10]
    few.write_text("".join(json.dumps({"body": t}) + "\n" for t in ten))
    assert _fails(
        "--positive", pos, "--negative", str(few), "--text-key", "body", "--holdout", "0.01", *out
    ) == (
        "error: --negative: none of its 10 documents fell in the held-out split "
        "(--holdout 0.01): add documents or raise --holdout"
    )
    assert not (tmp_path / "q.bin").exists()
    assert sorted(Path(tmp_path).iterdir()) == [few]  # no temporary files left


def test_holdout_zero_trains_on_everything(tmp_path):
    docs = [r["text"] for r in sample_docs("c4")[:30]]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    (tmp_path / "n.jsonl").write_text(
        "".join(json.dumps({"text": shuffled_words(t, 3)}) + "\n" for t in docs)
    )
    proc = run(
        "--positive", str(tmp_path / "p.jsonl"), "--negative", str(tmp_path / "n.jsonl"),
        "--out", str(tmp_path / "q.bin"), "--holdout", "0", "--word-ngrams", "1", "--dim", "4",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "30 documents (30 to train, 0 held out)" in proc.stdout
    assert "no held-out split (--holdout 0): not evaluated" in proc.stdout
    assert _printed(proc.stdout) == {}  # no table rows


@pytest.mark.parametrize("command", [["quality"], ["quality", "train"]])
def test_help(command):
    proc = subprocess.run(
        [sys.executable, "-m", "tokenmill", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "Usage" in proc.stdout
    assert "--positive" in proc.stdout if command[-1] == "train" else "train" in proc.stdout
