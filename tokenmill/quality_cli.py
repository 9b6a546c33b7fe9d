"""`tokenmill quality train`: a fastText quality classifier from example documents, for the
`fasttext_quality` rule. Registered in tokenmill/cli.py.

    tokenmill quality train --positive 'good/*.jsonl.gz' --negative 'web/*.jsonl.zst' \\
        --out models/quality.bin

Documents come from JSON lines files (compressed too) read by tokenmill's `jsonl` reader, so
bad records are set aside by reason and a damaged file gives what it holds before the damage
(and a warning), as in `prepare`. Positive documents get the label `__label__hq`, negative
ones `__label__lq`; each becomes one line of fastText's training file, newlines replaced by
spaces (`one_line`: what the rule scores).

The held-out split is a function of the text alone: a document is held out when
`xxh64(text as UTF-8, seed) < holdout * 2**64`. It is deterministic, needs no memory (the files
are streamed once), and copies of one document land on the same side, so duplicates cannot
leak from training into the evaluation. Training lines of the two classes are interleaved in
proportion by a seeded generator (fastText reads its file in order, with a decaying learning
rate: one class after the other would train badly). With `--threads 1` (the default) the
model is the same on every run; more threads train faster but not reproducibly (fastText's
lock-free updates).

Evaluation: the model's top label for each held-out document (the binding's one-line
`predict`, as the rule uses: see tokenmill/filters/fasttext_quality.py), and per label
precision, recall and F1 against the true labels.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from tokenmill.console import err as _err
from tokenmill.console import fail as _fail
from tokenmill.console import out as _out

POSITIVE, NEGATIVE = "__label__hq", "__label__lq"
MIN_DOCUMENTS = 10  # per class, to train and evaluate on anything at all
MAX_DOC_BYTES = 10_000_000  # a record larger than this is set aside (input:too_large)

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Model-based quality: train a fastText classifier for the fasttext_quality rule.",
)


class TrainingError(ValueError):
    """Training data that cannot make a classifier; the message says which and what to do."""


@dataclass
class ClassData:
    """One class's documents as read: files, documents, records set aside by reason, damaged
    files, and how many went to training and to the held-out split."""

    option: str  # --positive / --negative
    label: str
    files: list[str]
    documents: int = 0
    train: int = 0
    held_out: int = 0
    set_aside: dict[str, int] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)


@dataclass
class LabelScores:
    label: str
    precision: float | None  # None: the model never predicted the label
    recall: float | None
    f1: float | None
    documents: int  # held-out documents of this label
    predicted: int  # held-out documents the model gave this label


@dataclass
class TrainResult:
    model: str
    classes: list[ClassData]
    held_out: list[LabelScores]
    accuracy: float | None
    params: dict
    train_s: float


def held_out(text: str, holdout: float, seed: int) -> bool:
    """Whether a document is in the held-out split (module docstring)."""
    import xxhash

    return xxhash.xxh64_intdigest(text.encode("utf-8"), seed) < holdout * 2.0**64


def expand(patterns: list[str], option: str) -> list[str]:
    """The files the patterns name (local paths and globs, fsspec URLs), each once."""
    from tokenmill.pipelines.readers.inputs import expand_inputs

    files: list[str] = []
    for pat in patterns:
        try:
            found = expand_inputs([pat], option)
        except FileNotFoundError:
            raise TrainingError(f"{option}: no files match {pat!r}") from None
        files += [f for f in found if f not in files]
    return files


def _texts(data: ClassData, text_key: str) -> Iterator[str]:
    """Each document's text, in file order; counts what is set aside and notes damage."""
    from tokenmill.pipelines.readers import FileError, read_records

    aside: Counter = Counter()
    for path in data.files:
        try:
            for _, rec in read_records(
                path, "jsonl", text_key=text_key, max_doc_bytes=MAX_DOC_BYTES
            ):
                if isinstance(rec, str):  # a Bad record: its reason
                    aside[str(rec)] += 1
                else:
                    yield rec.text
        except FileError as e:
            data.damaged.append(f"{path}: {e}")
    data.set_aside = dict(sorted(aside.items()))


