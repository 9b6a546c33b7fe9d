"""Local Dask workers: the environment they start with."""

from __future__ import annotations

import os
import re
import time

import pytest

from tokenmill.pipelines.engine import dask_client


def _worker_env(name: str) -> list:
    with dask_client(workers=2) as client:
        return sorted(client.run(os.environ.get, name).values(), key=str)


def test_workers_share_the_cores_among_their_tokenizer_threads(monkeypatch):
    monkeypatch.delenv("RAYON_NUM_THREADS", raising=False)
    want = str(max(1, (os.cpu_count() or 1) // 2))
    assert _worker_env("RAYON_NUM_THREADS") == [want, want]
    assert _worker_env("OMP_NUM_THREADS") == ["1", "1"]  # Dask's own settings are kept


def test_a_users_rayon_setting_wins(monkeypatch):
    monkeypatch.setenv("RAYON_NUM_THREADS", "3")
    assert _worker_env("RAYON_NUM_THREADS") == ["3", "3"]


# ---- failures, interrupts, temporaries and the output lock ----------------------------------


def _fails(path: str) -> dict:
    raise ValueError(f"bad record in {path}\nsecond line of the message")


def _sigint_handler() -> object:
    import signal

    return signal.getsignal(signal.SIGINT)


def test_workers_below_one_are_refused_before_a_cluster_starts():
    import pytest

    for n in (0, -3):
        with pytest.raises(ValueError, match=rf"workers: must be >= 1 \(got {n}\)"):
            with dask_client(workers=n):
                pass


def test_a_failing_task_names_stage_and_task_and_keeps_the_original_error(tmp_path):
    import pytest

    from tokenmill.pipelines.engine import Engine, Task, TaskFailed

    tasks = [Task("part-7", _fails, ("x.jsonl",), tmp_path / "part-7.json")]
    with dask_client(workers=1) as client:
        with pytest.raises(TaskFailed) as info:
            Engine(client, quiet=True).run_stage("process", tasks)
    assert str(info.value) == (
        "process task part-7 failed: ValueError: bad record in x.jsonl second line of the message"
    )
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == "bad record in x.jsonl\nsecond line of the message"
    assert not (tmp_path / "part-7.json").exists()


def test_local_workers_ignore_sigint_and_the_client_keeps_its_handler():
    """A terminal's Ctrl-C reaches every process of the group: only the client may act."""
    import signal

    from tokenmill.pipelines import executor

    before = signal.getsignal(signal.SIGINT)
    assert before is signal.default_int_handler
    with dask_client(workers=2) as client:
        handlers = client.run(_sigint_handler)
        # the client's: Python's KeyboardInterrupt, latched (see the next test)
        assert signal.getsignal(signal.SIGINT) is executor._on_sigint
        # a worker its nanny starts again (after a crash) ignores it too
        client.restart()
        again = client.run(_sigint_handler)
    assert list(handlers.values()) == [signal.SIG_IGN, signal.SIG_IGN]
    assert list(again.values()) == [signal.SIG_IGN, signal.SIG_IGN]
    assert signal.getsignal(signal.SIGINT) is before


def _stays(x: int) -> int:
    return x


def test_a_ctrl_c_swallowed_where_it_landed_still_stops_the_next_step():
    """Python raises KeyboardInterrupt wherever the main thread is; in a finalizer or a
    library's catch-all it is swallowed. The latch stops the run at the next call anyway."""
    import os
    import signal

    import pytest

    from tokenmill.pipelines.executor import Call, run_calls

    calls = [Call(str(i), _stays, (i,)) for i in range(4)]
    with dask_client(workers=1) as client:
        assert run_calls(client, "before", calls) == [0, 1, 2, 3]
        try:  # what a finalizer does with it: the interrupt is lost there
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
        except KeyboardInterrupt:
            pass
        with pytest.raises(KeyboardInterrupt):
            run_calls(client, "after", calls)
    # the next client starts clean
    with dask_client(workers=1) as client:
        assert run_calls(client, "again", calls) == [0, 1, 2, 3]


def test_sweep_removes_only_what_atomic_writers_leave(tmp_path):
    from tokenmill.pipelines.engine import atomic_path, sweep_temporaries

    stale = [
        tmp_path / ".manifest.json.tmp-0123abcd",
        tmp_path / "work" / "docs" / "c4" / ".00000-0000.parquet.tmp-89abcdef",
        tmp_path / "shards" / "c4" / ".c4_00000.bin.tmp-deadbeef",
    ]
    kept = [
        tmp_path / "notes.tmp-0123abcd",  # not hidden: not an atomic_path name
        tmp_path / ".hidden",
        tmp_path / ".x.tmp-0123abcz",  # not 8 hex digits
        tmp_path / "work" / "docs" / "c4" / "00000-0000.parquet",
    ]
    for p in stale + kept:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    # the name atomic_path really uses matches the pattern the sweep removes
    with atomic_path(tmp_path / "real.json") as tmp:
        tmp.write_text("{}")
        stale_real = tmp_path / "work" / tmp.name
        stale_real.write_text("{}")
    stale.append(stale_real)
    assert sorted(sweep_temporaries(tmp_path)) == sorted(str(p) for p in stale)
    assert [p.exists() for p in stale] == [False] * len(stale)
    assert all(p.exists() for p in kept)


def test_output_lock_refuses_a_second_holder_and_dies_with_its_holder(tmp_path):
    import json
    import signal
    import subprocess
    import sys

    import pytest

    from tokenmill.pipelines.engine import OutputLocked, output_lock

    with output_lock(tmp_path) as path:
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(OutputLocked, match=rf"in use .*\(pid {os.getpid()} on "):
            with output_lock(tmp_path):
                pass
    # a holder killed with SIGKILL leaves the file, but the kernel drops its lock
    code = (
        "import os, signal, sys\n"
        "from tokenmill.pipelines.engine import output_lock\n"
        "with output_lock(sys.argv[1]):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)])
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == proc.pid  # stale content
    with output_lock(tmp_path):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()


def _counts_and_mark(marks: str, n: int) -> dict:
    """A task that leaves a line in `marks` each time it runs."""
    with open(marks, "a") as f:
        f.write(f"{n}\n")
    return {"documents": n}


def test_a_task_whose_done_file_exists_is_not_run_again_on_the_worker(tmp_path):
    """Dask recomputes a finished task whose result a dead worker held: the worker must take
    the stored counts instead of running the task (and rewriting its outputs) again."""
    import json

    from tokenmill.pipelines.engine import _run_task

    marks, done = tmp_path / "marks", tmp_path / "t.json"
    with dask_client(workers=1) as client:
        first = client.submit(_run_task, _counts_and_mark, (str(marks), 5), str(done), pure=False)
        assert first.result()["documents"] == 5
        stored = json.loads(done.read_text())
        again = client.submit(_run_task, _counts_and_mark, (str(marks), 7), str(done), pure=False)
        assert again.result() == stored
    assert marks.read_text() == "5\n"
    assert json.loads(done.read_text()) == stored


# ---- the executor: the one loop every parallel step runs its calls through -------------------


def _square_after(n: int, delay: float) -> int:
    import time

    time.sleep(delay)
    if n < 0:
        raise ValueError(f"negative: {n}")
    return n * n


def test_run_calls_gives_results_in_call_order_here_and_on_workers():
    import pytest

    from tokenmill.pipelines.executor import Call, run_calls

    # the first call finishes last on workers; the second fails
    args = [(3, 0.6), (-1, 0.0), (4, 0.0), (5, 0.3)]
    calls = [Call(f"c{i}", _square_after, a) for i, a in enumerate(args)]
    with dask_client(workers=2) as client:
        for where in (None, client):  # None: here, one call after another
            seen, failed = [], []
            results = run_calls(
                where,
                "square",
                calls,
                on_result=lambda c, r, seen=seen: seen.append((c.key, r)),
                on_error=lambda c, e, failed=failed: failed.append((c.key, str(e))),
            )
            assert results == [9, None, 16, 25]
            assert sorted(seen) == [("c0", 9), ("c2", 16), ("c3", 25)]
            assert failed == [("c1", "negative: -1")]
            # by default a failing call stops the step with its own error
            with pytest.raises(ValueError, match=r"^negative: -1$"):
                run_calls(where, "square", calls)


# ---- small tasks run several to one Dask task -----------------------------------------------


def _task(key: str, nbytes: int):
    from tokenmill.pipelines.engine import Task

    return Task(key, _counts_and_mark, (), None, nbytes)


def test_small_tasks_are_grouped_in_order_within_the_cap_and_unknown_sizes_run_alone():
    from tokenmill.pipelines.engine import GROUPS_PER_SLOT, group_tasks

    sizes = [10, 10, 10, 0, 10, 35, 10, 10, 10, 10, 10, 10]
    tasks = [_task(f"t{i}", n) for i, n in enumerate(sizes)]
    total = sum(sizes)  # 135
    # one slot: groups of at most 135 // 4 = 33 bytes; the limit, when smaller, wins
    for slots, limit, cap in ((1, 10**9, total // GROUPS_PER_SLOT), (1, 20, 20), (2, 10**9, 16)):
        groups = group_tasks(tasks, slots, limit)
        assert [t for g in groups for t in g] == tasks  # every task once, in order
        for g in groups:
            if len(g) > 1:
                assert sum(t.nbytes for t in g) <= cap and all(t.nbytes > 0 for t in g)
        for t in tasks:  # of unknown size or at least the cap: alone
            if t.nbytes == 0 or t.nbytes >= cap:
                assert [t] in groups
        # greedy: no group could have taken the next task within the cap
        for g, nxt in zip(groups, groups[1:], strict=False):
            small = len(g) > 1 or 0 < g[0].nbytes < cap
            if small and 0 < nxt[0].nbytes < cap:
                assert sum(t.nbytes for t in g) + nxt[0].nbytes > cap
    keys = lambda gs: [[t.key for t in g] for g in gs]  # noqa: E731
    # one-byte tasks count and join groups like any other
    ones = [_task(f"o{i}", 1) for i in range(8)]
    assert keys(group_tasks(ones, 1)) == [["o0", "o1"], ["o2", "o3"], ["o4", "o5"], ["o6", "o7"]]
    assert keys(group_tasks(tasks, 1, 10**9)) == [
        ["t0", "t1", "t2"],
        ["t3"],
        ["t4"],
        ["t5"],
        ["t6", "t7", "t8"],
        ["t9", "t10", "t11"],
    ]
    # inputs too small to give each slot GROUPS_PER_SLOT groups: nothing is joined
    assert keys(group_tasks(tasks, 8, 10**9)) == [[t.key] for t in tasks]
    assert group_tasks([], 2) == []


def _marks_key(marks: str, n: int) -> dict:
    """A task that leaves its number and the Dask task it ran in."""
    from distributed import get_worker

    key = get_worker().get_current_task()
    with open(marks, "a") as f:
        f.write(f"{n} {key}\n")
    return {"documents": n}


def _dies_once(marks: str, n: int, flag: str) -> dict:
    """Like `_marks_key`, but kills its worker process the first time it runs."""
    counts = _marks_key(marks, n)
    if not os.path.exists(flag):
        open(flag, "w").close()
        os._exit(1)
    return counts


def _fails_at(n: int, bad: int) -> dict:
    if n == bad:
        raise ValueError(f"bad record in part {n}")
    return {"documents": n}


def test_grouped_tasks_each_store_their_counts_and_run_once(tmp_path):
    from tokenmill.pipelines.engine import Engine, Task, group_tasks

    marks = tmp_path / "marks"
    tasks = [
        Task(f"p{i}", _marks_key, (str(marks), i), tmp_path / f"p{i}.json", 1000) for i in range(24)
    ]
    with dask_client(workers=2) as client:
        result = Engine(client, quiet=True).run_stage("process", tasks, docs_field="documents")
    want = group_tasks(tasks, 2)
    assert 1 < len(want) < len(tasks)
    assert [c["documents"] for c in result.counts] == list(range(24))
    assert all(t.done.exists() for t in tasks) and result.ran == 24
    lines = [line.split() for line in marks.read_text().splitlines()]
    assert sorted(int(n) for n, _ in lines) == list(range(24))  # each ran once
    dask_key = {int(n): key for n, key in lines}
    # the Dask tasks are the groups: one key per group, a different one for each group
    assert [sorted({dask_key[int(t.args[1])] for t in g}) for g in want] == [
        [dask_key[int(g[0].args[1])]] for g in want
    ]
    assert len({dask_key[int(g[0].args[1])] for g in want}) == len(want)
    for g in want:  # named after the stage and its first task (the dashboard shows them)
        assert dask_key[int(g[0].args[1])].startswith(f"process-{g[0].key}-")


def test_a_group_whose_worker_dies_reruns_only_its_unfinished_tasks(tmp_path):
    from tokenmill.pipelines.engine import Engine, Task, group_tasks

    marks, flag = tmp_path / "marks", tmp_path / "died"
    tasks = [
        Task(f"p{i}", _marks_key, (str(marks), i), tmp_path / f"p{i}.json", 1000) for i in range(8)
    ]
    tasks[5] = Task("p5", _dies_once, (str(marks), 5, str(flag)), tmp_path / "p5.json", 1000)
    assert len(group_tasks(tasks, 1)) == 4  # p4 and p5 run in one group
    with dask_client(workers=1) as client:
        result = Engine(client, quiet=True).run_stage("process", tasks, docs_field="documents")
    assert flag.exists()
    assert [c["documents"] for c in result.counts] == list(range(8))
    ran = sorted(int(line.split()[0]) for line in marks.read_text().splitlines())
    assert ran == [0, 1, 2, 3, 4, 5, 5, 6, 7]  # p4 finished before the kill: not run again


def test_a_failing_task_in_a_group_is_named_and_its_group_mates_before_it_are_kept(tmp_path):
    import pytest

    from tokenmill.pipelines.engine import Engine, Task, TaskFailed, group_tasks

    with dask_client(workers=1) as client:
        for where in (None, client):  # None: here, in this process
            d = tmp_path / str(where is None)
            d.mkdir()
            tasks = [Task(f"p{i}", _fails_at, (i, 7), d / f"p{i}.json", 1000) for i in range(8)]
            groups = group_tasks(tasks, 1)
            mates = next(g for g in groups if tasks[7] in g)
            assert mates[0] is not tasks[7]  # it is not the first of its group
            with pytest.raises(TaskFailed) as info:
                Engine(where, quiet=True).run_stage("process", tasks)
            assert str(info.value) == "process task p7 failed: ValueError: bad record in part 7"
            assert isinstance(info.value.__cause__, ValueError)
            assert info.value.key == "p7"
            for t in mates[: mates.index(tasks[7])]:
                assert t.done.exists()
            assert not tasks[7].done.exists()


# ---- the stage as its caller sees it: counts, skips, progress, errors ------------------------


def _docs_and_bytes(n: int) -> dict:
    return {"documents": n, "bytes": n * 250_000}


def test_a_stage_run_here_skips_done_tasks_and_returns_every_tasks_counts_in_order(
    tmp_path, caplog
):
    import io
    import json
    import logging

    from rich.console import Console

    from tokenmill.pipelines.engine import Engine, Task

    tasks = [
        Task(f"p{i}", _docs_and_bytes, (i,), tmp_path / f"p{i}.json", 100) for i in range(1, 7)
    ]
    # two were finished by an earlier run: their stored counts are taken, they do not run
    for t, stored in ((tasks[1], 1000), (tasks[4], 2000)):
        t.done.write_text(json.dumps({"documents": stored, "bytes": 0}))
    buf = io.StringIO()
    console = Console(file=buf, width=200, force_terminal=False)
    engine = Engine(None, console=console)  # no client: run here, one task after another
    assert engine.console is console and engine.quiet is False
    t0 = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="tokenmill.pipelines.engine"):
        result = engine.run_stage("tokenize", tasks, docs_field="documents", bytes_field="bytes")
    took = time.perf_counter() - t0
    assert [r.getMessage() for r in caplog.records] == [
        "tokenize: 2 of 6 tasks already complete, skipped"
    ]
    assert (result.name, result.ran, result.skipped) == ("tokenize", 4, 2)
    assert [c["documents"] for c in result.counts] == [1, 1000, 3, 4, 2000, 6]
    assert 0 < result.wall_s <= took
    # the bar counts every task and adds up what ran: 1+3+4+6 = 14 docs, 3.5 MB; the line is
    # the stage's name in 10 columns, a 16-column bar, tasks, totals, rates, elapsed time
    line = buf.getvalue().rstrip("\n")
    assert re.fullmatch(
        r"tokenize   ━{16} 6/6 +14 docs +3\.5 MB [\d,]+ docs/s [\d,.]+ MB/s 0:00:\d\d", line
    ), line


def _counts_only(n: int) -> dict:
    return {"other": n}


def test_the_progress_line_of_a_stage_with_nothing_to_run_or_no_fields_to_add(tmp_path):
    import io
    import json

    from rich.console import Console

    from tokenmill.pipelines.engine import Engine, Task

    def run(tasks, **fields) -> str:
        buf = io.StringIO()
        engine = Engine(None, console=Console(file=buf, width=200, force_terminal=False))
        engine.run_stage("near", tasks, **fields)
        return buf.getvalue().rstrip("\n")

    # all done before: the bar is full at once and nothing is added up
    done = [Task(f"b{i}", _counts_only, (i,), tmp_path / f"b{i}.json") for i in range(3)]
    for t in done:
        t.done.write_text(json.dumps({"documents": 5, "bytes": 10**6}))
    line = run(done, docs_field="documents", bytes_field="bytes")
    assert re.fullmatch(r"near {7}━{16} 3/3 +0 docs +0\.0 MB .*", line), line
    # tasks whose counts lack the fields, or a stage that names none: nothing is added up
    for i, fields in enumerate(({"docs_field": "documents", "bytes_field": "bytes"}, {})):
        tasks = [Task(f"c{i}{j}", _counts_only, (j,), tmp_path / f"c{i}{j}.json") for j in range(2)]
        line = run(tasks, **fields)
        assert re.fullmatch(r"near {7}━{16} 2/2 +0 docs +0\.0 MB .*", line), line


def test_the_rate_column_divides_by_the_time_since_the_stage_started():
    from types import SimpleNamespace

    from tokenmill.pipelines.engine import RateColumn

    col = RateColumn()
    task = SimpleNamespace(elapsed=4.0, fields={"docs": 10_000, "mb": 6.0})
    assert col.render(task).plain == "2,500 docs/s 1.5 MB/s"
    assert col.render(SimpleNamespace(elapsed=0, fields={"docs": 5})).plain == ""
    assert col.render(SimpleNamespace(elapsed=None, fields={})).plain == ""
    assert col.render(SimpleNamespace(elapsed=0.5, fields={})).plain == "0 docs/s 0.0 MB/s"


def test_a_quiet_engine_prints_nothing_and_defaults_to_stderr(tmp_path, capsys):
    from tokenmill.pipelines.engine import Engine, Task

    engine = Engine(None, quiet=True)
    assert engine.console.stderr is True
    engine.run_stage("scan", [Task("a", _docs_and_bytes, (2,), tmp_path / "a.json")], "docs")
    assert capsys.readouterr() == ("", "")
    loud = Engine(None)
    assert loud.quiet is False and loud.console.stderr is True


def test_an_error_without_a_message_is_named_by_its_type():
    from tokenmill.pipelines.engine import TaskFailed

    assert str(TaskFailed("near", "b7", KeyError())) == "near task b7 failed: KeyError"
    e = TaskFailed("near", "b7", OSError("disk\n  full"))
    assert str(e) == "near task b7 failed: OSError: disk full"
    assert (e.stage, e.key, type(e.error)) == ("near", "b7", OSError)


def test_the_lock_holder_is_described_from_the_lock_file_or_unknown(tmp_path):
    from tokenmill.pipelines.engine import _holder

    lock = tmp_path / ".lock"
    lock.write_text('{"pid": 42, "host": "n1", "started": "2026-01-02T03:04:05+00:00"}')
    assert _holder(lock) == "pid 42 on n1, started 2026-01-02T03:04:05+00:00"
    for text in ("", "not json", '{"pid": 42}', "[1, 2]"):
        lock.write_text(text)
        assert _holder(lock) == "holder unknown"
    assert _holder(tmp_path / "gone") == "holder unknown"


def test_slots_are_the_connected_worker_threads():
    from tokenmill.pipelines.engine import _slots

    assert _slots(None) == 1
    assert _slots(object()) == 1  # not a client (or one that cannot answer): group by size only
    for n in (1, 2):
        with dask_client(workers=n) as client:
            assert _slots(client) == n


def _sleeps(seconds: float) -> dict:
    import time

    time.sleep(seconds)
    return {}


def test_each_task_records_its_own_wall_time_to_a_tenth_of_a_millisecond(tmp_path):
    import time

    from tokenmill.pipelines.engine import Engine, Task

    tasks = [Task(f"s{i}", _sleeps, (0.05 * i,), tmp_path / f"s{i}.json") for i in range(1, 5)]
    t0 = time.perf_counter()
    result = Engine(None, quiet=True).run_stage("scan", tasks)
    total = time.perf_counter() - t0
    walls = [c["wall_s"] for c in result.counts]
    for i, w in enumerate(walls, 1):
        assert 0.05 * i <= w < total, walls
    assert sum(walls) <= total
    assert all(w == round(w, 4) for w in walls) and any(w != round(w, 3) for w in walls), walls


def _fails_first(marks: str, times: int) -> dict:
    """Raises the first `times` times it runs (a passing glitch), then succeeds."""
    with open(marks, "a") as f:
        f.write("x")
    if len(open(marks).read()) <= times:
        raise OSError(f"glitch {len(open(marks).read())}")
    return {"documents": 1}


def _always_dies() -> dict:
    os._exit(3)


def test_a_failing_task_is_tried_three_times_before_the_stage_stops(tmp_path):
    import pytest

    from tokenmill.pipelines.engine import Engine, Task, TaskFailed

    with dask_client(workers=1) as client:
        engine = Engine(client, quiet=True)
        marks = tmp_path / "twice"
        t = Task("g", _fails_first, (str(marks), 2), tmp_path / "g.json")
        assert engine.run_stage("scan", [t]).counts[0]["documents"] == 1
        assert marks.read_text() == "xxx"  # two failures, then the third run succeeded
        marks = tmp_path / "always"
        t = Task("h", _fails_first, (str(marks), 10), tmp_path / "h.json")
        with pytest.raises(TaskFailed, match=r"^scan task h failed: OSError: glitch 3$"):
            engine.run_stage("scan", [t])
        assert marks.read_text() == "xxx"


def test_a_task_whose_worker_keeps_dying_is_named(tmp_path):
    import dask
    import pytest
    from distributed import KilledWorker

    from tokenmill.pipelines.engine import Engine, Task, TaskFailed

    tasks = [Task("p0", _always_dies, (), tmp_path / "p0.json", 10)]
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with dask_client(workers=1) as client:
            with pytest.raises(TaskFailed) as info:
                Engine(client, quiet=True).run_stage("process", tasks)
    # the worker's death is not an error the task raised: named by its (group's first) task
    assert str(info.value).startswith("process task p0 failed: KilledWorker: ")
    assert isinstance(info.value.__cause__, KilledWorker)


# ---- each task's peak memory ----------------------------------------------------------------


def _rss_mb() -> float:
    from tokenmill.memory import status_bytes

    return status_bytes("VmRSS") / 1e6


def _holds(mb: int) -> dict:
    """Holds `mb` MB of touched memory for a moment, then frees it; this process's RSS then."""
    block = bytearray(mb * 10**6)  # zero-filled: every page touched
    del block
    return {"rss_after_mb": _rss_mb()}


def test_each_task_records_the_workers_peak_memory_while_it_ran_and_the_stage_its_largest(
    tmp_path,
):
    """A task holding 300 MB records a peak at least that far above the RSS it left behind;
    the next task, holding nothing, records no more than the RSS it ran in (the peak
    restarts at each task); on a Dask worker as here; the stage's summary has the largest."""
    from tokenmill.memory import reset_peak_rss
    from tokenmill.pipelines.engine import Engine, Task
    from tokenmill.pipelines.stages.base import Counts, summary

    if not reset_peak_rss():
        pytest.skip("no /proc/self/clear_refs: peak RSS is not measured")
    tasks = [Task(f"m{i}", _holds, (mb,), tmp_path / f"m{i}.json") for i, mb in enumerate((300, 0))]
    with dask_client(workers=1) as client:
        result = Engine(client, quiet=True).run_stage("process", tasks)
        worker_rss = client.run(_rss_mb)
    big, small = result.counts
    assert big["peak_rss_mb"] >= big["rss_after_mb"] + 300 * 0.95, big
    assert small["peak_rss_mb"] < big["peak_rss_mb"] - 250, (big, small)
    # the RSS each started from: the big one added its 300 MB to it
    assert big["peak_rss_mb"] - big["start_rss_mb"] >= 300 * 0.95, big
    assert abs(small["start_rss_mb"] - big["rss_after_mb"]) < 50, (big, small)
    assert small["peak_rss_mb"] <= max(small["rss_after_mb"], *worker_rss.values()) + 50
    assert summary(result, Counts)["peak_rss_mb"] == big["peak_rss_mb"]
    # a stage whose counts have no peak (stored before it was measured) has no entry
    result.counts[:] = [{k: v for k, v in c.items() if k != "peak_rss_mb"} for c in result.counts]
    assert "peak_rss_mb" not in summary(result, Counts)
