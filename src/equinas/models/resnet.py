"""Residual equivariant networks built from an ArchSpec with ``backbone: "resnet"``.

Layout (``C`` ambient channels, ``|G|`` ambient order, maps ``[B, C, |G|, H, W]``)::

    stem:   lifting conv (layer 0) -> GroupBatchNorm -> ReLU [-> 2x2 max pool]
    block j (layers a = 2j+1, b = 2j+2):
            y = norm_b(conv_b(ReLU(norm_a(conv_a(x)))))
            s = x                                  if the block keeps its width (C_in == C_b)
                norm_s(conv_s(x)), conv_s 1x1      otherwise (the projection skip)
            out = ReLU(y + s) [-> 2x2 max pool]    (a pool on layer b pools the block's output)
    head:   group pool -> spatial pool -> classifier (as the plain network)

**How a block's constraint maps to its convolutions.** Every convolution is its own searchable
unit (its own spec layer and group). The projection skip, a 1x1 group convolution with its
batch norm, is constrained like the block's second layer -- the layer its output is added
to -- and belongs to that layer's unit: relaxing layer ``b`` relaxes ``conv_b``, ``norm_b``,
``conv_s`` and ``norm_s`` together (each exactly, by ``equinas.morphisms.relax``). Its group is
the one the second layer's kind gives its batch norm: the layer's group for regular and the
approximately equivariant layers, the ambient group for a [G]-mixed layer (whose ``projected``
network then relaxes the skip to the chosen group). The identity skip commutes with every
element of the ambient group. A block is therefore equivariant to the intersection of its two
layers' groups, and the whole network to the intersection of all layers' groups.

**Downsampling** is 2x2 max pooling after a block (no strided convolutions): pooling a map of
even size commutes exactly with the rotations by 90 degrees and the mirrors, while a stride-2
convolution samples the even pixels, which a rotation of an even-sized grid maps to odd ones.
"""

from __future__ import annotations

import torch
from torch import nn

from equinas.models.cnn import EquivariantBlock, invariant_head, relu_features
from equinas.models.layers import LAYER_KINDS
from equinas.models.network import SpecNetwork, build_layer, layer_context
from equinas.models.spec import ArchSpec
from equinas.nn import GroupBatchNorm, GroupConv, SpatialPool, normalized_conv
from equinas.nn.conv import ConvBase


class ProjectionSkip(nn.Module):
    """``1x1 GroupConv -> GroupBatchNorm``: ``[B, C_in, |G|, H, W]`` -> ``[B, C_out, |G|, H, W]``."""

    def __init__(self, conv: GroupConv, norm: GroupBatchNorm):
        super().__init__()
        self.conv, self.norm = conv, norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalized_conv(self.conv, self.norm, x)


class ResidualBlock(nn.Module):
    """Two conv/norm layers with a ReLU between, a skip, the sum's ReLU and an optional pool."""

    def __init__(
        self,
        first: tuple[ConvBase, GroupBatchNorm],
        second: tuple[ConvBase, GroupBatchNorm],
        skip: ProjectionSkip | None,
        pool: bool,
    ):
        super().__init__()
        self.conv1, self.norm1 = first
        self.conv2, self.norm2 = second
        self.skip = skip
        self.pool = SpatialPool(2) if pool else None

    def input_shape_hint(self) -> str:
        return self.conv1.input_shape_hint()

    def output_shape_hint(self) -> str:
        """The output layout (``H, W`` stand for whatever size the block gives, pooled or not)."""
        return self.conv2.output_shape_hint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = normalized_conv(self.conv2, self.norm2, relu_features(normalized_conv(self.conv1, self.norm1, x)))
        y = y + (x if self.skip is None else self.skip(x))
        if self.pool is not None:  # max pooling commutes with the ReLU: pool first, ReLU fewer values
            y = self.pool(y)
        return relu_features(y)


def projection_skip(spec: ArchSpec, second: int, in_channels: int) -> ProjectionSkip:
    """The 1x1 projection of the block whose second layer is ``spec.layers[second]``."""
    ctx = layer_context(spec, second, in_channels)
    group = LAYER_KINDS[spec.layers[second].kind].norm_group(ctx)
    conv = GroupConv(in_channels, ctx.out_channels, 1, group, ctx.ambient, basis=ctx.basis)
    return ProjectionSkip(conv, GroupBatchNorm(ctx.out_channels, group, ctx.ambient))


class ResidualCNN(SpecNetwork):
    """An equivariant residual network described by ``spec`` (see the module docstring).

    Input ``[B, in_channels, H, W]``, output logits ``[B, num_classes]``.
    """

    def __init__(self, spec: ArchSpec):
        super().__init__()
        if spec.backbone != "resnet":
            raise ValueError(
                f"ResidualCNN builds resnet specs, got backbone {spec.backbone!r} (build_network)"
            )
        self.spec = spec
        conv, norm = build_layer(spec, 0, spec.in_channels)
        self.stem = EquivariantBlock(conv, norm, spec.layers[0].pool)
        blocks = []
        width = spec.layers[0].channels
        for first, second in spec.residual_blocks():
            out = spec.layers[second].channels
            skip = projection_skip(spec, second, width) if out != width else None
            blocks.append(
                ResidualBlock(
                    build_layer(spec, first, width),
                    build_layer(spec, second, spec.layers[first].channels),
                    skip,
                    spec.layers[second].pool,
                )
            )
            width = out
        self.residual_blocks = nn.ModuleList(blocks)
        self.check_wiring()
        self.head = invariant_head(spec, width)

    def layer_modules(self, index: int) -> list[str]:
        if index == 0:
            return ["stem.conv", "stem.norm"]
        block, offset = divmod(index - 1, 2)
        prefix = f"residual_blocks.{block}"
        if offset == 0:
            return [f"{prefix}.conv1", f"{prefix}.norm1"]
        names = [f"{prefix}.conv2", f"{prefix}.norm2"]
        if self.residual_blocks[block].skip is not None:
            names += [f"{prefix}.skip.conv", f"{prefix}.skip.norm"]
        return names

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of the stem and of every residual block, each ``[B, C_l, |G|, H_l, W_l]``."""
        self.check_input(x)
        outs = [self.stem(x)]
        for block in self.residual_blocks:
            outs.append(block(outs[-1]))
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.stem(x)
        for block in self.residual_blocks:
            x = block(x)
        return self.head(x)
