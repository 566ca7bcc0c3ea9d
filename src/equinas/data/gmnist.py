"""G-MNIST and G-Fashion-MNIST (Basu et al. 2021, AEN) and their 12 named transforms.

The transforms, keyed by name and applied in this fixed order:

``rot``
    rotation by an angle drawn uniformly from [-180, 180) degrees (counter-clockwise for
    positive angles), nearest neighbour, zero fill; always applied when selected. On the
    network side ``rot`` is the exact quarter turn (group C4).
``hflip``, ``vflip``
    mirror left-right / top-bottom.
``htrans``, ``vtrans``
    cyclic shift along columns / rows: by ``DATA_SHIFT = 1`` pixel in the data, by a step
    (default ``NETWORK_STEP = 4``) on the network side.
``scramble1`` .. ``scramble7`` (aliases ``sc1`` .. ``sc7``)
    block permutations of an even ``n x n`` grid with half size ``h = n/2``:
    1 moves the four quadrants clockwise (top-left -> top-right -> bottom-right ->
    bottom-left -> top-left; order 4); 2 swaps the left and right halves; 3 swaps the top
    and bottom halves; 4 / 5 swap top and bottom within the left / right half only; 6 / 7
    swap left and right within the top / bottom half only.

All transforms except the data-side ``rot`` are pixel permutations, given by
``grid_permutation`` (``equinas.groups.grid_permutations``, shared with AEN's networks).
Every transform other than ``rot`` is applied to an image with
probability 0.5; each image gets one static draw per transform (seeded per data set, split
and transform, so adding a transform to the set leaves the other draws unchanged). Images
are normalised with the MNIST constants (0.1307, 0.3081) for both data sets, as in AEN.

Directions: AEN's own code gathers ``new[p] = old[map(p)]`` with the maps above, so its data
moves content the opposite way (shifts left / up, quadrant cycle reversed). Here the data and
the network use the same map ``p -> perm[p]`` as the destination of the pixel at ``p``; a
permutation and its inverse generate the same group and the same weight-tying orbits.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

import numpy as np
import torch

from equinas.data.mnist import NORMALISATION as MNIST_NORMALISATION
from equinas.data.mnist import Dataset, load_mnist_arrays
from equinas.data.rotation import rotate_nearest
from equinas.data.splits import ImageSource, seeded_rng
from equinas.groups.grid_permutations import (  # noqa: F401  (re-exported: the transforms of G-MNIST)
    ALIASES,
    DATA_SHIFT,
    NETWORK_STEP,
    TRANSFORMS,
    canonical_transforms,
    grid_permutation,
    inverse_permutation,
)

APPLY_PROBABILITY = 0.5
ROTATION_RANGE = (-180.0, 180.0)
NORMALISATION = MNIST_NORMALISATION["mnist"]  # AEN uses the MNIST values for both data sets

T = TypeVar("T", np.ndarray, torch.Tensor)


def apply_grid_permutation(images: T, perm: np.ndarray) -> T:
    """Move each pixel of ``images [..., n, n]`` (numpy or torch) to ``perm[p]``."""
    *lead, height, width = images.shape
    if height * width != perm.size:
        raise ValueError(f"permutation of size {perm.size} for images {height} x {width}")
    inv = inverse_permutation(perm)
    index = torch.from_numpy(inv).to(images.device) if isinstance(images, torch.Tensor) else inv
    return images.reshape(*lead, height * width)[..., index].reshape(images.shape)


def gmnist_transform(
    images: np.ndarray, names: Iterable[str], key: str
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Apply the selected transforms to ``images [N, n, n]`` with static draws seeded by ``key``.

    Returns ``(images, draws)`` where ``draws['rot']`` holds the angles in degrees and
    ``draws[name]`` for the other transforms a bool mask of the images it was applied to.
    """
    out = images.copy()
    draws: dict[str, np.ndarray] = {}
    n = images.shape[-1]
    for name in canonical_transforms(names):
        rng = seeded_rng("gmnist", key, name)
        if name == "rot":
            draws[name] = rng.uniform(*ROTATION_RANGE, size=len(out))
            out = rotate_nearest(out, np.radians(draws[name]))
            continue
        draws[name] = rng.random_sample(len(out)) < APPLY_PROBABILITY
        perm = grid_permutation(name, n, step=DATA_SHIFT)
        out[draws[name]] = apply_grid_permutation(out[draws[name]], perm)
    return out, draws


def gmnist_sources(
    dataset: Dataset, names: Iterable[str], data_dir: str | os.PathLike[str] | None = None
) -> tuple[ImageSource, ImageSource]:
    """``(train pool, test)`` of G-MNIST (``dataset='mnist'``) or G-Fashion-MNIST, both
    transformed with the same distribution; uint8 ``[N, 28, 28]`` images."""
    names = canonical_transforms(names)
    sources = []
    for split in ("train", "test"):
        images, labels = load_mnist_arrays(dataset, split, data_dir)
        images, _ = gmnist_transform(images, names, key=f"{dataset}/{split}")
        sources.append(ImageSource.from_arrays(images, labels))
    return sources[0], sources[1]
