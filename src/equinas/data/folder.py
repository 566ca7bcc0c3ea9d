"""Image-folder tasks (``folder:PATH``): one subfolder of images per class.

Layouts: ``PATH/<class>/<image>`` (every split is carved out of the images), or
``PATH/train/<class>/...`` with ``PATH/val/`` and/or ``PATH/test/`` of the same classes, which
fix those splits (the missing ones are carved out of ``train``; see ``carve_splits``).
Classes are the folder names in sorted order (label = position); within a split, examples are
ordered by file name, then class (so a folder exported with files named by their index keeps
the source's order). Images are PNG, JPEG, BMP or TIFF (``images.EXTENSIONS``), read with
Pillow; hidden files (``.name``) are ignored. 8-bit images stay uint8 (levels 0..255); images
with more bits per value (16-bit, 32-bit integer or float, ``images.HIGH_DEPTH_MODES``) are read
at full depth and stored as float32 ``(x - lo) / (hi - lo)``, where ``[lo, hi]`` is the range of
the values decoded from the whole folder (recorded with the task as ``value_range``; ``[0, 255]``
for 8-bit images). A folder mixing 8-bit and deeper images is refused.

Decoded images are cached as one ``.npz`` (``cache.write_npz``: atomic, sha256 sidecar) in
``cache_dir()``, keyed by the folder, the decoding options and every file's relative path,
size and modification time, so any added, removed or changed file makes a new cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from equinas.data.cache import cache_problem, exclusive_lock, read_npz, write_npz
from equinas.data.errors import DataError, DataNotFoundError
from equinas.data.images import (
    EXTENSIONS,
    NOT_REGULAR,
    decode_image,
    depth_name,
    image_mode,
    is_image_name,
    pillow,
)
from equinas.data.paths import cache_dir
from equinas.data.splits import SPLIT_NAMES
from equinas.memory import gib, memory_limit

VERSION = 2  # 2: images deeper than 8 bits kept as float32, with their value range
ALL = "all"
BYTE_RANGE = (0.0, 255.0)
_PROGRESS: ContextVar[bool] = ContextVar("folder_decoding_progress", default=True)
LISTING_THREADS = 4


@dataclass(frozen=True)
class FolderListing:
    """Every image of a folder task: ``files[i]`` (relative to ``root``) has label
    ``labels[i]`` and belongs to ``parts[i]`` (``train``/``val``/``test``, or ``all`` when no
    split folders exist); ``stats[i]`` is ``(size in bytes, mtime in ns)``."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[str, ...]
    labels: np.ndarray
    parts: tuple[str, ...]
    stats: tuple[tuple[int, int], ...]

    def indices(self) -> dict[str, np.ndarray]:
        """``{part: ascending indices}`` of the parts present."""
        parts = np.asarray(self.parts)
        return {part: np.flatnonzero(parts == part) for part in dict.fromkeys(self.parts)}


def _visible(folder: Path) -> list[os.DirEntry]:
    """The entries of ``folder`` but hidden ones, by name; ``DataError`` for a name that is not
    UTF-8 (it could be neither shown nor keyed in the cache)."""
    with os.scandir(folder) as entries:
        found = sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)
    for entry in found:
        try:
            entry.name.encode("utf-8")
        except UnicodeEncodeError:
            raw = entry.name.encode("utf-8", "surrogateescape")
            raise DataError(f"{folder}: the name {raw!r} is not valid UTF-8; rename it") from None
    return found


def _class_folders(folder: Path) -> list[os.DirEntry]:
    entries = _visible(folder)
    for entry in entries:
        if not entry.is_dir():
            raise DataError(f"{entry.path}: a file next to the class folders (each image goes in one)")
    return entries


