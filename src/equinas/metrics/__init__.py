"""Metrics: equivariance errors of layers and networks."""

from equinas.metrics.equivariance import (
    LAYOUTS,
    act_on_layout,
    element_error,
    equivariance_error,
    equivariance_summary,
    inscribed_disc,
    relative_error,
)

__all__ = [
    "LAYOUTS",
    "act_on_layout",
    "element_error",
    "equivariance_error",
    "equivariance_summary",
    "inscribed_disc",
    "relative_error",
]
