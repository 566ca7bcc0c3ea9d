"""Crash-safe file writes: a file is either its old content or its complete new content."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

_TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{16}\.tmp")


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temp file next to ``path``, flush and fsync it, then ``os.replace``.

    The file gets the permissions of a normally created file (0666 less the umask). On any
    exception the temp file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    fd, temp_name = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(path.parent)


def _create_temp(path: Path) -> tuple[int, str]:
    """A new, uniquely named temp file next to ``path``, created with mode 0666 less the
    umask (like any other new file; ``tempfile.mkstemp`` would make it 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        name = os.path.join(path.parent, f"{_temp_prefix(path)}{secrets.token_hex(8)}{_TEMP_SUFFIX}")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """``atomic_write`` of UTF-8 text."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def remove_stale_temp_files(path: str | os.PathLike) -> None:
    """Delete temp files that ``atomic_write(path, ...)`` left when its process was killed."""
    path = Path(path)
    _unlink_all(path.parent.glob(f"{_temp_prefix(path)}*{_TEMP_SUFFIX}"))


def remove_stale_temp_files_under(directory: str | os.PathLike) -> None:
    """Delete every temp file that a killed ``atomic_write`` left anywhere below ``directory``
    (only names of the form ``.<name>.<16 hex digits>.tmp``; other files are never touched)."""
    _unlink_all(p for p in Path(directory).rglob(f".*{_TEMP_SUFFIX}") if _TEMP_NAME.fullmatch(p.name))


def _unlink_all(paths: Iterable[Path]) -> None:
    for stale in list(paths):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def directory_problem(path: str | os.PathLike) -> str | None:
    """Why files cannot be written into directory ``path`` (created if missing), or None.

    Checks that ``path`` is a directory or can be created under its nearest existing parent,
    and that this is writable (``os.access``, so root passes permission checks).
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            return f"{path} exists and is not a directory"
        ancestor = path
    else:
        ancestor = path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            return f"cannot create {path}: {ancestor} is not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable"
    return None


def output_file_problem(path: str | os.PathLike) -> str | None:
    """Why file ``path`` cannot be written (its folder must exist), or None."""
    path = Path(path)
    if not str(path).strip() or path.is_dir():
        return f"{str(path)!r} is a directory, not a file"
    parent = path.parent
    if not parent.is_dir():
        return f"cannot write {path}: folder {parent} does not exist"
    if path.exists() and not os.access(path, os.W_OK):
        return f"cannot write {path}: permission denied"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot write {path}: folder {parent} is not writable"
    return None
