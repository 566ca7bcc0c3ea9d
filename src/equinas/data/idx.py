"""Reading and writing IDX files (the MNIST file format), raw or gzip-compressed.

An IDX file is a big-endian header -- two zero bytes, a type code (``0x08`` = uint8) and the
number of dimensions ``d`` -- followed by ``d`` uint32 sizes and the row-major data. Image
files have magic number 2051 (uint8, 3 dims ``[N, H, W]``), label files 2049 (uint8, 1 dim
``[N]``). Every inconsistency raises ``DataError`` naming the file: a silently wrong array is
never returned.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from equinas.atomic import atomic_write
from equinas.data.errors import DataError, DataNotFoundError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def read_decompressed(path: str | os.PathLike[str]) -> bytes:
    """The content of ``path``, gunzipped when it is a gzip file (by name or by magic bytes)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    if path.suffix != ".gz" and not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc


def _parse(path: Path, data: bytes, magic: int) -> np.ndarray:
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found is not None and found != magic:
        raise DataError(f"{path}: magic number {found}, expected {magic}")
    if len(data) < header_size:
        raise DataError(f"{path}: {len(data)} bytes is too short for an IDX header")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header_size + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise DataError(
            f"{path}: {len(data)} bytes, expected {expected} for dimensions {dims} "
            "(truncated or trailing data)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims).copy()


def read_idx_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Images ``uint8 [N, H, W]`` from an IDX image file (magic 2051)."""
    return _parse(Path(path), read_decompressed(path), IMAGES_MAGIC)


def read_idx_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """Labels ``int64 [N]`` from an IDX label file (magic 2049)."""
    return _parse(Path(path), read_decompressed(path), LABELS_MAGIC).astype(np.int64)


def read_idx_pair(
    images_path: str | os.PathLike[str], labels_path: str | os.PathLike[str]
) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N, H, W], labels int64 [N])``; ``DataError`` when the counts differ."""
    images, labels = read_idx_images(images_path), read_idx_labels(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels"
        )
    return images, labels


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a uint8 array of 1 or 3 dimensions as IDX; gzip (mtime 0) when the name ends in .gz."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(f"IDX writing supports uint8 [N] or [N, H, W], got {array.dtype} {array.shape}")
    header = bytes([0, 0, _UBYTE, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + np.ascontiguousarray(array).tobytes()
    payload = gzip.compress(data, mtime=0) if Path(path).suffix == ".gz" else data
    atomic_write(path, lambda handle: handle.write(payload))
