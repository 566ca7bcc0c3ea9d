"""In-memory tasks (``from_arrays``), ``npz:PATH`` files, and uint8 splits normalised per batch."""

from __future__ import annotations

import pickle
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest
import torch
import torch.multiprocessing  # noqa: F401 - registers the shared-memory reductions of tensors

from equinas.data import DataError, Split, from_arrays, load_task
from equinas.execution import LocalExecutor
from equinas.search import BackboneSettings, SearchContext, make_method, run_search
from equinas.search.run_directory import RunDirectory
from equinas.train import TrainConfig

CLASSES = 3


def _arrays(n: int = 60, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[n, size, size]`` images whose class is a bright bar at its own row, and labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % CLASSES
    images = rng.integers(0, 60, (n, size, size), dtype=np.uint8)
    for c in range(CLASSES):
        images[labels == c, 1 + 2 * c : 3 + 2 * c, 2:6] = 250
    return images, labels


def test_uint8_splits_normalise_exactly_like_float_input():
    images, labels = _arrays()
    raw = from_arrays(images, labels)
    floats = from_arrays(images.astype(np.float32) / np.float32(255), labels)
    assert raw.train.stored.dtype == torch.uint8 and floats.train.stored.dtype == torch.float32
    assert raw.info["mean"] == floats.info["mean"] and raw.info["std"] == floats.info["std"]
    for split in ("train", "val", "test"):
        a, b = getattr(raw, split), getattr(floats, split)
        assert torch.equal(a.images, b.images)
        index = torch.tensor([3, 0, 2])
        assert torch.equal(a.batch(index), b.images[index])
    assert raw.fingerprint() == floats.fingerprint()
    moved = pickle.loads(pickle.dumps(raw.train.to("cpu")))
    assert torch.equal(moved.images, raw.train.images) and moved.fingerprint() == raw.train.fingerprint()


def test_split_rejects_inconsistent_storage():
    with pytest.raises(ValueError, match="need levels"):
        Split(torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"levels must be float32 \[1, 256\]"):
        Split(
            torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), torch.zeros(3, 256)
        )


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW"])
def test_layouts_and_given_splits(tmp_path, layout):
    images, labels = _arrays()
    rgb = np.stack([images, 255 - images, images // 2], axis=-1)  # [N, H, W, 3]
    x = {"NHW": images, "NHWC": rgb, "NCHW": rgb.transpose(0, 3, 1, 2)}[layout]
    channels = 1 if layout == "NHW" else 3
    np.savez(
        tmp_path / "d.npz", images=x[:40], labels=labels[:40], test_images=x[40:], test_labels=labels[40:]
    )
    task = load_task(f"npz:{tmp_path / 'd.npz'}")
    assert task.in_channels == channels and task.image_size == (8, 8) and task.num_classes == CLASSES
    assert [len(task.train), len(task.val), len(task.test)] == [36, 4, 20]
    expected = torch.from_numpy(rgb[40:].transpose(0, 3, 1, 2) if channels == 3 else images[40:, None])
    assert torch.equal(task.test.stored, expected)  # the test split is the file's, in order


def test_carved_splits_float_images_and_options(tmp_path):
    images, labels = _arrays(90)
    np.savez(tmp_path / "f.npz", images=images.astype(np.float64) / 255, labels=labels.astype(np.uint8))
    task = load_task(f"npz:{tmp_path / 'f.npz'}", val_fraction=0.2, num_classes=4, train_size=30, seed=1)
    assert task.num_classes == 4 and [len(task.train), len(task.val), len(task.test)] == [30, 18, 9]
    assert np.bincount(task.val.labels.numpy()).tolist() == [6, 6, 6]  # class-balanced
    again = load_task(f"npz:{tmp_path / 'f.npz'}", val_fraction=0.2, num_classes=4, train_size=30, seed=1)
    assert again.fingerprint() == task.fingerprint()


def _write(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return f"npz:{path}"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"images": np.zeros((6, 4, 4), np.int32), "labels": np.arange(6) % 2},
            r"dtype int32; expected uint8",
        ),
        ({"images": np.zeros((6, 16), np.uint8), "labels": np.arange(6) % 2}, r"shape \(6, 16\); expected"),
        ({"images": np.zeros((6, 5, 5, 6), np.uint8), "labels": np.arange(6) % 2}, r"no channel axis"),
        (
            {"images": np.zeros((6, 4, 4), np.uint8), "labels": np.arange(5) % 2},
            r"labels of shape \(5,\) for 6",
        ),
        ({"images": np.zeros((6, 4, 4), np.uint8), "labels": np.full(6, 0.5)}, r"labels of dtype float64"),
        ({"images": np.zeros((6, 4, 4), np.uint8), "labels": np.arange(6) - 1}, r"negative label -1"),
        ({"images": np.full((6, 4, 4), np.nan), "labels": np.arange(6) % 2}, r"NaN or infinite"),
        ({"images": np.zeros((6, 4, 4), np.uint8), "labels": np.zeros(6, int)}, r"only one class"),
        (
            {"images": np.zeros((6, 4, 4), np.uint8), "labels": np.arange(6) % 2, "extra": np.ones(1)},
            "unexpected",
        ),
        ({"images": np.zeros((6, 4, 4), np.uint8)}, r"array 'images' without 'labels'"),
        (
            {"val_images": np.zeros((6, 4, 4), np.uint8), "val_labels": np.arange(6) % 2},
            r"no 'images' and 'labels'",
        ),
        (
            {
                "images": np.zeros((6, 4, 4), np.uint8),
                "labels": np.arange(6) % 2,
                "val_images": np.zeros((2, 4, 4)),
            },
            r"array 'val_images' without 'val_labels'",
        ),
        (
            {
                "images": np.zeros((6, 4, 4), np.uint8),
                "labels": np.arange(6) % 2,
                "test_images": np.zeros((2, 5, 5), np.uint8),
                "test_labels": np.arange(2),
            },
            r"test images are uint8 \(5, 5\) but train images uint8 \(4, 4\)",
        ),
    ],
)
def test_npz_errors_are_one_clear_line(tmp_path, arrays, message):
    with pytest.raises(DataError, match=message) as info:
        load_task(_write(tmp_path, **arrays))
    assert "\n" not in str(info.value)


