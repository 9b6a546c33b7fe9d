"""Faults on a real cluster of separate processes give the same bytes as an undisturbed run.

A `dask scheduler` process and a `dask worker --nworkers 2` process (its nanny restarts a
killed worker, as on a real cluster) run `tokenmill prepare --scheduler` on the bundled
sample. One worker process is SIGKILLed in the middle of the process stage and again in the
middle of exact dedup; the client itself is SIGKILLed in the middle of the tokenize stage and
started again with the same command. Its shards, tokenizer, manifest shard list and stats
counts must equal those of an undisturbed LocalCluster run (`prepare --workers 2`).

Every process is started in its own session and its whole process group is killed at the end,
pass or fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from tmfixtures import DATA

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

BIN = Path(sys.executable).parent
BUCKETS = 256  # exact-dedup tasks: enough (~2 s on 2 cores) to kill a worker in the middle
CLIENT_TIMEOUT_S = 240  # one `prepare` run; an undisturbed one takes ~20 s on 2 cores
START_TIMEOUT_S = 60  # scheduler or workers up

# the stage fields of stats.json that count documents, bytes and tokens (not times or runs)
STAGE_COUNTS = (
    "tasks",
    "records",
    "documents_in",
    "documents_kept",
    "documents",
    "bytes_in",
    "bytes_kept",
    "tokens",
    "hashes",
    "duplicates",
    "cluster_sizes",
    "edges",
    "clusters",
)


def _write_config(root: Path) -> Path:
    """The bundled sample's config with small partitions (57 process tasks) and many exact
    dedup buckets, so that each stage has many tasks to kill a worker among."""
    cfg = root / "config.yaml"
    cfg.write_text(
        "sources:\n"
        f"  - {{name: c4, format: c4, paths: ['{DATA}/c4/en/c4-train.*-of-01024.json.gz']}}\n"
        f"  - {{name: pile, format: pile, paths: ['{DATA}/pile/train/*.jsonl.zst']}}\n"
        "  - {name: oscar, format: oscar2301,\n"
        f"     paths: ['{DATA}/oscar/*_meta/*_meta_part_*.jsonl.zst']}}\n"
        "input: {partition_docs: 50}\n"
        "quality:\n"
        "  basic: {min_chars: 50, min_words: 5, max_symbol_fraction: 0.5}\n"
        f"dedup: {{exact: true, buckets: {BUCKETS}}}\n"
        "tokenizer: {train: {vocab_size: 2000}}\n"
        "shards: {tokens_per_shard: 100000}\n"
    )
    return cfg


class Processes:
    """Subprocesses started in their own sessions, logged to files; `close` kills each one's
    process group and any descendant seen, and reports what survived."""

    def __init__(self, logs: Path, env: dict):
        self.logs = logs
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.seen: dict[int, psutil.Process] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, cmd: list[str], cwd: Path) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        try:
            p = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.procs[name] = p
        self.remember(p.pid)
        return p

    def remember(self, pid: int) -> None:
        """Note a process and its descendants, to kill them too if they left the group."""
        try:
            proc = psutil.Process(pid)
            for q in [proc, *proc.children(recursive=True)]:
                self.seen.setdefault(q.pid, q)
        except psutil.NoSuchProcess:
            pass

    def succeed(self, name: str, timeout: float) -> None:
        """Wait for a process to exit 0; fail with its log's tail if it does not in time.
        Its descendants (a LocalCluster's workers) are noted on the way, for `close`."""
        p = self.procs[name]
        deadline = time.monotonic() + timeout
        while p.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not finish in {timeout:.0f} s\n{self.tail(name)}")
            self.remember(p.pid)
            time.sleep(0.5)
        assert p.returncode == 0, f"{name} failed (rc {p.returncode})\n{self.tail(name)}"

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- last lines of {path} ---\n" + "\n".join(text.splitlines()[-lines:])

    def kill_group(self, name: str) -> None:
        """SIGKILL a started process's whole group, while its leader is not yet reaped (so
        the group id is still ours), and reap the leader."""
        p = self.procs[name]
        if p.poll() is None:
            self.remember(p.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)

    def close(self) -> list[str]:
        """Kill everything started here; returns the processes still running after it."""
        for name in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.kill_group(name)
        # descendants that left their group; psutil checks each is still the process seen
        for q in self.seen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                q.kill()
        _, alive = psutil.wait_procs(list(self.seen.values()), timeout=15)
        # a zombie holds nothing: it waits for its (non-reaping) parent, init here
        return [f"pid {q.pid}" for q in alive if _status(q) not in (None, psutil.STATUS_ZOMBIE)]


def _status(q: psutil.Process):
    try:
        return q.status()
    except psutil.NoSuchProcess:
        return None


def _wait_for(what: str, cond, timeout: float, procs: Processes, watch: tuple[str, ...] = ()):
    """Poll `cond()` until it returns something true; fail naming `what` after `timeout` s, or
    at once if a process in `watch` has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        for name in watch:
            rc = procs.procs[name].poll()
            if rc is not None:
                pytest.fail(f"{name} exited (rc {rc}) while waiting for {what}\n{procs.tail(name)}")
        if time.monotonic() > deadline:
            logs = "\n".join(procs.tail(n) for n in (watch or procs.procs))
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
        time.sleep(0.02)


def _scheduler_address(path: Path) -> str | None:
    """The address in a scheduler file, once the scheduler has written it whole."""
    try:
        return json.loads(path.read_text()).get("address")
    except (OSError, ValueError):
        return None


def _workers(procs: Processes) -> list[psutil.Process]:
    """The worker processes under the `dask worker` nanny process that have started serving
    (a worker titles itself `dask worker [ADDRESS]` once it listens), oldest first."""
    try:
        children = psutil.Process(procs.procs["worker"].pid).children()
    except psutil.NoSuchProcess:
        return []
    out = []
    for c in children:
        try:
            title = " ".join(c.cmdline())
            if title.startswith("dask worker [tcp://") and c.status() != psutil.STATUS_ZOMBIE:
                out.append((c.create_time(), c.pid, c))
        except psutil.NoSuchProcess:
            continue
    for _, pid, _ in out:
        procs.remember(pid)
    return [c for _, _, c in sorted(out)]


def _serving(procs: Processes, n: int) -> list[psutil.Process] | None:
    """The worker processes if exactly `n` are serving, else None."""
    ws = _workers(procs)
    return ws if len(ws) == n else None


def _count(folder: Path, pattern: str) -> int:
    return len(list(folder.glob(pattern))) if folder.exists() else 0


def _done_at_least(folder: Path, pattern: str, k: int) -> int:
    """The number of completed tasks (counts files) if at least max(k, 1), else 0."""
    n = _count(folder, pattern)
    return n if n >= max(k, 1) else 0


def _kill_worker_mid_stage(
    procs: Processes, stage: str, folder: Path, pattern: str, total: int
) -> tuple[int, int]:
    """SIGKILL the oldest running worker once a quarter of a stage's tasks are done; returns
    (tasks done at the kill, tasks done just after it)."""
    done = _wait_for(
        f"{total // 4} of the {total} {stage} tasks to complete ({folder}/{pattern})",
        lambda: _done_at_least(folder, pattern, total // 4),
        CLIENT_TIMEOUT_S,
        procs,
        ("client", "scheduler", "worker"),
    )
    victims = _workers(procs)
    assert victims, f"no running dask worker process to kill in the {stage} stage"
    victim = victims[0]
    victim.send_signal(signal.SIGKILL)
    after = _count(folder, pattern)
    victim.wait(timeout=30)  # the nanny reaps it, then starts a new worker in its place
    return done, after


def _files(out: Path) -> dict[str, bytes]:
    files = {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted((out / "shards").rglob("*"))
        if p.is_file()
    }
    files["tokenizer.json"] = (out / "tokenizer.json").read_bytes()
    return files


def _stage_counts(stats: dict) -> dict:
    return {
        name: {k: v for k, v in s.items() if k in STAGE_COUNTS}
        for name, s in stats["stages"].items()
    }


def test_killed_workers_and_client_on_a_real_cluster_give_identical_output(tmp_path):
    t0 = time.monotonic()
    cfg = _write_config(tmp_path)
    env = dict(os.environ)
    env.update(
        RAYON_NUM_THREADS="1",  # as LocalCluster gives 2 workers on 2 cores (worker_environ)
        DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED="False",
        DASK_LOGGING__DISTRIBUTED="warning",  # the logs say when a worker died, and why
    )
    procs = Processes(tmp_path / "logs", env)
    survivors: list[str] = []
    try:
        prepare = [str(BIN / "python"), "-m", "tokenmill", "prepare", str(cfg), "--quiet"]

        # the undisturbed reference: a LocalCluster of 2 worker processes
        ref = tmp_path / "ref"
        procs.start("reference", [*prepare, "--out", str(ref), "--workers", "2"], tmp_path)
        procs.succeed("reference", CLIENT_TIMEOUT_S)
        ref_stats = json.loads((ref / "stats.json").read_text())
        n_process = ref_stats["stages"]["process"]["tasks"]
        n_tokenize = ref_stats["stages"]["tokenize"]["tasks"]
        assert ref_stats["stages"]["dedup"]["tasks"] == BUCKETS
        t_ref = time.monotonic() - t0

        # the cluster: scheduler and workers in processes of their own, as on real machines
        sched_file = tmp_path / "scheduler.json"
        procs.start(
            "scheduler",
            [
                str(BIN / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            tmp_path,
        )
        address = _wait_for(
            f"the scheduler to write {sched_file}",
            lambda: _scheduler_address(sched_file),
            START_TIMEOUT_S,
            procs,
            ("scheduler",),
        )
        procs.start(
            "worker",
            [
                str(BIN / "dask"),
                "worker",
                address,
                "--nworkers",
                "2",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--local-directory",
                str(tmp_path / "scratch"),
            ],
            tmp_path,
        )
        original = {
            w.pid
            for w in _wait_for(
                "2 dask worker processes to start",
                lambda: _serving(procs, 2),
                START_TIMEOUT_S,
                procs,
                ("scheduler", "worker"),
            )
        }

        out = tmp_path / "out"
        client = [*prepare, "--out", str(out), "--scheduler", address]
        procs.start("client", client, tmp_path)
        work = out / "work"
        kills = {
            "process": _kill_worker_mid_stage(
                procs, "process", work / "docs", "*/*.json", n_process
            ),
            "dedup": _kill_worker_mid_stage(procs, "dedup", work / "dedup", "b*.json", BUCKETS),
        }
        for stage, (_, after) in kills.items():
            total = n_process if stage == "process" else BUCKETS
            assert after < total, (
                f"the {stage} stage had finished ({after}/{total}) when its worker was killed"
            )

        # the client itself, in the middle of tokenize
        tokens = work / "tokens"
        done_at_kill = _wait_for(
            f"{n_tokenize // 4} of the {n_tokenize} tokenize tasks to complete",
            lambda: _done_at_least(tokens, "*/*.json", n_tokenize // 4),
            CLIENT_TIMEOUT_S,
            procs,
            ("client", "scheduler", "worker"),
        )
        procs.kill_group("client")
        assert _count(tokens, "*/*.json") < n_tokenize, "tokenize finished before the kill"
        assert not (out / "manifest.json").exists(), "the run finished before it was killed"

        procs.start("client-restarted", client, tmp_path)
        procs.succeed("client-restarted", CLIENT_TIMEOUT_S)
        assert procs.procs["scheduler"].poll() is None, procs.tail("scheduler")
        assert procs.procs["worker"].poll() is None, procs.tail("worker")
        # the second kill took the older worker, the one the first kill spared: the nanny
        # has replaced both original workers
        final = _wait_for(
            "the nanny to replace the killed workers",
            lambda: _serving(procs, 2),
            START_TIMEOUT_S,
            procs,
            ("scheduler", "worker"),
        )
        assert not original & {w.pid for w in final}, "a killed worker is still serving"
        t_cluster = time.monotonic() - t0 - t_ref

        stats = json.loads((out / "stats.json").read_text())
        # the restart resumed: what was complete before the client's kill was not redone
        assert stats["stages"]["process"]["ran"] == 0
        assert stats["stages"]["dedup"]["ran"] == 0
        assert stats["stages"]["tokenize"]["skipped"] >= done_at_kill

        ref_files, files = _files(ref), _files(out)
        assert sorted(files) == sorted(ref_files)
        different = [name for name in ref_files if files[name] != ref_files[name]]
        assert not different, f"files differ from the undisturbed run: {different}"
        manifest = json.loads((out / "manifest.json").read_text())
        ref_manifest = json.loads((ref / "manifest.json").read_text())
        assert manifest["shards"] == ref_manifest["shards"]
        assert stats["sources"] == ref_stats["sources"]
        assert stats["totals"] == ref_stats["totals"]
        assert _stage_counts(stats) == _stage_counts(ref_stats)
        print(
            f"\ncluster faults: reference {t_ref:.1f} s, cluster run with kills {t_cluster:.1f} s;"
            f" worker killed at {kills['process'][0]}/{n_process} process and"
            f" {kills['dedup'][0]}/{BUCKETS} dedup tasks, client at"
            f" {done_at_kill}/{n_tokenize} tokenize tasks"
            f" ({stats['stages']['tokenize']['skipped']} skipped on restart)"
        )
    finally:
        survivors = procs.close()
    assert not survivors, f"processes left running: {survivors}"
