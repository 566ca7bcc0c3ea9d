"""Pooling over space and over the group axis, and the invariant classifier head."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from equinas.nn.conv import check_count

POOLS = ("max", "mean")


class EquivarianceBreakWarning(UserWarning):
    """An operation silently breaks the exact equivariance of a network (e.g. pooling odd sizes)."""


def _check_pool(mode: str) -> str:
    if mode not in POOLS:
        raise ValueError(f"unknown pooling mode {mode!r}: expected one of {POOLS}")
    return mode


def _check_features(x: torch.Tensor, who: str) -> None:
    if x.dim() != 5:
        raise ValueError(f"{who} expects a group feature map [B, C, |G|, H, W], got {tuple(x.shape)}")


class SpatialPool(nn.Module):
    """``kernel x kernel`` spatial max or mean pooling of every group plane.

    ``[B, C, |G|, H, W]`` -> ``[B, C, |G|, H//kernel, W//kernel]``. Exactly equivariant to 90
    degree rotations and mirrors when ``H`` and ``W`` are multiples of ``kernel``.
    """

    def __init__(self, kernel: int = 2, mode: str = "max"):
        super().__init__()
        check_count("kernel", kernel)
        self.kernel, self.mode = kernel, _check_pool(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(x, "SpatialPool")
        b, c, g, h, w = x.shape
        if h % self.kernel or w % self.kernel:
            warnings.warn(
                f"pooling a {h}x{w} map with a {self.kernel}x{self.kernel} window drops border pixels: "
                "rotations and mirrors are no longer exact symmetries (use sizes divisible by the window)",
                EquivarianceBreakWarning,
                stacklevel=2,
            )
        pool = F.max_pool2d if self.mode == "max" else F.avg_pool2d
        y = pool(x.reshape(b, c * g, h, w), self.kernel)
        return y.reshape(b, c, g, *y.shape[-2:])

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, mode={self.mode}"


class GroupPool(nn.Module):
    """Projection to invariant maps: max or mean over the group axis.

    ``[B, C, |G|, H, W]`` -> ``[B, C, H, W]``; invariant to every permutation of the group
    axis, so a G-equivariant map followed by it is G-invariant up to the spatial action.
    """

    def __init__(self, mode: str = "max"):
        super().__init__()
        self.mode = _check_pool(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(x, "GroupPool")
        if self.mode == "mean":
            return x.mean(dim=2)
        if not (torch.is_grad_enabled() and x.requires_grad):
            return x.amax(dim=2)  # no backward: no indices needed (the same values)
        # max with indices: its backward scatters into one new map, while amax's backward
        # builds a tie mask and a full-size product (about 1.5 feature maps more peak memory)
        return x.max(dim=2).values

    def extra_repr(self) -> str:
        return f"mode={self.mode}"


class InvariantHead(nn.Module):
    """Group pooling, global spatial pooling and a classifier.

    ``[B, C, |G|, H, W]`` -> logits ``[B, num_classes]``. The classifier is either one linear
    layer or, with ``hidden``, ``Linear -> BatchNorm1d -> ELU -> Linear`` (the paper's head).
    The logits are invariant to every group element the features are equivariant to.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        group_pool: str = "max",
        spatial_pool: str = "mean",
        hidden: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        check_count("channels", channels)
        check_count("num_classes", num_classes)
        if hidden is not None:
            check_count("hidden", hidden)
        self.group_pool = GroupPool(group_pool)
        self.spatial_pool = _check_pool(spatial_pool)
        self.channels = channels
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout else []
        if hidden is not None:
            layers += [nn.Linear(channels, hidden), nn.BatchNorm1d(hidden), nn.ELU()]
        layers.append(nn.Linear(hidden or channels, num_classes))
        self.classifier = nn.Sequential(*layers)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Invariant features ``[B, C]``."""
        _check_features(x, "InvariantHead")
        if x.shape[1] != self.channels:
            raise ValueError(
                f"InvariantHead expects {self.channels} channels [B, {self.channels}, |G|, H, W], "
                f"got {tuple(x.shape)}"
            )
        y = self.group_pool(x)
        return y.amax(dim=(-2, -1)) if self.spatial_pool == "max" else y.mean(dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pooled(x))
