"""Equivariant layers: kernel bases, lifting, group and [G]-mixed convolutions, approximately
equivariant (relaxed) convolutions, norm, pooling.

Names are imported from their submodules on first use (PEP 562), so that
``equinas.nn.choices`` can be read without importing torch (the command line's ``--help``;
see ``equinas.lazy``).
"""

from __future__ import annotations

from equinas.lazy import lazy_namespace

_SOURCES = {
    "BASES": "choices",
    "BASIS_CHOICES": "choices",
    "HarmonicBasis": "basis",
    "KernelBasis": "basis",
    "PixelBasis": "basis",
    "kernel_basis": "basis",
    "CachedFilter": "cache",
    "ConvBase": "conv",
    "GroupConv": "conv",
    "LiftingConv": "conv",
    "RegularConv": "conv",
    "FilterExpansion": "expansion",
    "MixedGroupConv": "mixed",
    "prior_logits": "mixed",
    "GroupBatchNorm": "norm",
    "normalized_conv": "norm",
    "EquivarianceBreakWarning": "pooling",
    "GroupPool": "pooling",
    "InvariantHead": "pooling",
    "SpatialPool": "pooling",
    "ConstraintRelaxedConv": "relaxed",
    "RelaxedGroupConv": "relaxed",
    "ResidualPathwayConv": "relaxed",
    "triangular_theta": "relaxed",
}
__all__ = sorted(_SOURCES)
__getattr__, __dir__ = lazy_namespace(__name__, _SOURCES, globals())
