"""Model families: how a JSON spec becomes a network.

A spec dict names its family in ``"family"`` (default ``"cnn"``: an ``ArchSpec``, built as an
``EquivariantCNN`` or a ``ResidualCNN`` by its ``backbone``). Other families (e.g. the fully
connected AEN networks) register a builder and a short per-layer description used in result tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from equinas.models.cnn import EquivariantCNN
from equinas.models.network import SpecNetwork
from equinas.models.resnet import ResidualCNN
from equinas.models.spec import ArchSpec, SpecError

NETWORKS: dict[str, type[SpecNetwork]] = {"plain": EquivariantCNN, "resnet": ResidualCNN}


def build_network(spec: ArchSpec) -> SpecNetwork:
    """The network of ``spec``, wired as its ``backbone`` says (plain stack or resnet)."""
    return NETWORKS[spec.backbone](spec)


@dataclass(frozen=True)
class ModelFamily:
    build: Callable[[dict[str, Any]], nn.Module]
    describe: Callable[[dict[str, Any]], list[str]]


FAMILIES: dict[str, ModelFamily] = {}


def register_family(
    name: str, build: Callable[[dict[str, Any]], nn.Module], describe: Callable[[dict[str, Any]], list[str]]
) -> None:
    """Make ``build_model`` accept specs with ``"family": name``."""
    FAMILIES[name] = ModelFamily(build, describe)


def _family(spec: dict[str, Any]) -> tuple[ModelFamily, dict[str, Any]]:
    if not isinstance(spec, dict):
        raise SpecError(f"spec: expected an object (a JSON dict), got {type(spec).__name__}")
    name = spec.get("family", "cnn")
    if not isinstance(name, str) or name not in FAMILIES:
        raise SpecError(f"family: unknown model family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name], {k: v for k, v in spec.items() if k != "family"}


def build_model(spec: dict[str, Any]) -> nn.Module:
    """The network described by ``spec`` (a dict as written by ``ArchSpec.to_dict``)."""
    family, body = _family(spec)
    return family.build(body)


def describe_layers(spec: dict[str, Any]) -> list[str]:
    """One short label per layer (the group of each layer for CNNs)."""
    family, body = _family(spec)
    return family.describe(body)


register_family(
    "cnn",
    build=lambda body: build_network(ArchSpec.from_dict(body)),
    describe=lambda body: ArchSpec.from_dict(body).groups_per_layer(),
)
