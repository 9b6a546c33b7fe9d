"""Adding a quality rule takes one module with one class and one table row, nothing else.

The rule here is a plugin's: a module the test writes (one `Filter` subclass) and its row, a
`tokenmill.rules` entry point in a dist-info folder beside it, on PYTHONPATH. A real
`tokenmill prepare` (its own process, real Dask worker processes, which find the rule the same
way) runs it on a real JSON lines file: its config section is the rule's own model (a key of
it is set, a typo in it refused), its reason is counted in stats.json and shown in report.html.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from tmfixtures import sample_docs

pytestmark = pytest.mark.distributed

CMD = [sys.executable, "-m", "tokenmill"]

RULE = '''"""A toy quality rule: removes documents that mention a word."""

from pydantic import Field

from tokenmill.filters.base import Filter, RuleParams


class MentionsParams(RuleParams):
    word: str = Field("banana", min_length=1)


class Mentions(Filter):
    """Removes documents with `word` among their whitespace-separated words."""

    Params = MentionsParams
    label = "toy"

    def judge(self, texts, langs):
        word = self.word
        return [f"mentions_{word}" if word in t.split() else None for t in texts]
'''


def _plugin(root: Path) -> dict:
    """The rule's module and its entry point under `root`; the environment that finds them."""
    root.mkdir()
    (root / "toyrule.py").write_text(RULE)
    info = root / "toyrule-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyrule\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tokenmill.rules]\ntoy = toyrule:Mentions\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env


class _Rows(HTMLParser):
    """Each table row's cell texts (tags such as <wbr> inside a cell dropped)."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


TOY_CONFIG = (
    "sources: [{name: web, format: jsonl, paths: ['data/*.jsonl']}]\n"
    "langid: {enabled: false}\n"
    "quality: {toy: {word: kiwi}, filter_sets: {web: [toy]}}\n"
    "tokenizer: {train: {vocab_size: 400}}\ndedup: {minhash: {enabled: false}}\n"
)


def write_toy_run(tmp_path: Path, docs: list[str]):
    """`docs` as tmp_path/data/a.jsonl and a config that runs only the toy rule (word kiwi)
    on it: (the input file, the config file)."""
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "a.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(TOY_CONFIG)
    return path, cfg


def check_toy_counted(path: Path, out: Path) -> int:
    """Asserts the toy rule's removals in out's stats.json and report.html equal a plain
    reading of the input (json, the word looked up in split words); returns that count."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    want = sum("kiwi" in r["text"].split() for r in records)
    stats = json.loads((out / "stats.json").read_text())
    web = stats["sources"]["web"]
    removed = {k: v for k, v in web["removed"].items() if k.startswith("quality:")}
    assert removed == {"quality:toy:mentions_kiwi": want}
    assert web["documents_in"] == len(records)
    parser = _Rows()
    parser.feed((out / "report.html").read_text())
    rows = [r for r in parser.rows if r and r[0] == "quality:toy:mentions_kiwi"]
    assert rows and all(str(want) in r[1:] for r in rows), rows
    return want


def _refused(cfg: Path, env: dict, out: Path) -> str:
    """stderr of a `prepare` of `cfg` that must fail."""
    proc = subprocess.run(
        [*CMD, "prepare", str(cfg), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode != 0
    return proc.stderr


def test_a_plugin_rule_runs_in_prepare_and_is_counted_and_reported(tmp_path):
    env = _plugin(tmp_path / "plugin")
    docs = [d["text"] for d in sample_docs("c4")[:24]]
    # every fourth document mentions kiwi (the configured word), one more says banana (the
    # rule's default word, not configured): only the kiwi ones may go
    docs = [t + "\nI like kiwi fruit." if i % 4 == 0 else t for i, t in enumerate(docs)]
    docs[1] += "\nI like banana fruit."
    path, cfg = write_toy_run(tmp_path, docs)
    out = tmp_path / "out"
    cmd = [*CMD, "prepare", str(cfg), "--out", str(out), "--workers", "2", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr

    assert check_toy_counted(path, out) == 6


def test_a_plugin_rules_config_section_is_its_model(tmp_path):
    env = _plugin(tmp_path / "plugin")
    (tmp_path / "data").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "sources: [{name: web, format: jsonl, paths: ['data/*.jsonl']}]\n"
        "quality: {toy: {wrod: kiwi}}\n"
    )
    stderr = _refused(cfg, env, tmp_path / "o")
    assert f"{cfg}: quality.toy.wrod: unknown key (did you mean word?)" in stderr
    # without the plugin, `toy` is no rule at all
    bare = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    cfg.write_text(
        "sources: [{name: web, format: jsonl, paths: ['data/*.jsonl']}]\n"
        "quality: {filter_sets: {web: [toy]}}\n"
    )
    stderr = _refused(cfg, bare, tmp_path / "o")
    assert "quality.filter_sets.web[0]: must be one of" in stderr
