"""Equivariant CNNs built from an ArchSpec: the plain stack of blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from equinas.models.network import SpecNetwork, build_layer, check_norm_fits
from equinas.models.spec import ArchSpec
from equinas.nn import GroupBatchNorm, InvariantHead, SpatialPool, normalized_conv
from equinas.nn.conv import ConvBase


class EquivariantBlock(nn.Module):
    """``conv -> GroupBatchNorm -> ReLU -> optional 2x2 max pool`` on ambient-layout maps.

    Computed as ``conv -> norm -> pool -> ReLU`` (max pooling and ReLU commute, values and
    gradients alike, and ReLU then touches a quarter of the values), with an eval-mode norm
    folded into the conv (``normalized_conv``).
    """

    def __init__(self, conv: ConvBase, norm: GroupBatchNorm, pool: bool):
        super().__init__()
        check_norm_fits(conv, norm)
        self.conv, self.norm = conv, norm
        self.pool = SpatialPool(2) if pool else None

    def input_shape_hint(self) -> str:
        return self.conv.input_shape_hint()

    def output_shape_hint(self) -> str:
        """The output layout (``H, W`` stand for whatever size the block gives, pooled or not)."""
        return self.conv.output_shape_hint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = normalized_conv(self.conv, self.norm, x)
        if self.pool is not None:
            y = self.pool(y)
        return relu_features(y)


def relu_features(y: torch.Tensor) -> torch.Tensor:
    """ReLU of a group feature map ``[B, C, |G|, H, W]``, computed on its 4-D view (a view in
    either layout; elementwise kernels run faster on it than on the 5-D channels-last strides);
    in place only without autograd: in training ``y`` may be a view, and in-place ops on views
    make autograd copy their base."""
    b, c, g, h, w = y.shape
    return F.relu(y.reshape(b, c * g, h, w), inplace=not torch.is_grad_enabled()).reshape(b, c, g, h, w)


def invariant_head(spec: ArchSpec, channels: int) -> InvariantHead:
    """The head of ``spec`` on ``channels`` ambient channels."""
    head = spec.head
    return InvariantHead(
        channels, spec.num_classes, head.group_pool, head.spatial_pool, head.hidden, head.dropout
    )


class EquivariantCNN(SpecNetwork):
    """A network of equivariant blocks and an invariant head, described by ``spec`` (``plain``).

    Input ``[B, in_channels, H, W]``, output logits ``[B, num_classes]``. Implements the
    ``RelaxableNetwork`` protocol of ``equinas.morphisms`` and the optional trainer hooks
    (``architecture_parameters``, ``architecture_summary``), see ``SpecNetwork``.
    """

    def __init__(self, spec: ArchSpec):
        super().__init__()
        if spec.backbone != "plain":
            raise ValueError(
                f"EquivariantCNN builds plain specs, got backbone {spec.backbone!r} (build_network)"
            )
        self.spec = spec
        blocks = []
        in_channels = spec.in_channels
        for i, layer in enumerate(spec.layers):
            conv, norm = build_layer(spec, i, in_channels)
            blocks.append(EquivariantBlock(conv, norm, layer.pool))
            in_channels = layer.channels
        self.equivariant_blocks = nn.ModuleList(blocks)
        self.check_wiring()
        self.head = invariant_head(spec, in_channels)

    def layer_modules(self, index: int) -> list[str]:
        return [f"equivariant_blocks.{index}.conv", f"equivariant_blocks.{index}.norm"]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of every block, each ``[B, C_l, |G|, H_l, W_l]``."""
        self.check_input(x)
        outs = []
        for block in self.equivariant_blocks:
            x = block(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        for block in self.equivariant_blocks:  # no list of maps: each is freed once used
            x = block(x)
        return self.head(x)
