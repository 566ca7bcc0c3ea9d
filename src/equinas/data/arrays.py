"""In-memory and ``.npz`` tasks: labelled image arrays as ``TaskData``.

Images are ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]`` (the channel axis is the last
when it has at most 4 entries, else the second), uint8 (0..255) or float (taken as given,
usually [0, 1]); labels are integers ``0..K-1``. Arrays for ``val`` and ``test`` are optional:
missing splits are carved out class-stratified (``carve_splits``).

``npz:PATH`` files hold ``images`` and ``labels`` and optionally ``val_images``/``val_labels``
and ``test_images``/``test_labels``; they are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from equinas.data.assemble import assemble_task, normalisation
from equinas.data.cache import read_npz
from equinas.data.errors import DataError
from equinas.data.splits import SPLIT_NAMES, ImageSource, carve_splits
from equinas.data.task import TaskData

MAX_CHANNELS = 4
NPZ_KEYS = {"images": "train", "val_images": "val", "test_images": "test"}


def image_array(images: Any, where: str) -> np.ndarray:
    """``images`` as uint8 or float32 ``[N, H, W]`` / ``[N, H, W, C]`` (channels last)."""
    array = np.asarray(images)
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise DataError(f"{where}: images of dtype {array.dtype}; expected uint8 (0..255) or float")
    if array.ndim == 4 and array.shape[-1] > MAX_CHANNELS:
        if array.shape[1] > MAX_CHANNELS:
            raise DataError(
                f"{where}: images of shape {array.shape} have no channel axis of at most "
                f"{MAX_CHANNELS} entries (expected [N, H, W, C] or [N, C, H, W])"
            )
        array = array.transpose(0, 2, 3, 1)
    if array.ndim not in (3, 4) or 0 in array.shape:
        raise DataError(
            f"{where}: images of shape {array.shape}; expected [N, H, W], [N, H, W, C] or [N, C, H, W]"
        )
    if array.dtype != np.uint8:
        array = array.astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            raise DataError(f"{where}: images contain NaN or infinite values")
    return np.ascontiguousarray(array)


def label_array(labels: Any, count: int, where: str) -> np.ndarray:
    """``labels`` as int64 ``[count]``; ``DataError`` for other shapes, non-integers or
    negative values."""
    array = np.asarray(labels)
    if array.shape != (count,):
        raise DataError(f"{where}: labels of shape {array.shape} for {count} images; expected [{count}]")
    whole = array.dtype.kind in "iu" or (array.dtype.kind == "f" and np.array_equal(array, np.round(array)))
    if not whole:
        raise DataError(f"{where}: labels of dtype {array.dtype}; expected integers 0..K-1")
    if count and array.min() < 0:
        raise DataError(f"{where}: negative label {array.min()}; expected integers 0..K-1")
    return array.astype(np.int64)


def class_count(labels: np.ndarray, num_classes: int | None, where: str) -> int:
    """The number of classes K of ``labels``, checked before anything of size K is allocated:
    at least 2 and at most one per image. Without ``num_classes`` K is the largest label + 1
    and every class 0..K-1 must have an image (a gap means the labels are not 0..K-1); an
    explicit ``num_classes`` may name classes the data lacks."""
    largest = int(labels.max())
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)):
        raise DataError(f"{where}: num_classes must be an integer, got {num_classes!r}")
    classes = largest + 1 if num_classes is None else num_classes
    if largest >= classes:
        raise DataError(f"{where}: label {largest} outside 0..{classes - 1} (num_classes={classes})")
    if classes > len(labels):
        raise DataError(
            f"{where}: {classes:,} classes (labels 0..{classes - 1:,}) but only {len(labels):,} images; "
            "labels must be 0..K-1 with at most one class per image"
        )
    if classes < 2:
        raise DataError(f"{where}: only one class (label 0); a classifier needs at least two")
    if num_classes is None:
        present = np.zeros(classes, dtype=bool)
        present[labels] = True
        if not present.all():
            raise DataError(
                f"{where}: class {int(np.argmin(present))} has no images; labels must be 0..K-1 with "
                f"an image of every class (or give num_classes)"
            )
    return classes


def array_sources(
    splits: Mapping[str, tuple[Any, Any]],
    *,
    num_classes: int | None = None,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    split_seed: int = 0,
    where: str = "arrays",
) -> tuple[dict[str, ImageSource], int]:
    """``({split: ImageSource}, num_classes)`` from ``{split: (images, labels)}`` (``train``
    required, ``val``/``test`` optional); ``num_classes`` defaults to the largest label + 1."""
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    given: dict[str, np.ndarray] = {}
    start = 0
    for split in SPLIT_NAMES:
        if split not in splits:
            continue
        x = image_array(splits[split][0], f"{where} ({split} images)")
        y = label_array(splits[split][1], len(x), f"{where} ({split} labels)")
        if images and (x.shape[1:] != images[0].shape[1:] or x.dtype != images[0].dtype):
            raise DataError(
                f"{where}: {split} images are {x.dtype} {x.shape[1:]} but train images "
                f"{images[0].dtype} {images[0].shape[1:]}"
            )
        images.append(x)
        labels.append(y)
        given[split] = np.arange(start, start + len(x))
        start += len(x)
    if "train" not in given:
        raise DataError(f"{where}: no training images")
    all_labels = np.concatenate(labels)
    classes = class_count(all_labels, num_classes, where)
    if set(given) == {"train"}:
        given = {"all": given["train"]}
    indices = carve_splits(
        all_labels,
        given,
        [str(c) for c in range(classes)],
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=split_seed,
        where=where,
    )
    pool = ImageSource.from_arrays(np.concatenate(images) if len(images) > 1 else images[0], all_labels)
    return {split: pool.take(idx) for split, idx in indices.items()}, classes


def from_arrays(
    images: Any,
    labels: Any,
    *,
    val: tuple[Any, Any] | None = None,
    test: tuple[Any, Any] | None = None,
    num_classes: int | None = None,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    split_seed: int = 0,
    train_size: int | None = None,
    val_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    name: str = "arrays",
) -> TaskData:
    """A ``TaskData`` from in-memory arrays (numpy or torch), usable by every trainer and search.

    ``images``/``labels`` are the training data (see the module docstring for shapes and
    dtypes); ``val``/``test`` are optional ``(images, labels)`` pairs, otherwise those splits
    are carved out of the training data (``val_fraction``/``test_fraction``, default 0.1 of it
    each, class-stratified, chosen by ``split_seed``). ``*_size`` and ``seed`` take
    class-stratified subsets as for ``load_task``; ``mean``/``std`` fix the per-channel
    normalisation (default: measured on the training split).
    """
    normalisation(name, mean, std)  # checked before the arrays are
    splits = {"train": (images, labels)}
    for split, pair in (("val", val), ("test", test)):
        if pair is not None:
            splits[split] = pair
    sources, classes = array_sources(
        splits,
        num_classes=num_classes,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        split_seed=split_seed,
        where=name,
    )
    sizes = {"train": train_size, "val": val_size, "test": test_size}
    info = {"task": name, "split_seed": split_seed}
    return assemble_task(name, classes, sources, sizes, seed, mean=mean, std=std, info=info)


def npz_splits(path: str | os.PathLike[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (images, labels)}`` of an ``npz:`` file (see the module docstring)."""
    arrays = read_npz(path)
    expected = {*NPZ_KEYS, *(key.replace("images", "labels") for key in NPZ_KEYS)}
    unknown = sorted(set(arrays) - expected)
    if unknown:
        raise DataError(f"{path}: unexpected arrays {unknown}; expected {sorted(expected)}")
    splits = {}
    for key, split in NPZ_KEYS.items():
        label_key = key.replace("images", "labels")
        if (key in arrays) != (label_key in arrays):
            present, absent = (key, label_key) if key in arrays else (label_key, key)
            raise DataError(f"{path}: array {present!r} without {absent!r}")
        if key in arrays:
            splits[split] = (arrays[key], arrays[label_key])
    if "train" not in splits:
        raise DataError(f"{path}: no 'images' and 'labels' arrays (found {sorted(arrays)})")
    return splits
