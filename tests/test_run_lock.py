"""One process per run directory: the lock, its release, and folders that hold something else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import synthetic_task
from equinas.execution import LocalExecutor
from equinas.locking import LockHeld, NotALockFile, locked_file
from equinas.models import backbone, build_model
from equinas.run_lock import LOCK_NAME, RunDirectoryBusy, hold_run_directory
from equinas.search import BackboneSettings, SearchContext, make_method, run_search
from equinas.search.run_directory import RunDirectory
from equinas.train import TrainConfig, train

HOLD = """
import sys, time
from equinas.run_lock import hold_run_directory
with hold_run_directory(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(path) -> subprocess.Popen:
    """Another process holding the lock of run directory ``path`` (started once it holds it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def _search_context(path) -> SearchContext:
    return SearchContext(
        "synthetic",
        synthetic_task(),
        BackboneSettings(widths=(1,), pools_after=(), kernel_size=3, hidden=None),
        TrainConfig(epochs=0.25, batch_size=32, num_threads=1),
        LocalExecutor(),
        RunDirectory(path),
        progress=False,
    )


def test_a_second_process_is_refused_at_once_naming_the_holder(tmp_path) -> None:
    run = tmp_path / "run"
    holder = _holder(run)
    try:
        assert (run / LOCK_NAME).read_text().strip() == str(holder.pid)
        started = time.perf_counter()
        with (
            pytest.raises(RunDirectoryBusy, match=f"in use by process {holder.pid}"),
            hold_run_directory(run),
        ):
            pass
        assert time.perf_counter() - started < 2.0  # refused, not waited for
        with pytest.raises(RunDirectoryBusy, match=str(holder.pid)):
            run_search(make_method("fixed", groups=("C1",)), _search_context(run))
        assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]  # nothing was written
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed holder: the kernel drops its lock
        holder.wait()
    with hold_run_directory(run):  # taken over at once
        assert (run / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert not (run / LOCK_NAME).exists()


def test_the_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(tmp_path) -> None:
    errors = []
    with hold_run_directory(tmp_path / "run"), hold_run_directory(tmp_path / "run"):

        def other_thread() -> None:
            try:
                with hold_run_directory(tmp_path / "run"):
                    pass
            except RunDirectoryBusy as err:
                errors.append(err)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert len(errors) == 1


def test_folders_made_for_the_lock_go_when_nothing_was_written(tmp_path) -> None:
    with pytest.raises(KeyError), hold_run_directory(tmp_path / "a" / "b"):
        raise KeyError("a failure before anything was written")
    assert list(tmp_path.iterdir()) == []
    with hold_run_directory(tmp_path / "a" / "b") as path:
        (path / "kept.txt").write_text("")
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["kept.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="not a directory"), hold_run_directory(tmp_path / "file" / "run"):
        pass


def test_a_blocking_lock_file_is_removed_and_reacquired(tmp_path) -> None:
    path = tmp_path / ".x.lock"
    with locked_file(path):
        assert path.read_text().strip() == str(os.getpid())
        with pytest.raises(LockHeld) as caught, locked_file(path, blocking=False):
            pass
        assert caught.value.pid == os.getpid()
    assert not path.exists()
    with locked_file(path):
        pass


def test_training_locks_its_run_directory_and_refuses_a_search_run(tmp_path) -> None:
    spec = backbone("C4", widths=(1,), pools_after=(), kernel_size=3, hidden=None, num_classes=3).to_dict()
    config = TrainConfig(epochs=0.25, batch_size=32, num_threads=1)
    holder = _holder(tmp_path / "busy")
    try:
        with pytest.raises(RunDirectoryBusy, match=str(holder.pid)):
            train(build_model(spec), synthetic_task(), config, run_dir=tmp_path / "busy", progress=False)
    finally:
        holder.kill()
        holder.wait()
    run_search(make_method("fixed", groups=("C1",)), _search_context(tmp_path / "search"))
    with pytest.raises(ValueError, match="holds a search run"):
        train(build_model(spec), synthetic_task(), config, run_dir=tmp_path / "search", progress=False)


def test_a_search_refuses_a_training_run_or_a_foreign_folder(tmp_path) -> None:
    spec = backbone("C4", widths=(1,), pools_after=(), kernel_size=3, hidden=None, num_classes=3).to_dict()
    config = TrainConfig(epochs=0.25, batch_size=32, num_threads=1)
    train(build_model(spec), synthetic_task(), config, run_dir=tmp_path / "trained", progress=False)
    before = sorted(p.name for p in (tmp_path / "trained").iterdir())
    for resume in (True, False):
        with pytest.raises(ValueError, match=r"holds a training run \(checkpoint.pt\)"):
            run_search(make_method("fixed", groups=("C1",)), _search_context(tmp_path / "trained"), resume)
    assert sorted(p.name for p in (tmp_path / "trained").iterdir()) == before
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"other files \(todo.txt\) but no search"):
        run_search(make_method("fixed", groups=("C1",)), _search_context(tmp_path / "notes"), resume=True)
    # what a search killed before its first search.json leaves is no foreign folder
    (tmp_path / "started" / "states").mkdir(parents=True)
    (tmp_path / "started" / LOCK_NAME).write_text("12345\n")
    run_search(make_method("fixed", groups=("C1",)), _search_context(tmp_path / "started"), resume=True)


def _enter(lock) -> None:
    with lock:
        pass


def test_a_symlinked_lock_leaves_its_target_untouched(tmp_path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).symlink_to(target)
    with pytest.raises(NotALockFile, match=r"run/\.lock: a symbolic link, not a lock file; remove it"):
        _enter(hold_run_directory(run))
    assert target.read_text() == "keep me\n"
    dangling = tmp_path / "elsewhere" / "created"
    dangling.parent.mkdir()
    (run / LOCK_NAME).unlink()
    (run / LOCK_NAME).symlink_to(dangling)
    with pytest.raises(NotALockFile, match="a symbolic link"):
        _enter(locked_file(run / LOCK_NAME))
    assert not dangling.exists()


def test_a_fifo_or_folder_lock_is_one_line(tmp_path) -> None:
    os.mkfifo(tmp_path / "fifo.lock")
    with pytest.raises(NotALockFile, match=r"fifo\.lock: not a regular file \(a pipe\), not a lock file"):
        _enter(locked_file(tmp_path / "fifo.lock"))
    (tmp_path / "dir.lock").mkdir()
    with pytest.raises(NotALockFile, match=r"dir\.lock: not a regular file \(a folder\)"):
        _enter(locked_file(tmp_path / "dir.lock"))


def test_the_cli_names_a_symlinked_lock_in_one_line(tmp_path, capsys) -> None:
    from equinas.cli import main

    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).symlink_to(target)
    code = main(
        ["search", "fixed", "--task", "npz:missing.npz", "--run-dir", str(run), "--resume", "--quiet"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "a symbolic link, not a lock file" in err[-1]
    assert target.read_text() == "keep me\n"
