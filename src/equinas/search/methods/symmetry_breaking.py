"""Symmetry breaking (Ashman et al. 2024): one network of the ``equinas.models.symmetry_breaking`` family."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from equinas.models.symmetry_breaking import SymmetryBreakingSpec
from equinas.search.base import Evaluator, SearchContext, SearchMethod, SearchResult
from equinas.search.record import CandidateRecord
from equinas.settings import Settings, same_as, setting


@dataclass(frozen=True)
class SymmetryBreakingSettings(Settings):
    """The G-CNN of the backbone over ``group`` (default: the ambient group) fed
    ``breaking_inputs`` learned maps beside the image, with ``layer_maps`` also a learned map
    added to every block's output; ``l2`` weights the penalty ``sum ||t||^2`` of the maps,
    which start at ``init_scale * N(0, 1)`` (0: exactly equivariant at the start)."""

    group: str | None = setting(
        None, subgroups=True, help="group of every layer of the G-CNN (default: the ambient group)"
    )
    breaking_inputs: int = same_as(SymmetryBreakingSpec, "breaking_inputs", 2)
    layer_maps: bool = same_as(SymmetryBreakingSpec, "layer_maps")
    l2: float = same_as(SymmetryBreakingSpec, "l2", 1e-4)
    init_scale: float = same_as(SymmetryBreakingSpec, "init_scale")


def equivariance_trajectory(record: CandidateRecord) -> list[dict[str, Any]]:
    """``[{"epoch", "output", "layers", "breaking_norm"}]`` from the epochs of a record's history."""
    points = []
    for epoch in record.extra.get("history", []):
        arch = epoch.get("architecture") or {}
        if "equivariance" in arch:
            points.append(
                {"epoch": epoch["epoch"], **arch["equivariance"], "breaking_norm": arch.get("breaking_norm")}
            )
    return points


class SymmetryBreakingSearch(SearchMethod[SymmetryBreakingSettings]):
    """Symmetry breaking (Ashman et al. 2024): a G-CNN fed learned, untransformed input maps.

    The maps start at zero (exactly equivariant) and learn how much symmetry to break, under an
    L2 penalty. Cost: about one network (1.1 measured).
    """

    name = "symmetry_breaking"
    settings_class = SymmetryBreakingSettings

    def resolve(self, ctx: SearchContext) -> SymmetryBreakingSettings:
        """``group`` decided (default: the ambient group); ``ValueError`` unless the backbone is plain."""
        if ctx.backbone.backbone != "plain":
            raise ValueError(
                f"symmetry_breaking builds on the plain backbone, got --backbone {ctx.backbone.backbone}"
            )
        return dataclasses.replace(self.settings, group=self.settings.group or ctx.backbone.ambient)

    def run(self, ctx: SearchContext) -> SearchResult:
        s = self.settings
        group = s.group or ctx.backbone.ambient
        ev = Evaluator(ctx, self.name)
        spec = SymmetryBreakingSpec(
            network=ctx.backbone.spec(ctx.data, group).to_dict(),
            image_size=ctx.data.image_size,
            breaking_inputs=s.breaking_inputs,
            layer_maps=s.layer_maps,
            l2=s.l2,
            init_scale=s.init_scale,
        )
        cid = f"symmetry_breaking-{group}-k{s.breaking_inputs}" + ("-maps" if s.layer_maps else "")
        (record,) = ev.evaluate([ev.job(cid, spec.to_dict())], label=self.name)
        extras = {"equivariance_trajectory": equivariance_trajectory(record)}
        return SearchResult(self.name, record, [record], extras=extras)
