"""The task registry, the shared split / subset / normalise helpers, and error cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from equinas.data import DataError, describe_task, list_tasks, load_task, prepare_task
from equinas.data.assemble import build_task
from equinas.data.splits import ImageSource, holdout_split, seeded_rng, stratified_subset
from test_data_support import real_data_dir, write_fake_mnist


@pytest.fixture
def fake(tmp_path):
    return write_fake_mnist(tmp_path, n_train=200, n_test=60)


def test_list_tasks():
    names = list_tasks()
    for name in (
        "mnist",
        "fashion-mnist",
        "rotmnist",
        "mnist-c2",
        "mnist-c4",
        "mnist-d4",
        "mnist-mixed-c2",
        "mnist-mixed-c4",
        "mnist-mixed-d4",
        "galaxy10",
        "isic",
        "gmnist[...]",
        "gfmnist[...]",
    ):
        assert name in names


def test_the_torch_free_task_names_are_the_tasks_the_registry_builds():
    from equinas.data import names, registry

    assert tuple(registry._FIXED) == names.FIXED_TASKS
    for pattern in names.PATTERN_TASKS:  # every pattern names a family the registry resolves
        family = pattern.replace("[...]", "[rot]").replace("PATH", "x")
        assert registry._resolve(family)[0] == family


@pytest.mark.parametrize("name", ["cifar10", "gmnist", "gmnist[rot", "MNIST", "mnist-c8"])
def test_unknown_task_lists_valid_names(name):
    with pytest.raises(ValueError, match=r"unknown task .*mnist-mixed-d4.*gmnist\[\.\.\.\].*scramble7"):
        load_task(name)


def test_unknown_option(fake):
    with pytest.raises(ValueError, match=r"does not take options \['limit'\]; it accepts none"):
        load_task("mnist", fake, limit=5)
    with pytest.raises(ValueError, match=r"accepts \['image_size', 'path'\]"):
        describe_task("galaxy10", fake, colour=True)


def test_mnist_task_layout(fake):
    task = load_task("mnist", fake)
    assert (task.name, task.num_classes, task.in_channels, task.image_size) == ("mnist", 10, 1, (28, 28))
    assert [len(task.train), len(task.val), len(task.test)] == [180, 20, 60]  # 10% validation
    assert task.train.images.dtype == torch.float32 and task.train.labels.dtype == torch.int64
    assert task.info["mean"] == pytest.approx([0.1307]) and task.info["sizes"]["val"] == 20
    train = {bytes(x.numpy()) for x in task.train.images}
    assert not train & {bytes(x.numpy()) for x in task.val.images}  # disjoint
    expected = (np.arange(60) % 10 / 1.0).astype(np.int64)
    assert task.test.labels.tolist() == expected.tolist()  # official test order


def test_sizes_are_seeded_stratified_subsets(fake):
    small = load_task("mnist", fake, train_size=50, val_size=10, test_size=30, seed=7)
    assert [len(small.train), len(small.val), len(small.test)] == [50, 10, 30]
    assert np.bincount(small.test.labels.numpy()).tolist() == [3] * 10
    train_counts = np.bincount(small.train.labels.numpy())  # the random holdout is not balanced
    assert train_counts.sum() == 50 and train_counts.max() - train_counts.min() <= 2
    same = load_task("mnist", fake, train_size=50, val_size=10, test_size=30, seed=7)
    other = load_task("mnist", fake, train_size=50, val_size=10, test_size=30, seed=8)
    assert torch.equal(small.train.images, same.train.images)
    assert not torch.equal(small.train.images, other.train.images)
    full = load_task("mnist", fake, seed=7)
    assert not torch.equal(small.test.images, full.test.images[:30])  # not simply the first ones


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("train_size", 0, "train_size: subset size must be at least 1"),
        ("test_size", 61, "test_size: subset size 61 exceeds the 60"),
    ],
)
def test_bad_sizes(fake, option, value, message):
    with pytest.raises(ValueError, match=message):
        load_task("mnist", fake, **{option: value})


def test_empty_data(tmp_path):
    write_fake_mnist(tmp_path, n_train=40, n_test=0)
    with pytest.raises(DataError, match="no test examples"):
        load_task("mnist", tmp_path)


def test_describe_and_prepare(fake):
    report = describe_task("mnist-c4", fake)
    assert report["task"] == "mnist-c4" and len(report["files"]) == 4
    entry = report["files"][0]
    assert entry["path"].endswith("train-images-idx3-ubyte.gz") and entry["content_bytes"] == 16 + 200 * 784
    assert entry["ok"] is False  # a fake file does not match the published md5
    assert prepare_task("mnist", fake) is None
    assert describe_task("gmnist[sc2,rot]", fake)["task"] == "gmnist[rot,scramble2]"


def test_real_mnist_budget_load():
    data = real_data_dir()
    task = load_task("mnist", data, train_size=1000, val_size=100, test_size=500)
    assert abs(float(task.train.images.mean())) < 0.05 and abs(float(task.train.images.std()) - 1) < 0.05
    assert np.bincount(task.train.labels.numpy()).min() >= 90


# -- helpers ------------------------------------------------------------------------------
@given(n=st.integers(2, 500), fraction=st.floats(0.01, 0.6), seed=st.integers(0, 2**32 - 1))
def test_holdout_split(n, fraction, seed):
    rest, held = holdout_split(n, fraction, seed)
    assert len(held) == max(1, round(fraction * n))
    np.testing.assert_array_equal(np.sort(np.concatenate([rest, held])), np.arange(n))
    assert np.all(np.diff(rest) > 0) and np.all(np.diff(held) > 0)
    np.testing.assert_array_equal(holdout_split(n, fraction, seed)[1], held)


@given(
    labels=st.lists(st.integers(0, 5), min_size=1, max_size=300),
    fraction=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
)
def test_stratified_subset(labels, fraction, seed):
    labels = np.array(labels)
    count = max(1, round(fraction * len(labels)))
    picked = stratified_subset(labels, count, seed)
    assert len(picked) == count and np.all(np.diff(picked) > 0)
    for cls in np.unique(labels):
        share = np.sum(labels == cls) * count / len(labels)
        assert abs(np.sum(labels[picked] == cls) - share) < 1
    np.testing.assert_array_equal(stratified_subset(labels, count, seed), picked)


def test_seeded_rng():
    assert seeded_rng("a", 1).randint(1 << 30) == seeded_rng("a", 1).randint(1 << 30)
    assert seeded_rng("a", 1).randint(1 << 30) != seeded_rng("a", 2).randint(1 << 30)
    with pytest.raises(ValueError, match="seed parts"):
        seeded_rng(-1)


def test_image_source_take_composes():
    images = np.arange(10 * 2 * 2, dtype=np.uint8).reshape(10, 2, 2)
    source = ImageSource.from_arrays(images, np.arange(10) % 3)
    inner = source.take(np.array([1, 4, 6, 9])).take(np.array([0, 2, 3]))
    np.testing.assert_array_equal(inner.load()[0], images[[1, 6, 9]])
    np.testing.assert_array_equal(inner.labels, [1, 0, 0])
    with pytest.raises(DataError, match="10 images but 9 labels"):
        ImageSource.from_arrays(images, np.arange(9))


def test_build_task_channels_and_checks():
    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 5, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2])
    splits = {split: (rgb, labels) for split in ("train", "val", "test")}
    task = build_task("t", 3, splits)
    assert task.train.images.shape == (6, 3, 5, 5)
    assert torch.allclose(task.train.images.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    with pytest.raises(DataError, match="labels outside 0..1"):
        build_task("t", 2, splits)
    with pytest.raises(DataError, match="val split is empty"):
        build_task("t", 3, {**splits, "val": (rgb[:0], labels[:0])})
