"""Networks built from architecture specs (ArchSpec)."""

from equinas.models import (  # noqa: F401  (register the model families "aen_fc", "lps", "symmetry_breaking")
    aen,
    lps,
    symmetry_breaking,
)
from equinas.models.backbone import BackboneSettings, backbone
from equinas.models.cnn import EquivariantBlock, EquivariantCNN
from equinas.models.network import SpecNetwork
from equinas.models.registry import build_model, build_network, describe_layers, register_family
from equinas.models.resnet import ResidualBlock, ResidualCNN
from equinas.models.spec import ArchSpec, HeadSpec, LayerSpec, SpecError

__all__ = [
    "ArchSpec",
    "BackboneSettings",
    "EquivariantBlock",
    "EquivariantCNN",
    "HeadSpec",
    "LayerSpec",
    "ResidualBlock",
    "ResidualCNN",
    "SpecError",
    "SpecNetwork",
    "backbone",
    "build_model",
    "build_network",
    "describe_layers",
    "register_family",
]
