"""What every network built from an ArchSpec shares, whatever its wiring.

A ``SpecNetwork`` has one searchable unit per ``spec.layers[i]``: a convolution and the modules
that share its group constraint (its batch norm; in a residual block also the 1x1 projection
of the skip). ``layer_modules(i)`` names them, the convolution first. On that rests the
``RelaxableNetwork`` protocol of ``equinas.morphisms`` (relax every module of a unit) and the
trainer hooks for mixed and approximately equivariant layers.
"""

from __future__ import annotations

import copy
from typing import cast

import torch
from torch import nn

from equinas.groups import PlanarGroup, parse_group
from equinas.models.layers import LAYER_KINDS, LayerContext
from equinas.models.spec import ArchSpec, SpecError
from equinas.morphisms import relax
from equinas.morphisms.network import replace_module
from equinas.nn import GroupBatchNorm, InvariantHead
from equinas.nn.conv import ConvBase, RegularConv
from equinas.nn.mixed import MixedGroupConv


def layer_context(spec: ArchSpec, index: int, in_channels: int) -> LayerContext:
    """What the builder of ``spec.layers[index]`` needs; layer 0 is the lifting layer."""
    ambient = spec.ambient_group()
    layer = spec.layers[index]
    groups = (
        tuple(parse_group(g, ambient=ambient) for g in layer.groups) if layer.groups is not None else None
    )
    return LayerContext(
        in_channels=in_channels,
        out_channels=layer.channels,
        kernel_size=layer.kernel_size,
        basis=layer.basis,
        ambient=ambient,
        lifting=index == 0,
        group=spec.layer_group(index) if layer.group is not None else None,
        groups=groups,
        options=layer.options,
    )


def check_norm_fits(conv: ConvBase, norm: GroupBatchNorm) -> None:
    """``ValueError`` when ``norm`` does not take the output layout of ``conv``."""
    norm_input = f"[B, {norm.channels}, {norm.ambient.order}, H, W]"
    if conv.output_shape_hint() != norm_input:
        raise ValueError(
            f"{type(conv).__name__} gives {conv.output_shape_hint()}, its batch norm expects {norm_input}"
        )


def build_layer(spec: ArchSpec, index: int, in_channels: int) -> tuple[ConvBase, GroupBatchNorm]:
    """The convolution of ``spec.layers[index]`` and its batch norm (over the kind's norm group);
    ``SpecError`` naming the layer when the two do not fit."""
    ctx = layer_context(spec, index, in_channels)
    kind = LAYER_KINDS[spec.layers[index].kind]
    conv, norm = kind.build(ctx), GroupBatchNorm(ctx.out_channels, kind.norm_group(ctx), ctx.ambient)
    try:
        check_norm_fits(conv, norm)
    except ValueError as err:
        raise SpecError(f"layers[{index}] ({spec.layers[index].kind}): {err}") from None
    return conv, norm


class SpecNetwork(nn.Module):
    """Base of ``EquivariantCNN`` and ``ResidualCNN``: subclasses set ``spec`` and define
    ``layer_modules``, ``features``, ``forward`` and ``head``."""

    spec: ArchSpec
    head: InvariantHead

    def layer_modules(self, index: int) -> list[str]:
        """Qualified names of the modules constrained by ``spec.layers[index]``, its conv first."""
        raise NotImplementedError

    @property
    def num_layers(self) -> int:
        return len(self.spec.layers)

    @property
    def ambient(self) -> PlanarGroup:
        return self.spec.ambient_group()

    def layer_convs(self) -> list[ConvBase]:
        """The convolution of every layer, in spec order."""
        # every layer's convolution is built by its LAYER_KINDS entry (a ConvBase) or is one that
        # replaced it (``projected``, ``equinas.morphisms``: a RegularConv)
        return [cast(ConvBase, self.get_submodule(self.layer_modules(i)[0])) for i in range(self.num_layers)]

    def check_wiring(self) -> None:
        """``SpecError`` naming the first layer whose input layout is not what precedes it gives
        (the images ``[B, in_channels, H, W]`` or the previous layer's output: in both wirings
        layer ``i`` reads what layer ``i - 1`` writes, a skip adds to it)."""
        given, source = f"[B, {self.spec.in_channels}, H, W]", "the input images give"
        for i, conv in enumerate(self.layer_convs()):
            wanted = conv.input_shape_hint()
            if wanted != given:
                kind = self.spec.layers[i].kind
                raise SpecError(f"layers[{i}] ({kind}): layer {i} expects {wanted}, but {source} {given}")
            given, source = conv.output_shape_hint(), f"layer {i} gives"

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.spec.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects images [B, {self.spec.in_channels}, H, W], "
                f"got {tuple(x.shape)}"
            )
        self.spec.check_input_size(x.shape[-2], x.shape[-1])

    # -- RelaxableNetwork ------------------------------------------------------------------
    def block_relaxed(self, index: int, group: PlanarGroup) -> None:
        self.spec = self.spec.with_layer(index, group=str(group))

    # -- trainer hooks ---------------------------------------------------------------------
    def mixed_layers(self) -> list[tuple[int, MixedGroupConv]]:
        return [(i, conv) for i, conv in enumerate(self.layer_convs()) if isinstance(conv, MixedGroupConv)]

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
        hooks = [getattr(conv, "regularization_loss", None) for conv in self.layer_convs()]
        terms = [hook() for hook in hooks if callable(hook)]
        if terms:
            return torch.stack(terms).sum()
        return cast(nn.Linear, self.head.classifier[-1]).weight.new_zeros(())  # it ends in a Linear

    def set_training_progress(self, epoch: int, num_epochs: int) -> None:
        """Forward the epoch to scheduled layers (the theta of constraint relaxation)."""
        for conv in self.layer_convs():
            hook = getattr(conv, "set_training_progress", None)
            if callable(hook):
                hook(epoch, num_epochs)

    def set_training_time(self, epochs_done: float) -> None:
        """Forward the training time to scheduled layers (the pruning of mixed layers)."""
        for _, conv in self.mixed_layers():
            conv.set_training_time(epochs_done)

    def projected(self) -> SpecNetwork:
        """A copy with every approximately equivariant layer replaced by its plain H layer.

        Mixed layers become their largest-weight candidate; ``rpp``/``rgconv``/``cr`` layers drop
        their symmetry-breaking part. The other modules of a unit (batch norm, skip projection)
        are relaxed to the chosen group, so the copy is exactly equivariant to each layer's
        group. Regular layers are copied unchanged.
        """
        model = copy.deepcopy(self)
        spec = self.spec
        for i in range(self.num_layers):
            names = model.layer_modules(i)
            conv = model.get_submodule(names[0])
            if isinstance(conv, MixedGroupConv):
                conv = conv.discretize()
            elif callable(project := getattr(conv, "project", None)):
                conv = project()
            if not isinstance(conv, RegularConv):  # every layer kind is regular, mixed or projectable
                raise TypeError(f"{type(conv).__name__} has no exactly equivariant plain layer")
            replace_module(model, names[0], conv)
            for name in names[1:]:
                module = model.get_submodule(name)
                if module.group != conv.group:
                    replace_module(model, name, relax(module, conv.group))
            spec = spec.with_layer(i, kind="regular", group=str(conv.group), groups=None, options={})
        model.spec = spec
        model.train(self.training)
        return model

    def num_parameters(self, include_architecture: bool = False) -> int:
        arch = {id(p) for p in self.architecture_parameters()}
        return sum(p.numel() for p in self.parameters() if include_architecture or id(p) not in arch)
