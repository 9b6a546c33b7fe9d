"""`tokenmill train` without the `train` extra says, in one line, how to install it.

The import of torch or deepspeed fails for real, in the installed console script: a
sitecustomize (on PYTHONPATH, run by `site` at start-up) puts a meta-path finder first that
refuses the package the way the import system refuses one that is not installed. Nothing in
tokenmill is patched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SITECUSTOMIZE = """
import os, sys

BLOCKED = set(os.environ["TOKENMILL_TEST_NOT_INSTALLED"].split(","))


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
"""

HINT = "pip install torch first, then pip install 'tokenmill[train]'"


def tokenmill(args: list[str], blocked: str, site: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site), TOKENMILL_TEST_NOT_INSTALLED=blocked)
    env.pop("RANK", None)
    cmd = [str(Path(sys.executable).parent / "tokenmill"), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def site(tmp_path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder


def test_the_blocker_makes_the_import_fail_as_a_missing_package(site):
    env = dict(os.environ, PYTHONPATH=str(site), TOKENMILL_TEST_NOT_INSTALLED="torch")
    p = subprocess.run(
        [sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True
    )
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == "ModuleNotFoundError: No module named 'torch'"


@pytest.mark.parametrize("missing", ["torch", "deepspeed"])
def test_train_without_the_extra_says_how_to_install_it(traceable, site, missing):
    p = tokenmill(["train", "--data", str(traceable), "--steps", "1"], missing, site)
    assert p.returncode == 1, p.stderr
    assert p.stderr.splitlines() == [
        f"error: `tokenmill train` needs the train extra (No module named {missing!r}): {HINT}"
    ]
    assert "Traceback" not in p.stdout + p.stderr


def test_help_works_without_the_extra(site):
    p = tokenmill(["train", "--help"], "torch,deepspeed", site)
    assert p.returncode == 0, p.stderr
    assert "--zero-stage" in p.stdout
