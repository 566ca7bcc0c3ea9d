"""Finite planar symmetry groups (C_N, D_N), their subgroup lattices and their actions."""

from equinas.groups.actions import act_on_features, act_on_filters, act_on_images, spatial_matrices
from equinas.groups.group import Element, PlanarGroup
from equinas.groups.lattice import (
    cyclic,
    dihedral,
    generated_subgroup,
    generators,
    intersection,
    maximal_elements,
    maximal_subgroups,
    parse_group,
    subgroups,
)

__all__ = [
    "Element",
    "PlanarGroup",
    "act_on_features",
    "act_on_filters",
    "act_on_images",
    "cyclic",
    "dihedral",
    "generated_subgroup",
    "generators",
    "intersection",
    "maximal_elements",
    "maximal_subgroups",
    "parse_group",
    "spatial_matrices",
    "subgroups",
]
