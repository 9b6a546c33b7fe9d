"""`tokenmill eval`'s work: the harness's tasks (its own, tokenmill's under tokenmill/eval/tasks,
and the user's `--include-path` folders), run on a checkpoint through TokenmillLM with the
harness's `simple_evaluate`; the results JSON as the harness writes it.

The harness indexes its ~10,000 built-in task YAMLs when asked for them (seconds); tasks that
are all in the local folders (tokenmill's and --include-path) are found without that.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("tokenmill.eval")

TASKS_DIR = Path(__file__).with_name("tasks")


class EvalError(ValueError):
    """What stops an evaluation before it runs, in one line (an unknown task, a missing folder)."""


@dataclass
class Evaluated:
    results: dict  # the harness's results dict (samples left out)
    samples: dict  # task -> the harness's per-item records (with --log-samples)
    table: str  # the harness's task table (and group table, where there are groups)


def task_manager(tasks: list[str], include_paths: list[Path]):
    """A TaskManager that knows `tasks`: tokenmill's task folder and `include_paths` first,
    the harness's built-in tasks only where a name (or a group's member) is not in those."""
    from lm_eval.tasks import TaskManager

    for p in include_paths:
        if not Path(p).is_dir():
            raise EvalError(f"--include-path {p}: no such folder")
    paths = [str(TASKS_DIR), *map(str, include_paths)]
    local = TaskManager(include_path=paths, include_defaults=False)
    if all(_known(local, name) for name in tasks):
        return local
    full = TaskManager(include_path=paths)
    unknown = [name for name in tasks if not _known(full, name)]
    if unknown:
        raise EvalError(
            f"unknown task{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} (not in the "
            "harness, tokenmill/eval/tasks or --include-path; `lm_eval ls tasks` lists the "
            "harness's)"
        )
    return full


def _known(manager, name: str) -> bool:
    """`name` is in the manager's index with, for a group, every member in it too."""
    entry = manager.task_index.get(name)
    if entry is None:
        return False
    members = (entry.cfg or {}).get("task") if entry.kind.name == "GROUP" else None
    if not members:
        return True
    return all(_known(manager, m) if isinstance(m, str) else True for m in members)


def evaluate(
    ckpt: str | Path,
    tasks: list[str],
    include_paths: list[Path] = (),
    limit: int | float | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    dtype: str = "float32",
    num_fewshot: int | None = None,
    log_samples: bool = False,
    tokenizer: str | Path | None = None,
    seed: int = 0,
) -> Evaluated:
    """Run the harness's `tasks` on the checkpoint; the results, per-item samples and table."""
    from lm_eval import simple_evaluate
    from lm_eval.utils import make_table

    from tokenmill.eval.model import TokenmillLM

    manager = task_manager(tasks, [Path(p) for p in include_paths])
    lm = TokenmillLM.from_checkpoint(ckpt, tokenizer, device, batch_size, dtype)
    results = simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=manager,
        limit=limit,
        num_fewshot=num_fewshot,
        log_samples=log_samples,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )
    samples = results.pop("samples", {}) if log_samples else {}
    results.pop("samples", None)
    table = make_table(results)
    if results.get("groups"):
        table += "\n" + make_table(results, "groups")
    return Evaluated(results, samples, table)


def write_results(evaluated: Evaluated, out: Path) -> list[Path]:
    """The results JSON at `out` (non-JSON values as strings) and, with samples, one
    samples_TASK.jsonl beside it per task, in the harness CLI's format (arguments as
    gen_args_I/arg_J, responses as strings)."""
    from lm_eval.utils import handle_non_serializable, sanitize_list

    from tokenmill.fsio import atomic_path

    written = [out]
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(
            json.dumps(evaluated.results, indent=2, default=handle_non_serializable) + "\n",
            encoding="utf-8",
        )
    for task, records in evaluated.samples.items():
        path = out.parent / f"samples_{task}.jsonl"
        lines = []
        for r in records:
            args = {
                f"gen_args_{i}": {f"arg_{j}": a for j, a in enumerate(arg)}
                for i, arg in enumerate(r["arguments"])
            }
            record = {
                **r,
                "arguments": args,
                "resps": sanitize_list(r["resps"]),
                "filtered_resps": sanitize_list(r["filtered_resps"]),
                "target": str(r["target"]),
            }
            lines.append(json.dumps(record, default=handle_non_serializable, ensure_ascii=False))
        with atomic_path(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        written.append(path)
    return written
