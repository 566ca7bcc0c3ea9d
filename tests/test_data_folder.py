"""``folder:PATH`` tasks: layouts, seeded class-balanced splits, the decoded-image cache, and
one clear line for every kind of bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest

from equinas.data import DataError, DataNotFoundError, describe_task, load_task, prepare_task
from equinas.data.cache import cache_problem
from equinas.data.folder import folder_cache_path, list_folder, load_folder

Image = pytest.importorskip("PIL.Image")

SIZE = 6


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("EQUINAS_CACHE", str(tmp_path / "cache"))


def _image(path, value: int, mode: str = "L", size: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    """Write a PNG/BMP/TIFF (lossless) whose pixels encode ``value``; returns its pixels."""
    rng = np.random.default_rng(value)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def _folder(root, counts: dict[str, int], split: str = "", ext: str = ".png") -> dict[str, np.ndarray]:
    """``root[/split]/<class>/<i>.<ext>``; returns each file's pixels by relative path."""
    out = {}
    for c, (name, count) in enumerate(counts.items()):
        for i in range(count):
            rel = os.path.join(*(p for p in (split, name, f"{i:03d}{ext}") if p))
            out[rel] = _image(root / rel, 1000 * c + i + 100 * len(split))
    return out


def _pixels_by_split(task) -> dict[str, set[bytes]]:
    levels = task.train.levels[0]
    out = {}
    for split in ("train", "val", "test"):
        stored = getattr(task, split).stored
        assert stored.dtype.is_floating_point is False  # images stay uint8 until a batch
        out[split] = {bytes(x.numpy()) for x in stored[:, 0]}
        assert levels.shape == (256,)
    return out


def test_flat_layout_splits_are_class_balanced_and_seeded(tmp_path):
    files = _folder(tmp_path / "d", {"cat": 30, "dog": 20, "eel": 10})
    task = load_task(f"folder:{tmp_path / 'd'}")
    assert task.num_classes == 3 and task.in_channels == 1 and task.image_size == (SIZE, SIZE)
    assert task.info["classes"] == ["cat", "dog", "eel"]
    assert [len(task.train), len(task.val), len(task.test)] == [48, 6, 6]
    for split, per_class in (("val", [3, 2, 1]), ("test", [3, 2, 1])):  # 10% of every class
        assert np.bincount(getattr(task, split).labels.numpy()).tolist() == per_class
    seen = _pixels_by_split(task)
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"])
    assert set().union(*seen.values()) == {bytes(p) for p in files.values()}  # every image, exactly
    again = load_task(f"folder:{tmp_path / 'd'}")
    assert again.fingerprint() == task.fingerprint()
    other = load_task(f"folder:{tmp_path / 'd'}", split_seed=1)
    assert other.fingerprint()["val"] != task.fingerprint()["val"]
    custom = load_task(f"folder:{tmp_path / 'd'}", val_fraction=0.2, test_fraction=0.3)
    assert [len(custom.train), len(custom.val), len(custom.test)] == [30, 12, 18]


def test_split_folders_fix_the_splits(tmp_path):
    root = tmp_path / "d"
    train = _folder(root, {"a": 10, "b": 10}, "train")
    test = _folder(root, {"a": 3, "b": 2}, "test")
    task = load_task(f"folder:{root}")
    assert [len(task.train), len(task.val), len(task.test)] == [18, 2, 5]
    seen = _pixels_by_split(task)
    assert seen["test"] == {bytes(p) for p in test.values()}
    assert seen["train"] | seen["val"] == {bytes(p) for p in train.values()}
    _folder(root, {"a": 2, "b": 2}, "val")
    fixed = load_task(f"folder:{root}", train_size=4, seed=3)
    assert [len(fixed.train), len(fixed.val), len(fixed.test)] == [4, 4, 5]
    with pytest.raises(DataError, match="val_fraction given, but the data fixes the val split"):
        load_task(f"folder:{root}", val_fraction=0.2)


def test_formats_channels_and_resizing(tmp_path):
    root = tmp_path / "d"
    for i, ext in enumerate((".png", ".bmp", ".tif", ".tiff", ".PNG")):
        _image(root / "a" / f"{i}{ext}", i)
        _image(root / "b" / f"{i}{ext}", 50 + i)
    jpeg = root / "b" / "photo.jpg"
    Image.fromarray(np.full((SIZE, SIZE, 3), 200, np.uint8)).save(jpeg)
    task = load_task(f"folder:{root}", val_fraction=0.2, test_fraction=0.2)
    assert task.in_channels == 3  # one RGB image (the JPEG) makes the task RGB
    gray = load_task(f"folder:{root}", channels=1, image_size=4, val_fraction=0.2, test_fraction=0.2)
    assert gray.in_channels == 1 and gray.image_size == (4, 4)
    _, images, _, _ = load_folder(root, channels=1)
    assert images.shape == (11, SIZE, SIZE) and images.dtype == np.uint8
    listing = list_folder(root)
    first = listing.files.index("a/0.png")
    np.testing.assert_array_equal(images[first], np.asarray(Image.open(root / "a" / "0.png")))


