"""Random search over per-layer groups from the ambient subgroup lattice."""

from __future__ import annotations

import random
from dataclasses import dataclass

from equinas.groups import subgroups
from equinas.search.base import Evaluator, SearchContext, SearchMethod, SearchResult
from equinas.search.selection import best_of
from equinas.settings import Settings, setting


@dataclass(frozen=True)
class RandomSettings(Settings):
    """``samples`` architectures with every layer's group drawn uniformly from the lattice."""

    samples: int = setting(4, at_least=1, help="architectures drawn")


class RandomSearch(SearchMethod[RandomSettings]):
    """Random search over per-layer groups from the ambient subgroup lattice.

    ``--samples`` architectures, each layer's group drawn uniformly, the best by validation
    accuracy. Cost: one network per sample.
    """

    name = "random"
    settings_class = RandomSettings

    def resolve(self, ctx: SearchContext) -> RandomSettings:
        return self.settings

    def run(self, ctx: SearchContext) -> SearchResult:
        ev = Evaluator(ctx, self.name)
        lattice = [g.name for g in subgroups(ctx.backbone.ambient)]
        rng = random.Random(f"random-search:{ctx.seed}")
        depth = len(ctx.backbone.spec(ctx.data, ctx.backbone.ambient).layers)
        jobs = [
            ev.job(
                f"random-{i:03d}", ctx.backbone.spec(ctx.data, [rng.choice(lattice) for _ in range(depth)])
            )
            for i in range(self.settings.samples)
        ]
        records = ev.evaluate(jobs, label="random search")
        return SearchResult(self.name, best_of(records), records)
