"""Galaxy10 DECals from its HDF5 file (needs the optional dependency ``h5py``).

The file ``Galaxy10_DECals.h5`` holds ``images`` (uint8 ``[N, 256, 256, 3]``) and ``ans``
(labels 0..9). It is looked for as ``<data>/galaxy10/Galaxy10_DECals.h5`` and then
``<data>/Galaxy10_DECals.h5``. Images are read lazily, block by block, only for the examples
selected, and optionally reduced by an integer factor with a block mean.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from equinas.data.errors import DataError, DataNotFoundError
from equinas.data.optional import require
from equinas.data.paths import find_file, resolve_data_dir
from equinas.data.splits import ImageSource

FILE_NAME = "Galaxy10_DECals.h5"
NUM_CLASSES = 10
CLASS_NAMES = (
    "disturbed",
    "merging",
    "round smooth",
    "in-between round smooth",
    "cigar-shaped smooth",
    "barred spiral",
    "unbarred tight spiral",
    "unbarred loose spiral",
    "edge-on without bulge",
    "edge-on with bulge",
)
BLOCK = 256  # images read from the file at a time
_HINT = (
    f"download {FILE_NAME} (Galaxy10 DECals, about 2.7 GB) and put it in <data>/galaxy10/, or pass path=..."
)


def galaxy10_path(
    data_dir: str | os.PathLike[str] | None = None, path: str | os.PathLike[str] | None = None
) -> Path:
    """The HDF5 file: ``path`` when given, else searched in the data directory."""
    if path is not None:
        if not Path(path).is_file():
            raise DataNotFoundError(f"{path}: Galaxy10 file not found. {_HINT}")
        return Path(path)
    base = resolve_data_dir(data_dir)
    return find_file([base / "galaxy10" / FILE_NAME, base / FILE_NAME], hint=_HINT)


def block_mean(images: np.ndarray, size: int) -> np.ndarray:
    """Reduce ``images [N, S, S, C]`` to ``[N, size, size, C]`` by averaging ``S/size`` blocks;
    float32 in [0, 1]. ``size`` must divide ``S``."""
    n, height, width, channels = images.shape
    if height % size or width % size:
        raise ValueError(f"image size {size} does not divide {height} x {width}")
    blocks = images.reshape(n, size, height // size, size, width // size, channels)
    return (blocks.mean(axis=(2, 4), dtype=np.float32) / np.float32(255.0)).astype(np.float32)


def galaxy10_source(path: str | os.PathLike[str], image_size: int | None = 64) -> ImageSource:
    """Labels and a lazy image reader; images uint8 ``[n, 256, 256, 3]`` when ``image_size``
    is None (or 256), else block means float32 ``[n, image_size, image_size, 3]`` in [0, 1]."""
    h5py = require("h5py", "h5py", "reading Galaxy10")
    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            missing = {"images", "ans"} - set(handle.keys())
            if missing:
                raise DataError(f"{path}: datasets {sorted(missing)} missing (found {sorted(handle)})")
            shape = handle["images"].shape
            labels = handle["ans"][()].astype(np.int64).reshape(-1)
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from exc
    if len(shape) != 4 or shape[3] != 3 or shape[0] != len(labels):
        raise DataError(f"{path}: images {shape} with {len(labels)} labels; expected [N, H, W, 3]")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(f"{path}: labels outside 0..{NUM_CLASSES - 1}")
    side = shape[1]
    if image_size is not None and (image_size < 1 or side % image_size or shape[2] % image_size):
        raise ValueError(f"image_size {image_size} must divide the image size {side}")
    size = side if image_size is None else image_size
    reduce = size != side
    out_shape = (size, size, 3) if reduce else tuple(shape[1:])
    out_dtype = np.float32 if reduce else np.uint8

    def read(indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *out_shape), dtype=out_dtype)
        with h5py.File(path, "r") as handle:
            dataset = handle["images"]
            bounds = np.searchsorted(indices, np.arange(0, shape[0] + BLOCK, BLOCK))
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
                if lo == hi:
                    continue
                first, last = int(indices[lo]), int(indices[hi - 1])
                chunk = dataset[first : last + 1][indices[lo:hi] - first]
                out[lo:hi] = block_mean(chunk, size) if reduce else chunk
        return out

    return ImageSource(labels, read)
