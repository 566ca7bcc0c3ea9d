"""Networks built from architecture specs (ArchSpec)."""

from equinas.models import aen  # noqa: F401  (registers the "aen_fc" model family)
from equinas.models import lps, symmetry_breaking  # noqa: F401  (register "lps", "symmetry_breaking")
from equinas.models.cnn import EquivariantBlock, EquivariantCNN
from equinas.models.network import SpecNetwork
from equinas.models.registry import build_model, build_network, describe_layers, register_family
from equinas.models.resnet import ResidualBlock, ResidualCNN
from equinas.models.spec import ArchSpec, HeadSpec, LayerSpec, SpecError, backbone

__all__ = [
    "ArchSpec",
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
