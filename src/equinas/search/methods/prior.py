"""The paper's "prior" baselines: a network trained under one group, then relaxed to subgroups."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from equinas.morphisms import relax_network
from equinas.search.base import Evaluator, SearchContext, SearchMethod, SearchResult
from equinas.search.run_directory import spec_network
from equinas.search.selection import best_of
from equinas.settings import Settings, setting


@dataclass(frozen=True)
class PriorSettings(Settings):
    """Train the ``prior`` network for ``prior_fraction`` of the budget, relax every layer to each
    target group, train the rest of the budget (the paper's "D4 prior" networks)."""

    prior: str = setting("D4", subgroups=True, help="group of every layer while the prior trains")
    targets: tuple[str, ...] = setting(
        ("C4", "C1"), subgroups=True, within="prior", help="subgroups of --prior the network is relaxed to"
    )
    prior_fraction: float = setting(0.5, above=0, below=1, help="share of --epochs spent under the prior")
    prior_epochs: float | None = setting(
        None, above=0, help="epochs under the prior (default: --prior-fraction of --epochs)"
    )


class PriorRelaxed(SearchMethod[PriorSettings]):
    """ "Prior" baselines: a network trained under one group, then relaxed to a fixed subgroup.

    The ``--prior`` network trains for ``--prior-fraction`` of ``--epochs``; each target group
    continues from it, relaxed by the morphism, for the rest. Cost: one network for the prior
    part plus the rest of the budget per target (1.5 networks with the defaults).
    """

    name = "prior"
    settings_class = PriorSettings

    def resolve(self, ctx: SearchContext) -> PriorSettings:
        """``prior_epochs`` decided (``prior_fraction`` of the run's epochs); ``ValueError`` when
        it leaves no epochs for the relaxed networks."""
        s = self.settings
        first = ctx.train.epochs * s.prior_fraction if s.prior_epochs is None else s.prior_epochs
        if not first < ctx.train.epochs:
            raise s.fail("prior_epochs", f"{first:g} leaves nothing of --epochs {ctx.train.epochs:g}")
        return dataclasses.replace(s, prior_epochs=first)

    def run(self, ctx: SearchContext) -> SearchResult:
        s = self.settings
        ev = Evaluator(ctx, self.name)
        first = s.prior_epochs
        assert first is not None, "run_search resolves prior_epochs"
        (root,) = ev.evaluate(
            [
                ev.job(
                    f"prior-{s.prior}",
                    ctx.backbone.spec(ctx.data, s.prior),
                    train=ctx.train_dict(epochs=first),
                    return_state=True,
                )
            ],
            label=f"{s.prior} prior",
        )
        model = ctx.run.trained_model(root)
        jobs = []
        for target in s.targets:
            child = model
            for layer in range(model.num_layers):
                child = spec_network(relax_network(child, layer, target))
            jobs.append(
                ev.job(
                    f"prior-{s.prior}-to-{target}",
                    child.spec,
                    state=child.state_dict(),
                    parent_id=root.candidate_id,
                    mutation=f"all:{s.prior}->{target}",
                    lineage_epochs=root.lineage_epochs,
                    train=ctx.train_dict(epochs=ctx.train.epochs - first),
                )
            )
        records = ev.evaluate(jobs, label="relaxed priors")
        return SearchResult(self.name, best_of(records), [root, *records])
