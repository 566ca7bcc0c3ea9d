"""Approximate-equivariance methods of seed 003: ``lps`` and ``symmetry_breaking``.

Each trains one network of its model family (``equinas.models.lps``,
``equinas.models.symmetry_breaking``) through the shared Evaluator, so records, costs,
resumption and reports are those of every other method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from equinas.models.lps import LPSSpec
from equinas.models.symmetry_breaking import SymmetryBreakingSpec
from equinas.search.base import Evaluator, SearchContext, SearchResult
from equinas.search.records import CandidateRecord
from equinas.settings import Settings, same_as, setting


@dataclass(frozen=True)
class LPSSettings(Settings):
    """LPS: ``phi`` is the backbone with every layer constrained to ``group`` (default C1, a plain
    CNN); ``p`` a G-CNN over the ambient group with ``pnet_channels`` fields and
    ``pnet_kernel`` kernels; ``train_samples`` Gumbel draws per image in training
    (``temperature``; gradient ``estimator``: ``straight_through`` or ``score_function``);
    evaluation ``exact`` (the sum over the group, exactly invariant, |G| passes of phi) or
    ``sample`` (``eval_samples`` draws)."""

    group: str = setting("C1", subgroups=True, help="group of every layer of phi (C1: a plain CNN)")
    pnet_channels: int = same_as(LPSSpec, "pnet_channels")
    pnet_kernel: int = same_as(LPSSpec, "pnet_kernel")
    train_samples: int = same_as(LPSSpec, "train_samples")
    temperature: float = same_as(LPSSpec, "temperature")
    estimator: str = same_as(LPSSpec, "estimator")
    eval_mode: str = same_as(LPSSpec, "eval_mode")
    eval_samples: int = same_as(LPSSpec, "eval_samples")


class LPSSearch:
    """LPS (Kim et al. 2023): a backbone symmetrized by a learned distribution over the ambient group."""

    name: ClassVar[str] = "lps"

    def __init__(self, settings: LPSSettings | None = None):
        self.settings = settings or LPSSettings()

    def run(self, ctx: SearchContext) -> SearchResult:
        s = self.settings
        ev = Evaluator(ctx, self.name)
        spec = LPSSpec(
            backbone=ctx.backbone.spec(ctx.data, s.group).to_dict(),
            ambient=ctx.backbone.ambient,
            in_channels=ctx.data.in_channels,
            pnet_channels=s.pnet_channels,
            pnet_kernel=s.pnet_kernel,
            train_samples=s.train_samples,
            temperature=s.temperature,
            estimator=s.estimator,
            eval_mode=s.eval_mode,
            eval_samples=s.eval_samples,
        )
        (record,) = ev.evaluate([ev.job(f"lps-{s.group}", spec.to_dict())], label=self.name)
        return SearchResult(self.name, record, [record])


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


class SymmetryBreakingSearch:
    """Symmetry breaking (Ashman et al. 2024): a G-CNN fed learned, untransformed input maps."""

    name: ClassVar[str] = "symmetry_breaking"

    def __init__(self, settings: SymmetryBreakingSettings | None = None):
        self.settings = settings or SymmetryBreakingSettings()

    def run(self, ctx: SearchContext) -> SearchResult:
        s = self.settings
        if ctx.backbone.backbone != "plain":
            raise ValueError(
                f"symmetry_breaking builds on the plain backbone, got --backbone {ctx.backbone.backbone}"
            )
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
