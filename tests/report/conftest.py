"""A real `prepare` run shared by the report tests (the conftest corpus: three sources in their
real layouts, bad records included), and a small HTML table reader."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tokenmill.config import load_config
from tokenmill.pipelines.prepare import prepare


@pytest.fixture(scope="session")
def prepared(corpus_config, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("report-run")
    prepare(load_config(corpus_config), out, workers=1, quiet=True)
    return {
        "out": out,
        "config": corpus_config,
        "stats": json.loads((out / "stats.json").read_text()),
        "manifest": json.loads((out / "manifest.json").read_text()),
    }


class Page(HTMLParser):
    """Section ids, and every table with an id as a list of rows of cell texts."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.pre: dict[str, str] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._pre: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id"))
        elif tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "pre" and a.get("id"):
            self._pre = a["id"]
            self.pre[self._pre] = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "pre":
            self._pre = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        elif self._pre is not None:
            self.pre[self._pre] += data

    def rows(self, table_id: str) -> list[dict[str, str]]:
        """Body rows of a table as {header: cell}."""
        head, *body = self.tables[table_id]
        return [dict(zip(head, r, strict=True)) for r in body]


@pytest.fixture
def page():
    return lambda path: Page(Path(path).read_text(encoding="utf-8"))
