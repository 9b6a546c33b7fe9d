"""Tests of tokenmill/pipelines/readers/inputs.py that its mutation run asked for
(docs/TESTING.md)."""

from __future__ import annotations

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from tokenmill.pipelines.readers.inputs import expand_inputs


def _touch(path, text="{}\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_a_double_star_glob_reaches_every_depth(tmp_path):
    # ** is recursive: zero, one and three folders down, sorted; *.txt and folders left out
    want = [
        _touch(tmp_path / "a" / "b" / "c" / "deep.jsonl"),
        _touch(tmp_path / "a" / "mid.jsonl"),
        _touch(tmp_path / "top.jsonl"),
    ]
    _touch(tmp_path / "a" / "note.txt")
    (tmp_path / "a" / "dir.jsonl").mkdir()
    assert expand_inputs([f"{tmp_path}/**/*.jsonl"], "s") == sorted(want)
    # a single * stays in its folder
    assert expand_inputs([f"{tmp_path}/*/*.jsonl"], "s") == [want[1]]


def test_a_url_to_nothing_or_to_a_folder_is_an_error(tmp_path):
    fs = fsspec.filesystem("memory")
    fs.pipe("/tm-inputs/a.jsonl", b"{}\n")
    assert expand_inputs(["memory:///tm-inputs/a.jsonl"], "s") == ["memory:///tm-inputs/a.jsonl"]
    for missing in ("memory:///tm-inputs/none.jsonl", "memory:///tm-inputs"):
        with pytest.raises(
            FileNotFoundError, match=f"source 's': no input files match '{missing}'"
        ):
            expand_inputs([missing], "s")


class _RaisingFS(MemoryFileSystem):
    """A filesystem whose isfile raises for a missing path (as some remote ones do)."""

    protocol = "tmraise"

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(path.replace("tmraise://", "memory://", 1))

    def isfile(self, path):
        if path.endswith(".jsonl") and not self.exists(path):  # files only: pipe asks too
            raise FileNotFoundError(path)
        return super().isfile(path)


def test_a_url_whose_filesystem_raises_for_a_missing_path_is_the_same_error():
    fsspec.register_implementation("tmraise", _RaisingFS, clobber=True)
    fs = fsspec.filesystem("tmraise")
    fs.pipe("/tm-raise/a.jsonl", b"{}\n")
    assert expand_inputs(["tmraise:///tm-raise/a.jsonl"], "s") == ["tmraise:///tm-raise/a.jsonl"]
    with pytest.raises(FileNotFoundError, match="no input files match 'tmraise:///tm-raise/b"):
        expand_inputs(["tmraise:///tm-raise/b.jsonl"], "s")
