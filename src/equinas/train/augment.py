"""Training-time augmentation: every image of a batch moved by its own random transformation.

Two kinds (``TrainConfig.augment``):

- a group name (``"D4"``, ``"C4"``, ``"D1"``, ``"C8"``, ...): image ``i`` of the batch becomes
  ``g_i . x_i`` with ``g_i`` uniform over the group's elements, applied with
  ``equinas.groups.act_on_images`` -- exact (a pixel permutation) for multiples of 90 degrees and
  the mirrors, bilinear for other angles;
- ``"rot"``: image ``i`` is rotated counter-clockwise by ``a_i ~ U[0, 2 pi)`` about the grid
  centre by bilinear interpolation, the convention of ``equinas.groups.actions``.

Interpolating transforms (``"rot"``, and groups with 45-degree-like elements) bring in pixels
from outside the grid; they get ``background`` (per channel: the normalised value of a blank,
level-0 pixel, ``Split.background``), not a normalised 0, which would be the data mean: the
transform acts on ``x - background`` with zero fill and adds ``background`` back. Exact
transforms are pixel permutations and never touch the values.

The random draws of a batch depend only on ``(seed, step)`` (a derived generator, not the
global RNG), so an augmented run is deterministic per seed and a resumed run sees exactly the
batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Final, Literal

import torch
import torch.nn.functional as F

from equinas.groups import PlanarGroup, act_on_images, parse_group
from equinas.train.rng import derived_generator

ROTATION: Final = "rot"
AUGMENT_FORMS = "'none', 'rot' (continuous rotations) or a group name such as 'D4', 'C4', 'D1'"


def parse_augment(spec: str | None) -> PlanarGroup | Literal["rot"] | None:
    """``None`` (no augmentation), ``"rot"`` or the group named by ``spec``; ``ValueError`` else."""
    if spec is None or spec == "none":
        return None
    if spec == ROTATION:
        return ROTATION
    try:
        return parse_group(spec)
    except ValueError as err:
        raise ValueError(f"unknown augmentation {spec!r}: expected {AUGMENT_FORMS} ({err})") from None


def rotate_images(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate ``images [B, C, H, W]`` (square) by ``angles [B]`` radians CCW, bilinear, zero fill.

    Output pixel ``p`` (coordinates about the centre, y up) reads the input at ``R(-a) p``;
    in ``grid_sample``'s normalised coordinates (y down) that is ``[[cos, -sin], [sin, cos]]``.
    """
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotation augmentation needs square images [B, C, H, W], got {tuple(images.shape)}")
    cos, sin = torch.cos(angles), torch.sin(angles)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def transform_batch(images: torch.Tensor, group: PlanarGroup, indices: torch.Tensor) -> torch.Tensor:
    """``[g_{indices[i]} . images[i]]``: image ``i`` moved by element ``indices[i]`` of ``group``."""
    out = torch.empty_like(images)
    for k, element in enumerate(group.elements):
        chosen = (indices == k).nonzero().flatten()
        if len(chosen):
            out[chosen] = act_on_images(images[chosen], element, group)
    return out


class Augmenter:
    """Draws and applies the transformations of training batches (see the module doc).

    ``augmenter(images, step)`` returns the augmented copy of ``images [B, C, H, W]`` for
    global step ``step``; ``kind`` is ``None`` (identity), ``"rot"`` or a ``PlanarGroup``.
    ``stream`` separates independent uses of one seed (training batches, cloning batches).
    """

    def __init__(
        self,
        kind: PlanarGroup | str | None,
        seed: int,
        stream: str = "augment",
        background: torch.Tensor | None = None,
    ):
        self.kind = parse_augment(kind) if isinstance(kind, str) else kind
        self.seed, self.stream = seed, stream
        self.background = background

    def __call__(self, images: torch.Tensor, step: int) -> torch.Tensor:
        if self.kind is None:
            return images
        generator = derived_generator(self.seed, self.stream, step)
        if self.kind == ROTATION:
            angles = 2 * math.pi * torch.rand(len(images), generator=generator, dtype=torch.float64)
            return self._on_background(images, lambda x: rotate_images(x, angles.to(images.device)))
        indices = torch.randint(self.kind.order, (len(images),), generator=generator)
        move = partial(transform_batch, group=self.kind, indices=indices.to(images.device))
        return move(images) if self.kind.is_exact else self._on_background(images, move)

    def _on_background(
        self, images: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """``transform`` (zero fill outside the grid) with ``background`` filled in instead."""
        if self.background is None:
            return transform(images)
        shift = self.background.to(images.device, images.dtype).view(1, -1, 1, 1)
        return transform(images - shift) + shift
