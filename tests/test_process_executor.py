"""The local process-pool executor: same records as in-process, bad settings, crashed workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch

from conftest import SMALL_NET_ARGS, TINY_MNIST_ARGS, needs_data, synthetic_search_context
from equinas.data import resolve_data_dir
from equinas.execution import AutoExecutor, LocalExecutor, ProcessExecutor, WorkerCrashed
from equinas.search import make_method, run_search
from equinas.train.threads import usable_cores
from helpers import NamedJob, add_shared, add_shared_named, job_process

E_SETTINGS = {"generations": 1, "population": 2, "epochs_per_generation": 0.5, "children_per_parent": 2}


def test_bad_worker_counts_are_errors_and_oversubscription_warns() -> None:
    for workers in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers must be an integer >= 1"):
            ProcessExecutor(workers=workers)
    with pytest.raises(ValueError, match="threads per worker"):
        ProcessExecutor(workers=1, threads=0)
    with pytest.warns(RuntimeWarning, match="exceed the"):
        ProcessExecutor(workers=usable_cores() + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default = ProcessExecutor()
    assert default.workers * default.threads <= usable_cores()


def test_jobs_run_in_one_thread_workers_on_the_shared_data() -> None:
    executor = ProcessExecutor(workers=2, threads=1)
    shared = torch.ones(10)
    try:
        first = dict(executor.map(add_shared, [1, 2, 3], shared))
        again = dict(executor.map(add_shared, [4], shared))  # the pool is reused
    finally:
        executor.close()
    assert {i: r[:2] for i, r in first.items()} == {0: (1, 11.0), 1: (2, 12.0), 2: (3, 13.0)}
    assert again == {0: (4, 14.0, 1)}
    assert all(threads == 1 for _, _, threads in first.values())


def test_threads_mapping_at_once_share_one_pool() -> None:
    executor = ProcessExecutor(workers=2)
    shared = torch.zeros(1)
    results: dict[str, dict] = {}

    def search(name: str, jobs: list[int]) -> None:
        results[name] = dict(executor.map(job_process, jobs, shared))

    threads = [threading.Thread(target=search, args=(n, [i, i + 1, i + 2])) for i, n in ((0, "a"), (10, "b"))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        executor.close()
    assert sorted(job for job, _ in results["a"].values()) == [0, 1, 2]
    assert sorted(job for job, _ in results["b"].values()) == [10, 11, 12]
    processes = {pid for r in results.values() for _, pid in r.values()}
    assert os.getpid() not in processes and len(processes) <= 2  # one pool of two workers


def test_auto_runs_single_jobs_here_and_several_in_workers() -> None:
    executor = AutoExecutor(workers=2)
    try:
        (single,) = executor.map(job_process, [7], None)
        several = dict(executor.map(job_process, [1, 2, 3], None))
    finally:
        executor.close()
    assert single == (0, (7, os.getpid()))
    assert sorted(job for job, _ in several.values()) == [1, 2, 3]
    assert os.getpid() not in {pid for _, pid in several.values()}


def test_a_dying_worker_is_an_error_naming_only_the_unfinished_jobs_of_its_call() -> None:
    executor = ProcessExecutor(workers=1, threads=1)
    first = [NamedJob("g00-000", 1), NamedJob("g00-001", 2)]
    try:
        assert len(list(executor.map(add_shared_named, first, torch.zeros(1)))) == 2
        with pytest.raises(WorkerCrashed, match="died while evaluating job 1") as crash:
            list(executor.map(add_shared, [0, -1, 2], torch.zeros(1)))  # the pool lives on from `first`
        assert "g00-" not in str(crash.value)  # finished in an earlier call
        assert list(executor.map(add_shared, [5], torch.zeros(1))) == [(0, (5, 5.0, 1))]  # a new pool
    finally:
        executor.close()


def _search(path, executor):
    ctx = synthetic_search_context(path, executor, seed=1)
    try:
        return run_search(make_method("equinas_e", **E_SETTINGS), ctx, resume=True)
    finally:
        executor.close()


def _records(path) -> dict[str, dict]:
    records = {}
    for line in (path / "candidates.jsonl").read_text().splitlines():
        record = json.loads(line)
        for volatile in ("time_s", "cost", "extra"):
            record.pop(volatile)
        records[record["candidate_id"]] = record
    return records


def test_process_executor_gives_the_records_of_the_sequential_run(tmp_path) -> None:
    sequential = _search(tmp_path / "local", LocalExecutor())
    parallel = _search(tmp_path / "process", ProcessExecutor(workers=2))
    assert _records(tmp_path / "local") == _records(tmp_path / "process")
    assert [r.candidate_id for r in parallel.candidates] == [r.candidate_id for r in sequential.candidates]
    best = (parallel.best.candidate_id, parallel.best.val_acc, parallel.best.test_acc)
    assert best == (sequential.best.candidate_id, sequential.best.val_acc, sequential.best.test_acc)


class CrashAfterOne(LocalExecutor):
    """Finishes one job of a map call, then behaves like a pool whose worker died."""

    def map(self, fn, jobs, shared):
        iterator = super().map(fn, jobs, shared)
        yield next(iterator)
        if len(jobs) > 1:
            raise WorkerCrashed(f"a worker process died while evaluating {jobs[1].candidate_id}")


def test_a_search_resumes_after_a_worker_crash_without_losing_or_repeating(tmp_path) -> None:
    with pytest.raises(WorkerCrashed, match="g01-001"):
        _search(tmp_path / "run", CrashAfterOne())
    kept = [json.loads(line)["candidate_id"] for line in (tmp_path / "run" / "candidates.jsonl").open()]
    assert kept == ["g00-000", "g01-000"]
    _search(tmp_path / "run", LocalExecutor())
    ids = [json.loads(line)["candidate_id"] for line in (tmp_path / "run" / "candidates.jsonl").open()]
    assert ids[:2] == kept and len(ids) == len(set(ids))
    assert _records(tmp_path / "run") == _records(_ref(tmp_path))


def _ref(tmp_path):
    _search(tmp_path / "reference", LocalExecutor())
    return tmp_path / "reference"


def _children(pid: int) -> dict[int, str]:
    """``{pid: command line}`` of the live child processes of ``pid`` (from /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found[int(stat.parent.name)] = command
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@needs_data
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_workers_end_when_the_main_process_is_killed(tmp_path) -> None:
    env = {**os.environ, "EQUINAS_DATA": str(resolve_data_dir()), "EQUINAS_CACHE": str(tmp_path / "cache")}
    argv = ["search", "fixed", *TINY_MNIST_ARGS]
    argv += ["--groups", "C1,C2,C4,D1,D2,D4", "--epochs", "1", "--executor", "process", "--workers", "2"]
    argv += [*SMALL_NET_ARGS, "--quiet", "--run-dir", str(tmp_path / "run")]
    main_process = subprocess.Popen([sys.executable, "-m", "equinas.cli", *argv], env=env)
    records = tmp_path / "run" / "candidates.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (records.exists() and records.read_text().strip()):
        time.sleep(0.02)  # the workers have started and work on the other candidates
    children = _children(main_process.pid)
    main_process.send_signal(signal.SIGKILL)
    main_process.wait()
    deadline = time.time() + 5
    while time.time() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.05)
    survivors = [pid for pid in children if _alive(pid)]
    for pid in survivors:  # do not leave them running when the test fails
        os.kill(pid, signal.SIGKILL)
    assert sum("spawn" in command for command in children.values()) == 2, children
    assert survivors == []  # workers and resource tracker: gone within 5 s


POOL_PARENT = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from equinas.execution import end_with_parent
context, me = get_context("spawn"), os.getpid()
pool = ProcessPoolExecutor(1, mp_context=context, initializer=end_with_parent, initargs=(me,))
print(pool.submit(os.getpid).result(), flush=True)
pool.submit(time.sleep, 120)
time.sleep(120)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_any_pool_whose_workers_start_with_end_with_parent_ends_with_its_parent() -> None:
    """The benchmark scripts' pools (``compare_methods.worker_pool``): a SIGKILL of the parent
    leaves no worker training on."""
    parent = subprocess.Popen([sys.executable, "-c", POOL_PARENT], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    assert _alive(worker)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 5
    while time.time() < deadline and _alive(worker):
        time.sleep(0.05)
    alive = _alive(worker)
    if alive:
        os.kill(worker, signal.SIGKILL)
    assert not alive
