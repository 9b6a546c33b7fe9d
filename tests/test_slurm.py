"""Running elsewhere than local processes: SLURM through dask-jobqueue, and --scheduler.

There is no SLURM here. The job-script tests build a real SLURMCluster that submits nothing
(a fake `sbatch` on PATH records any call); the end-to-end test's fake `sbatch` runs the job
script on this machine, so `prepare --cluster` goes through submission, waiting for a worker,
the run and `scancel` exactly as on a cluster.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import yaml
from dask.utils import format_bytes, parse_bytes
from tmfixtures import make_corpus
from typer.testing import CliRunner

from tokenmill.cli import app
from tokenmill.pipelines.engine import ClusterError, load_slurm_config, slurm_cluster


@pytest.fixture(autouse=True)
def _dask_jobqueue(require):
    require("dask_jobqueue", "SLURMCluster builds the job scripts")


SHIPPED = Path(__file__).resolve().parents[1] / "deploy" / "slurm.yaml"

FAKE_SBATCH = """#!/bin/sh
# fake sbatch: run (a copy of: dask-jobqueue deletes it on return) the job
# script here, in its own process group so that scancel can stop all of it
cp "$1" "{logs}/job-$$.sh"
setsid bash "{logs}/job-$$.sh" > "{logs}/job-$$.log" 2>&1 < /dev/null &
echo "$!" >> "{calls}"
echo "Submitted batch job $!"
"""
FAKE_SCANCEL = """#!/bin/sh
echo "$1" >> "{cancels}"
kill -TERM -- "-$1" 2>/dev/null
exit 0
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """sbatch/scancel on PATH that run jobs locally; returns the file listing the job ids
    (process group ids) sbatch gave out.
    The working directory is tmp_path, so the config's relative log-directory lands there."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch-calls.txt"
    (bin_dir / "sbatch").write_text(FAKE_SBATCH.format(calls=calls, logs=tmp_path))
    (bin_dir / "scancel").write_text(FAKE_SCANCEL.format(cancels=tmp_path / "scancel-calls.txt"))
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    return calls


def _config(tmp_path: Path, **slurm) -> Path:
    """The shipped config with some jobqueue.slurm keys changed (`_` or `-` in names)."""
    raw = yaml.safe_load(SHIPPED.read_text())
    section = raw["jobqueue"]["slurm"]
    for key, value in slurm.items():
        section.pop(key.replace("_", "-"), None)  # one spelling per key
        section[key] = value
    path = tmp_path / "slurm.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _script(path: Path) -> str:
    with slurm_cluster(path, jobs=0) as cluster:
        return cluster.job_script()


def _said(result) -> str:
    """A command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_shipped_config_builds_a_job_script_of_single_threaded_workers(fake_slurm):
    slurm = yaml.safe_load(SHIPPED.read_text())["jobqueue"]["slurm"]
    script = _script(SHIPPED)
    lines = script.splitlines()
    directives = [line for line in lines if line.startswith("#SBATCH")]
    assert f"#SBATCH --cpus-per-task={slurm['cores']}" in directives
    assert f"#SBATCH --mem={parse_bytes(slurm['memory']) // 2**30}G" in directives
    assert f"#SBATCH -t {slurm['walltime']}" in directives
    assert f"#SBATCH -J {slurm['name']}" in directives
    assert not any(d.startswith(("#SBATCH -p", "#SBATCH -A")) for d in directives)  # null
    worker_at = next(i for i, line in enumerate(lines) if "distributed.cli.dask_worker" in line)
    worker = lines[worker_at]
    # one tokenizers thread per single-threaded worker, set before the workers start
    assert "export RAYON_NUM_THREADS=1" in lines[:worker_at]
    per_worker = format_bytes(parse_bytes(slurm["memory"]) / slurm["processes"]).replace(" ", "")
    assert worker.startswith(f"{sys.executable} -m distributed.cli.dask_worker tcp://")
    assert "--nthreads 1 " in worker
    assert f"--nworkers {slurm['processes']} " in worker
    assert f"--memory-limit {per_worker} " in worker
    assert "--local-directory ${TMPDIR:-/tmp}" in worker
    assert not fake_slurm.exists()  # nothing was submitted
    assert not (fake_slurm.parent / "slurm-logs").exists()  # a preview leaves nothing


def test_partition_account_and_extra_directives_reach_the_script(fake_slurm, tmp_path):
    path = _config(
        tmp_path,
        queue="cpu-long",
        account="abc123",
        walltime="2-00:00:00",
        cores=4,
        processes=4,
        memory="24GiB",
        job_extra_directives=["--qos=high"],  # `_` spelling of job-extra-directives
        job_script_prologue=["source /shared/venv/bin/activate"],
    )
    script = _script(path)
    for line in (
        "#SBATCH -p cpu-long",
        "#SBATCH -A abc123",
        "#SBATCH -t 2-00:00:00",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=24G",
        "#SBATCH --qos=high",
        "source /shared/venv/bin/activate",
    ):
        assert line in script.splitlines(), line
    assert "--nthreads 1 --memory-limit 6.00GiB --nworkers 4 " in script
    assert not fake_slurm.exists()


