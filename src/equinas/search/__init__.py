"""Search methods deriving from one base class (``SearchMethod``); ``METHODS`` names them."""

from __future__ import annotations

from typing import Any

from equinas.search.base import (
    BackboneSettings,
    Evaluator,
    SearchContext,
    SearchMethod,
    SearchResult,
    run_search,
)
from equinas.search.methods.aen import AENGCNNSearch, AENGCNNSettings, AENSearch, AENSettings
from equinas.search.methods.clone import CloneSettings, SymmetryCloning
from equinas.search.methods.equinas_d import EquiNASD, EquiNASDSettings
from equinas.search.methods.equinas_e import EquiNASE, EquiNASESettings
from equinas.search.methods.equinas_g import EquiNASG, EquiNASGSettings
from equinas.search.methods.fixed import FixedGroups, FixedSettings
from equinas.search.methods.grid import GridSearch, GridSettings
from equinas.search.methods.layer_kinds import (
    ConstraintRelaxation,
    LayerKindSettings,
    RelaxedConvBaseline,
    RPPBaseline,
)
from equinas.search.methods.lps import LPSSearch, LPSSettings
from equinas.search.methods.prior import PriorRelaxed, PriorSettings
from equinas.search.methods.random_search import RandomSearch, RandomSettings
from equinas.search.methods.symmetry_breaking import SymmetryBreakingSearch, SymmetryBreakingSettings
from equinas.search.record import CandidateRecord
from equinas.search.run_directory import RunDirectory
from equinas.search.selection import best_of

METHODS: dict[str, type[SearchMethod[Any]]] = {
    method.name: method
    for method in (
        EquiNASE,
        EquiNASD,
        EquiNASG,
        FixedGroups,
        GridSearch,
        PriorRelaxed,
        RPPBaseline,
        RelaxedConvBaseline,
        ConstraintRelaxation,
        RandomSearch,
        AENSearch,
        AENGCNNSearch,
        LPSSearch,
        SymmetryBreakingSearch,
        SymmetryCloning,
    )
}


def make_method(name: str, **settings: Any) -> SearchMethod:
    """The search method ``name`` with its settings (``ValueError`` for unknown names/settings)."""
    if name not in METHODS:
        raise ValueError(f"unknown search method {name!r}: expected one of {sorted(METHODS)}")
    cls = METHODS[name]
    try:
        return cls(cls.settings_class(**settings))
    except TypeError as err:
        raise ValueError(f"bad settings for {name}: {err}") from None


__all__ = [
    "METHODS",
    "AENGCNNSearch",
    "AENGCNNSettings",
    "AENSearch",
    "AENSettings",
    "BackboneSettings",
    "CandidateRecord",
    "CloneSettings",
    "ConstraintRelaxation",
    "EquiNASD",
    "EquiNASDSettings",
    "EquiNASE",
    "EquiNASESettings",
    "EquiNASG",
    "EquiNASGSettings",
    "Evaluator",
    "FixedGroups",
    "FixedSettings",
    "LPSSearch",
    "LPSSettings",
    "GridSearch",
    "GridSettings",
    "LayerKindSettings",
    "PriorRelaxed",
    "PriorSettings",
    "RPPBaseline",
    "RandomSearch",
    "RandomSettings",
    "RelaxedConvBaseline",
    "RunDirectory",
    "SearchContext",
    "SearchMethod",
    "SearchResult",
    "SymmetryBreakingSearch",
    "SymmetryBreakingSettings",
    "SymmetryCloning",
    "best_of",
    "make_method",
    "run_search",
]
