"""Training-time augmentation: exact group copies, continuous rotations, determinism, resume."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import synthetic_task
from equinas.cli import build_parser
from equinas.cli.common import train_config
from equinas.data import Split
from equinas.groups import act_on_images, parse_group
from equinas.train import TrainConfig, train
from equinas.train.augment import Augmenter, rotate_images


def _batch(n: int = 32, size: int = 9) -> torch.Tensor:
    return torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("name", ["D4", "C4", "D1", "C2"])
def test_group_augmentation_gives_exact_transformed_copies(name):
    group = parse_group(name)
    images = _batch()
    out = Augmenter(name, seed=3)(images, step=7)
    used = set()
    for x, y in zip(images, out, strict=True):
        matches = [g for g in group.elements if torch.equal(y, act_on_images(x, g, group))]
        assert matches, "an augmented image is not an exact group transform of its source"
        used.add(matches[0])
    # 32 uniform draws reach (almost surely) more than one element of the group
    assert len(used) > 1


def test_augmentation_is_a_function_of_seed_and_step():
    images = _batch()
    a = Augmenter("D4", seed=1)
    assert torch.equal(a(images, 4), Augmenter("D4", seed=1)(images, 4))
    assert not torch.equal(a(images, 4), a(images, 5))
    assert not torch.equal(a(images, 4), Augmenter("D4", seed=2)(images, 4))
    rot = Augmenter("rot", seed=1)
    assert torch.equal(rot(images, 4), rot(images, 4))
    assert Augmenter(None, seed=1)(images, 4) is images


def test_continuous_rotation_follows_the_group_convention():
    images = _batch(4)
    quarter = torch.full((4,), math.pi / 2, dtype=torch.float64)
    c4 = parse_group("C4")
    expected = act_on_images(images, (0, 1), c4)
    assert torch.allclose(rotate_images(images, quarter), expected, atol=1e-5)
    assert torch.allclose(rotate_images(images, torch.zeros(4)), images, atol=1e-6)
    out = Augmenter("rot", seed=0)(images, 0)
    # generic angles resample: the images change but keep their shape
    assert out.shape == images.shape and not torch.allclose(out, images, atol=1e-3)


@pytest.mark.parametrize("kind", ["rot", "C8"])
def test_interpolating_augmentation_fills_the_corners_with_the_background(kind):
    background = torch.tensor([-0.4, 1.5])  # normalised value of a blank pixel, per channel
    blank = background.view(1, 2, 1, 1).expand(6, 2, 12, 12).contiguous()
    filled = Augmenter(kind, seed=0, background=background)(blank, 3)
    assert torch.allclose(filled, blank, atol=1e-6)  # a blank image stays blank, corners included
    zero_filled = Augmenter(kind, seed=0)(blank, 3)
    assert not torch.allclose(zero_filled, blank, atol=1e-3)  # control: zeros come in at the corners


def test_exact_augmentation_never_touches_the_values():
    images, background = _batch(6), torch.tensor([0.3])
    assert torch.equal(Augmenter("D4", 1, background=background)(images, 2), Augmenter("D4", 1)(images, 2))


def test_split_background_is_the_value_of_level_zero():
    levels = torch.linspace(-1.0, 2.0, 256).repeat(3, 1)
    split = Split(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), levels)
    assert torch.equal(split.background, torch.full((3,), -1.0))
    floats = Split(torch.ones(2, 1, 4, 4), torch.zeros(2, dtype=torch.long))
    assert torch.equal(floats.background, torch.zeros(1))


def test_bad_augmentation_is_refused_with_its_name():
    with pytest.raises(ValueError, match="augment.*'X4'"):
        TrainConfig(augment="X4")
    assert TrainConfig(augment="none").augment is None
    assert "augment" not in TrainConfig().to_dict()  # old runs resume unchanged


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)
    )


def _config(**changes) -> TrainConfig:
    values = {"epochs": 2, "batch_size": 32, "lr": 0.01, "device": "cpu", "num_threads": 1, "augment": "D4"}
    return TrainConfig(**{**values, **changes})


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_augmented_training_is_deterministic_resumable_and_not_a_no_op(tmp_path):
    data = synthetic_task()
    reference = _net()
    train(reference, data, _config(), progress=False)
    again = _net()
    train(again, data, _config(), progress=False)
    plain = _net()
    train(plain, data, _config(augment=None), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(_weights(reference), _weights(again), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(_weights(reference), _weights(plain), strict=True))

    train(_net(), data, _config(epochs=1), tmp_path, progress=False)
    resumed = _net()
    train(resumed, data, _config(), tmp_path, resume=True, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(_weights(reference), _weights(resumed), strict=True))
    with pytest.raises(ValueError, match="augment: 'D4' -> 'C4'"):
        train(_net(), data, _config(augment="C4"), tmp_path, resume=True, progress=False)


def test_cli_augment_option_reaches_the_config():
    args = build_parser().parse_args(["train", "--task", "rotmnist", "--augment", "rot"])
    assert train_config(args).augment == "rot"
    args = build_parser().parse_args(["search", "fixed", "--task", "rotmnist", "--augment", "D4"])
    assert train_config(args).augment == "D4"
