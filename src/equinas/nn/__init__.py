"""Equivariant layers: kernel bases, lifting and group convolutions, norm, pooling."""

from equinas.nn.basis import BASES, BASIS_CHOICES, HarmonicBasis, KernelBasis, PixelBasis, kernel_basis
from equinas.nn.conv import GroupConv, LiftingConv, RegularConv
from equinas.nn.expansion import FilterExpansion
from equinas.nn.norm import GroupBatchNorm
from equinas.nn.pooling import EquivarianceBreakWarning, GroupPool, InvariantHead, SpatialPool

__all__ = [
    "BASES",
    "BASIS_CHOICES",
    "EquivarianceBreakWarning",
    "FilterExpansion",
    "GroupBatchNorm",
    "GroupConv",
    "GroupPool",
    "HarmonicBasis",
    "InvariantHead",
    "KernelBasis",
    "LiftingConv",
    "PixelBasis",
    "RegularConv",
    "SpatialPool",
    "kernel_basis",
]
