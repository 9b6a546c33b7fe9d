#!/usr/bin/env python3
"""`make mutation`: mutmut 3 over the modules where a silent bug loses data, one module at a
time, each with only its own test files (docs/TESTING.md).

    make mutation                                      # every module below, one after the other
    make mutation MODULE=tokenmill/shards/megatron.py  # one module
    .venv/bin/python scripts/mutation.py --tests tests/filters/test_exact.py \
        tokenmill/filters/exact.py                     # other test files

mutmut reads its settings from the pyproject.toml of the directory it runs in and writes
`mutants/` there, so each module gets a scratch copy of the project under build/mutation/
(git-ignored): tokenmill/, tests/, deploy/ and a pyproject.toml whose [tool.mutmut] is the project's
with `only_mutate` and the test selection set for that module. The summary (score, survivors
with their diffs) is printed and written to build/mutation/<module>/report.txt.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).with_name("mutmut")

# module -> the test files that test it (fast, not `slow`; end-to-end runs through Dask
# worker processes are left out: mutmut cannot see which test reaches a mutant in another
# process, and they would make every mutant cost a pipeline run)
READER_TESTS = [
    "tests/pipelines/test_readers.py",
    "tests/pipelines/test_readers_damage.py",
    "tests/pipelines/test_readers_fuzz.py",
    "tests/pipelines/test_formats.py",
    "tests/pipelines/test_readers_lines.py",
    "tests/pipelines/test_readers_records.py",
    "tests/pipelines/test_readers_compression.py",
    "tests/pipelines/test_readers_jsonl.py",
    "tests/pipelines/test_readers_oscar.py",
    "tests/pipelines/test_readers_parquet.py",
    "tests/pipelines/test_readers_hf.py",
    "tests/pipelines/test_readers_inputs.py",
]
TOKENIZE_TESTS = [
    "tests/tokenize",
    "tests/shards/test_write_shard.py",
    "tests/shards/test_plan.py",
]
MODULES: dict[str, list[str]] = {
    "tokenmill/shards/megatron.py": [
        "tests/shards/test_megatron.py",
        "tests/shards/test_megatron_format.py",
        "tests/shards/test_write_shard.py",
    ],
    "tokenmill/shards/manifest.py": ["tests/shards/test_manifest.py"],
    "tokenmill/tokenize/encode.py": TOKENIZE_TESTS,
    "tokenmill/tokenize/series.py": TOKENIZE_TESTS,
    "tokenmill/shards/write.py": TOKENIZE_TESTS,
    "tokenmill/pipelines/stages/tokenize.py": TOKENIZE_TESTS,
    # the readers package, one module at a time, each with the whole reader suite (a format
    # module is reached through read_records and the format table)
    **{
        f"tokenmill/pipelines/readers/{m}.py": READER_TESTS
        for m in (
            "compression",
            "lines",
            "jsonl",
            "records",
            "oscar",
            "parquet",
            "hf",
            "inputs",
            "formats",
        )
    },
    "tokenmill/pipelines/engine.py": [
        "tests/pipelines/test_engine.py",
        "tests/test_slurm.py",  # the SLURM cluster and its config (fake sbatch)
        # a prepare on a cluster started elsewhere runs mutated engine code in workers whose
        # folder is not the scratch copy: mutmut's trampolines there cannot find their config
        "-k",
        "not test_prepare_joins_a_running_cluster_by_address",
    ],
    "tokenmill/filters/exact.py": ["tests/filters/test_exact.py"],
    "tokenmill/filters/minhash.py": [
        "tests/filters/test_minhash.py",
        "tests/filters/test_minhash_parts.py",
        "tests/filters/test_decontam.py",  # shingle_hashes without short documents
    ],
}


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def scratch(module: str, tests: list[str]) -> Path:
    """A fresh copy of the project for `module` under build/mutation/."""
    work = ROOT / "build" / "mutation" / module.replace("/", "_").removesuffix(".py")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "artifacts")
    for tree in ("tokenmill", "tests", "deploy"):  # deploy/: the SLURM config test_slurm reads
        shutil.copytree(ROOT / tree, work / tree, ignore=skip)
    project = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    if "[tool.mutmut]" not in project:
        raise SystemExit("pyproject.toml has no [tool.mutmut] section: nothing to derive from")
    # the module's own settings replace the shared ones of the same name
    own = {
        # mutmut's default forks each mutant's run from the process that ran the whole
        # selection first: after tokenizers' and torch's thread pools have run there, a forked
        # run can hang, and the hang is scored as a "timeout" (counted as caught) although
        # the tests would pass; a fork server that only imports the tests forks clean runs
        "process_isolation": '"forkserver"',
        "only_mutate": toml_list([module]),
        "also_copy": toml_list(["deploy/"]),  # into mutants/, where the tests run
        "pytest_add_cli_args_test_selection": toml_list(tests),
    }
    head, _, rest = project.partition("[tool.mutmut]\n")
    body, nxt, tail = rest.partition("\n[")
    lines = [ln for ln in body.splitlines() if ln.split("=")[0].strip() not in own]
    lines += [f"{k} = {v}" for k, v in own.items()]
    section = "[tool.mutmut]\n" + "\n".join(lines) + "\n"
    (work / "pyproject.toml").write_text(head + section + (nxt + tail if nxt else ""), "utf-8")
    return work


def mutmut(work: Path, *args: str, check: bool = True) -> str:
    p = subprocess.run([str(MUTMUT), *args], cwd=work, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise SystemExit(
            f"mutmut {' '.join(args)} failed in {work} (exit {p.returncode}):\n"
            f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        )
    return p.stdout


def run(module: str, tests: list[str], jobs: int) -> dict:
    work = scratch(module, tests)
    print(f"== {module}: mutmut in {work.relative_to(ROOT)} with {' '.join(tests)}", flush=True)
    subprocess.run([str(MUTMUT), "run", "--max-children", str(jobs)], cwd=work, check=True)
    mutmut(work, "export-cicd-stats")
    stats = json.loads((work / "mutants" / "mutmut-cicd-stats.json").read_text())
    listing = mutmut(work, "results", "--all", "true")
    status = dict(re.findall(r"^\s*(\S+): (.+)$", listing, flags=re.M))
    lost = sorted(name for name, s in status.items() if s != "killed")
    report = [
        f"module {module}",
        f"tests  {' '.join(tests)}",
        f"command: make mutation MODULE={module}",
        "stats  " + json.dumps(stats),
        f"score  {stats['killed']}/{stats['total']} killed "
        f"({100 * stats['killed'] / max(stats['total'], 1):.1f}%)",
        "",
    ]
    for name in lost:
        report += [f"--- {name}: {status[name]}", mutmut(work, "show", name, check=False)]
    text = "\n".join(report)
    (work / "report.txt").write_text(text, encoding="utf-8")
    print(text, flush=True)
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help="tokenmill/... .py files (default: all listed)")
    ap.add_argument("--tests", nargs="+", help="test files instead of the module's own")
    ap.add_argument("--jobs", type=int, default=1, help="mutants tested in parallel")
    args = ap.parse_args()
    modules = args.modules or list(MODULES)
    for m in modules:
        if m not in MODULES and not args.tests:
            raise SystemExit(f"{m}: no test files listed for it in {__file__}; pass --tests")
    totals = {m: run(m, args.tests or MODULES[m], args.jobs) for m in modules}
    if len(totals) > 1:
        for m, s in totals.items():
            print(f"{m}: {s['killed']}/{s['total']} killed")


if __name__ == "__main__":
    main()
