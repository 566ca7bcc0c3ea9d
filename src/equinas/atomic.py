"""Crash-safe file writes: a file is either its old content or its complete new content.

Every writer of equinas goes through ``atomic_write`` -- checkpoints, run records, reports,
data caches -- so a killed process leaves the old file or the new one, never a torn one, and
concurrent writers never share a temp file; logs grow by whole lines (``append_text``). A
write that fails without naming a file (a full disk) is raised again naming it. This module
imports nothing from equinas.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

_TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{16}\.tmp")


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temp file next to ``path``, flush and fsync it, then ``os.replace``.

    The handle is opened for reading too, so ``write`` may seek back and read what it wrote
    (e.g. to hash it). The file gets the permissions of a normally created file (0666 less
    the umask). On any exception the temp file is removed and ``path`` is left untouched; an
    ``OSError`` that names no file (a full disk) is raised again naming ``path``.
    """
    path = Path(path)
    with _naming(path, "write"):
        fd, temp_name = _create_temp(path)
        try:
            with os.fdopen(fd, "w+b") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
    _fsync_directory(path.parent)


@contextlib.contextmanager
def _naming(path: str | os.PathLike, action: str) -> Iterator[None]:
    """Raise an ``OSError`` of the block that names no file (a full disk) or only the temp
    file of ``path`` again as one naming ``path``: ``cannot <action> <path>: <reason>``."""
    try:
        yield
    except OSError as err:
        named = err.filename is not None and not os.path.basename(err.filename).startswith(
            _temp_prefix(Path(path))
        )
        if named:
            raise
        raise OSError(err.errno, f"cannot {action} {path}: {err.strerror or err}") from err


def _create_temp(path: Path) -> tuple[int, str]:
    """A new, uniquely named temp file next to ``path``, created with mode 0666 less the
    umask (like any other new file; ``tempfile.mkstemp`` would make it 0600)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        name = os.path.join(path.parent, f"{_temp_prefix(path)}{secrets.token_hex(8)}{_TEMP_SUFFIX}")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue


def append_text(path: str | os.PathLike, text: str, *, sync: bool = False) -> None:
    """Append UTF-8 ``text`` to ``path`` in one write, flushed (and fsynced with ``sync``);
    an ``OSError`` that names no file (a full disk) is raised again naming ``path``."""
    with _naming(path, "append to"), open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        if sync:
            os.fsync(handle.fileno())


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
