"""Evaluation files (tokenmill.pipelines.evalsets): every kind gives its items' texts in
order, as the items written say; a file that cannot be read whole is an error naming it."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from tests.tmfixtures import sample_docs
from tokenmill.pipelines.evalsets import (
    EvalFileError,
    eval_name,
    eval_texts,
    load_eval_index,
    text_of,
)

ITEMS = [
    {"q": {"text": d["text"][:300]}, "a": ["yes", "no", str(i)]}
    for i, d in enumerate(sample_docs("c4")[:12])
] + [{"other": 1}, {"q": {"text": 5}, "a": "just this"}, {"q": "flat", "a": [1, 2]}]
# written by hand from ITEMS and the rules: "q.text" then "a", strings only, joined by "\n"
WANT = [f"{i['q']['text']}\nyes\nno\n{k}" for k, i in enumerate(ITEMS[:12])] + [
    None,
    "just this",
    None,
]


def write(path, items, kind):
    """`items` as JSON lines (`jsonl...`) or one JSON array (`json...`), compressed as the
    kind's last suffix says."""
    if kind.startswith("jsonl"):
        data = "".join(json.dumps(i) + "\n" for i in items).encode()
    else:
        data = json.dumps(items).encode()
    compress = {
        "gz": gzip.compress,
        "zst": zstandard.ZstdCompressor().compress,
        "bz2": bz2.compress,
        "xz": lzma.compress,
    }.get(kind.rsplit(".", 1)[-1])
    path.write_bytes(compress(data) if compress else data)
    return path


@pytest.mark.parametrize(
    "kind", ["jsonl", "jsonl.gz", "jsonl.zst", "jsonl.bz2", "jsonl.xz", "json", "json.gz"]
)
def test_every_kind_gives_the_items_texts_in_order(tmp_path, kind):
    path = write(tmp_path / f"arc_easy.{kind}", ITEMS, kind)
    assert eval_name(path) == "arc_easy"
    assert list(eval_texts(path, ["q.text", "a"])) == WANT


def test_parquet_rows_are_items(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"question": "q one", "choices": ["a", "b"]}, {"question": None}]),
        path,
    )
    assert list(eval_texts(path, ["question", "choices"])) == ["q one\na\nb", None]


def test_text_of_follows_dotted_keys_and_joins_strings_only():
    assert text_of({"a": {"b": {"c": "x"}}}, ["a.b.c"]) == "x"
    assert text_of({"a": {"b": "x"}}, ["a.b.c"]) is None
    assert text_of({"a": ["x", 3, "y"], "b": "z"}, ["a", "b"]) == "x\ny\nz"
    assert text_of({"a": [1, 2]}, ["a"]) is None
    assert text_of(["not", "a", "dict"], ["a"]) is None
    assert text_of({"a": ""}, ["a"]) == ""


def test_load_eval_index_names_and_counts_the_set(tmp_path):
    path = write(tmp_path / "set.jsonl", ITEMS, "jsonl")
    ix = load_eval_index(path, ["q.text", "a"], ngram=6)
    assert ix.name == "set" and ix.ngram == 6
    assert ix.counts["items"] == len(ITEMS) and ix.counts["no_text"] == 2
    assert ix.counts["too_short"] == 1  # "just this"


def test_unreadable_evaluation_files_are_clear_errors(tmp_path):
    with pytest.raises(EvalFileError, match="not found"):
        list(eval_texts(tmp_path / "missing.jsonl", "text"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n\n{"text": broken\n')
    with pytest.raises(EvalFileError, match=r"bad.jsonl: line 3 is not JSON"):
        list(eval_texts(bad, "text"))
    obj = tmp_path / "obj.json"
    obj.write_text('{"text": "not a list"}')
    with pytest.raises(EvalFileError, match="must hold a list"):
        list(eval_texts(obj, "text"))
    whole = b'{"text": "a b c"}\n' * 5000
    for kind, data in [
        ("gz", gzip.compress(whole)),
        ("zst", zstandard.ZstdCompressor().compress(whole)),
        ("bz2", bz2.compress(whole)),
        ("xz", lzma.compress(whole)),
    ]:
        cut = tmp_path / f"cut.jsonl.{kind}"
        cut.write_bytes(data[: len(data) - 12])
        with pytest.raises(EvalFileError, match=rf"cut.jsonl.{kind}: cannot be read whole"):
            list(eval_texts(cut, "text"))
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"text": "caf\xe9"}\n')
    with pytest.raises(EvalFileError, match="latin.jsonl: cannot be read whole.*Unicode"):
        list(eval_texts(latin, "text"))
    notpq = tmp_path / "x.parquet"
    notpq.write_bytes(b"PAR1 not really")
    with pytest.raises(EvalFileError, match="x.parquet: cannot be read whole"):
        list(eval_texts(notpq, "text"))
