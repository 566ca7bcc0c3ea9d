"""Turning selected raw images into a normalised ``TaskData`` -- shared by every loader.

Raw images are uint8 (0..255) or float32 in [0, 1], shaped ``[N, H, W]`` (one channel) or
``[N, H, W, C]`` (channels last). Each channel is normalised as ``(x - mean) / std`` with ``x``
in [0, 1]; ``mean`` and ``std`` are fixed by the task or, when not given, measured on the
training split actually loaded (a constant channel gets std 1). Both go into ``info``.
uint8 images stay uint8 ``[N, C, H, W]`` in the task and are normalised batch by batch
(``Split.levels``, the same float32 arithmetic as for float input); float input is stored
normalised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from equinas.data.errors import DataError
from equinas.data.splits import ImageSource, stratified_subset
from equinas.data.task import Split, TaskData

SPLITS = ("train", "val", "test")


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """float32 in [0, 1]: uint8 is divided by 255, float input is assumed already in [0, 1]."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    return images.astype(np.float32, copy=False)


def channels_first(images: np.ndarray) -> np.ndarray:
    """``[N, H, W] -> [N, 1, H, W]`` and ``[N, H, W, C] -> [N, C, H, W]``."""
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4:
        return images.transpose(0, 3, 1, 2)
    raise DataError(f"images must be [N, H, W] or [N, H, W, C], got shape {images.shape}")


def _level_values() -> np.ndarray:
    """float32 ``[256]``: each uint8 level in [0, 1], exactly as ``to_unit_float`` maps it."""
    return to_unit_float(np.arange(256, dtype=np.uint8))


def _measured_normalisation(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel float64 ``(mean, std)`` of ``[N, C, H, W]`` images in [0, 1]; uint8 images
    through a histogram of their levels (no float copy of the data set; the values of
    ``to_unit_float``, so the result equals that of the float images)."""
    if images.dtype != np.uint8:
        return images.mean(axis=(0, 2, 3), dtype=np.float64), images.std(axis=(0, 2, 3), dtype=np.float64)
    values = _level_values().astype(np.float64)
    mean, std = np.empty(images.shape[1]), np.empty(images.shape[1])
    for channel in range(images.shape[1]):
        counts = torch.bincount(torch.from_numpy(images[:, channel]).reshape(-1), minlength=256).numpy()
        total = counts.sum()
        mean[channel] = counts @ values / total
        std[channel] = np.sqrt(counts @ (values - mean[channel]) ** 2 / total)
    return mean, std


def normalisation(
    name: str, mean: float | Sequence[float] | None, std: float | Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """float64 ``(mean, std)`` of normalisation options (one number, or one per channel), or
    None when neither is given; ``DataError`` naming task ``name`` when only one is given, they
    are not numbers, hold NaN or infinities, or ``std`` is not positive."""
    if mean is None and std is None:
        return None
    if mean is None or std is None:
        given, missing = ("mean", "std") if std is None else ("std", "mean")
        raise DataError(f"task {name}: {given} given without {missing}; give both or neither")
    arrays = []
    for what, values in (("mean", mean), ("std", std)):
        items = list(values) if isinstance(values, list | tuple | np.ndarray) else [values]
        try:
            numbers = items and not any(isinstance(v, bool | str) for v in items)
            array = np.asarray(items, dtype=np.float64) if numbers else None
        except (TypeError, ValueError):
            array = None
        if array is None or array.ndim != 1 or not np.isfinite(array).all():
            raise DataError(
                f"task {name}: {what} must be finite numbers (one, or one per channel), got {values!r}"
            )
        arrays.append(array)
    if np.any(arrays[1] <= 0):
        raise DataError(f"task {name}: std must be > 0 in every channel, got {std!r}")
    return arrays[0], arrays[1]


def _per_channel(name: str, values: np.ndarray, channels: int, what: str) -> np.ndarray:
    """float32 ``[1, channels, 1, 1]`` of one value or one per channel."""
    if len(values) not in (1, channels):
        raise DataError(f"task {name}: {len(values)} {what} values for {channels} channels")
    return np.broadcast_to(values, (channels,)).astype(np.float32).reshape(1, -1, 1, 1)


def build_task(
    name: str,
    num_classes: int,
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    info: dict | None = None,
) -> TaskData:
    """``TaskData`` from raw ``(images, labels)`` for the keys ``train``, ``val``, ``test``."""
    arrays = {}
    for split in SPLITS:
        images, labels = splits[split]
        if len(labels) == 0:
            raise DataError(f"task {name}: the {split} split is empty")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise DataError(f"task {name}: {split} labels outside 0..{num_classes - 1}")
        if images.dtype != np.uint8:
            images = to_unit_float(images)
        arrays[split] = (np.ascontiguousarray(channels_first(images)), labels)
    dtypes = {images.dtype for images, _ in arrays.values()}
    if len(dtypes) > 1:
        raise DataError(f"task {name}: splits mix uint8 and float images")
    train = arrays["train"][0]
    given = normalisation(name, mean, std)
    if given is None:
        measured_mean, measured_std = _measured_normalisation(train)
        measured_std[measured_std == 0] = 1.0  # a constant channel is only centred
        given = measured_mean, measured_std
    mean_c = _per_channel(name, given[0], train.shape[1], "mean")
    std_c = _per_channel(name, given[1], train.shape[1], "std")
    if train.dtype == np.uint8:
        levels = torch.from_numpy((_level_values()[None, :] - mean_c.reshape(-1, 1)) / std_c.reshape(-1, 1))
        out = {
            split: Split(torch.from_numpy(images), torch.from_numpy(np.asarray(labels, np.int64)), levels)
            for split, (images, labels) in arrays.items()
        }
    else:
        out = {
            split: Split(
                torch.from_numpy((images - mean_c) / std_c),
                torch.from_numpy(np.asarray(labels, dtype=np.int64)),
            )
            for split, (images, labels) in arrays.items()
        }
    meta = {**(info or {}), "mean": mean_c.ravel().tolist(), "std": std_c.ravel().tolist()}
    meta["sizes"] = {split: len(out[split]) for split in SPLITS}
    return TaskData(name, num_classes, out["train"], out["val"], out["test"], meta)


def assemble_task(
    name: str,
    num_classes: int,
    sources: Mapping[str, ImageSource],
    sizes: Mapping[str, int | None],
    seed: int,
    *,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    info: dict | None = None,
) -> TaskData:
    """Draw a class-stratified seeded subset of each split (``sizes[split]``, None = all),
    read its images and build the normalised task."""
    selected = {}
    for split in SPLITS:
        source = sources[split]
        if len(source) == 0:
            raise DataError(f"task {name}: no {split} examples available")
        try:
            picked = stratified_subset(source.labels, sizes.get(split), f"{seed}/{split}")
        except ValueError as exc:
            raise ValueError(f"task {name}, {split}_size: {exc}") from None
        selected[split] = source.take(picked).load()
    return build_task(name, num_classes, selected, mean=mean, std=std, info={**(info or {}), "seed": seed})