def _class_images(folder: os.DirEntry) -> list[tuple[str, int, int]]:
    """``(name, size, mtime_ns)`` of every image in a class folder, sorted by name."""
    entries = _visible(Path(folder.path))
    out = []
    for entry in entries:
        if entry.is_dir():
            raise DataError(f"{entry.path}: a folder inside class folder {folder.name!r} (images only)")
        if not is_image_name(entry.name):
            raise DataError(f"{entry.path}: not an image file (expected {', '.join(EXTENSIONS)})")
        if entry.is_symlink() and not os.path.exists(entry.path):
            raise DataError(
                f"{entry.path}: a symbolic link to {os.readlink(entry.path)}, which does not exist"
            )
        if not entry.is_file():  # a pipe, socket or device would block or never end
            raise DataError(f"{entry.path}: {NOT_REGULAR}")
        stat = entry.stat()
        out.append((entry.name, stat.st_size, stat.st_mtime_ns))
    if not out:
        raise DataError(f"{folder.path}: empty class folder (no images)")
    return out


def list_folder(root: str | os.PathLike[str]) -> FolderListing:
    """Scan ``root`` (see the module docstring); ``DataError`` naming the offending path for an
    empty class folder, a single class, a non-image file, or split folders with other classes."""
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"{root}: image folder not found (expected one folder of images per class)")
    top = _class_folders(root)
    names = [entry.name for entry in top]
    if "train" in names or set(names) & {"val", "test"}:
        extra = sorted(set(names) - set(SPLIT_NAMES))
        if extra:
            raise DataError(f"{root}: folder {extra[0]!r} next to the split folders train/val/test")
        parts = {entry.name: _class_folders(Path(entry.path)) for entry in top}
    else:
        parts = {ALL: top}
    classes = sorted({entry.name for folders in parts.values() for entry in folders})
    for part, folders in parts.items():
        found = [entry.name for entry in folders]
        if found != classes:
            missing = sorted(set(classes) - set(found))
            raise DataError(f"{root / part}: class folders {missing} missing (present in other splits)")
    if len(classes) < 2:
        raise DataError(f"{root}: only one class folder ({classes[0]!r}); a classifier needs at least two")
    labelled = [(part, label, folder) for part in parts for label, folder in enumerate(parts[part])]
    with ThreadPoolExecutor(LISTING_THREADS) as pool:  # stat() calls wait on the file system
        listed = list(pool.map(lambda item: _class_images(item[2]), labelled))
    entries = [
        (part, name, label, f"{folder.name}/" if part == ALL else f"{part}/{folder.name}/", size, mtime)
        for (part, label, folder), images in zip(labelled, listed, strict=True)
        for name, size, mtime in images
    ]
    entries.sort(key=lambda entry: entry[:3])  # per part by file name, then class
    return FolderListing(
        root,
        tuple(classes),
        tuple(prefix + name for _, name, _, prefix, _, _ in entries),
        np.asarray([entry[2] for entry in entries], np.int64),
        tuple(entry[0] for entry in entries),
        tuple((size, mtime) for *_, size, mtime in entries),
    )


def _check_options(image_size: int | None, channels: int | None) -> None:
    bad_size = isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
    if image_size is not None and bad_size:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")


def folder_cache_path(listing: FolderListing, image_size: int | None, channels: int | None) -> Path:
    """``<cache>/folder-v{VERSION}-<key>.npz``; the key hashes the resolved folder, the options,
    and every file's relative path, size and mtime."""
    digest = hashlib.sha256(f"{VERSION}|{listing.root.resolve()}|{image_size}|{channels}\n".encode())
    lines = (
        f"{name}|{size}|{mtime}\n" for name, (size, mtime) in zip(listing.files, listing.stats, strict=True)
    )
    digest.update("".join(lines).encode())
    return cache_dir() / f"folder-v{VERSION}-{digest.hexdigest()[:24]}.npz"


def _mixed_depths(listing: FolderListing, deep: str, shallow: str) -> DataError:
    where = {name: depth_name(image_mode(listing.root / name)) for name in (deep, shallow)}
    return DataError(
        f"{listing.root / deep} is {where[deep]} but {listing.root / shallow} is {where[shallow]}; "
        "convert the images to one bit depth"
    )


