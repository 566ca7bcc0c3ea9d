"""Errors raised while reading or building architecture specs."""

from __future__ import annotations


class SpecError(ValueError):
    """An architecture description that cannot be built; the message names the field."""
