"""The grid: one fixed G-CNN per subgroup of the ambient lattice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from equinas.groups import subgroups
from equinas.search.base import SearchContext
from equinas.search.methods.fixed import FixedGroups
from equinas.settings import Settings


@dataclass(frozen=True)
class GridSettings(Settings):
    """The grid has no settings: it trains one network per subgroup of the ambient group."""


class GridSearch(FixedGroups):
    """Grid: one fixed G-CNN per subgroup of the ambient lattice, the best by validation accuracy."""

    name: ClassVar[str] = "grid"

    def __init__(self, settings: GridSettings | None = None):
        self.settings = settings or GridSettings()

    def groups(self, ctx: SearchContext) -> list[str]:
        return [g.name for g in subgroups(ctx.backbone.ambient)]
