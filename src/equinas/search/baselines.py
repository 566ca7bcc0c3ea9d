"""Baselines judged against EquiNAS: fixed G-CNNs, D4-prior relaxed networks, RPP, random search.

All run through the same Evaluator, so they share budgets, seeds, records and executors.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from equinas.groups import subgroups
from equinas.models import build_model
from equinas.models.backbone import named_spec
from equinas.morphisms import relax_network
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


@dataclass(frozen=True)
class LayerKindSettings(Settings):
    """A network whose every layer is of ``kind`` over ``group`` (with the kind's ``options``)."""

    group: str = setting("D4", subgroups=True, help="group of every layer")
    options: dict[str, Any] = setting(
        factory=dict, metavar="KEY=VALUE", help="option of the layer kind, e.g. free_decay=1e-3 (repeatable)"
    )


class LayerKindBaseline:
    """RPP (kind ``rpp``), relaxed group conv (``rgconv``) or constraint relaxation (``cr``)."""

    kind: ClassVar[str]
    name: ClassVar[str]

    def __init__(self, settings: LayerKindSettings | None = None):
        self.settings = settings or LayerKindSettings()

    def run(self, ctx: SearchContext) -> SearchResult:
        s = self.settings
        ev = Evaluator(ctx, self.name)
        spec = ctx.backbone.spec(ctx.data, s.group, kind=self.kind, **s.options)
        (record,) = ev.evaluate([ev.job(f"{self.name}-{s.group}", spec)], label=self.name)
        return SearchResult(self.name, record, [record])


class RPPBaseline(LayerKindBaseline):
    """Residual pathway priors: every layer an equivariant plus a prior-weighted free path."""

    kind = name = "rpp"


@dataclass(frozen=True)
class RandomSettings(Settings):
    """``samples`` architectures with every layer's group drawn uniformly from the lattice."""

    samples: int = setting(4, at_least=1, help="architectures drawn")


class RandomSearch:
    """Random search over per-layer groups from the ambient subgroup lattice."""

    name: ClassVar[str] = "random"

    def __init__(self, settings: RandomSettings | None = None):
        self.settings = settings or RandomSettings()

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


class RelaxedConvBaseline(LayerKindBaseline):
    """Relaxed group convolutions (Wang et al. 2022): kernel banks with per-element weights."""

    kind = name = "rgconv"


class ConstraintRelaxation(LayerKindBaseline):
    """Constraint relaxation (Pertigkiozoglou et al. 2024): a free term scheduled to 0, ends equivariant."""

    kind = name = "cr"