def _split(data: ClassData, text_key: str, train_f, held_f, holdout: float, seed: int) -> None:
    """Write a class's documents as fastText lines to its training and held-out files."""
    from tokenmill.filters.fasttext_quality import one_line

    for text in _texts(data, text_key):
        data.documents += 1
        line = f"{data.label} {one_line(text)}"
        if holdout > 0 and held_out(text, holdout, seed):
            held_f.write(line)
            data.held_out += 1
        else:
            train_f.write(line)
            data.train += 1


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def _check(data: ClassData, holdout: float) -> None:
    where = f"in {_files(len(data.files))}"
    if data.documents == 0:
        why = ", ".join(f"{r} {n}" for r, n in data.set_aside.items())
        damaged = f"; damaged: {data.damaged[0]}" if data.damaged else ""
        raise TrainingError(
            f"{data.option}: no documents {where}"
            + (f" (records set aside: {why})" if why else "")
            + damaged
            + " (JSON lines with a text field: see --text-key)"
        )
    if data.documents < MIN_DOCUMENTS:
        raise TrainingError(
            f"too few documents: {data.option} has {data.documents} {where}, each class needs "
            f"at least {MIN_DOCUMENTS}"
        )
    if holdout > 0 and data.held_out == 0:
        raise TrainingError(
            f"{data.option}: none of its {data.documents} documents fell in the held-out split "
            f"(--holdout {holdout:g}): add documents or raise --holdout"
        )
    if data.train == 0:
        raise TrainingError(
            f"{data.option}: all of its {data.documents} documents fell in the held-out split "
            f"(--holdout {holdout:g}): add documents or lower --holdout"
        )


def _interleave(paths: list[str], counts: list[int], out, seed: int) -> None:
    """The lines of the files `paths` (`counts` lines each) into `out`, interleaved in
    proportion: each next line comes from a file drawn with probability its share of the
    lines left (a seeded generator)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    left = list(counts)
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(p, encoding="utf-8")) for p in paths]
        while sum(left):
            r = int(rng.integers(sum(left)))
            k = 0
            while r >= left[k]:
                r -= left[k]
                k += 1
            out.write(files[k].readline())
            left[k] -= 1


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def evaluate(model, held_path: str, labels: list[str]) -> tuple[list[LabelScores], float | None]:
    """Per label: precision, recall and F1 of the model's top label on the held-out lines."""
    gold_n, pred_n, hits = Counter(), Counter(), Counter()
    predict = model.f.predict
    total = correct = 0
    with open(held_path, encoding="utf-8") as f:
        for line in f:
            gold, text = line.split(" ", 1)
            pred = predict(text, 1, 0.0, "replace")
            top = pred[0][1] if pred else None
            gold_n[gold] += 1
            pred_n[top] += 1
            total += 1
            if top == gold:
                hits[gold] += 1
                correct += 1
    out = []
    for label in labels:
        p = _ratio(hits[label], pred_n[label])
        r = _ratio(hits[label], gold_n[label])
        f1 = 2 * p * r / (p + r) if p is not None and r is not None and p + r > 0 else None
        out.append(LabelScores(label, p, r, f1, gold_n[label], pred_n[label]))
    return out, _ratio(correct, total)


def train_classifier(
    positive: list[str],
    negative: list[str],
    out: str | os.PathLike,
    *,
    text_key: str = "text",
    holdout: float = 0.1,
    seed: int = 0,
    epoch: int = 5,
    lr: float = 0.1,
    word_ngrams: int = 2,
    dim: int = 64,
    bucket: int = 1_000_000,
    min_count: int = 1,
    threads: int = 1,
) -> TrainResult:
    """Train and save the classifier (module docstring); its held-out scores. Raises
    TrainingError for data it cannot use."""
    import fasttext

    from tokenmill.fsio import atomic_path

    if not hasattr(fasttext, "train_supervised"):
        raise TrainingError(
            "the installed `fasttext` module can only predict (fasttext-predict's files "
            "replaced the full package's): pip install --force-reinstall --no-deps fasttext-wheel"
        )
    classes = [
        ClassData("--positive", POSITIVE, expand(positive, "--positive")),
        ClassData("--negative", NEGATIVE, expand(negative, "--negative")),
    ]
    both = [f for f in classes[0].files if f in classes[1].files]
    if both:
        raise TrainingError(f"{both[0]} is among both the --positive and the --negative files")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {
        "epoch": epoch,
        "lr": lr,
        "wordNgrams": word_ngrams,
        "dim": dim,
        "bucket": bucket,
        "minCount": min_count,
        "thread": threads,
        "seed": seed,
    }
    with tempfile.TemporaryDirectory(prefix=".tokenmill-quality-", dir=out.parent) as tmp:
        held_path = os.path.join(tmp, "held_out.txt")
        class_paths = [os.path.join(tmp, f"train_{k}.txt") for k in range(len(classes))]
        with open(held_path, "w", encoding="utf-8") as held_f:
            for data, path in zip(classes, class_paths, strict=True):
                with open(path, "w", encoding="utf-8") as train_f:
                    _split(data, text_key, train_f, held_f, holdout, seed)
        for data in classes:
            _check(data, holdout)
        train_path = os.path.join(tmp, "train.txt")
        with open(train_path, "w", encoding="utf-8") as f:
            _interleave(class_paths, [c.train for c in classes], f, seed)
        t0 = time.perf_counter()
        model = fasttext.train_supervised(input=train_path, verbose=0, **params)
        train_s = time.perf_counter() - t0
        with atomic_path(out) as tmp_model:
            model.save_model(str(tmp_model))
        scores, accuracy = (
            evaluate(model, held_path, [POSITIVE, NEGATIVE]) if holdout > 0 else ([], None)
        )
    return TrainResult(str(out), classes, scores, accuracy, params, train_s)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _print(res: TrainResult, holdout: float, seed: int) -> None:
    for c in res.classes:
        aside = sum(c.set_aside.values())
        _out.print(
            f"{c.option[2:]}: {c.label}, {_files(len(c.files))}, {c.documents:,} documents "
            f"({c.train:,} to train, {c.held_out:,} held out)"
            + (f", {aside:,} record{'s' if aside != 1 else ''} set aside" if aside else ""),
            highlight=False,
            soft_wrap=True,
        )
        for d in c.damaged:
            _err.print(f"[yellow]warning:[/] damaged, read up to the damage: {d}", markup=True)
    size = os.path.getsize(res.model)
    p = res.params
    _out.print(
        f"model: {res.model} ({size / 1e6:,.1f} MB; epoch {p['epoch']}, lr {p['lr']:g}, "
        f"wordNgrams {p['wordNgrams']}, dim {p['dim']}; trained in {res.train_s:.1f} s)",
        highlight=False,
        soft_wrap=True,
    )
    if not res.held_out:
        _out.print(
            "no held-out split (--holdout 0): not evaluated", highlight=False, soft_wrap=True
        )
        return
    _out.print(
        f"held out ({holdout:g} of the documents, seed {seed}), the model's top label:",
        highlight=False,
        soft_wrap=True,
    )
    _out.print(
        f"{'label':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'documents':>11}",
        highlight=False,
        soft_wrap=True,
    )
    for s in res.held_out:
        _out.print(
            f"{s.label:<14}{_fmt(s.precision):>10}{_fmt(s.recall):>10}{_fmt(s.f1):>10}"
            f"{s.documents:>11,}",
            highlight=False,
            soft_wrap=True,
        )
    _out.print(f"accuracy {_fmt(res.accuracy)}", highlight=False, soft_wrap=True)


