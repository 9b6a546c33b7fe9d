"""The package's layers: the lower packages (filters, tokenize, shards) and the low-level
modules (fsio, hist) import nothing from the pipelines, the report or the command line, not
even inside a function, so each can be used and tested on its own (issue: architecture).

Read from the source with `ast`, so an import hidden in a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "tokenmill"
LOWER = ["filters", "tokenize", "shards", "fsio.py", "hist.py"]
UPPER = ("tokenmill.pipelines", "tokenmill.report", "tokenmill.cli", "tokenmill.trainer")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every import in a file (`from a import b`: `a.b`), relative ones
    resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # `from tokenmill import hist` imports tokenmill.hist
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def _files() -> list[Path]:
    files = []
    for name in LOWER:
        p = ROOT / name
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return files


def test_the_lower_layers_exist():
    files = _files()
    assert len(files) > 15 and all(f.is_file() for f in files)


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_lower_module_imports_no_upper_layer(path):
    upward = [
        f"{path.relative_to(ROOT.parent)}:{line}: {mod}"
        for line, mod in _imports(path)
        if mod in UPPER or mod.startswith(tuple(u + "." for u in UPPER))
    ]
    assert upward == []
