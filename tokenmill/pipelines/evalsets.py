"""Evaluation sets read from files, for decontamination (`prepare`'s `decontaminate` step
and `tokenmill contamination`).

An evaluation file holds items: JSON lines (.jsonl / .json lines, compressed .gz / .zst /
.bz2 / .xz too), a JSON array (.json), or Parquet (.parquet); local paths or fsspec URLs. An
item's text is its value under `text_key`, a dotted path (`doc.question`); several keys join
their values with a newline (question and answer), and a list of strings (multiple-choice
options) is joined the same way. An item without text is counted (`no_text`), never an
error. A file that cannot be read whole is an error (`EvalFileError`): an evaluation set read
in part would decontaminate in part, silently. Archives are read by tokenmill's readers, so a
truncated or corrupt one is found as it is in corpus files.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import PurePosixPath

from tokenmill.filters.decontam import EvalIndex
from tokenmill.pipelines.readers import open_binary
from tokenmill.pipelines.readers.compression import compression_of
from tokenmill.pipelines.readers.inputs import is_url, local_path

ROWS = 1024  # Parquet rows read at a time


class EvalFileError(ValueError):
    """An evaluation file that cannot be used; the message names the file."""


def eval_name(path: str | os.PathLike) -> str:
    """The evaluation set's name: the file name without its suffixes (`arc_easy.jsonl.gz` ->
    `arc_easy`); its removals are counted as `decontam:<name>`."""
    name = PurePosixPath(str(path).split("?", 1)[0]).name
    for suffix in (".gz", ".zst", ".zstd", ".bz2", ".xz", ".jsonl", ".json", ".parquet"):
        name = name.removesuffix(suffix)
    return name


def text_of(item: object, keys: Sequence[str]) -> str | None:
    """The item's text under `keys` (see the module docstring), or None."""
    parts = []
    for key in keys:
        value = item
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, list):
            value = "\n".join(v for v in value if isinstance(v, str)) or None
        if isinstance(value, str):
            parts.append(value)
    return "\n".join(parts) if parts else None


def _items(path: str) -> Iterator[object]:
    base = path.split("?", 1)[0]
    if compression_of(path):
        base = base.rsplit(".", 1)[0]
    if base.endswith(".parquet"):
        import pyarrow.parquet as pq

        with open_binary(path) as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=ROWS):
                yield from batch.to_pylist()
        return
    with io.TextIOWrapper(open_binary(path), encoding="utf-8") as f:
        if base.endswith(".json"):
            data = json.load(f)
            if not isinstance(data, list):
                raise EvalFileError(f"{path}: a .json evaluation file must hold a list of items")
            yield from data
            return
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise EvalFileError(f"{path}: line {n} is not JSON ({e.msg})") from None


def eval_texts(path: str | os.PathLike, text_key: str | Sequence[str]) -> Iterator[str | None]:
    """Each item's text, in file order (None: the item has no text under `text_key`)."""
    path = str(path)
    keys = [text_key] if isinstance(text_key, str) else list(text_key)
    if not is_url(path) and not os.path.isfile(local_path(path)):
        raise EvalFileError(f"evaluation file not found: {path}")
    try:
        for item in _items(path):
            yield text_of(item, keys)
    except (EvalFileError, KeyboardInterrupt):
        raise
    except Exception as e:  # a damaged archive (FileError, EOFError), not UTF-8, not Parquet
        raise EvalFileError(
            f"{path}: cannot be read whole ({type(e).__name__}: {e}); an evaluation set read "
            "in part would decontaminate in part"
        ) from None


def load_eval_index(
    path: str | os.PathLike,
    text_key: str | Sequence[str] = "text",
    ngram: int = 13,
    lang: str = "und",
) -> EvalIndex:
    """The n-gram index of an evaluation file (tokenmill.filters.decontam)."""
    return EvalIndex.build(eval_name(path), eval_texts(path, text_key), ngram, lang)
