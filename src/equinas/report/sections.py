"""A run's method-specific report sections, keyed by the ``result.json`` extras that carry them.

A method that records an extra gets its plot or its lines in ``report.md`` by one entry here;
the report itself names no method.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from equinas.report import plots
from equinas.report.tables import number

# plot(extra, lattice of the ambient group, folder, title) -> the PNG written
PlotSection = Callable[[Any, list[str], Path, str], Path]


def _generations(extra: Any, lattice: list[str], folder: Path, title: str) -> Path:
    return plots.groups_per_generation(extra, lattice, folder / "groups_per_generation.png", title)


def _groups_over_training(extra: Any, lattice: list[str], folder: Path, title: str) -> Path:
    return plots.groups_over_training(extra, lattice, folder / "groups_over_training.png", title)


def _alpha(extra: Any, lattice: list[str], folder: Path, title: str) -> Path:
    return plots.alpha_trajectories(extra, folder / "alpha_trajectories.png", title)


# extra -> (name of the plot in the report, how to draw it)
PLOTS: dict[str, tuple[str, PlotSection]] = {
    "generations": ("generations", _generations),  # EquiNAS_E
    "groups_over_training": ("groups", _groups_over_training),  # EquiNAS_G
    "alpha": ("alpha", _alpha),  # EquiNAS_D
}


def _search_overhead(extra: Any) -> list[str]:
    return [f"- search overhead (search time / training the final network alone): {number(extra, '.2f')}x"]


def _equivariance_trajectory(extra: Any) -> list[str]:
    if not extra:
        return []
    errors = ", ".join(number(p["output"], ".2g") for p in extra)
    return [f"- output equivariance error per epoch (ambient group, training images): {errors}"]


def _decisions(extra: Any) -> list[str]:
    if not extra:
        return []
    moves = [
        f"- epoch {d['epoch']:.3g}: layer {m['layer']} {m['from']} -> {m['to']} "
        f"({m['tests'][m['to']]['signal'] / max(m['tests'][m['to']]['noise'], 1e-30):.3g}, "
        f"p {m['tests'][m['to']]['p']:.2g})"
        for d in extra
        for m in d["layers"]
        if m["to"] is not None
    ]
    return [
        "",
        "## Relaxations (signal / noise and p-value of the chosen subgroup's test)",
        "",
        *(moves or ["- none"]),
    ]


# extra -> its lines of report.md, in this order after the summary
LINES: dict[str, Callable[[Any], list[str]]] = {
    "search_overhead": _search_overhead,  # EquiNAS_D with retrain
    "equivariance_trajectory": _equivariance_trajectory,  # symmetry_breaking
    "decisions": _decisions,  # EquiNAS_G
}
