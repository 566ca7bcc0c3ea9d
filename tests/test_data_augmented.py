"""Group-transformed MNIST: exact group elements, mixing probabilities, task settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from equinas.data import load_task
from equinas.data.augmented import SETTINGS, augmented_mnist
from equinas.data.splits import seeded_rng
from equinas.data.transforms import random_group_transform
from equinas.groups import act_on_images, parse_group
from test_data_support import write_fake_mnist


def _digits(n: int = 64, size: int = 8) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (n, size, size), dtype=np.uint8)


def _d4_orbit(x: np.ndarray) -> list[np.ndarray]:
    return [np.rot90(y, k) for y in (x, x[:, ::-1]) for k in range(4)]


@pytest.mark.parametrize("name", ["C2", "C4", "D4"])
def test_each_image_gets_one_group_element(name):
    group = parse_group(name)
    images = _digits()
    out, elements = random_group_transform(images, name, 1.0, seeded_rng("test", name))
    assert out.dtype == np.uint8 and set(np.unique(elements)) == set(range(group.order))
    for x, y, k in zip(images, out, elements, strict=True):
        expected = act_on_images(torch.from_numpy(x), group.elements[k], group).numpy()
        np.testing.assert_array_equal(y, expected)
        assert any(np.array_equal(y, z) for z in _d4_orbit(x))


def test_c4_images_are_quarter_turns():
    images = _digits()
    out, elements = random_group_transform(images, "C4", 1.0, seeded_rng("quarter"))
    for x, y, k in zip(images, out, elements, strict=True):
        np.testing.assert_array_equal(y, np.rot90(x, k))  # element k of C4 is R(90 k degrees)


def test_mix_probability_and_determinism():
    images = _digits(2000, 4)
    untouched, elements = random_group_transform(images, "D4", 0.0, seeded_rng("mix"))
    np.testing.assert_array_equal(untouched, images)
    assert not elements.any()
    first, elements = random_group_transform(images, "C2", 0.5, seeded_rng("mix"))
    again, _ = random_group_transform(images, "C2", 0.5, seeded_rng("mix"))
    np.testing.assert_array_equal(first, again)
    assert 0.2 < elements.mean() < 0.3  # applied with p 0.5, non-identity half of the time
    unchanged, _ = random_group_transform(images, "C1", 1.0, seeded_rng("mix"))
    np.testing.assert_array_equal(unchanged, images)


def test_interpolating_group_gives_unit_floats():
    out, _ = random_group_transform(_digits(16), "C8", 1.0, seeded_rng("c8"))
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0


def test_invalid_mix():
    with pytest.raises(ValueError, match="probability"):
        random_group_transform(_digits(2), "C4", 1.5, seeded_rng("bad"))


def test_settings_table():
    shifted = {f"mnist-{p}{g}" for p in ("", "mixed-") for g in ("c2", "c4", "d4")}
    assert set(SETTINGS) == shifted | {"mnist-turns"}
    assert SETTINGS["mnist-turns"].num_classes == 40 and SETTINGS["mnist-d4"].num_classes == 10
    assert SETTINGS["mnist-d4"].train_mix == 0.0 and SETTINGS["mnist-d4"].test_mix == 1.0
    assert SETTINGS["mnist-mixed-c4"].train_mix == SETTINGS["mnist-mixed-c4"].test_mix == 0.5
    with pytest.raises(ValueError, match="unknown setting"):
        augmented_mnist("mnist-c3")


def test_out_of_distribution_task(tmp_path):
    write_fake_mnist(tmp_path)
    plain = load_task("mnist", tmp_path, train_size=50, test_size=40, seed=1)
    turned = load_task("mnist-c4", tmp_path, train_size=50, test_size=40, seed=1)
    assert turned.info["group"] == "C4" and turned.info["test_mix"] == 1.0
    assert torch.equal(plain.train.images, turned.train.images)
    assert torch.equal(plain.val.images, turned.val.images)
    assert torch.equal(plain.test.labels, turned.test.labels)
    ks = []
    for x, y in zip(plain.test.images, turned.test.images, strict=True):
        matches = [k for k in range(4) if torch.equal(torch.rot90(x, k, (-2, -1)), y)]
        assert matches
        ks.append(matches[0])
    assert set(ks) == {0, 1, 2, 3}


def test_mixed_task_transforms_train_and_test(tmp_path):
    write_fake_mnist(tmp_path)
    plain = load_task("mnist", tmp_path)
    mixed = load_task("mnist-mixed-d4", tmp_path)
    for split in ("train", "test"):
        a, b = getattr(plain, split).images, getattr(mixed, split).images
        changed = (a != b).flatten(1).any(1).float().mean().item()
        assert 0.25 < changed < 0.65  # p = 0.5 of applying, 7/8 of the elements move pixels


def test_turns_task_labels_each_digit_with_its_quarter_turn(tmp_path):
    write_fake_mnist(tmp_path)
    plain = load_task("mnist", tmp_path)
    turned = load_task("mnist-turns", tmp_path)
    assert turned.num_classes == 40
    for split in ("train", "test"):
        a, b = getattr(plain, split), getattr(turned, split)
        turns = (b.labels - a.labels) // 10
        assert torch.equal(b.labels % 10, a.labels) and set(turns.tolist()) == {0, 1, 2, 3}
        for x, y, k in zip(a.images, b.images, turns.tolist(), strict=True):
            assert torch.equal(torch.rot90(x, k, (-2, -1)), y)
