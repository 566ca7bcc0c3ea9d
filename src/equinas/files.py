"""Checks that a folder or file can be written (the writers are ``equinas.atomic``)."""

from __future__ import annotations

import os
from pathlib import Path


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
