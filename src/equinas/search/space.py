"""The groups a search may give a layer: the whole subgroup lattice, or a named smaller space."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from equinas.groups import PlanarGroup, parse_group, subgroups
from equinas.settings import setting

# the paper's per-layer groups: D4 relaxes to C4 or D1, no layer is ever D2
PAPER_SPACE = ("D4", "C4", "D1", "C2", "C1")
NAMED_SPACES = {"paper": PAPER_SPACE}


def space_names(space: Sequence[str] | None) -> tuple[str, ...] | None:
    """``space`` as group names, a single name of ``NAMED_SPACES`` expanded (``None`` stays);
    ``ValueError`` for anything but a non-empty list of names."""
    if space is None:
        return None
    names_given = isinstance(space, Sequence) and all(isinstance(n, str) for n in space)
    if isinstance(space, str) or not names_given:
        raise ValueError(f"expected a list of group names or {', '.join(NAMED_SPACES)}, got {space!r}")
    names = tuple(space)
    if len(names) == 1 and names[0] in NAMED_SPACES:
        return NAMED_SPACES[names[0]]
    if not names:
        raise ValueError("a search space needs at least one group (or None: the whole lattice)")
    return names


def search_space(ambient: PlanarGroup | str, space: Sequence[str] | None) -> list[PlanarGroup]:
    """The groups of ``space`` as subgroups of ``ambient`` (its whole lattice for ``None``)."""
    if space is None:
        return list(subgroups(ambient))
    return [parse_group(name, ambient=ambient) for name in space_names(space) or ()]


def space_setting() -> Any:
    """The declaration of a method's ``space`` setting (EquiNAS_E, EquiNAS_G): the groups a
    layer may take, checked by ``space_names``."""
    return setting(
        None,
        check=space_names,
        subgroups=True,
        help="groups a layer may take; 'paper': D4,C4,D1,C2,C1 (default: the whole lattice)",
    )
