"""Relaxation of one layer of a whole network, keeping the network's function."""

from __future__ import annotations

import copy
from typing import Protocol, cast, runtime_checkable

from torch import nn

from equinas.groups import PlanarGroup
from equinas.morphisms.relax import relax


@runtime_checkable
class RelaxableNetwork(Protocol):
    """A network whose searchable layers can be relaxed one at a time.

    Layer ``i`` (``0 <= i < num_layers``) is a unit of modules sharing one group constraint:
    ``layer_modules(i)`` names them (qualified module names, the convolution first; e.g. a
    ``LiftingConv``/``GroupConv``, its ``GroupBatchNorm`` and, in a residual block, the skip's
    1x1 ``GroupConv`` and norm). ``block_relaxed(i, group)`` lets the network update its own
    description (e.g. its architecture spec) after layer ``i`` was relaxed.
    """

    @property
    def num_layers(self) -> int: ...

    def layer_modules(self, index: int) -> list[str]: ...

    def block_relaxed(self, index: int, group: PlanarGroup) -> None: ...


def replace_module(root: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` at the qualified ``name`` (``"a.0.conv"``) inside ``root``."""
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def relax_network(model: nn.Module, layer_index: int, subgroup: PlanarGroup | str) -> nn.Module:
    """A copy of ``model`` (a ``RelaxableNetwork``) whose layer ``layer_index`` (every module of
    the unit) is relaxed to ``subgroup``.

    Each module is relaxed by ``relax`` (exact), so the copy computes the same function as
    ``model`` (train and eval mode); ``model`` itself is left untouched. Raises ``IndexError``
    for a bad index and ``ValueError`` when ``subgroup`` is not a subgroup of the layer's
    current group.
    """
    if not isinstance(model, RelaxableNetwork):
        raise TypeError(f"{type(model).__name__} does not expose num_layers/layer_modules/block_relaxed")
    count = model.num_layers
    if not -count <= layer_index < count:
        raise IndexError(f"layer_index {layer_index} out of range for {count} layers")
    index = layer_index % count
    child = copy.deepcopy(model)
    names = child.layer_modules(index)
    for name in names:
        replace_module(child, name, relax(child.get_submodule(name), subgroup))
    relaxed_group = cast(PlanarGroup, child.get_submodule(names[0]).group)  # a relaxed conv's group
    child.block_relaxed(index, relaxed_group)
    return child
