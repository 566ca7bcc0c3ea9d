"""MNIST with group-transformed digits: the out-of-distribution settings.

``mnist-c2``, ``mnist-c4``, ``mnist-d4``: the training (and validation) digits stay upright;
every test digit gets one random element of the group (identity included).
``mnist-mixed-c2/-c4/-d4``: training and test digits are each transformed with probability
0.5. ``mnist-turns``: every digit is turned by a random quarter turn ``k`` and its class is
``digit + 10 k`` (40 classes): local rotation features help, but a network invariant to any
rotation cannot tell the classes apart (its true symmetry group is C1). The element draws are
fixed (seeded per setting and split), so the data sets are static.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from equinas.data.mnist import NUM_CLASSES as NUM_DIGITS
from equinas.data.mnist import SplitName, load_mnist_arrays
from equinas.data.splits import ImageSource, seeded_rng
from equinas.data.transforms import random_group_transform
from equinas.groups import parse_group


@dataclass(frozen=True)
class Setting:
    """Group applied, the probability of transforming a training / a test image, and whether
    the element applied is part of the label (``digit + 10 * element``)."""

    group: str
    train_mix: float
    test_mix: float
    element_in_label: bool = False

    @property
    def num_classes(self) -> int:
        return NUM_DIGITS * (parse_group(self.group).order if self.element_in_label else 1)


SETTINGS: dict[str, Setting] = {
    **{f"mnist-{g.lower()}": Setting(g, 0.0, 1.0) for g in ("C2", "C4", "D4")},
    **{f"mnist-mixed-{g.lower()}": Setting(g, 0.5, 0.5) for g in ("C2", "C4", "D4")},
    "mnist-turns": Setting("C4", 1.0, 1.0, element_in_label=True),
}


def augmented_mnist(
    name: str, data_dir: str | os.PathLike[str] | None = None
) -> tuple[ImageSource, ImageSource]:
    """``(train pool, test)`` of the setting ``name`` (a key of ``SETTINGS``).

    The train pool is the 60k official training set (validation is held out from it by the
    caller), test the official 10k test set.
    """
    if name not in SETTINGS:
        raise ValueError(f"unknown setting {name!r}; expected one of {sorted(SETTINGS)}")
    setting = SETTINGS[name]
    sources = []
    split: SplitName
    for split, mix in (("train", setting.train_mix), ("test", setting.test_mix)):
        images, labels = load_mnist_arrays("mnist", split, data_dir)
        if mix > 0:
            images, elements = random_group_transform(
                images, setting.group, mix, seeded_rng("augmented", name, split)
            )
            if setting.element_in_label:
                labels = labels + NUM_DIGITS * elements.astype(labels.dtype)
        sources.append(ImageSource.from_arrays(images, labels))
    return sources[0], sources[1]
