"""Byte-reproducible ``.npz`` cache files with a sha256 sidecar.

``numpy.savez_compressed`` stamps zip entries with the current time, so two identical
generations give different bytes. ``write_npz`` writes the zip itself with fixed entry
metadata (1980-01-01 00:00:00, Unix, mode 0644, deflate level 6), so equal arrays give
equal files. Next to ``name.npz`` it writes ``name.npz.sha256`` in ``sha256sum`` format.
Writes go through ``equinas.atomic`` (unique temp files, fsync, ``os.replace``);
``exclusive_lock`` serialises generators of one file across processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from equinas.atomic import atomic_write, atomic_write_text
from equinas.data.errors import DataError
from equinas.data.npzfile import check_npz
from equinas.locking import locked_file

_EPOCH = (1980, 1, 1, 0, 0, 0)
_LEVEL = 6


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _hash_back(handle: BinaryIO) -> str:
    """sha256 of everything written to ``handle`` so far (read back from its start)."""
    handle.flush()
    handle.seek(0)
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _write_archive(handle: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    with zipfile.ZipFile(handle, "w") as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            entry = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 3
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, buffer.getvalue(), compresslevel=_LEVEL)


def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> str:
    """Write ``arrays`` (in the given key order) reproducibly; returns the file's sha256.

    Both the file and its sidecar are written atomically (``equinas.atomic``), so concurrent
    writers and readers never see a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    digests = []

    def write(handle: BinaryIO) -> None:
        _write_archive(handle, arrays)
        digests.append(_hash_back(handle))

    atomic_write(path, write)
    atomic_write_text(sidecar_path(path), f"{digests[0]}  {path.name}\n")
    return digests[0]


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on ``.<name>.lock`` next to ``path`` (``equinas.locking``: the
    lock file is deleted on release), so concurrent processes generate a cache file one at
    a time."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked_file(path.with_name(f".{path.name}.lock")):
        yield


def cache_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the cached file cannot be trusted (missing, no sidecar, checksum mismatch), or None."""
    path = Path(path)
    if not path.is_file():
        return "not generated yet"
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return f"checksum file {sidecar.name} is missing"
    expected = sidecar.read_text().split()[:1]
    actual = sha256_file(path)
    if expected != [actual]:
        return f"sha256 {actual} does not match {sidecar.name} ({' '.join(expected) or 'empty'})"
    return None


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file; ``DataError`` naming the file when it is unreadable or
    its structure is unsafe to load (``npzfile.check_npz``, checked before reading)."""
    check_npz(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: unreadable npz file ({exc})") from exc
