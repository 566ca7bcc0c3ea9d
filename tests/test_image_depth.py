"""``folder:`` images keep their information: every Pillow mode decodes without losing distinct
values, and 16-bit, 32-bit and float images are normalised from their decoded range."""

from __future__ import annotations

import os

import numpy as np
import pytest

from equinas.data import DataError, load_task
from equinas.data.folder import load_folder

Image = pytest.importorskip("PIL.Image")

SIDE = 28  # 784 pixels


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("EQUINAS_CACHE", str(tmp_path / "cache"))


def _gradient(dtype, scale: float) -> np.ndarray:
    """``[SIDE, SIDE]`` of 784 distinct values ``0, scale, 2 scale, ...``."""
    return (np.arange(SIDE * SIDE, dtype=np.float64).reshape(SIDE, SIDE) * scale).astype(dtype)


def _rgb(count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    colours = rng.permutation(256**3)[:count]
    return np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], -1).astype(np.uint8)


def _image(mode: str) -> tuple[object, int]:
    """A Pillow image in ``mode`` and how many distinct pixel values (or colours) it holds."""
    if mode == "I;16":
        return Image.fromarray(_gradient(np.uint16, 80)), 784
    if mode == "I":
        return Image.fromarray(_gradient(np.int32, 100_000)), 784
    if mode == "F":
        return Image.fromarray(_gradient(np.float32, 1 / 783)), 784
    if mode == "L":
        return Image.fromarray(_gradient(np.uint8, 1 / 784 * 256)), 256
    if mode == "1":
        return Image.fromarray(_gradient(np.uint8, 1 / 784 * 256) > 127), 2
    colours = _rgb(SIDE * SIDE).reshape(SIDE, SIDE, 3)
    if mode == "RGB":
        return Image.fromarray(colours), 784
    if mode == "RGBA":
        alpha = np.full((SIDE, SIDE, 1), 255, np.uint8)
        return Image.fromarray(np.concatenate([colours, alpha], -1)), 784
    assert mode == "P"
    palette = _rgb(200)
    image = Image.fromarray((np.arange(SIDE * SIDE) % 200).reshape(SIDE, SIDE).astype(np.uint8), "P")
    image.putpalette(palette.ravel().tolist())
    return image, 200


def _write_folder(root, image, ext: str) -> None:
    """Class ``a`` holds ``image``, class ``b`` a blank one, in every split folder."""
    blank = Image.new(image.mode, image.size)
    if image.mode == "P":
        blank.putpalette(image.getpalette())
    for split in ("train", "val", "test"):
        for name, picture in (("a", image), ("b", blank)):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            picture.save(root / split / name / f"x{ext}")


@pytest.mark.parametrize(
    ("mode", "ext"),
    [
        ("L", ".png"),
        ("1", ".png"),
        ("I;16", ".png"),
        ("I;16", ".tif"),
        ("I", ".tif"),
        ("F", ".tif"),
        ("RGB", ".png"),
        ("RGBA", ".png"),
        ("P", ".png"),
    ],
)
def test_every_mode_keeps_its_distinct_values(tmp_path, mode, ext) -> None:
    image, distinct = _image(mode)
    root = tmp_path / "d"
    _write_folder(root, image, ext)
    assert Image.open(root / "train" / "a" / f"x{ext}").mode == image.mode
    task = load_task(f"folder:{root}")
    first = task.train.labels.tolist().index(0)
    stored = task.train.stored[first].numpy()  # [C, H, W]
    pixels = stored.transpose(1, 2, 0).reshape(-1, stored.shape[0])
    assert len(np.unique(pixels, axis=0)) == distinct
    low, high = task.info["value_range"]
    assert low == 0 and high == pytest.approx({"I;16": 783 * 80, "I": 783 * 100_000, "F": 1.0}.get(mode, 255))


def test_a_16_bit_png_gradient_trains_with_784_normalised_values(tmp_path) -> None:
    image, _ = _image("I;16")
    root = tmp_path / "d"
    _write_folder(root, image, ".png")
    task = load_task(f"folder:{root}")
    batch = task.train.batch(slice(None))  # normalised float32 [N, 1, H, W]
    first = task.train.labels.tolist().index(0)
    values = np.unique(batch[first].numpy())
    assert len(values) == 784
    assert task.info["value_range"] == [0.0, 783 * 80.0]


def test_the_range_is_that_of_the_whole_folder_and_resizing_keeps_depth(tmp_path) -> None:
    root = tmp_path / "d"
    for name, top in (("a", 1000), ("b", 3000)):
        (root / name).mkdir(parents=True)
        for i in range(3):
            pixels = np.linspace(500, top, SIDE * SIDE).reshape(SIDE, SIDE).astype(np.uint16)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    _, images, _, value_range = load_folder(root)
    assert images.dtype == np.float32 and value_range == (500.0, 3000.0)
    assert images.min() == 0.0 and images.max() == 1.0
    _, resized, _, _ = load_folder(root, image_size=20, channels=3)
    assert resized.shape == (6, 20, 20, 3) and resized.dtype == np.float32
    assert len(np.unique(resized[..., 0])) > 256


def test_mixed_bit_depths_are_one_line_naming_both_files(tmp_path) -> None:
    root = tmp_path / "d"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
    Image.fromarray(_gradient(np.uint16, 80)).save(root / "a" / "0.png")
    Image.fromarray(np.zeros((SIDE, SIDE), np.uint8)).save(root / "b" / "0.png")
    with pytest.raises(DataError, match=r"a/0.png.*16-bit.*b/0.png.*8-bit"):
        load_folder(root)


def test_a_dangling_symlink_or_a_non_utf8_name_is_named(tmp_path) -> None:
    root = tmp_path / "d"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / name / "0.png")
    (root / "a" / "1.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(DataError, match=r"a/1\.png: a symbolic link to .*gone\.png, which does not exist"):
        load_folder(root)
    (root / "a" / "1.png").unlink()
    os.rename(root / "b", os.fsdecode(bytes(root) + b"/b\xff"))
    with pytest.raises(DataError, match=r"the name b'b\\xff' is not valid UTF-8; rename it"):
        load_folder(root)


def test_quiet_hides_the_decoding_progress_bar(tmp_path, capsys) -> None:
    from equinas.cli import main

    root = tmp_path / "d"
    _write_folder(root, _image("L")[0], ".png")
    argv = ["train", "--task", f"folder:{root}", "--arch", "C1", "--ambient", "C1", "--widths", "1"]
    argv += [
        "--pools-after",
        "",
        "--kernel-size",
        "3",
        "--epochs",
        "0.1",
        "--quiet",
        "--run-dir",
        str(tmp_path / "r"),
    ]
    assert main(argv) == 0
    assert "decoding" not in capsys.readouterr().err
