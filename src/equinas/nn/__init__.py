"""Equivariant layers: kernel bases, lifting, group and [G]-mixed convolutions, approximately
equivariant (relaxed) convolutions, norm, pooling."""

from equinas.nn.basis import BASES, BASIS_CHOICES, HarmonicBasis, KernelBasis, PixelBasis, kernel_basis
from equinas.nn.cache import CachedFilter
from equinas.nn.conv import ConvBase, GroupConv, LiftingConv, RegularConv
from equinas.nn.expansion import FilterExpansion
from equinas.nn.mixed import MixedGroupConv, prior_logits
from equinas.nn.norm import GroupBatchNorm
from equinas.nn.pooling import EquivarianceBreakWarning, GroupPool, InvariantHead, SpatialPool
from equinas.nn.relaxed import (
    ConstraintRelaxedConv,
    RelaxedGroupConv,
    ResidualPathwayConv,
    triangular_theta,
)

__all__ = [
    "BASES",
    "BASIS_CHOICES",
    "CachedFilter",
    "ConstraintRelaxedConv",
    "ConvBase",
    "EquivarianceBreakWarning",
    "FilterExpansion",
    "GroupBatchNorm",
    "GroupConv",
    "GroupPool",
    "HarmonicBasis",
    "InvariantHead",
    "KernelBasis",
    "LiftingConv",
    "MixedGroupConv",
    "PixelBasis",
    "RegularConv",
    "RelaxedGroupConv",
    "ResidualPathwayConv",
    "SpatialPool",
    "kernel_basis",
    "prior_logits",
    "triangular_theta",
]
