"""Low-level file writing every layer may use: atomic outputs, temporaries, JSON files.

Every output is written under a temporary name beside its final one (`.NAME.tmp-XXXXXXXX`)
and renamed when complete, so a failure (a full disk, a kill) leaves either the previous file
or none, never a truncated one; `sweep_temporaries` removes what a killed writer left.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, data: Any) -> None:
    """`data` as indented JSON with sorted keys, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


# atomic_path's temporary names: `.NAME.tmp-` and 8 hex digits
_TEMPORARY = re.compile(r"^\..+\.tmp-[0-9a-f]{8}$")


def sweep_temporaries(root: str | os.PathLike) -> list[str]:
    """Remove the temporaries (`.NAME.tmp-XXXXXXXX`) that killed writers left under `root`;
    returns their paths. Only safe while no one else writes there (hold `output_lock`)."""
    removed = []
    for folder, dirs, files in os.walk(root):
        for name in [*files, *dirs]:
            if not _TEMPORARY.match(name):
                continue
            path = os.path.join(folder, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
                dirs.remove(name)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            removed.append(path)
    return removed


def load_yaml(text: str) -> Any:
    """YAML as `yaml.safe_load` reads it, but a key given twice in one mapping is an error
    (yaml.YAMLError naming the line), not silently the last one: two `quality:` sections or
    two variants of one name are a mistake to report."""
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} given twice", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return yaml.load(text, Loader=UniqueKeys)  # noqa: S506 - a SafeLoader
