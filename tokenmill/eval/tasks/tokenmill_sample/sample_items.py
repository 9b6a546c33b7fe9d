"""The items of the bundled tasks (python_reference.jsonl beside this file, made by
scripts/make_eval_sample.py), for lm-evaluation-harness's `custom_dataset`: read relative to
this file, so the tasks run offline from any working directory (a task's `data_files` would
resolve against the working directory)."""

from __future__ import annotations

import json
from pathlib import Path

ITEMS = Path(__file__).with_name("python_reference.jsonl")


def load(**_metadata):
    """A DatasetDict with the items as its `test` split (the harness passes task metadata)."""
    import datasets

    with ITEMS.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