def test_cluster_config_errors_are_clear(tmp_path, monkeypatch):
    with pytest.raises(ClusterError, match="cluster config not found: .*nope.yaml"):
        load_slurm_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("jobqueue: {pbs: {cores: 1}}\n")
    with pytest.raises(ClusterError, match="jobqueue: slurm:"):
        load_slurm_config(bad)
    with pytest.raises(ClusterError, match=r"unknown jobqueue.slurm keys \['walltme'\]"):
        load_slurm_config(_config(tmp_path, walltme="01:00:00"))
    raw = yaml.safe_load(SHIPPED.read_text())
    del raw["jobqueue"]["slurm"]["processes"]
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ClusterError, match="jobqueue.slurm.processes is required"):
        load_slurm_config(bad)
    with pytest.raises(ClusterError, match="processes <= cores"):
        load_slurm_config(_config(tmp_path, cores=8, processes=16))
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if not installed
    with pytest.raises(ClusterError, match=r"pip install 'tokenmill\[slurm\]'"):
        load_slurm_config(SHIPPED)


def test_loading_dask_jobqueue_keeps_ctrl_c_an_interrupt():
    """dask_jobqueue sets `SIGINT -> sys.exit()` when imported, which would make Ctrl-C of
    `prepare --cluster` a silent exit with status 0; tokenmill keeps Python's handler."""
    import subprocess

    probe = (
        "import signal, sys\n"
        "from tokenmill.pipelines.engine import load_slurm_config\n"
        "assert 'dask_jobqueue' not in sys.modules\n"
        f"load_slurm_config({str(SHIPPED)!r})\n"
        "assert 'dask_jobqueue' in sys.modules\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True"]


def _forget_jobqueue(monkeypatch) -> None:
    """Make the next `import dask_jobqueue` run its modules again (restored after the test)."""
    for name in [m for m in sys.modules if m.split(".")[0] == "dask_jobqueue"]:
        monkeypatch.delitem(sys.modules, name)


def test_importing_dask_jobqueue_here_puts_back_the_handler_it_replaces(monkeypatch):
    import signal

    from tokenmill.pipelines.engine import _import_jobqueue

    def mine(*_):  # a handler of our own, to tell it from Python's and dask-jobqueue's
        pass

    previous = signal.signal(signal.SIGINT, mine)
    try:
        _forget_jobqueue(monkeypatch)
        assert _import_jobqueue().__name__ == "dask_jobqueue"
        assert "dask_jobqueue.runner" in sys.modules  # the module that sets SIGINT ran
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, previous)


def test_more_cluster_config_errors_name_the_file_and_the_fix(tmp_path, caplog):
    import logging

    import dask

    bad = tmp_path / "bad.yaml"
    bad.write_text("jobqueue: [unclosed\n")
    with pytest.raises(ClusterError) as info:
        load_slurm_config(bad)
    assert str(info.value).startswith(f"{bad}: not valid YAML:\n")
    for text in ("- a list\n", "jobqueue: [slurm]\n", "jobqueue: {slurm: 3}\n"):
        bad.write_text(text)
        with pytest.raises(ClusterError) as info:
            load_slurm_config(bad)
        assert str(info.value) == f"{bad}: expected a `jobqueue: slurm: {{...}}` section"
    path = _config(tmp_path, walltme="01:00:00", queu="x")
    with pytest.raises(ClusterError) as info:
        load_slurm_config(path)
    known = ", ".join(sorted(dask.config.get("jobqueue.slurm")))
    assert str(info.value) == (
        f"{path}: unknown jobqueue.slurm keys ['queu', 'walltme']; known: {known}"
    )
    for cores, processes in ((4, 0), (4, "4"), (2.0, 2)):
        with pytest.raises(ClusterError, match="must be whole numbers, processes <= cores"):
            load_slurm_config(_config(tmp_path, cores=cores, processes=processes))
    with caplog.at_level(logging.WARNING, logger="tokenmill.pipelines.engine"):
        path = _config(tmp_path, cores=8, processes=2)
        assert load_slurm_config(path)["jobqueue"]["slurm"]["processes"] == 2
        path1 = _config(tmp_path, cores=3, processes=3)
        load_slurm_config(path1)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: 8 cores / 2 processes = 4 threads per worker; tokenmill's tasks are "
        "single-threaded (as `prepare --workers` runs them): set processes equal to cores"
    ]


