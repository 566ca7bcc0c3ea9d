"""The grid: one fixed G-CNN per subgroup of the ambient lattice."""

from __future__ import annotations

from dataclasses import dataclass

from equinas.groups import subgroups
from equinas.search.base import SearchContext, SearchMethod, SearchResult
from equinas.search.methods.fixed import fixed_networks
from equinas.settings import Settings


@dataclass(frozen=True)
class GridSettings(Settings):
    """The grid has no settings: it trains one network per subgroup of the ambient group."""


class GridSearch(SearchMethod[GridSettings]):
    """Grid: one fixed G-CNN per subgroup of the ambient lattice, the best by validation accuracy.

    The obvious alternative to a search. Cost: one network per subgroup (10 for D4, 19 for D8).
    """

    name = "grid"
    settings_class = GridSettings

    def resolve(self, ctx: SearchContext) -> GridSettings:
        return self.settings

    def run(self, ctx: SearchContext) -> SearchResult:
        return fixed_networks(ctx, self.name, [g.name for g in subgroups(ctx.backbone.ambient)])
