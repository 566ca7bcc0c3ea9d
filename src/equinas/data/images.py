"""One image file read with Pillow (the optional dependency ``pillow``) as an array.

8-bit images (Pillow modes ``1``, ``L``, ``LA``, ``P``, ``RGB``, ``RGBA``, ...) come back as
uint8. Images with more than 8 bits per value (``HIGH_DEPTH_MODES``: 16-bit and 32-bit integer,
32-bit float) come back as their float32 values, never clipped to 8 bits, where the caller asks
for full depth, and are refused in one line naming the file and the mode otherwise.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

import numpy as np

from equinas.data.errors import DataError
from equinas.data.optional import require

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_SUFFIXES = frozenset(EXTENSIONS)
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
MAX_PIXELS = 89_478_485  # Pillow's default MAX_IMAGE_PIXELS (about 9459 x 9459)
TOO_LARGE = f"more than the limit of {MAX_PIXELS:,} pixels per image (resize it first)"
NOT_REGULAR = "not a regular file (a pipe, socket or device?); image folders hold image files only"


def pillow(purpose: str) -> ModuleType:
    """``PIL.Image``, or ``ImportError`` naming the package and ``purpose``."""
    return require("PIL.Image", "pillow", purpose)


def is_image_name(name: str) -> bool:
    """Whether the file name has one of the ``EXTENSIONS`` (any case)."""
    return name[name.rfind(".") :].lower() in _SUFFIXES if "." in name else False


def _open_regular_file(path: Path) -> BinaryIO:
    """``path`` opened for reading; ``DataError`` unless it is a regular file (opening does
    not block on a pipe: it is opened non-blocking and checked before any read)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DataError(f"{path}: {NOT_REGULAR}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def depth_name(mode: str) -> str:
    """The bits per value of Pillow ``mode``, for messages (``"16-bit (I;16)"``)."""
    if mode.startswith("I;16"):
        bits = "16-bit"
    elif mode == "I":
        bits = "32-bit integer"
    elif mode == "F":
        bits = "32-bit float"
    else:
        bits = "8-bit"
    return f"{bits} ({mode})"


def image_mode(path: Path) -> str:
    """The Pillow mode of image ``path``, read from its header (``"?"`` when unreadable)."""
    image_module = pillow("reading image files")
    try:
        with _open_regular_file(path) as handle, image_module.open(handle) as image:
            return str(image.mode)
    except (OSError, ValueError, SyntaxError, DataError):
        return "?"


def decode_image(
    path: Path, size: int | None, mode: str | None = "RGB", *, full_depth: bool = False
) -> np.ndarray:
    """uint8 ``[H, W]`` (``mode="L"``) or ``[H, W, 3]`` (``"RGB"``); ``mode=None`` keeps
    grayscale images grayscale (``GRAY_MODES``) and turns every other image into RGB. With
    ``full_depth``, an image of ``HIGH_DEPTH_MODES`` gives its float32 values instead (one
    channel, repeated to three for ``"RGB"``); without it, such an image is a ``DataError``.
    With ``size``: centre square crop, bilinear resize to ``size x size``. ``DataError`` naming
    the file when it cannot be decoded, is not a regular file, holds values that are not
    finite or has more than ``MAX_PIXELS`` pixels (checked from its header, before decoding)."""
    image_module = pillow("reading image files")
    try:
        with _open_regular_file(path) as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", image_module.DecompressionBombWarning)  # checked below
            with image_module.open(handle) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise DataError(f"{path}: {width}x{height} px, {TOO_LARGE}")
                if image.mode in HIGH_DEPTH_MODES and not full_depth:
                    raise DataError(
                        f"{path}: a {depth_name(image.mode)} image; only 8-bit images are read here"
                    )
                pixels = _converted(image_module, image, size, mode)
    except DataError:
        raise
    except image_module.DecompressionBombError:
        raise DataError(f"{path}: {TOO_LARGE}") from None
    except (OSError, ValueError, SyntaxError) as exc:  # PIL.UnidentifiedImageError is an OSError
        raise DataError(f"{path}: unreadable image ({exc})") from exc
    if pixels.dtype != np.uint8 and not np.isfinite(pixels).all():
        raise DataError(f"{path}: pixel values that are not finite (NaN or infinity)")
    return pixels


def _converted(image_module: ModuleType, image: Any, size: int | None, mode: str | None) -> np.ndarray:
    """The pixels of an open Pillow ``image`` as ``decode_image`` returns them (images of
    ``HIGH_DEPTH_MODES`` as float32, through Pillow's 32-bit float mode ``F``)."""
    deep = image.mode in HIGH_DEPTH_MODES
    target = "F" if deep else mode or ("L" if image.mode in GRAY_MODES else "RGB")
    if size is not None:
        image.draft(target, (size, size))
    image = image.convert(target)
    if size is not None:
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        square = image.crop((left, top, left + side, top + side))
        image = square.resize((size, size), image_module.Resampling.BILINEAR)
    pixels = np.asarray(image)
    if deep and mode == "RGB":
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return pixels