def test_npz_refuses_pickles_and_label_ranges(tmp_path):
    objects = np.empty(6, dtype=object)
    objects[:] = [np.zeros((4, 4))] * 6
    with pytest.raises(DataError, match=r"holds Python objects \(pickles\), which are never loaded"):
        load_task(_write(tmp_path, images=objects, labels=np.arange(6) % 2))
    with pytest.raises(DataError, match=r"label 2 outside 0\.\.1 \(num_classes=2\)"):
        load_task(
            _write(tmp_path, images=np.zeros((6, 4, 4), np.uint8), labels=np.arange(6) % 3), num_classes=2
        )
    with pytest.raises(DataError, match="class '1' has too few images"):
        from_arrays(np.zeros((12, 4, 4), np.uint8), np.array([0] * 11 + [1]))


def _search(tmp_path, data, executor, name="run"):
    ctx = SearchContext(
        "arrays",
        data,
        BackboneSettings(widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None),
        TrainConfig(epochs=1, batch_size=16, lr=3e-3, num_threads=1),
        executor,
        RunDirectory(tmp_path / name),
        progress=False,
    )
    try:
        return run_search(make_method("fixed", groups=("C4",)), ctx)
    finally:
        executor.close()


def test_in_memory_task_through_searches_executors_and_resume(tmp_path):
    images, labels = _arrays(48)
    data = from_arrays(
        torch.from_numpy(images), torch.from_numpy(labels), val_fraction=0.25, test_fraction=0.25
    )
    local = _search(tmp_path, data, LocalExecutor(), "local")
    # what the process executor sends its workers: tensors through shared memory
    shipped = pickle.loads(ForkingPickler.dumps(data))
    assert shipped.train.stored.dtype == torch.uint8 and shipped.fingerprint() == data.fingerprint()
    again = _search(tmp_path, shipped, LocalExecutor(), "shipped")
    assert local.best.val_acc == again.best.val_acc and local.best.test_acc == again.best.test_acc
    other = from_arrays(images[::-1].copy(), labels[::-1].copy(), val_fraction=0.25, test_fraction=0.25)
    ctx_other = SearchContext(
        "arrays",
        other,
        BackboneSettings(widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None),
        TrainConfig(epochs=1, batch_size=16, lr=3e-3, num_threads=1),
        LocalExecutor(),
        RunDirectory(tmp_path / "local"),
        progress=False,
    )
    with pytest.raises(ValueError, match=r"data\.fingerprint"):
        run_search(make_method("fixed", groups=("C4",)), ctx_other, resume=True)