def test_cluster_script_command_prints_the_job_script(fake_slurm):
    result = CliRunner().invoke(app, ["cluster-script", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("#!/usr/bin/env bash")
    assert "#SBATCH --cpus-per-task=8" in result.output
    assert "--nthreads 1 " in result.output and "--nworkers 8 " in result.output
    assert not fake_slurm.exists()
    missing = CliRunner().invoke(app, ["cluster-script", "nope.yaml"])
    assert missing.exit_code == 1
    assert "error: cluster config not found: nope.yaml" in _said(missing)


def test_prepare_refuses_conflicting_or_incomplete_cluster_options(fake_slurm):
    runner = CliRunner()
    both = runner.invoke(
        app, ["prepare", "--cluster", str(SHIPPED), "--scheduler", "tcp://127.0.0.1:8786"]
    )
    assert both.exit_code == 1 and "--scheduler and --cluster are mutually exclusive" in _said(both)
    jobs = runner.invoke(app, ["prepare", "--jobs", "2"])
    assert jobs.exit_code == 1 and "--jobs needs --cluster" in _said(jobs)
    workers = runner.invoke(app, ["prepare", "--cluster", str(SHIPPED), "--workers", "2"])
    assert workers.exit_code == 1 and "use --jobs" in _said(workers)
    missing = runner.invoke(app, ["prepare", "--cluster", "nope.yaml", "--out", "o"])
    assert missing.exit_code == 1 and "cluster config not found: nope.yaml" in _said(missing)
    assert not fake_slurm.exists()


def test_a_worker_that_never_comes_is_a_clear_timeout(fake_slurm, tmp_path):
    # the job's worker cannot start (no such Python): prepare must not wait forever
    import io
    import time

    from rich.console import Console

    for logs in ("slurm-logs", None):  # the config's log folder, or SLURM's default files
        settings = {"log_directory": logs} if logs else {}
        path = _config(
            tmp_path,
            cores=1,
            processes=1,
            memory="1GiB",
            python="/nonexistent/python",
            scheduler_options={"dashboard_address": ":0"},
            **settings,
        )
        if logs is None:  # the shipped config has one: drop it
            raw = yaml.safe_load(path.read_text())
            raw["jobqueue"]["slurm"].pop("log-directory", None)
            path.write_text(yaml.safe_dump(raw))
        buf = io.StringIO()
        console = Console(file=buf, width=400, force_terminal=True, color_system="truecolor")
        t0 = time.monotonic()
        with pytest.raises(ClusterError) as info:
            with slurm_cluster(path, jobs=1, wait=3, console=console):
                pass
        assert 3 <= time.monotonic() - t0 < 25  # its own wait, not Dask's default
        address = buf.getvalue().split("scheduler ")[1].split(";")[0]
        assert str(info.value) == (
            "no SLURM worker joined within 3 s. If the jobs are still queued (`squeue --me`), "
            "raise --wait. If they ran and ended, read their logs in "
            f"{logs or 'the slurm-JOBID.out files'}: a worker needs the same Python with "
            "tokenmill installed (`python` in the config; default: the one running this "
            f"command) and must reach the scheduler at {address} (`interface` in the config)."
        )
        # said once, plainly: rich's highlighting would colour the numbers and the address
        said = buf.getvalue()
        assert "\x1b[" not in said, repr(said)
        assert said.startswith("submitted 1 SLURM job(s) of 1 worker(s) each, scheduler tcp://")
        assert said.endswith(
            "; waiting up to 3 s for the first worker (`squeue --me` shows the jobs)\n"
        )
        (job,) = fake_slurm.read_text().split()  # one job submitted, and cancelled
        assert (tmp_path / "scancel-calls.txt").read_text().split() == [job]
        fake_slurm.unlink()
        (tmp_path / "scancel-calls.txt").unlink()


@pytest.fixture(scope="module")
def small_config(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"), n_per_file=10, bad=False)


def _check_outputs(out: Path) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    assert {s["source"] for s in manifest["shards"]} == {"c4", "pile", "oscar"}
    for s in manifest["shards"]:
        assert (out / f"{s['prefix']}.bin").stat().st_size > 0
    for name in ("stats.json", "report.html", "tokenizer.json"):
        assert (out / name).exists(), name


@pytest.mark.distributed
def test_prepare_on_slurm_end_to_end(fake_slurm, small_config, tmp_path):
    path = _config(
        tmp_path,
        cores=1,
        processes=1,
        memory="2GiB",
        walltime="00:10:00",
        scheduler_options={"dashboard_address": ":0"},
    )
    result = CliRunner().invoke(
        app,
        ["prepare", str(small_config), "--out", "out", "--cluster", str(path), "--jobs", "1"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "submitted 1 SLURM job(s) of 1 worker(s) each" in _said(result)
    _check_outputs(tmp_path / "out")
    (job,) = fake_slurm.read_text().split()
    assert (tmp_path / "scancel-calls.txt").read_text().split() == [job]
    deadline = time.monotonic() + 20
    while _running(int(job)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(int(job)), "the job outlived the run"


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.distributed
def test_prepare_joins_a_running_cluster_by_address(small_config, tmp_path, monkeypatch):
    from distributed import LocalCluster

    # The workers start in another folder than the command, as on a real cluster: a relative
    # --out must still reach them as the command's folder.
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        monkeypatch.chdir(tmp_path)
        result = CliRunner().invoke(
            app,
            [
                "prepare",
                str(small_config),
                "--out",
                "out",
                "--scheduler",
                cluster.scheduler_address,
            ],
            catch_exceptions=False,
        )
        assert len(cluster.workers) == 1  # the cluster outlives the run
    assert result.exit_code == 0, result.output
    assert "(1 Dask workers)" in _said(result)
    _check_outputs(tmp_path / "out")
    assert not (tmp_path / "elsewhere" / "out").exists()
