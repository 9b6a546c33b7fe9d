"""`hf`: anything `datasets.load_dataset(..., streaming=True)` opens. An input is a data file
(.parquet, .json(l), .csv, .txt, .arrow, optionally compressed) read through `datasets`, or a
dataset spec (see `parse_hf_spec`), `datasets:allenai/c4?name=en&split=train&shard=3&
num_shards=1024`, one per streaming shard (`expand_hf_spec`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, urlencode

from tokenmill.pipelines.readers.compression import DAMAGE, file_error
from tokenmill.pipelines.readers.inputs import HF_SPEC_PREFIX, local_path
from tokenmill.pipelines.readers.parquet import parquet_file
from tokenmill.pipelines.readers.records import Bad, Doc, FileError, get_dotted, make_doc


@dataclass
class HFSpec:
    """A dataset `datasets.load_dataset` can stream, and optionally one shard of it."""

    name: str
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    data_files: list[str] = field(default_factory=list)
    shard: int | None = None
    num_shards: int | None = None

    def to_string(self) -> str:
        q: list[tuple[str, str]] = []
        if self.config:
            q.append(("name", self.config))
        q.append(("split", self.split))
        if self.revision:
            q.append(("revision", self.revision))
        q += [("data_files", f) for f in self.data_files]
        if self.num_shards is not None:
            q += [("shard", str(self.shard)), ("num_shards", str(self.num_shards))]
        return f"{HF_SPEC_PREFIX}{self.name}?{urlencode(q, safe='/*:', quote_via=quote)}"


def parse_hf_spec(spec: str) -> HFSpec:
    """`datasets:NAME[?name=CONFIG&split=SPLIT&revision=REV&data_files=F...&shard=K&num_shards=N]`.

    NAME is a hub dataset (`allenai/c4`) or a packaged builder (`json`, `parquet`, `text`, `csv`)
    with `data_files` (local paths, globs or fsspec URLs). `split` defaults to train.
    """
    if not spec.startswith(HF_SPEC_PREFIX):
        raise ValueError(f"not a datasets spec: {spec!r} (expected {HF_SPEC_PREFIX}NAME?...)")
    name, _, query = spec[len(HF_SPEC_PREFIX) :].partition("?")
    q = parse_qs(query, keep_blank_values=False)
    unknown = set(q) - {"name", "config", "split", "revision", "data_files", "shard", "num_shards"}
    if not name or unknown:
        raise ValueError(f"bad datasets spec {spec!r}: unknown keys {sorted(unknown)}")
    one = lambda k: q[k][-1] if k in q else None  # noqa: E731
    shard, num = one("shard"), one("num_shards")
    return HFSpec(
        name=name,
        config=one("name") or one("config"),
        split=one("split") or "train",
        revision=one("revision"),
        data_files=q.get("data_files", []),
        shard=None if shard is None else int(shard),
        num_shards=None if num is None else int(num),
    )


_BUILDERS = {
    ".parquet": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".txt": "text",
    ".arrow": "arrow",
}


def _builder_for(path: str) -> str:
    name = path.split("?", 1)[0].lower()
    for comp in (".gz", ".zst", ".zstd", ".bz2", ".xz"):
        name = name.removesuffix(comp)
    for ext, builder in _BUILDERS.items():
        if name.endswith(ext):
            return builder
    raise FileError(
        "input:unsupported_file",
        f"{path}: the hf format reads .parquet, .json(l), .csv, .txt or .arrow files "
        "(optionally compressed), or a datasets: spec",
    )


def _import_datasets():
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "the `hf` reader format needs the `datasets` package: pip install 'tokenmill[hf]'"
        ) from e
    datasets.logging.set_verbosity_error()
    return datasets


def _hf_stream(path: str):
    """The IterableDataset an `hf` input names (a datasets spec, or one data file)."""
    datasets = _import_datasets()
    if path.startswith(HF_SPEC_PREFIX):
        spec = parse_hf_spec(path)
        kwargs: dict = {"streaming": True, "split": spec.split}
        if spec.revision:
            kwargs["revision"] = spec.revision
        if spec.data_files:
            kwargs["data_files"] = [local_path(f) for f in spec.data_files]
        ds = datasets.load_dataset(spec.name, spec.config, **kwargs)
        if spec.num_shards is not None:
            ds = ds.shard(num_shards=spec.num_shards, index=spec.shard or 0)
        return ds
    return datasets.load_dataset(
        _builder_for(path), data_files=[local_path(path)], split="train", streaming=True
    )


def expand_hf_spec(spec: str) -> list[str]:
    """One spec per streaming shard of the dataset (the spec itself if it names a shard)."""
    parsed = parse_hf_spec(spec)
    if parsed.num_shards is not None:
        return [spec]
    n = max(1, int(getattr(_hf_stream(spec), "n_shards", 1)))
    return [
        HFSpec(**{**parsed.__dict__, "shard": k, "num_shards": n}).to_string() for k in range(n)
    ]


def _scalar_meta(row: dict, text_key: str) -> dict:
    meta = {}
    top = text_key.split(".", 1)[0]
    for k, v in row.items():
        if k in (top, "url"):
            continue
        if v is None or isinstance(v, (str, int, float, bool)):
            meta[k] = v
        elif isinstance(v, dict):
            try:
                if len(json.dumps(v)) <= 4096:
                    meta[k] = v
            except (TypeError, ValueError, RecursionError):
                pass
    return meta


def _hf_rows(path: str) -> Iterator[dict]:
    """Rows of an hf input; a failure mid-stream becomes a FileError after the rows before it."""
    try:
        it = iter(_hf_stream(path))
    except FileError:
        raise
    except Exception as e:  # load_dataset reads the first chunk (10 MB of JSON) already
        raise _file_error(path, e) from e
    while True:
        try:
            row = next(it)
        except StopIteration:
            return
        except Exception as e:
            raise _file_error(path, e) from e
        yield row


def _file_error(path: str, e: Exception) -> FileError:
    """A file that is not there (or not readable) is input:unreadable_file, as in every other
    reader; damage, also where datasets wraps it in its own types, input:truncated_file."""
    if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return file_error(path, e)
    reason = "input:truncated_file" if _is_damage(e) else "input:read_error"
    return FileError(reason, f"{path}: {type(e).__name__}: {e}")


def _is_damage(e: BaseException | None) -> bool:
    while e is not None:
        if isinstance(e, DAMAGE):
            return True
        e = e.__cause__ or e.__context__
    return False


def read_hf(
    path: str, text_key: str, start: int, stop: int | None, max_doc_bytes: int
) -> Iterator[tuple[int, Doc | Bad]]:
    """`(index, Doc | Bad)` of rows `start <= index < stop` of an hf input; the text is at
    `text_key` (dotted for nested fields), scalar columns and small objects are kept as meta."""
    for i, row in enumerate(_hf_rows(path)):
        if i < start:
            continue
        if stop is not None and i >= stop:
            return
        if not isinstance(row, dict):
            yield i, Bad("input:invalid_json", None, i + 1)
            continue
        url = row.get("url")
        doc = make_doc(get_dotted(row, text_key), url, _scalar_meta(row, text_key))
        if type(doc) is str:
            doc = Bad(doc, None, i + 1)
        elif doc.nbytes > max_doc_bytes:
            doc = Bad("input:too_large", None, i + 1)
        yield i, doc


def count_hf(path: str, max_doc_bytes: int) -> tuple[int, str | None]:
    """`(rows, None)` of an hf input (a Parquet file's from its footer, others by streaming
    them), or with the count so far the error (`reason: detail`) that stopped it."""
    n = 0
    try:
        if not path.startswith(HF_SPEC_PREFIX) and _builder_for(path) == "parquet":
            return parquet_file(path).metadata.num_rows, None
        for _ in _hf_rows(path):
            n += 1
    except FileError as e:
        return n, str(e)
    return n, None
