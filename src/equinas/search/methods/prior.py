"""The paper's "prior" baselines: a network trained under one group, then relaxed to subgroups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from equinas.models import build_model
from equinas.morphisms import relax_network
from equinas.search.base import Evaluator, SearchContext, SearchResult, best_of
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


class PriorRelaxed:
    """ "Prior" baselines: a network trained under one group, then relaxed to a fixed subgroup."""

    name: ClassVar[str] = "prior"

    def __init__(self, settings: PriorSettings | None = None):
        self.settings = settings or PriorSettings()

    def run(self, ctx: SearchContext) -> SearchResult:
        s = self.settings
        ev = Evaluator(ctx, self.name)
        first = ctx.train.epochs * s.prior_fraction
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
        model = build_model(root.spec)
        model.load_state_dict(ctx.run.load_state(root.candidate_id))
        jobs = []
        for target in s.targets:
            child = model
            for layer in range(model.num_layers):
                child = relax_network(child, layer, target)
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
