"""Exclusive locks held on a lock file (POSIX ``flock``), for caches and run directories.

``locked_file(path)`` creates ``path`` if needed, locks it, writes this process's id into it
and, on release, deletes it: no lock file outlives its holder's ``with`` block (a killed
holder leaves the file, and the kernel drops its lock, so the next process takes it over).
Deleting a lock file races with a process that opened it just before: the lock is only
taken once the open file is still the one at ``path`` (same inode), else it is opened again.
The lock file is opened without following a symbolic link (``O_NOFOLLOW``) and without
blocking on a pipe, and must be a regular file: anything else at ``path`` (a symlink, which
could point the pid write at a file outside the folder, a pipe, a folder) is refused with
``NotALockFile`` and left as it is. Where ``fcntl`` is missing (Windows), the lock is a no-op.

This module uses the standard library only, so every layer may import it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

PID_READ_TRIES = 20  # a new holder writes its pid right after locking: wait up to 20 x 10 ms


class LockHeld(RuntimeError):
    """``path`` is locked by another process (``pid``, or None when it could not be read)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"{path} is locked by {holder}")
        self.path, self.pid = path, pid


class NotALockFile(RuntimeError):
    """Something other than a regular file is at lock file ``path``; it is never opened."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(f"{path}: {what}, not a lock file; remove it to run here")
        self.path = path


OPEN_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
KINDS = {
    stat.S_IFIFO: "a pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
}


def _open_lock_file(path: Path) -> int:
    """A read-write descriptor of regular file ``path`` (created if missing), opened without
    following a symlink or blocking; ``NotALockFile`` for anything else."""
    try:
        fd = os.open(path, OPEN_FLAGS, 0o666)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise NotALockFile(path, "a symbolic link") from None
        if err.errno == errno.EISDIR:
            raise NotALockFile(path, "not a regular file (a folder)") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotALockFile(path, f"not a regular file ({KINDS.get(stat.S_IFMT(mode), 'a special file')})")
    os.set_blocking(fd, True)
    return fd


def _holder(fd: int) -> int | None:
    """The pid written in the lock file open at ``fd`` (None while it is still empty)."""
    for _ in range(PID_READ_TRIES):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _acquire(path: Path, blocking: bool) -> int:
    """An open descriptor of ``path`` holding its exclusive lock (``LockHeld`` when another
    process holds it and ``blocking`` is False)."""
    while True:
        fd = _open_lock_file(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise LockHeld(path, pid) from None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the previous holder deleted it after we opened it: open the new one


@contextlib.contextmanager
def locked_file(path: str | os.PathLike[str], *, blocking: bool = True) -> Iterator[None]:
    """Hold the exclusive lock of lock file ``path`` (its folder must exist) for the block.

    ``blocking=False`` raises ``LockHeld`` (naming the holder's pid) at once instead of
    waiting. The file holds the holder's pid while locked and is deleted on release.
    """
    path = Path(path)
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = _acquire(path, blocking)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)  # closing drops the lock
