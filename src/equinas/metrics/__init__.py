"""Metrics: equivariance errors of layers and networks."""

from equinas.metrics.equivariance import (
    equivariance_error,
    equivariance_summary,
    inscribed_disc,
    relative_error,
)

__all__ = ["equivariance_error", "equivariance_summary", "inscribed_disc", "relative_error"]
