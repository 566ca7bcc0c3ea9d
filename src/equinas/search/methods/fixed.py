"""Fixed G-CNN baselines: one network per group (or named architecture), every layer constrained."""

from __future__ import annotations

from dataclasses import dataclass

from equinas.models.backbone import named_spec
from equinas.search.base import Evaluator, SearchContext, SearchMethod, SearchResult
from equinas.search.selection import best_of
from equinas.settings import Settings, setting

PAPER_GROUPS = ("C1", "C2", "C4", "D1", "D2", "D4")


@dataclass(frozen=True)
class FixedSettings(Settings):
    """One G-CNN per group, every layer constrained to it (widths by the backbone's width_rule),
    or per named architecture (``paper:rotmnist-1``: a group per layer of the 8-layer backbone)."""

    groups: tuple[str, ...] = setting(
        PAPER_GROUPS,
        subgroups=True,
        architectures=True,
        help="one fixed G-CNN per group (every layer) or paper architecture (paper:rotmnist-1, ...)",
    )


def fixed_networks(ctx: SearchContext, method: str, groups: list[str]) -> SearchResult:
    """One network per group (or named architecture) of ``groups``, the best by validation accuracy."""
    ev = Evaluator(ctx, method)
    # candidate ids (hence seeds) depend on the group only: fixed-C4 of a grid is fixed-C4
    jobs = [ev.job(f"fixed-{g.replace(':', '-')}", named_spec(g, ctx.backbone, ctx.data)) for g in groups]
    records = ev.evaluate(jobs, label="fixed G-CNNs")
    return SearchResult(method, best_of(records), records)


class FixedGroups(SearchMethod[FixedSettings]):
    """Fixed G-CNN baselines: one network per group, every layer constrained to it.

    Each group of ``--groups`` (or named architecture) trains one network for ``--epochs``; the
    best by validation accuracy is the result. Cost: one network per entry of ``--groups``.
    """

    name = "fixed"
    settings_class = FixedSettings

    def resolve(self, ctx: SearchContext) -> FixedSettings:
        return self.settings

    def run(self, ctx: SearchContext) -> SearchResult:
        return fixed_networks(ctx, self.name, list(self.settings.groups))
