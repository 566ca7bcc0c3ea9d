"""Finite subgroups of O(2): cyclic groups C_N and dihedral groups D_N.

Every element is a pair ``(flip, rot)`` that stands for the planar map

    g = R(2*pi*rot/n) . F**flip,

where ``R(a)`` is the counter-clockwise rotation by ``a`` and ``F`` is the mirror that
flips the horizontal axis of an image (x -> -x). ``n`` is the *resolution* of the group:
the number of rotation steps of the smallest full turn it can express. All groups of one
subgroup lattice share the resolution of the lattice's top group, so that their elements
can be compared and multiplied directly.

Composition follows from ``F R(a) F = R(-a)``:

    (f1, r1) . (f2, r2) = (f1 xor f2, r1 + (-1)**f1 * r2  mod n).

The canonical element order lists the rotations by increasing ``rot`` and then the
reflections by increasing ``rot``; the identity always comes first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from functools import cached_property
from typing import NamedTuple

import numpy as np

MAX_ROTATION_ORDER = 1024
"""Largest ``N`` of C_N and D_N accepted: layers build tables quadratic in the group order,
so larger groups are refused up front (``ValueError``) instead of taking hours."""


class Element(NamedTuple):
    """A group element ``R(2*pi*rot/n) F**flip`` at resolution ``n`` (see module doc)."""

    flip: int
    rot: int


def compose(a: Element, b: Element, n: int) -> Element:
    """The product ``a . b`` (first apply ``b``, then ``a``) at resolution ``n``."""
    sign = -1 if a.flip else 1
    return Element(a.flip ^ b.flip, (a.rot + sign * b.rot) % n)


def inverse(a: Element, n: int) -> Element:
    """The inverse element: reflections are involutions, rotations negate."""
    return a if a.flip else Element(0, (-a.rot) % n)


def _sort_key(e: Element) -> tuple[int, int]:
    return (e.flip, e.rot)


def _is_closed(elements: list[Element], n: int) -> bool:
    """Whether distinct elements (reduced mod ``n``) form a group, in linear time.

    A finite set of planar maps is a group exactly when its rotations are the multiples of
    one step ``d`` dividing ``n`` (a subgroup of Z_n) and its mirrors are empty or one coset
    of those rotations: ``(1, a)(0, r) = (1, a - r)`` and ``(1, a)(1, b) = (0, a - b)``.
    """
    rotations = [e.rot for e in elements if not e.flip]
    mirrors = [e.rot for e in elements if e.flip]
    step = math.gcd(n, *rotations)
    if len(rotations) != n // step:  # all are multiples of step; distinct, so all multiples
        return False
    if not mirrors:
        return True
    return len(mirrors) == len(rotations) and all((m - mirrors[0]) % step == 0 for m in mirrors)


class PlanarGroup:
    """A finite subgroup of O(2) given by its elements at a common resolution ``n``.

    Instances are immutable and hashable. Two groups are equal when they contain the same
    planar maps, even at different resolutions (``C2`` inside ``D4`` equals ``C2`` inside
    ``C8``).
    """

    def __init__(self, elements: Iterable[Element | tuple[int, int]], n: int):
        if n < 1:
            raise ValueError(f"resolution n must be >= 1, got {n}")
        distinct = {Element(int(f), int(r) % n) for f, r in elements}
        if len(distinct) > 2 * MAX_ROTATION_ORDER:
            raise ValueError(
                f"groups of order above {2 * MAX_ROTATION_ORDER} are not supported "
                f"(C_N and D_N with N <= {MAX_ROTATION_ORDER})"
            )
        elems = sorted(distinct, key=_sort_key)
        if not elems or elems[0] != Element(0, 0):
            raise ValueError("a group must contain the identity (0, 0)")
        if not _is_closed(elems, n):
            shown = elems if len(elems) <= 16 else [*elems[:16], "..."]
            raise ValueError(f"elements {shown} are not closed under composition")
        self.n = n
        self.elements: tuple[Element, ...] = tuple(elems)
        self._index = {e: i for i, e in enumerate(self.elements)}

    @cached_property
    def name(self) -> str:
        """``C{N}``, ``D{N}`` or ``D{N}[axis=k]``; ``k`` counts steps of 2*pi/n, see ``axis``."""
        if not self.is_dihedral:
            return f"C{self.order}"
        suffix = f"[axis={self.axis}]" if self.axis else ""
        return f"D{self.rotation_order}{suffix}"

    @property
    def axis(self) -> int:
        """For a dihedral group, the smallest ``k`` with ``R^k F`` in the group; else 0.

        ``F`` mirrors about the vertical line and ``R^k F`` about the line at angle
        ``pi/2 + pi*k/n`` from the horizontal, so at resolution n=4 the four D1 subgroups
        ``D1``, ``D1[axis=1]``, ``D1[axis=2]``, ``D1[axis=3]`` mirror about the lines at 90,
        135, 0 and 45 degrees.
        """
        return min((e.rot for e in self.elements if e.flip), default=0)

    # -- basic structure -------------------------------------------------------------
    @property
    def order(self) -> int:
        """Number of elements |G|."""
        return len(self.elements)

    def __len__(self) -> int:
        return self.order

    def __iter__(self) -> Iterator[Element]:
        return iter(self.elements)

    def __contains__(self, e: object) -> bool:
        return e in self._index

    def index(self, e: Element) -> int:
        """Position of ``e`` in the canonical order; ``KeyError`` if ``e`` is not in G."""
        try:
            return self._index[Element(*e)]
        except KeyError:
            raise KeyError(f"{e} is not an element of {self.name}") from None

    def compose(self, a: Element, b: Element) -> Element:
        return compose(a, b, self.n)

    def inverse(self, a: Element) -> Element:
        return inverse(a, self.n)

    @property
    def identity(self) -> Element:
        return self.elements[0]

    @property
    def is_dihedral(self) -> bool:
        return any(e.flip for e in self.elements)

    @property
    def rotation_order(self) -> int:
        """Number of pure rotations (``N`` for both C_N and D_N)."""
        return sum(1 for e in self.elements if not e.flip)

    @cached_property
    def cayley_table(self) -> np.ndarray:
        """``T[i, j] = index(g_i . g_j)``, shape ``[|G|, |G|]``, dtype int64."""
        return np.array(
            [[self._index[self.compose(a, b)] for b in self.elements] for a in self.elements],
            dtype=np.int64,
        )

    @cached_property
    def inverse_indices(self) -> np.ndarray:
        """``inv[i] = index(g_i^-1)``, shape ``[|G|]``."""
        return np.array([self._index[self.inverse(a)] for a in self.elements], dtype=np.int64)

    # -- geometry ----------------------------------------------------------------------
    def angle(self, e: Element) -> Fraction:
        """Rotation part of ``e`` as a fraction of a full turn, in [0, 1)."""
        return Fraction(e.rot, self.n)

    def is_exact_element(self, e: Element) -> bool:
        """True when ``e`` maps the square pixel grid onto itself (multiples of 90 degrees)."""
        return (4 * e.rot) % self.n == 0

    @cached_property
    def is_exact(self) -> bool:
        """True when every element acts exactly on pixel grids (no interpolation)."""
        return all(self.is_exact_element(e) for e in self.elements)

    @cached_property
    def _planar_maps(self) -> frozenset[tuple[int, Fraction]]:
        return frozenset((e.flip, self.angle(e)) for e in self.elements)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlanarGroup) and self._planar_maps == other._planar_maps

    def __hash__(self) -> int:
        return hash(self._planar_maps)

    def __repr__(self) -> str:
        return f"PlanarGroup({self.name}, order={self.order}, n={self.n})"

    def __str__(self) -> str:
        return self.name

    def at_resolution(self, n: int) -> PlanarGroup:
        """The same group with its elements written at resolution ``n``.

        ``ValueError`` when some rotation is not a multiple of 2*pi/n.
        """
        if any((e.rot * n) % self.n for e in self.elements):
            raise ValueError(f"{self.name} cannot be written at resolution {n}")
        return PlanarGroup([(e.flip, e.rot * n // self.n) for e in self.elements], n)

    # -- subgroup relations --------------------------------------------------------------
    def is_subgroup_of(self, other: PlanarGroup) -> bool:
        """True when every planar map of ``self`` is also in ``other``."""
        return self._planar_maps <= other._planar_maps

    def index_in(self, other: PlanarGroup) -> int:
        """The index |other : self|; ``ValueError`` when self is not a subgroup of other."""
        if not self.is_subgroup_of(other):
            raise ValueError(f"{self.name} is not a subgroup of {other.name}")
        return other.order // self.order

    def coset_representatives(self, subgroup: PlanarGroup) -> tuple[Element, ...]:
        """Representatives R of the right cosets H\\G, so that G = {h t : h in H, t in R}.

        The representative of each coset ``H t`` is its first element in canonical order,
        so the identity represents ``H`` itself and comes first.
        """
        h_elems = self._lift(subgroup)
        seen: set[Element] = set()
        reps: list[Element] = []
        for g in self.elements:
            if g in seen:
                continue
            reps.append(g)
            seen.update(self.compose(h, g) for h in h_elems)
        return tuple(reps)

    def decompose(self, g: Element, subgroup: PlanarGroup) -> tuple[Element, Element]:
        """Write ``g = h . t`` with ``h`` in ``subgroup`` and ``t`` a coset representative."""
        return self.decompositions(subgroup)[g]

    def decompositions(self, subgroup: PlanarGroup) -> dict[Element, tuple[Element, Element]]:
        """``{g: (h, t)}`` with ``g = h . t`` for every element ``g`` (``t`` as in
        ``coset_representatives``): one pass over the cosets, ``|G|`` compositions."""
        h_elems = self._lift(subgroup)
        out: dict[Element, tuple[Element, Element]] = {}
        for t in self.coset_representatives(subgroup):
            for h in h_elems:
                out[self.compose(h, t)] = (h, t)
        return out

    def _lift(self, subgroup: PlanarGroup) -> tuple[Element, ...]:
        """Elements of ``subgroup`` written at this group's resolution."""
        if not subgroup.is_subgroup_of(self):
            raise ValueError(f"{subgroup.name} is not a subgroup of {self.name}")
        return subgroup.at_resolution(self.n).elements if subgroup.n != self.n else subgroup.elements

    def embed(self, subgroup: PlanarGroup) -> PlanarGroup:
        """``subgroup`` re-expressed at this group's resolution (a member of its lattice)."""
        self._lift(subgroup)
        return subgroup if subgroup.n == self.n else subgroup.at_resolution(self.n)