@app.command("train")
def train(
    positive: Annotated[
        list[str],
        typer.Option(
            "--positive",
            help="JSON lines files (a glob; .gz / .zst ... too) of good documents "
            "(__label__hq). Repeat for several.",
            show_default=False,
        ),
    ],
    negative: Annotated[
        list[str],
        typer.Option(
            "--negative",
            help="JSON lines files of documents to filter out (__label__lq). Repeat for several.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="The model file to write (.bin).", show_default=False)
    ],
    text_key: Annotated[
        str, typer.Option("--text-key", help="Field holding a record's text (dotted: a.b).")
    ] = "text",
    holdout: Annotated[
        float,
        typer.Option(
            help="Share of the documents held out to evaluate on (0: none).", min=0, max=0.5
        ),
    ] = 0.1,
    seed: Annotated[
        int, typer.Option(help="Seed of the held-out split, the interleaving and fastText.", min=0)
    ] = 0,
    epoch: Annotated[int, typer.Option(help="fastText epochs.", min=1, max=1000)] = 5,
    lr: Annotated[float, typer.Option(help="fastText learning rate.", min=0.0001, max=10)] = 0.1,
    word_ngrams: Annotated[
        int, typer.Option("--word-ngrams", help="fastText wordNgrams (2: bigrams).", min=1, max=5)
    ] = 2,
    dim: Annotated[int, typer.Option(help="fastText vector size.", min=1, max=1024)] = 64,
    bucket: Annotated[
        int,
        typer.Option(
            help="Hash buckets of the word n-grams (model size ~ (words + bucket) x dim x 4 "
            "bytes; unused with --word-ngrams 1).",
            min=1,
            max=100_000_000,
        ),
    ] = 1_000_000,
    min_count: Annotated[
        int, typer.Option("--min-count", help="Words seen fewer times are dropped.", min=1)
    ] = 1,
    threads: Annotated[
        int,
        typer.Option(help="Training threads (more: faster, but not reproducible).", min=1),
    ] = 1,
    metrics: Annotated[
        Path | None, typer.Option(help="Also write the counts and scores as JSON here.")
    ] = None,
) -> None:
    """Train a fastText quality classifier; print its held-out precision and recall.

    Good documents (--positive) get __label__hq, the others (--negative) __label__lq. Use
    the model with the rule fasttext_quality (README, section Model-based quality).
    """
    try:
        res = train_classifier(
            positive,
            negative,
            out,
            text_key=text_key,
            holdout=holdout,
            seed=seed,
            epoch=epoch,
            lr=lr,
            word_ngrams=word_ngrams,
            dim=dim,
            bucket=bucket,
            min_count=min_count,
            threads=threads,
        )
    except TrainingError as e:
        _fail(str(e))
    _print(res, holdout, seed)
    if metrics is not None:
        from tokenmill.fsio import write_json

        write_json(metrics, asdict(res))
