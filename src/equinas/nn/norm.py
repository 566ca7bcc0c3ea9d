"""Batch normalisation for group feature maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from equinas.groups import PlanarGroup
from equinas.nn.conv import check_count, resolve_groups
from equinas.nn.expansion import FilterExpansion


class GroupBatchNorm(nn.Module):
    """Equivariant batch norm on ``[B, C, |G|, H, W]`` maps.

    Statistics (and running statistics) are shared by all ``|G|`` planes of an ambient
    channel, which is invariant to any permutation of the group axis. The affine scale and
    shift are shared over ``group`` (a subgroup ``H`` of the ambient ``G``): one value per
    relaxed channel ``(c, t)``, ``t`` a coset representative of ``H\\G``. With ``H = G`` this
    is the usual G-CNN batch norm; relaxing it to a subgroup keeps its function.
    """

    def __init__(
        self,
        channels: int,
        group: PlanarGroup | str,
        ambient: PlanarGroup | str | None = None,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
    ):
        super().__init__()
        check_count("channels", channels)
        self.ambient, self.group = resolve_groups(group, ambient)
        self.channels, self.eps, self.momentum = channels, eps, momentum
        self.expansion = FilterExpansion(self.ambient, self.group, 1, lifting=True)
        width = channels * self.expansion.index
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1:3] != (self.channels, self.ambient.order):
            raise ValueError(
                f"GroupBatchNorm expects input of shape [B, {self.channels}, "
                f"{self.ambient.order}, H, W], got {tuple(x.shape)}"
            )
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            # momentum None: cumulative average, as in torch.nn.BatchNorm
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        pixels_major = x.permute(0, 3, 4, 1, 2)  # [B, H, W, C, |G|]
        if pixels_major.is_contiguous() and not x.is_contiguous():
            # channels-last maps (equinas.nn.layout): normalise the view [B*H*W, C, |G|], which
            # has the same statistics per channel c; the result keeps the input's layout
            b, c, g, h, w = x.shape
            y = self._normalize(pixels_major.reshape(b * h * w, c, g), factor)
            return y.reshape(b, h, w, c, g).permute(0, 3, 4, 1, 2)
        return self._normalize(x, factor)

    def _normalize(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        """Batch norm of ``x`` ``[N, C, |G|, ...]`` with statistics per channel ``C``."""
        if self.expansion.index == 1:  # affine shared by the whole group axis: one fused call
            return F.batch_norm(
                x,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                self.training,
                factor,
                self.eps,
            )
        y = F.batch_norm(x, self.running_mean, self.running_var, None, None, self.training, factor, self.eps)
        plane = (x.shape[1], x.shape[2]) + (1,) * (x.dim() - 3)  # [C, |G|, 1, 1] or [C, |G|]
        scale = self.expansion.vector(self.weight).reshape(plane)
        shift = self.expansion.vector(self.bias).reshape(plane)
        return torch.addcmul(shift, y, scale)

    def extra_repr(self) -> str:
        params = self.weight.numel() + self.bias.numel()
        layout = f"[B, {self.channels}, {self.ambient.order}, H, W]"
        return f"{self.channels}, group={self.group}, ambient={self.ambient}, {layout}, params={params}"
