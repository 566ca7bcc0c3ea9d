"""ISIC 2019 skin-lesion images (needs the optional dependency ``pillow``).

Layout (the official archive names): ``<data>/isic2019/ISIC_2019_Training_Input/`` with one
image per lesion (``<image>.jpg``; ``.jpeg`` and ``.png`` are accepted too) and
``<data>/isic2019/ISIC_2019_Training_GroundTruth.csv`` with an ``image`` column and one-hot
columns MEL, NV, BCC, AK, BKL, DF, VASC, SCC, UNK (9 classes, label = column position).
Every CSV row must have exactly one image and every image exactly one row. Images are
centre-cropped to a square and resized (bilinear) to ``image_size``, RGB uint8, read lazily.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import numpy as np

from equinas.data.errors import DataError, DataNotFoundError
from equinas.data.images import decode_image, pillow
from equinas.data.paths import resolve_data_dir
from equinas.data.splits import ImageSource

CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
FOLDER = "isic2019"
IMAGE_DIR = "ISIC_2019_Training_Input"
CSV_NAME = "ISIC_2019_Training_GroundTruth.csv"
EXTENSIONS = (".jpg", ".jpeg", ".png")
_SHOWN = 5  # names listed in an error message


def _listing(names: list[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def isic_paths(
    data_dir: str | os.PathLike[str] | None = None,
    image_dir: str | os.PathLike[str] | None = None,
    csv_path: str | os.PathLike[str] | None = None,
) -> tuple[Path, Path]:
    """``(image folder, ground-truth CSV)``; given paths win over the data-directory layout."""
    if image_dir is None or csv_path is None:
        base = resolve_data_dir(data_dir) / FOLDER
        image_dir = base / IMAGE_DIR if image_dir is None else image_dir
        csv_path = base / CSV_NAME if csv_path is None else csv_path
    image_dir, csv_path = Path(image_dir), Path(csv_path)
    for path, check in ((image_dir, Path.is_dir), (csv_path, Path.is_file)):
        if not check(path):
            raise DataNotFoundError(
                f"{path}: ISIC 2019 data not found; expected <data>/{FOLDER}/{IMAGE_DIR}/ and "
                f"<data>/{FOLDER}/{CSV_NAME} from the ISIC 2019 challenge training data"
            )
    return image_dir, csv_path


def read_ground_truth(csv_path: str | os.PathLike[str]) -> tuple[list[str], np.ndarray]:
    """``(image ids, labels int64 [N])`` from the one-hot ground-truth CSV."""
    csv_path = Path(csv_path)
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("image", *CLASSES) if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{csv_path}: columns {missing} missing (found {reader.fieldnames})")
        ids, labels = [], []
        for line, row in enumerate(reader, start=2):
            try:
                hot = np.array([float(row[c]) for c in CLASSES])
            except (TypeError, ValueError) as exc:
                raise DataError(f"{csv_path}, line {line} ({row['image']}): {exc}") from None
            if np.count_nonzero(hot == 1.0) != 1 or np.count_nonzero(hot) != 1:
                raise DataError(f"{csv_path}, line {line} ({row['image']}): not one-hot: {hot}")
            ids.append(row["image"])
            labels.append(int(np.argmax(hot)))
    if not ids:
        raise DataError(f"{csv_path}: no rows")
    duplicates = sorted(i for i, count in Counter(ids).items() if count > 1)
    if duplicates:
        raise DataError(f"{csv_path}: repeated images {_listing(duplicates)}")
    return ids, np.asarray(labels, dtype=np.int64)


def match_images(image_dir: Path, ids: list[str], csv_path: Path) -> list[Path]:
    """The image file of each id; ``DataError`` naming images missing or without a CSV row."""
    files = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in EXTENSIONS}
    missing = [i for i in ids if i not in files]
    if missing:
        raise DataError(f"{image_dir}: no image file for {_listing(missing)} (listed in {csv_path})")
    extra = sorted(set(files) - set(ids))
    if extra:
        raise DataError(f"{csv_path}: no row for images {_listing(extra)} in {image_dir}")
    return [files[i] for i in ids]


def load_image(path: Path, size: int) -> np.ndarray:
    """RGB uint8 ``[size, size, 3]``: centre square crop, bilinear resize."""
    return decode_image(path, size, "RGB")


def isic_source(image_dir: Path, csv_path: Path, image_size: int = 64) -> ImageSource:
    """Labels and a lazy reader of ``[n, image_size, image_size, 3]`` uint8 images."""
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    pillow("reading ISIC images")
    ids, labels = read_ground_truth(csv_path)
    files = match_images(image_dir, ids, csv_path)

    def read(indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), image_size, image_size, 3), dtype=np.uint8)
        for k, i in enumerate(indices):
            out[k] = load_image(files[i], image_size)
        return out

    return ImageSource(labels, read)
