"""A G-CNN with learned symmetry-breaking inputs (Ashman et al. 2024), family ``"symmetry_breaking"``.

An equivariant network ``E`` fed, beside the image ``x``, ``K`` learned maps ``t_1..t_K``
(``[K, H, W]``) that are *not* transformed with the image: ``f(x) = E([x, t])``, the maps
concatenated as extra input channels of the lifting convolution. Optionally (``layer_maps``)
every block's output ``[C_l, |G|, H_l, W_l]`` also gets a learned map added to it. With maps
that are all zero the network is exactly equivariant; as the maps learn, it departs from
equivariance as far as the data asks, against an L2 penalty ``l2 * sum ||t||^2`` (added to the
training loss by ``regularization_loss``). ``K = 0`` without layer maps is exactly the
G-CNN: the same modules, parameters, state-dict keys and outputs.

The maps start at ``init_scale * N(0, 1)`` (default 0: the network starts exactly
equivariant). ``architecture_summary`` (recorded with every epoch by the training engine)
holds the equivariance errors under the ambient group (``equinas.metrics.equivariance_summary``)
on the first ``PROBE_IMAGES`` images of the last training batch, and the maps' norm.

Spec::

    {"family": "symmetry_breaking", "network": <ArchSpec dict of the G-CNN>,
     "image_size": [28, 28], "breaking_inputs": 2, "layer_maps": false, "l2": 1e-3,
     "init_scale": 0.0}
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from equinas.metrics import equivariance_summary
from equinas.models.cnn import EquivariantCNN
from equinas.models.registry import register_family
from equinas.models.spec import ArchSpec, SpecError, family_body
from equinas.settings import Settings, setting

FAMILY = "symmetry_breaking"
PROBE_IMAGES = 16


class SymmetryBreakingCNN(EquivariantCNN):
    """``EquivariantCNN`` over ``[x, t]`` with optional per-block maps; see the module docstring.

    Input ``[B, C, H, W]`` with ``(H, W) == image_size``; output ``[B, num_classes]``.
    ``self.spec`` is the G-CNN's spec with ``in_channels`` widened by ``K``.
    """

    def __init__(
        self,
        spec: ArchSpec,
        image_size: tuple[int, int],
        breaking_inputs: int = 0,
        layer_maps: bool = False,
        l2: float = 0.0,
        init_scale: float = 0.0,
    ):
        super().__init__(replace(spec, in_channels=spec.in_channels + breaking_inputs))
        self.image_channels, self.image_size, self.l2 = spec.in_channels, tuple(image_size), l2
        height, width = self.image_size
        self.breaking_inputs = (
            nn.Parameter(init_scale * torch.randn(breaking_inputs, height, width))
            if breaking_inputs
            else None
        )
        self.breaking_maps = nn.ParameterList()
        if layer_maps:
            order = self.ambient.order
            for layer in spec.layers:
                height, width = (height // 2, width // 2) if layer.pool else (height, width)
                self.breaking_maps.append(
                    nn.Parameter(init_scale * torch.randn(layer.channels, order, height, width))
                )
        self._probe: torch.Tensor | None = None

    def breaking_parameters(self) -> list[nn.Parameter]:
        """Every learned symmetry-breaking map (empty for the plain G-CNN)."""
        own = [self.breaking_inputs] if self.breaking_inputs is not None else []
        return own + list(self.breaking_maps)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.image_channels or tuple(x.shape[-2:]) != self.image_size:
            h, w = self.image_size
            raise ValueError(
                f"SymmetryBreakingCNN expects images [B, {self.image_channels}, {h}, {w}] (its breaking "
                f"maps are {h}x{w}), got {tuple(x.shape)}"
            )

    def _blocks(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """The output of every block (with its breaking map added)."""
        self.check_input(x)
        if self.training:
            self._probe = x[:PROBE_IMAGES].detach()
        if self.breaking_inputs is not None:
            maps = self.breaking_inputs.to(x.dtype).expand(x.shape[0], -1, -1, -1)
            x = torch.cat([x, maps], dim=1)
        for i, block in enumerate(self.equivariant_blocks):
            x = block(x)
            if len(self.breaking_maps):
                x = x + self.breaking_maps[i].to(x.dtype)  # bf16 maps stay bf16 under autocast
            yield x

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self._blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for y in self._blocks(x):
            x = y
        return self.head(x)

    def regularization_loss(self) -> torch.Tensor:
        """The layers' own penalties plus ``l2 * sum ||t||^2`` over every breaking map."""
        loss = super().regularization_loss()
        maps = self.breaking_parameters()
        if maps and self.l2:
            loss = loss + self.l2 * sum(t.square().sum() for t in maps)
        return loss

    def architecture_summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = dict(super().architecture_summary())
        maps = self.breaking_parameters()
        summary["breaking_norm"] = math.sqrt(sum(float(t.detach().square().sum()) for t in maps))
        if self._probe is not None:
            errors = equivariance_summary(self, self._probe)
            summary["equivariance"] = {"layers": errors["layers"], "output": errors["output"]}
        return summary


@dataclass(frozen=True)
class SymmetryBreakingSpec(Settings):
    """The validated body of a ``"symmetry_breaking"`` spec (everything but ``"family"``); bad
    values raise ``SpecError`` naming ``symmetry_breaking.<field>``."""

    error_type = SpecError
    owner_label = FAMILY

    network: dict[str, Any] = setting(factory=dict, help="the ArchSpec of the G-CNN")
    image_size: tuple[int, int] = setting((28, 28), at_least=1, help="input height and width [H, W]")
    breaking_inputs: int = setting(0, at_least=0, help="learned maps fed beside the image")
    layer_maps: bool = setting(False, help="also add a learned map to every block's output")
    l2: float = setting(0.0, at_least=0, help="weight of the penalty sum ||t||^2 of the maps")
    init_scale: float = setting(0.0, at_least=0, help="the maps start at init_scale * N(0, 1)")

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> SymmetryBreakingSpec:
        return cls(**family_body(cls, body, FAMILY, "network", "the ArchSpec of the G-CNN"))

    def arch(self) -> ArchSpec:
        return ArchSpec.from_dict(self.network)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["image_size"] = list(self.image_size)
        return {"family": FAMILY, **out}

    def build(self) -> SymmetryBreakingCNN:
        arch = self.arch()
        arch.check_input_size(*self.image_size)
        return SymmetryBreakingCNN(
            arch, self.image_size, self.breaking_inputs, self.layer_maps, self.l2, self.init_scale
        )

    def describe(self) -> list[str]:
        label = f"break{self.breaking_inputs}" + ("+maps" if self.layer_maps else "")
        return [label, *self.arch().groups_per_layer()]


register_family(
    FAMILY,
    build=lambda body: SymmetryBreakingSpec.from_dict(body).build(),
    describe=lambda body: SymmetryBreakingSpec.from_dict(body).describe(),
)
