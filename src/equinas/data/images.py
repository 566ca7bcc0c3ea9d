"""One image file read with Pillow (the optional dependency ``pillow``) as a uint8 array."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np

from equinas.data.errors import DataError
from equinas.data.optional import require

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_SUFFIXES = frozenset(EXTENSIONS)
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def pillow(purpose: str) -> ModuleType:
    """``PIL.Image``, or ``ImportError`` naming the package and ``purpose``."""
    return require("PIL.Image", "pillow", purpose)


def is_image_name(name: str) -> bool:
    """Whether the file name has one of the ``EXTENSIONS`` (any case)."""
    return name[name.rfind(".") :].lower() in _SUFFIXES if "." in name else False


def decode_image(path: Path, size: int | None, mode: str | None = "RGB") -> np.ndarray:
    """uint8 ``[H, W]`` (``mode="L"``) or ``[H, W, 3]`` (``"RGB"``); ``mode=None`` keeps
    grayscale images grayscale (``GRAY_MODES``) and turns every other image into RGB. With
    ``size``: centre square crop, bilinear resize to ``size x size``. ``DataError`` naming
    the file when it cannot be decoded."""
    image_module = pillow("reading image files")
    try:
        with image_module.open(path) as image:
            target = mode or ("L" if image.mode in GRAY_MODES else "RGB")
            if size is not None:
                image.draft(target, (size, size))
            image = image.convert(target)
            if size is not None:
                width, height = image.size
                side = min(width, height)
                left, top = (width - side) // 2, (height - side) // 2
                square = image.crop((left, top, left + side, top + side))
                image = square.resize((size, size), image_module.Resampling.BILINEAR)
            return np.asarray(image)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL.UnidentifiedImageError is an OSError
        raise DataError(f"{path}: unreadable image ({exc})") from exc