def _unit_range(images: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """float32 ``(images - lo) / (hi - lo)`` in [0, 1] and ``(lo, hi)``, the range of
    ``images`` (a constant folder maps to 0)."""
    low, high = float(images.min()), float(images.max())
    span = high - low if high > low else 1.0
    images -= np.float32(low)
    images /= np.float32(span)
    return images, (low, high)


def _check_fits(listing: FolderListing, first: np.ndarray) -> None:
    """``DataError`` when the images of ``listing``, decoded like ``first``, would not fit in
    the memory this process may use (held twice while they are stacked)."""
    needed = 2 * len(listing.files) * first.nbytes * (3 if first.ndim == 2 else 1)
    limit = memory_limit()
    if limit is not None and needed > limit:
        raise DataError(
            f"{listing.root}: {len(listing.files):,} images of {'x'.join(map(str, first.shape))} "
            f"{first.dtype} need about {gib(needed)} to decode, more than the {gib(limit)} of memory "
            "this process may use now; pass the task option image_size=N to decode them smaller"
        )


@contextlib.contextmanager
def decoding_progress(shown: bool) -> Iterator[None]:
    """Show or hide (``--quiet``) the progress bar of folders decoded within the block."""
    token = _PROGRESS.set(shown)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def decode_folder(
    listing: FolderListing, image_size: int | None, channels: int | None
) -> tuple[np.ndarray, tuple[float, float]]:
    """``(images, value_range)``: every image of ``listing`` as ``[N, H, W]`` (one channel) or
    ``[N, H, W, 3]``, uint8 for 8-bit images (``value_range`` ``(0, 255)``), else float32 in
    [0, 1] from the decoded range (see the module docstring). ``channels=None`` gives one
    channel when every image is grayscale, else three. Without ``image_size`` all images must
    have one size (``DataError`` naming two that differ); so must their bit depth."""
    pillow("reading an image folder")
    mode = {None: None, 1: "L", 3: "RGB"}[channels]
    decoded: list[np.ndarray] = []
    files = tqdm(
        listing.files, desc=f"decoding {listing.root}", unit="img", leave=False, disable=not _PROGRESS.get()
    )
    for name in files:
        image = decode_image(listing.root / name, image_size, mode, full_depth=True)
        if not decoded:
            _check_fits(listing, image)
        if decoded and image.shape[:2] != decoded[0].shape[:2]:
            raise DataError(
                f"{listing.root / name} is {image.shape[1]}x{image.shape[0]} px but "
                f"{listing.root / listing.files[0]} is {decoded[0].shape[1]}x{decoded[0].shape[0]}; "
                "pass the task option image_size=N to resize all to N x N"
            )
        if decoded and (image.dtype == np.uint8) != (decoded[0].dtype == np.uint8):
            first = listing.files[0]
            raise _mixed_depths(listing, *((first, name) if image.dtype == np.uint8 else (name, first)))
        decoded.append(image)
    if any(image.ndim == 3 for image in decoded):
        decoded = [np.repeat(i[..., None], 3, axis=2) if i.ndim == 2 else i for i in decoded]
    images = np.stack(decoded)
    if images.dtype == np.uint8:
        return images, BYTE_RANGE
    return _unit_range(images.astype(np.float32, copy=False))


def load_folder(
    root: str | os.PathLike[str],
    image_size: int | None = None,
    channels: int | None = None,
) -> tuple[FolderListing, np.ndarray, Path, tuple[float, float]]:
    """``(listing, images, cache file, value_range)`` (see ``decode_folder``): the images
    decoded once and then read from the cache (verified by its sha256; concurrent loaders
    decode once, under a file lock)."""
    _check_options(image_size, channels)
    listing = list_folder(root)
    path = folder_cache_path(listing, image_size, channels)
    if cache_problem(path) is not None:
        with exclusive_lock(path):
            if cache_problem(path) is not None:
                images, value_range = decode_folder(listing, image_size, channels)
                write_npz(
                    path,
                    {"images": images, "labels": listing.labels, "value_range": np.asarray(value_range)},
                )
    arrays = read_npz(path)
    expected = {"images", "labels", "value_range"}
    if set(arrays) != expected or not np.array_equal(arrays["labels"], listing.labels):
        raise DataError(f"{path}: cache does not match {listing.root}; delete it to decode the images again")
    low, high = (float(v) for v in arrays["value_range"])
    return listing, arrays["images"], path, (low, high)
