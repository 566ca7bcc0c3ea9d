"""Fixed G-CNN baselines: one network per group (or named architecture), every layer constrained."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from equinas.models.backbone import named_spec
from equinas.search.base import Evaluator, SearchContext, SearchResult, best_of
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


class FixedGroups:
    """Fixed G-CNN baselines: one network per group, every layer constrained to it."""

    name: ClassVar[str] = "fixed"

    def __init__(self, settings: FixedSettings | None = None):
        self.settings = settings or FixedSettings()

    def groups(self, ctx: SearchContext) -> list[str]:
        return list(self.settings.groups)

    def run(self, ctx: SearchContext) -> SearchResult:
        ev = Evaluator(ctx, self.name)
        # candidate ids (hence seeds) depend on the group only: fixed-C4 of a grid is fixed-C4
        jobs = [
            ev.job(f"fixed-{g.replace(':', '-')}", named_spec(g, ctx.backbone, ctx.data))
            for g in self.groups(ctx)
        ]
        records = ev.evaluate(jobs, label="fixed G-CNNs")
        return SearchResult(self.name, best_of(records), records)
