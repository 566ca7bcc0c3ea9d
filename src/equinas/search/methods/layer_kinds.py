"""Relaxed-layer baselines: one network whose every layer is of a relaxed kind (rpp, rgconv, cr)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from equinas.search.base import Evaluator, SearchContext, SearchMethod, SearchResult
from equinas.settings import Settings, setting


@dataclass(frozen=True)
class LayerKindSettings(Settings):
    """A network whose every layer is of ``kind`` over ``group`` (with the kind's ``options``)."""

    group: str = setting("D4", subgroups=True, help="group of every layer")
    options: dict[str, Any] = setting(
        factory=dict, metavar="KEY=VALUE", help="option of the layer kind, e.g. free_decay=1e-3 (repeatable)"
    )


class LayerKindBaseline(SearchMethod[LayerKindSettings]):
    """RPP (kind ``rpp``), relaxed group conv (``rgconv``) or constraint relaxation (``cr``)."""

    kind: ClassVar[str]
    settings_class = LayerKindSettings

    def resolve(self, ctx: SearchContext) -> LayerKindSettings:
        return self.settings

    def run(self, ctx: SearchContext) -> SearchResult:
        s = self.settings
        ev = Evaluator(ctx, self.name)
        spec = ctx.backbone.spec(ctx.data, s.group, kind=self.kind, **s.options)
        (record,) = ev.evaluate([ev.job(f"{self.name}-{s.group}", spec)], label=self.name)
        return SearchResult(self.name, record, [record])


class RPPBaseline(LayerKindBaseline):
    """Residual pathway priors: every layer an equivariant plus a prior-weighted free path.

    One network whose layers may leave equivariance where the data pays for the penalty on the
    free path. Cost: about one network (with the free path's extra parameters).
    """

    kind = name = "rpp"


class RelaxedConvBaseline(LayerKindBaseline):
    """Relaxed group convolutions (Wang et al. 2022): kernel banks with per-element weights.

    One network whose layers learn how far to break the group. Cost: about one network (with a
    bank of kernels per layer).
    """

    kind = name = "rgconv"


class ConstraintRelaxation(LayerKindBaseline):
    """Constraint relaxation (Pertigkiozoglou et al. 2024): a free term scheduled to 0, ends equivariant.

    One network trains with a non-equivariant term whose weight goes to zero, so the network it
    ends with is exactly equivariant. Cost: about one network.
    """

    kind = name = "cr"
