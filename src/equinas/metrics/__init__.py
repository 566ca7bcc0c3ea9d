"""Metrics: equivariance errors of layers and networks, and the invariance group of a network."""

from equinas.metrics.equivariance import (
    LAYOUTS,
    act_on_layout,
    element_error,
    equivariance_error,
    equivariance_summary,
    inscribed_disc,
    relative_error,
)
from equinas.metrics.invariance import INVARIANCE_TOLERANCE, invariance_group

__all__ = [
    "INVARIANCE_TOLERANCE",
    "LAYOUTS",
    "act_on_layout",
    "element_error",
    "equivariance_error",
    "equivariance_summary",
    "inscribed_disc",
    "invariance_group",
    "relative_error",
]
