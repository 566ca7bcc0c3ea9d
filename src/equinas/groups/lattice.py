"""Constructors, names and the subgroup lattice of the planar groups C_N and D_N."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from math import isqrt, lcm

from equinas.groups.group import MAX_ROTATION_ORDER, Element, PlanarGroup

_NAME = re.compile(r"^\s*([CD])(\d+)(?:\[axis=(\d+)\])?\s*$")
NAME_FORMS = "'C<N>', 'D<N>' or 'D<N>[axis=<k>]' (e.g. 'C4', 'D4', 'D1[axis=1]')"


def _check_order(kind: str, order: int) -> None:
    if order > MAX_ROTATION_ORDER:
        raise ValueError(
            f"{kind}{order} is too large: groups up to {kind}{MAX_ROTATION_ORDER} are supported "
            "(layers build tables quadratic in the group order)"
        )


def cyclic(order: int, n: int | None = None) -> PlanarGroup:
    """C_order: rotations by multiples of 2*pi/order, written at resolution ``n``
    (``order <= MAX_ROTATION_ORDER``)."""
    _check_order("C", order)
    n = order if n is None else n
    if order < 1 or n % order:
        raise ValueError(f"C{order} needs order >= 1 dividing the resolution, got n={n}")
    step = n // order
    return PlanarGroup([(0, step * j) for j in range(order)], n)


def dihedral(order: int, axis: int = 0, n: int | None = None) -> PlanarGroup:
    """D_order: C_order plus the mirrors ``R^(axis + j*n/order) F`` (see PlanarGroup.axis)."""
    _check_order("D", order)
    n = order if n is None else n
    if order < 1 or n % order:
        raise ValueError(f"D{order} needs order >= 1 dividing the resolution, got n={n}")
    step = n // order
    if not 0 <= axis < step:
        raise ValueError(
            f"axis={axis} is out of range for D{order} at resolution {n}: "
            f"valid axes are 0..{step - 1}; name the group inside an ambient group "
            "(e.g. parse_group('D1[axis=1]', ambient='D4'))"
        )
    rotations = [(0, step * j) for j in range(order)]
    mirrors = [(1, axis + step * j) for j in range(order)]
    return PlanarGroup(rotations + mirrors, n)


def parse_group(name: str | PlanarGroup, ambient: str | PlanarGroup | None = None) -> PlanarGroup:
    """Group from its name, e.g. ``parse_group('D1[axis=1]', ambient='D4')``.

    With ``ambient`` the group is written at the ambient's resolution and must be one of its
    subgroups; without it the resolution is the group's own rotation order.
    Raises ``ValueError`` with the accepted forms for unknown names, and for orders above
    ``MAX_ROTATION_ORDER`` (1024).
    """
    amb = None if ambient is None else parse_group(ambient)
    if isinstance(name, PlanarGroup):
        return name if amb is None else amb.embed(name)
    match = _NAME.match(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"unknown group name {name!r}: expected {NAME_FORMS}")
    kind, order, axis = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    if order < 1:
        raise ValueError(f"unknown group name {name!r}: the order must be >= 1")
    _check_order(kind, order)
    if kind == "C" and match.group(3) is not None:
        raise ValueError(f"unknown group name {name!r}: cyclic groups have no axis")
    n = order if amb is None else amb.n
    if n % order:
        raise ValueError(f"{name} is not a subgroup of {amb}: {order} does not divide {n}")
    group = cyclic(order, n) if kind == "C" else dihedral(order, axis, n)
    if amb is not None and not group.is_subgroup_of(amb):
        raise ValueError(f"{name} is not a subgroup of {amb}")
    return group


def generated_subgroup(group: PlanarGroup, generators: Iterable[Element]) -> PlanarGroup:
    """Smallest subgroup of ``group`` containing ``generators`` (closure by breadth-first search)."""
    found = {group.identity}
    frontier = [group.identity]
    gens = [Element(*g) for g in generators]
    for g in gens:
        group.index(g)  # raises for elements outside the group
    while frontier:
        nxt = []
        for a in frontier:
            for g in gens:
                b = group.compose(a, g)
                if b not in found:
                    found.add(b)
                    nxt.append(b)
        frontier = nxt
    return PlanarGroup(found, group.n)


def generators(group: PlanarGroup) -> tuple[Element, ...]:
    """A small generating set: greedily the first elements (canonical order) not yet generated.

    C_N gives its smallest rotation; D_N its smallest rotation and its first mirror.
    """
    chosen: list[Element] = []
    span = generated_subgroup(group, chosen)
    for e in group.elements:
        if e not in span:
            chosen.append(e)
            span = generated_subgroup(group, chosen)
    return tuple(chosen)


def _lattice_key(h: PlanarGroup) -> tuple[int, int, int]:
    return (h.order, int(h.is_dihedral), h.axis)


def divisors(number: int) -> list[int]:
    """The positive divisors of ``number >= 1``, ascending."""
    small = [d for d in range(1, isqrt(number) + 1) if number % d == 0]
    return small + [number // d for d in reversed(small) if d * d != number]


def _dihedral_subgroups(group: PlanarGroup, order: int) -> list[PlanarGroup]:
    """The dihedral subgroups of dihedral ``group`` with ``order`` rotations (``order`` divides
    its rotation order ``N``): ``D_order[axis = a + s k]`` for ``k = 0 .. N/order - 1``, where
    ``a`` is the group's axis and ``s = n / N`` its rotation step at resolution ``n``."""
    rotations = group.rotation_order
    step = group.n // rotations
    return [dihedral(order, group.axis + step * k, group.n) for k in range(rotations // order)]


def subgroups(group: PlanarGroup | str) -> tuple[PlanarGroup, ...]:
    """Every subgroup of ``group`` at its resolution, sorted by order, cyclic first, then axis.

    In closed form from the divisors of ``N``: C_N has one subgroup C_d per divisor ``d`` of
    ``N``; D_N has those and, per divisor ``d``, the ``N/d`` dihedral groups D_d whose mirrors
    are one coset of C_d among the mirrors of D_N (D4: 10 subgroups, D8: 19, C8: 4, D1000:
    2356). The cost is linear in the total order of the subgroups listed.
    """
    group = parse_group(group)
    orders = divisors(group.rotation_order)
    found = [cyclic(d, group.n) for d in orders]
    if group.is_dihedral:
        found += [h for d in orders for h in _dihedral_subgroups(group, d)]
    return tuple(sorted(found, key=_lattice_key))


def _prime_factors(number: int) -> list[int]:
    return [p for p in divisors(number) if p > 1 and all(p % q for q in range(2, isqrt(p) + 1))]


def maximal_subgroups(group: PlanarGroup | str) -> tuple[PlanarGroup, ...]:
    """Proper subgroups of ``group`` that are contained in no other proper subgroup, in the
    order of ``subgroups``: for C_N the C_{N/p}, and for D_N also C_N and the D_{N/p}, over
    the primes ``p`` dividing ``N``."""
    group = parse_group(group)
    orders = [group.rotation_order // p for p in _prime_factors(group.rotation_order)]
    if not group.is_dihedral:
        found = [cyclic(d, group.n) for d in orders]
    else:
        found = [cyclic(group.rotation_order, group.n)]
        found += [h for d in orders for h in _dihedral_subgroups(group, d)]
    return tuple(sorted(found, key=_lattice_key))


def maximal_elements(groups: Sequence[PlanarGroup]) -> tuple[PlanarGroup, ...]:
    """The groups of ``groups`` that are contained in no other of them (order kept)."""
    return tuple(h for h in groups if not any(h != k and h.is_subgroup_of(k) for k in groups))


def intersection(groups: Sequence[PlanarGroup]) -> PlanarGroup:
    """The largest common subgroup of ``groups`` (written at the first group's resolution)."""
    if not groups:
        raise ValueError("intersection of an empty list of groups")
    n = lcm(*(g.n for g in groups))
    common = set.intersection(*(set(g.at_resolution(n).elements) for g in groups))
    return PlanarGroup(common, n).at_resolution(groups[0].n)
