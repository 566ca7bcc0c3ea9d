"""Equivariance metrics on networks that do not follow the equinas model conventions."""

from __future__ import annotations

import torch
from torch import nn

from equinas.metrics import equivariance_error
from equinas.nn import LiftingConv


class _NoAmbient(nn.Module):
    """C4 feature maps from ``features(x)`` and invariant logits, but no ``ambient`` attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = LiftingConv(1, 2, 3, "C4")

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.conv(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3, 4))  # [B, 2], invariant under C4


def test_feature_maps_of_a_model_without_ambient_are_compared_in_the_tested_group() -> None:
    torch.manual_seed(0)
    result = equivariance_error(_NoAmbient(), "C4", torch.randn(2, 1, 9, 9))
    assert len(result["layers"]) == 1
    assert result["layers"][0] < 1e-5
    assert result["output"] < 1e-5