def test_cache_hit_and_invalidation(tmp_path, monkeypatch):
    root = tmp_path / "d"
    _folder(root, {"a": 5, "b": 5})
    listing = list_folder(root)
    path = folder_cache_path(listing, None, None)
    assert not path.exists()
    first = load_task(f"folder:{root}", val_fraction=0.2, test_fraction=0.2)
    assert path.exists() and first.info["cache"] == str(path)

    import equinas.data.folder as folder

    def no_decoding(*args):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(folder, "decode_image", no_decoding)
    hit = load_task(f"folder:{root}", val_fraction=0.2, test_fraction=0.2)
    assert hit.fingerprint() == first.fingerprint()
    monkeypatch.undo()
    monkeypatch.setenv("EQUINAS_CACHE", str(tmp_path / "cache"))

    changed = root / "a" / "001.png"
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same bytes, newer mtime
    assert folder_cache_path(list_folder(root), None, None) != path
    _image(changed, 777, size=(SIZE, SIZE))  # new content (and size on disk)
    reloaded = load_task(f"folder:{root}", val_fraction=0.2, test_fraction=0.2)
    assert reloaded.fingerprint() != first.fingerprint()
    assert folder_cache_path(list_folder(root), None, None) != path
    assert folder_cache_path(list_folder(root), 4, None) != folder_cache_path(list_folder(root), None, None)


def test_describe_and_prepare(tmp_path):
    root = tmp_path / "d"
    _folder(root, {"a": 3, "b": 3})
    report = describe_task(f"folder:{root}")
    assert report["files"][0]["kind"] == "directory" and report["cache"]["ready"] is False
    path = prepare_task(f"folder:{root}")
    assert path.exists() and describe_task(f"folder:{root}")["cache"]["ready"] is True


def _corrupt(root):
    _folder(root, {"a": 4, "b": 4})
    (root / "b" / "002.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_corrupt, r"b/002\.png: unreadable image"),
        (lambda r: (_folder(r, {"a": 4, "b": 4}), (r / "c").mkdir()), r"/c: empty class folder"),
        (lambda r: _folder(r, {"only": 4}), r"only one class folder \('only'\)"),
        (lambda r: _folder(r, {"a": 20, "b": 2}), r"class 'b' has too few images \(2\) for these splits"),
        (
            lambda r: (_folder(r, {"a": 4, "b": 4}), (r / "a" / "notes.txt").write_text("hi")),
            r"a/notes\.txt: not an image file \(expected \.png",
        ),
        (
            lambda r: (_folder(r, {"a": 4, "b": 4}), (r / "README.md").write_text("hi")),
            r"README\.md: a file next to the class folders",
        ),
        (
            lambda r: (_folder(r, {"a": 4, "b": 4}), _image(r / "b" / "big.png", 1, size=(7, 6))),
            r"big\.png is 7x6 px but .* pass the task option image_size",
        ),
        (
            lambda r: (_folder(r, {"a": 4, "b": 4}, "train"), _folder(r, {"a": 2}, "test")),
            r"test: class folders \['b'\] missing",
        ),
        (lambda r: _folder(r, {"a": 4, "b": 4}, "test"), r"no train split"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, make, message):
    root = tmp_path / "d"
    make(root)
    with pytest.raises(DataError, match=message) as info:
        load_task(f"folder:{root}")
    assert "\n" not in str(info.value)
    cache = tmp_path / "cache"
    files = list(cache.iterdir()) if cache.exists() else []
    assert not [p for p in files if p.name.endswith((".partial", ".tmp"))]  # nothing partial in the cache
    assert all(cache_problem(p) is None for p in files if p.suffix == ".npz")  # only whole caches


def test_bad_paths_and_options(tmp_path):
    with pytest.raises(DataNotFoundError, match="image folder not found"):
        load_task(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(DataNotFoundError, match="missing: not found"):
        describe_task(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(ValueError, match="needs a path"):
        load_task("folder:")
    _folder(tmp_path / "d", {"a": 4, "b": 4})
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        load_task(f"folder:{tmp_path / 'd'}", channels=2)
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        load_task(f"folder:{tmp_path / 'd'}", image_size=0)
    with pytest.raises(DataError, match="val_fraction must be a number between 0 and 1"):
        load_task(f"folder:{tmp_path / 'd'}", val_fraction=1.5)
    with pytest.raises(ValueError, match="does not take options"):
        load_task(f"folder:{tmp_path / 'd'}", limit=3)


def test_order_by_file_name_and_fixed_normalisation(tmp_path):
    root = tmp_path / "d"
    labels = [0, 1, 1, 0, 1, 0, 0, 1, 0, 1]
    for i, label in enumerate(labels):  # names give the source order across class folders
        _image(root / "train" / f"c{label}" / f"{i:02d}.png", i)
    _folder(root, {"c0": 2, "c1": 2}, "test")
    listing = list_folder(root)
    train = [f for f, part in zip(listing.files, listing.parts, strict=True) if part == "train"]
    assert train == [f"train/c{label}/{i:02d}.png" for i, label in enumerate(labels)]
    task = load_task(f"folder:{root}", val_fraction=0.2, mean=0.5, std=0.25)
    assert task.info["mean"] == [0.5] and task.info["std"] == [0.25]
    assert task.train.levels[0, 255].item() == 2.0 and task.train.levels[0, 0].item() == -2.0
    with pytest.raises(DataError, match="2 mean values for 1 channels"):
        load_task(f"folder:{root}", val_fraction=0.2, mean=[0.5, 0.5], std=0.25)
