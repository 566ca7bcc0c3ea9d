"""Deterministic splitting and subsetting of labelled image sources.

All randomness in the data package comes from ``seeded_rng``: numpy's legacy
``RandomState`` (Mersenne Twister), whose output streams numpy guarantees never to change,
so generated data sets stay identical across numpy versions. Index arrays are always
returned in ascending order, so readers can stream from disk sequentially.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from equinas.data.errors import DataError

Reader = Callable[[np.ndarray], np.ndarray]


def seeded_rng(*key: int | str) -> np.random.RandomState:
    """A random stream determined by ``key`` (non-negative ints below 2**32 and strings)."""
    words = []
    for part in key:
        if isinstance(part, str):
            words.append(zlib.crc32(part.encode()))
        elif 0 <= int(part) < 2**32:
            words.append(int(part))
        else:
            raise ValueError(f"seed parts must be in [0, 2**32), got {part}")
    return np.random.RandomState(np.asarray(words, dtype=np.uint32))


@dataclass(frozen=True)
class ImageSource:
    """Labels ``int64 [N]`` and a reader ``read(indices) -> images [n, H, W(, C)]``.

    ``indices`` passed to ``read`` are ascending. Images are uint8 (0..255) or float32 in
    [0, 1], channels last when there is a channel axis.
    """

    labels: np.ndarray
    read: Reader

    @classmethod
    def from_arrays(cls, images: np.ndarray, labels: np.ndarray) -> ImageSource:
        if len(images) != len(labels):
            raise DataError(f"{len(images)} images but {len(labels)} labels")
        return cls(np.asarray(labels, dtype=np.int64), images.__getitem__)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, indices: np.ndarray) -> ImageSource:
        """The examples at ascending ``indices`` (reads are deferred)."""
        indices = np.asarray(indices, dtype=np.int64)
        return ImageSource(self.labels[indices], lambda sub: self.read(indices[sub]))

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """All ``(images, labels)``."""
        return self.read(np.arange(len(self))), self.labels


def holdout_split(n: int, fraction: float, seed: int | str) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(rest, held)`` index arrays with ``round(fraction * n)`` (at least 1) held out."""
    held_count = max(1, round(fraction * n))
    if held_count >= n:
        raise DataError(f"cannot hold out {fraction:.0%} of {n} examples and keep any")
    order = seeded_rng("holdout", seed).permutation(n)
    return np.sort(order[held_count:]), np.sort(order[:held_count])


def stratified_subset(labels: np.ndarray, count: int | None, seed: int | str) -> np.ndarray:
    """Ascending indices of ``count`` examples drawn at random, class proportions kept.

    Each class gets its proportional share (largest remainders break ties, lower class
    first); ``count=None`` keeps everything.
    """
    n = len(labels)
    if count is None:
        return np.arange(n)
    if count < 1:
        raise ValueError(f"subset size must be at least 1, got {count}")
    if count > n:
        raise ValueError(f"subset size {count} exceeds the {n} examples available")
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * (count / n)
    share = np.floor(quota).astype(np.int64)
    remainder_order = np.argsort(-(quota - share), kind="stable")
    share[remainder_order[: count - int(share.sum())]] += 1
    rng = seeded_rng("subset", seed)
    chosen = [
        rng.permutation(np.flatnonzero(labels == cls))[:k] for cls, k in zip(classes, share, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


SPLIT_NAMES = ("train", "val", "test")
DEFAULT_FRACTION = 0.1


def _held_count(fraction: float | None, total: int, available: int, what: str) -> int:
    """``round(fraction * total)`` (at least 1; default fraction ``DEFAULT_FRACTION``), checked to
    leave images for training out of the ``available`` ones."""
    fraction = DEFAULT_FRACTION if fraction is None else fraction
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise DataError(f"{what} must be a number between 0 and 1 (exclusive), got {fraction!r}")
    count = max(1, round(fraction * total))
    if count >= available:
        raise DataError(f"{what}={fraction} of {total} images leaves none for training")
    return count


def _carve(labels: np.ndarray, pool: np.ndarray, count: int, seed: str) -> tuple[np.ndarray, np.ndarray]:
    """``(rest, held)``: ``count`` examples of ``pool`` held out class-stratified
    (``stratified_subset``), and the others."""
    held_positions = stratified_subset(labels[pool], count, seed)
    keep = np.ones(len(pool), dtype=bool)
    keep[held_positions] = False
    return pool[keep], pool[held_positions]


def carve_splits(
    labels: np.ndarray,
    given: dict[str, np.ndarray],
    class_names: list[str],
    *,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    where: str = "data",
) -> dict[str, np.ndarray]:
    """Ascending indices of the ``train``, ``val`` and ``test`` splits.

    ``given`` maps split names to the examples that the data fixes to them (e.g. ``train/``
    and ``test/`` folders), or ``{"all": indices}`` when nothing is fixed. Missing splits
    are carved out class-stratified from the seed: from ``all``, ``test_fraction`` and then
    ``val_fraction`` of all images; otherwise from ``train``, that fraction of ``train``
    (default ``DEFAULT_FRACTION`` each). A fraction for a split the data fixes, or a class
    without an image in some split, is a ``DataError`` naming it.
    """
    fractions = {"val": val_fraction, "test": test_fraction}
    if "all" in given:
        pool = np.asarray(given["all"])
        total, splits = len(pool), {}
        for split in ("test", "val"):
            count = _held_count(fractions[split], total, len(pool), f"{split}_fraction")
            pool, splits[split] = _carve(labels, pool, count, f"{seed}/{split}")
        splits["train"] = pool
    else:
        if "train" not in given:
            raise DataError(f"{where}: no train split (a train/ folder or train arrays) to learn from")
        splits = {split: np.asarray(given[split]) for split in SPLIT_NAMES if split in given}
        for split, fraction in fractions.items():
            if split in given and fraction is not None:
                raise DataError(f"{where}: {split}_fraction given, but the data fixes the {split} split")
            if split not in given:
                train = splits["train"]
                count = _held_count(fraction, len(train), len(train), f"{split}_fraction")
                splits["train"], splits[split] = _carve(labels, train, count, f"{seed}/{split}")
    counts = np.bincount(labels, minlength=len(class_names))
    for split in SPLIT_NAMES:
        absent = (np.bincount(labels[splits[split]], minlength=len(class_names)) == 0) & (counts > 0)
        if absent.any():
            missing = int(np.argmax(absent))
            raise DataError(
                f"{where}: class {class_names[missing]!r} has too few images ({counts[missing]}) for these "
                f"splits: none in {split} (each split needs every class)"
            )
    return {split: np.sort(indices) for split, indices in splits.items()}
