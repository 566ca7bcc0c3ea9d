"""Equivariant CNNs built from an ArchSpec."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from equinas.groups import PlanarGroup, parse_group
from equinas.models.layers import LAYER_KINDS, LayerContext
from equinas.models.spec import ArchSpec, SpecError
from equinas.morphisms import relax
from equinas.nn import GroupBatchNorm, InvariantHead, SpatialPool
from equinas.nn.mixed import MixedGroupConv


class EquivariantBlock(nn.Module):
    """``conv -> GroupBatchNorm -> ReLU -> optional 2x2 max pool`` on ambient-layout maps."""

    def __init__(self, conv: nn.Module, norm: GroupBatchNorm, pool: bool):
        super().__init__()
        norm_input = f"[B, {norm.channels}, {norm.ambient.order}, H, W]"
        if conv.output_shape_hint() != norm_input:
            raise ValueError(
                f"{type(conv).__name__} gives {conv.output_shape_hint()}, its batch norm expects {norm_input}"
            )
        self.conv, self.norm = conv, norm
        self.pool = SpatialPool(2) if pool else None

    def input_shape_hint(self) -> str:
        return self.conv.input_shape_hint()

    def output_shape_hint(self) -> str:
        """The output layout (``H, W`` stand for whatever size the block gives, pooled or not)."""
        return self.conv.output_shape_hint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm(self.conv(x)))
        return self.pool(y) if self.pool is not None else y


def check_wiring(blocks: list[EquivariantBlock], spec: ArchSpec) -> None:
    """``SpecError`` naming the first block whose input layout is not what precedes it gives
    (the images ``[B, in_channels, H, W]`` or the previous block's output)."""
    given, source = f"[B, {spec.in_channels}, H, W]", "the input images give"
    for i, block in enumerate(blocks):
        wanted = block.input_shape_hint()
        if wanted != given:
            raise SpecError(
                f"layers[{i}] ({spec.layers[i].kind}): block {i} expects {wanted}, but {source} {given}"
            )
        given, source = block.output_shape_hint(), f"block {i} gives"


class EquivariantCNN(nn.Module):
    """A network of equivariant blocks and an invariant head, described by ``spec``.

    Input ``[B, in_channels, H, W]``, output logits ``[B, num_classes]``. Implements the
    ``RelaxableNetwork`` protocol of ``equinas.morphisms`` and the optional trainer hooks
    (``architecture_parameters``, ``architecture_summary``).
    """

    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        ambient = spec.ambient_group()
        blocks = []
        in_channels = spec.in_channels
        for i, layer in enumerate(spec.layers):
            groups = (
                tuple(parse_group(g, ambient=ambient) for g in layer.groups)
                if layer.groups is not None
                else None
            )
            ctx = LayerContext(
                in_channels=in_channels,
                out_channels=layer.channels,
                kernel_size=layer.kernel_size,
                basis=layer.basis,
                ambient=ambient,
                lifting=i == 0,
                group=spec.layer_group(i) if layer.group is not None else None,
                groups=groups,
                options=layer.options,
            )
            kind = LAYER_KINDS[layer.kind]
            norm = GroupBatchNorm(layer.channels, kind.norm_group(ctx), ambient)
            conv = kind.build(ctx)
            try:
                blocks.append(EquivariantBlock(conv, norm, layer.pool))
            except ValueError as err:
                raise SpecError(f"layers[{i}] ({layer.kind}): {err}") from None
            in_channels = layer.channels
        check_wiring(blocks, spec)
        self.equivariant_blocks = nn.ModuleList(blocks)
        head = spec.head
        self.head = InvariantHead(
            in_channels,
            spec.num_classes,
            head.group_pool,
            head.spatial_pool,
            head.hidden,
            head.dropout,
        )

    @property
    def ambient(self) -> PlanarGroup:
        return self.spec.ambient_group()

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.spec.in_channels:
            raise ValueError(
                f"EquivariantCNN expects images [B, {self.spec.in_channels}, H, W], got {tuple(x.shape)}"
            )
        self.spec.check_input_size(x.shape[-2], x.shape[-1])

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of every block, each ``[B, C_l, |G|, H_l, W_l]``."""
        self._check_input(x)
        outs = []
        for block in self.equivariant_blocks:
            x = block(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        for block in self.equivariant_blocks:  # no list of maps: each is freed once used
            x = block(x)
        return self.head(x)

    # -- RelaxableNetwork ------------------------------------------------------------------
    def block_relaxed(self, index: int, group: PlanarGroup) -> None:
        self.spec = self.spec.with_layer(index, group=str(group))

    # -- trainer hooks ---------------------------------------------------------------------
    def mixed_layers(self) -> list[tuple[int, MixedGroupConv]]:
        return [
            (i, b.conv) for i, b in enumerate(self.equivariant_blocks) if isinstance(b.conv, MixedGroupConv)
        ]

    def architecture_parameters(self) -> list[nn.Parameter]:
        return [p for _, conv in self.mixed_layers() for p in conv.architecture_parameters()]

    def architecture_summary(self) -> dict[str, dict[str, float]]:
        """``{"layer<i>": {group: z}}`` for every mixed layer."""
        return {
            f"layer{i}": {
                str(g): float(z) for g, z in zip(conv.groups, conv.mixing_weights().tolist(), strict=True)
            }
            for i, conv in self.mixed_layers()
        }

    def regularization_loss(self) -> torch.Tensor:
        """Sum of the layers' own penalties (RPP priors, relaxed-conv and constraint-relaxation terms)."""
        terms = [
            b.conv.regularization_loss()
            for b in self.equivariant_blocks
            if hasattr(b.conv, "regularization_loss")
        ]
        return torch.stack(terms).sum() if terms else self.head.classifier[-1].weight.new_zeros(())

    def set_training_progress(self, epoch: int, num_epochs: int) -> None:
        """Forward the epoch to scheduled layers (the theta of constraint relaxation)."""
        for block in self.equivariant_blocks:
            if hasattr(block.conv, "set_training_progress"):
                block.conv.set_training_progress(epoch, num_epochs)

    def projected(self) -> EquivariantCNN:
        """A copy with every approximately equivariant layer replaced by its plain H layer.

        Mixed layers become their largest-weight candidate; ``rpp``/``rgconv``/``cr`` layers drop
        their symmetry-breaking part. Batch norms are relaxed to the chosen group, so the copy
        is exactly equivariant to each layer's group. Regular layers are copied unchanged.
        """
        spec = self.spec
        convs = []
        for i, block in enumerate(self.equivariant_blocks):
            conv = block.conv
            if isinstance(conv, MixedGroupConv):
                conv = conv.discretize()
            elif hasattr(conv, "project"):
                conv = conv.project()
            spec = spec.with_layer(i, kind="regular", group=str(conv.group), groups=None, options={})
            convs.append(conv)
        model = EquivariantCNN(spec)
        for block, own, conv in zip(model.equivariant_blocks, self.equivariant_blocks, convs, strict=True):
            block.conv = copy.deepcopy(conv)
            block.norm = (
                relax(own.norm, conv.group) if own.norm.group != conv.group else copy.deepcopy(own.norm)
            )
        model.head = copy.deepcopy(self.head)
        model.train(self.training)
        return model

    def num_parameters(self, include_architecture: bool = False) -> int:
        arch = {id(p) for p in self.architecture_parameters()}
        return sum(p.numel() for p in self.parameters() if include_architecture or id(p) not in arch)
