"""RotMNIST generated from MNIST in the manner of MNIST-rot (Larochelle et al. 2007).

Recipe (version 1): the 70,000 MNIST images (train then t10k) are permuted with a fixed
seed and the first 62,000 are kept; each is rotated counter-clockwise by its own angle drawn
uniformly from [0, 2*pi) with bilinear interpolation and zero fill (the convention of
``equinas.groups.actions``, see ``equinas.data.rotation``) and rounded back to uint8. In
permutation order, positions 0..9,999 are the training set, 10,000..11,999 validation and
12,000..61,999 test. With ``limit`` only the first images of each of these three blocks are
generated, in proportion, so a limited data set is a subset of the full one.

The result is cached as a byte-reproducible ``.npz`` with a sha256 sidecar in ``cache_dir()``;
a cached file whose checksum does not match is regenerated, with a warning. The cache name
includes a fingerprint of the MNIST source files (names and sha256), so other, changed or
truncated sources never reuse a cache, and the sources must be present to use it.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from equinas.data.cache import cache_problem, exclusive_lock, read_npz, sha256_file, write_npz
from equinas.data.errors import DataError
from equinas.data.mnist import load_mnist_arrays, mnist_files
from equinas.data.paths import cache_dir
from equinas.data.rotation import rotate_bilinear
from equinas.data.splits import seeded_rng

VERSION = 1
SEED = 0
SPLIT_SIZES = {"train": 10_000, "val": 2_000, "test": 50_000}
TOTAL = sum(SPLIT_SIZES.values())
FIELDS = ("images", "labels", "angles", "source")


def split_counts(limit: int | None = None) -> dict[str, int]:
    """Images per split: the full sizes, or ``limit`` shared in proportion (at least 1 each)."""
    if limit is None:
        return dict(SPLIT_SIZES)
    if not len(SPLIT_SIZES) <= limit <= TOTAL:
        raise ValueError(f"RotMNIST limit must be between {len(SPLIT_SIZES)} and {TOTAL}, got {limit}")
    counts = {split: max(1, size * limit // TOTAL) for split, size in SPLIT_SIZES.items()}
    counts["test"] += limit - sum(counts.values())
    return counts


def generate_rotmnist(
    data_dir: str | os.PathLike[str] | None = None, *, seed: int = SEED, limit: int | None = None
) -> dict[str, np.ndarray]:
    """Arrays ``{split}_{field}`` for split in train/val/test and field in:
    ``images`` uint8 [N, 28, 28], ``labels`` int64 [N], ``angles`` float64 [N] (radians, CCW),
    ``source`` int64 [N] (index into MNIST train + t10k concatenated)."""
    counts = split_counts(limit)
    train_x, train_y = load_mnist_arrays("mnist", "train", data_dir)
    test_x, test_y = load_mnist_arrays("mnist", "test", data_dir)
    images, labels = np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])
    if len(images) < TOTAL:
        raise DataError(f"RotMNIST needs the full MNIST (70,000 images), found {len(images)}")
    rng = seeded_rng("rotmnist", seed)
    order = rng.permutation(len(images))[:TOTAL]
    angles = rng.uniform(0.0, 2.0 * math.pi, TOTAL)
    arrays: dict[str, np.ndarray] = {}
    start = 0
    for split, size in SPLIT_SIZES.items():
        positions = np.arange(start, start + counts[split])
        source = order[positions].astype(np.int64)
        rotated = rotate_bilinear(images[source], angles[positions])
        arrays[f"{split}_images"] = np.clip(np.rint(rotated), 0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = labels[source]
        arrays[f"{split}_angles"] = angles[positions]
        arrays[f"{split}_source"] = source
        start += size
    return arrays


@lru_cache(maxsize=32)
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of a file's bytes, memoised per file version (path, size, mtime)."""
    return sha256_file(path)


def source_fingerprint(data_dir: str | os.PathLike[str] | None = None) -> str:
    """Short id of the MNIST files RotMNIST is generated from: a hash over each file's name
    and sha256. ``DataNotFoundError`` when they are missing (an explicit ``data_dir`` that
    does not exist included), so a cache is never used for other or damaged sources."""
    digest = hashlib.sha256()
    for split in ("train", "test"):
        for path in mnist_files("mnist", split, data_dir):
            stat = path.stat()
            content = _file_digest(path.resolve(), stat.st_size, stat.st_mtime_ns)
            digest.update(f"{path.name}:{content}\n".encode())
    return digest.hexdigest()[:16]


def rotmnist_cache_path(
    data_dir: str | os.PathLike[str] | None = None, *, seed: int = SEED, limit: int | None = None
) -> Path:
    """``<cache>/rotmnist-v1-seed{seed}[-limit{limit}]-src{fingerprint}.npz``: the key names the
    recipe version, its parameters and the source files (``source_fingerprint``)."""
    suffix = "" if limit is None else f"-limit{limit}"
    return cache_dir() / f"rotmnist-v{VERSION}-seed{seed}{suffix}-src{source_fingerprint(data_dir)}.npz"


def prepare_rotmnist(
    data_dir: str | os.PathLike[str] | None = None, *, seed: int = SEED, limit: int | None = None
) -> Path:
    """Generate and cache RotMNIST unless a verified cache of the same sources exists; returns
    the cache path. Concurrent calls generate it once (a file lock) and never share temp files."""
    split_counts(limit)  # bad limits fail before any file is touched
    path = rotmnist_cache_path(data_dir, seed=seed, limit=limit)
    if cache_problem(path) is None:
        return path
    with exclusive_lock(path):
        problem = cache_problem(path)  # another process may have finished it meanwhile
        if problem is None:
            return path
        if path.exists():
            warnings.warn(f"{path}: {problem}; regenerating RotMNIST", stacklevel=2)
        write_npz(path, generate_rotmnist(data_dir, seed=seed, limit=limit))
    return path


def load_rotmnist(
    data_dir: str | os.PathLike[str] | None = None, *, seed: int = SEED, limit: int | None = None
) -> dict[str, np.ndarray]:
    """The cached arrays (see ``generate_rotmnist``), generated first when needed."""
    path = prepare_rotmnist(data_dir, seed=seed, limit=limit)
    arrays = read_npz(path)
    expected = {f"{split}_{field}" for split in SPLIT_SIZES for field in FIELDS}
    if set(arrays) != expected:
        raise DataError(f"{path}: arrays {sorted(arrays)}, expected {sorted(expected)}")
    return arrays
