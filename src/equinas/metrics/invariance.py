"""The invariance group of a trained network: the symmetries its outputs actually have."""

from __future__ import annotations

import torch
from torch import nn

from equinas.groups import PlanarGroup, act_on_images, generated_subgroup
from equinas.metrics.equivariance import relative_error

INVARIANCE_TOLERANCE = 1e-4


@torch.no_grad()
def invariance_group(
    model: nn.Module, images: torch.Tensor, ambient: PlanarGroup, tolerance: float = INVARIANCE_TOLERANCE
) -> PlanarGroup:
    """The elements ``g`` of ``ambient`` (exact ones: multiples of 90 degrees and mirrors) under
    which ``model``'s outputs on ``images [B, C, H, W]`` are invariant, ``||F(g.x) - F(x)|| /
    ||F(x)|| < tolerance``, as a subgroup of ``ambient`` (the group they generate, which is
    the set itself whenever the measurement is consistent). Evaluated in eval mode; the
    model's mode is restored.
    """
    was_training = model.training
    model.eval()
    try:
        reference = model(images)
        invariant = [
            g
            for g in ambient.elements
            if ambient.is_exact_element(g)
            and relative_error(model(act_on_images(images, g, ambient)), reference) < tolerance
        ]
    finally:
        model.train(was_training)
    return generated_subgroup(ambient, invariant)
