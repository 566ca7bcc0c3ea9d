"""One process at a time per run directory (a training run or a search).

``hold_run_directory(path)`` creates the folder if needed and locks ``<path>/.lock`` (which
holds the owner's pid) before anything else is written there; a second process gets
``RunDirectoryBusy`` at once, naming the owner. The lock is released on every exit (the
kernel drops it when a process is killed), and folders created only to hold the lock are
removed again when nothing was written into them. Holding is re-entrant within a thread, so
the command line can take the lock early and the library take it again inside.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from equinas.files import directory_problem
from equinas.locking import LockHeld, locked_file

LOCK_NAME = ".lock"
_held: set[tuple[Path, int]] = set()  # (resolved folder, thread id) of the locks held here


class RunDirectoryBusy(RuntimeError):
    """Another process works in the run directory; the message names its pid."""


def _make_directories(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents; the folders created, outermost first."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
    return list(reversed(missing))


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):  # not empty (or already gone): keep it
            folder.rmdir()


@contextlib.contextmanager
def hold_run_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the exclusive lock of run directory ``path`` for the block (see the module
    docstring); ``ValueError`` when the folder cannot be created or written."""
    path = Path(path)
    problem = directory_problem(path)
    if problem:
        raise ValueError(problem)
    key = (path.resolve(), threading.get_ident())
    if key in _held:
        yield path
        return
    with contextlib.ExitStack() as stack:
        stack.callback(_remove_if_empty, _make_directories(path))
        try:
            stack.enter_context(locked_file(path / LOCK_NAME, blocking=False))
        except LockHeld as err:
            holder = f"process {err.pid}" if err.pid is not None else "another process"
            raise RunDirectoryBusy(
                f"run directory {path} is in use by {holder} (another equinas run); wait for it to "
                "end or choose another run directory"
            ) from None
        _held.add(key)
        stack.callback(_held.discard, key)
        yield path
