"""Group axioms, subgroup lattices, names and cosets of C_N and D_N."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from equinas.groups import (
    Element,
    PlanarGroup,
    cyclic,
    dihedral,
    generated_subgroup,
    intersection,
    maximal_subgroups,
    parse_group,
    subgroups,
)

groups_st = st.builds(
    lambda kind, order: cyclic(order) if kind == "C" else dihedral(order),
    st.sampled_from("CD"),
    st.integers(1, 12),
)


@given(groups_st)
def test_group_axioms(group: PlanarGroup) -> None:
    table = group.cayley_table
    e = group.index(group.identity)
    assert e == 0
    # identity, inverses, latin square (closure + cancellation), associativity
    assert list(table[0]) == list(range(group.order)) == list(table[:, 0])
    inv = group.inverse_indices
    assert all(table[i, inv[i]] == 0 == table[inv[i], i] for i in range(group.order))
    for row in table:
        assert sorted(row) == list(range(group.order))
    idx = np.arange(group.order)
    for a in idx:
        assert np.array_equal(table[table[a][:, None], idx[None, :]], table[a][table])


@given(groups_st)
def test_every_subgroup_is_closed_and_cosets_partition(group: PlanarGroup) -> None:
    for h in subgroups(group):
        assert h.is_subgroup_of(group)
        for a, b in itertools.product(h.elements, repeat=2):
            assert h.compose(a, h.inverse(b)) in h
        reps = group.coset_representatives(h)
        assert reps[0] == group.identity
        assert len(reps) == group.order // h.order == h.index_in(group)
        cosets = [{group.compose(x, t) for x in h.elements} for t in reps]
        assert set().union(*cosets) == set(group.elements)
        assert sum(len(c) for c in cosets) == group.order
        for g in group.elements:
            hh, t = group.decompose(g, h)
            assert hh in h and t in reps and group.compose(hh, t) == g


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "D4",
            [
                "C1",
                "C2",
                "D1",
                "D1[axis=1]",
                "D1[axis=2]",
                "D1[axis=3]",
                "C4",
                "D2",
                "D2[axis=1]",
                "D4",
            ],
        ),
        ("C8", ["C1", "C2", "C4", "C8"]),
        ("C6", ["C1", "C2", "C3", "C6"]),
    ],
)
def test_lattices(name: str, expected: list[str]) -> None:
    assert [h.name for h in subgroups(name)] == expected


def test_d8_lattice_counts() -> None:
    lattice = subgroups("D8")
    counts: dict[str, int] = {}
    for h in lattice:
        key = h.name.split("[")[0]
        counts[key] = counts.get(key, 0) + 1
    assert counts == {"C1": 1, "C2": 1, "C4": 1, "C8": 1, "D1": 8, "D2": 4, "D4": 2, "D8": 1}
    assert sum(h.is_exact for h in lattice) == 10  # the lattice of the grid-exact D4


def test_maximal_subgroups_and_intersection() -> None:
    assert [h.name for h in maximal_subgroups("D4")] == ["C4", "D2", "D2[axis=1]"]
    assert [h.name for h in maximal_subgroups("C8")] == ["C4"]
    d4 = parse_group("D4")
    d2a = parse_group("D2[axis=1]", ambient=d4)
    assert intersection([parse_group("D2", ambient=d4), d2a]).name == "C2"
    assert intersection(subgroups(d4)).name == "C1"


@pytest.mark.parametrize("ambient", ["D4", "D8", "C8", "D6"])
def test_names_round_trip(ambient: str) -> None:
    amb = parse_group(ambient)
    for h in subgroups(amb):
        assert parse_group(h.name, ambient=amb) == h
        assert parse_group(h.name, ambient=amb).elements == h.elements


def test_equality_across_resolutions() -> None:
    c2_in_d4 = parse_group("C2", ambient="D4")
    c2_in_c8 = parse_group("C2", ambient="C8")
    assert c2_in_d4 == c2_in_c8 and hash(c2_in_d4) == hash(c2_in_c8)
    assert c2_in_d4.n == 4 and c2_in_c8.n == 8
    # D1 with the mirror at 45 degrees: R^1 F in D4, R^2 F in D8
    assert parse_group("D1[axis=1]", ambient="D4") == parse_group("D1[axis=2]", ambient="D8")
    assert parse_group("D4", ambient="D8").is_exact
    assert not parse_group("D4[axis=1]", ambient="D8").is_exact


@pytest.mark.parametrize(
    ("name", "ambient", "message"),
    [
        ("E4", None, "unknown group name"),
        ("D", None, "unknown group name"),
        ("C0", None, "order must be >= 1"),
        ("C4[axis=1]", None, "cyclic groups have no axis"),
        ("D1[axis=1]", None, "axis=1 is out of range"),
        ("C8", "D4", "not a subgroup of D4"),
        ("D1[axis=4]", "D4", "axis=4 is out of range"),
        ("D2", "C8", "not a subgroup of C8"),
    ],
)
def test_bad_names_raise_clear_errors(name: str, ambient: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_group(name, ambient=ambient)


def test_non_groups_and_non_members_are_rejected() -> None:
    with pytest.raises(ValueError, match="not closed"):
        PlanarGroup([(0, 0), (0, 1)], 4)
    with pytest.raises(ValueError, match="identity"):
        PlanarGroup([(0, 1)], 4)
    d4 = parse_group("D4")
    with pytest.raises(KeyError, match="not an element"):
        parse_group("C4").index(Element(1, 0))
    with pytest.raises(ValueError, match="not a subgroup"):
        parse_group("C4").coset_representatives(d4)
    with pytest.raises(ValueError, match="not a subgroup"):
        parse_group("D1", ambient="D4").index_in(parse_group("C4"))


def test_generated_subgroups_match_generators() -> None:
    d4 = parse_group("D4")
    assert generated_subgroup(d4, [(0, 1)]).name == "C4"
    assert generated_subgroup(d4, [(0, 1), (1, 0)]) == d4
    assert generated_subgroup(d4, [(1, 0), (1, 2)]).name == "D2"
    assert generated_subgroup(d4, []).name == "C1"


def test_huge_group_names_are_refused_quickly() -> None:
    import time

    from equinas.groups.group import MAX_ROTATION_ORDER

    start = time.perf_counter()
    largest = parse_group(f"D{MAX_ROTATION_ORDER}")  # 2048 elements: pairwise checks took seconds
    assert largest.order == 2 * MAX_ROTATION_ORDER
    assert time.perf_counter() - start < 1.0
    for name in ("C1000000", "D1000000", f"C{MAX_ROTATION_ORDER + 1}"):
        with pytest.raises(ValueError, match="too large"):
            parse_group(name)
    with pytest.raises(ValueError, match="too large"):
        parse_group("C2", ambient="C1000000")
    assert time.perf_counter() - start < 1.0


def test_linear_closure_check_matches_pairwise_products() -> None:
    from equinas.groups.group import Element, compose

    n = 6
    universe = [Element(f, r) for f in (0, 1) for r in range(n)]
    for size in range(1, len(universe) + 1):
        for subset in itertools.combinations(universe[1:], size - 1):
            elements = {Element(0, 0), *subset}
            closed = all(compose(a, b, n) in elements for a in elements for b in elements)
            try:
                PlanarGroup(elements, n)
                built = True
            except ValueError:
                built = False
            assert built == closed, sorted(elements)
