"""EquiNAS_D: differentiable search with [G]-mixed layers (paper Alg. 2).

Every layer of the backbone is a [G]-mixed layer over ``groups`` (default: the whole
subgroup lattice of the ambient group) with architecture logits ``alpha``. Weights are
trained on the train split and ``alpha`` on the held-out search split (the validation
split) in alternating first-order steps with their own Adam optimizer (the trainer's
bilevel mode). The result is the per-layer distribution ``z = softmax(alpha)`` over groups
and a discretized ArchSpec (the largest ``z`` per layer), which can be fine-tuned from the
mixed weights and/or retrained from scratch -- the latter also measures the search
overhead (search time / time to train the final network alone). The best of the mixed
network (an approximately equivariant model, as the paper evaluates it) and these
discretized networks by validation accuracy is the search's result.

Progressive discretisation (``decide_at > 0``, the default recipe): the mixture starts near
the ambient group (``prior``) and only the weights train at first (``warmup_epochs``); then
``alpha`` learns, and the layers take turns front to back (``stagger``): each in its share of
the decision window keeps the better half of its candidates (largest ``alpha``), again and
again, until one is left (``nn.mixed.HalvingSchedule``; every halving gets twice the time of
the one before). So a layer decides once the layers before it have, on weights trained for a
while, and no candidate is dropped on a few batches' evidence (the paper recipe's first
epoch decides everything at once: rich get richer). Architecture steps stop at the end of the
window and the same run goes on training the network it decided on to the end of
``search_epochs``; once decided, the mixed network computes exactly the discretized one,
which is the result. Why the turns: breaking a symmetry (the mirror of digits, say) pays in
any one layer, so when all layers decide at once each can leave it to the others and none
breaks it.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, ClassVar

from equinas.models import build_model
from equinas.nn.mixed import HalvingSchedule
from equinas.search.base import Evaluator, SearchContext, SearchMethod, SearchResult
from equinas.search.evaluate import candidate_seed, score_here
from equinas.search.run_directory import spec_network
from equinas.search.selection import best_of
from equinas.search.space import search_space, space_names
from equinas.settings import Settings, same_as, setting
from equinas.train import TrainConfig
from equinas.train.config import ARCHITECTURE_STEPS

# the default search (one lineage) trains 4/3 of the run's epochs: with the default decision
# window (architecture steps from 5/24 to 5/8 of it) about 1.9 fixed networks of compute
SEARCH_EPOCHS_PER_RUN_EPOCH = 4 / 3


@dataclass(frozen=True)
class EquiNASDSettings(Settings):
    """The search's recipe; the defaults are the progressive one of the module docstring.

    ``groups`` are the candidates of every mixed layer (default: the whole subgroup lattice of
    the ambient group; ``("paper",)``: the paper's {D4, C4, D1, C2, C1}). ``prior > 0``
    starts ``alpha`` at 0 for the ambient group and ``-prior`` for the rest (2: the ambient
    group holds 45 % of a 10-group mixture). The mixed network trains ``search_epochs``
    (default: 4/3 of the run's epochs); its architecture steps (Adam, ``arch_lr``) follow
    every ``arch_every``-th weight step from epoch ``warmup_epochs`` on (see ``TrainConfig``).
    ``decide_at`` in ``(0, 1)``: the layers halve their candidates (``HalvingSchedule``) within
    the window from ``warmup_epochs`` (default: a third of the window's end) to ``decide_at``
    of the search epochs, and architecture steps stop at its end; with ``stagger`` the layers
    take turns front to back, each in its own ``1/L`` of the window, so that a layer decides
    knowing the groups of the layers before it; ``normalize`` mixes candidate filters of equal
    norm (``MixedGroupConv``). ``decide_at = 0`` keeps every candidate to the end: the paper's
    recipe is ``decide_at=0, prior=0, arch_lr=0.2, warmup_epochs=0, normalize=False,
    search_epochs=<the run's epochs>, retrain=True``. ``finetune_epochs`` continue the
    discretized network from the mixed weights; ``retrain`` trains it from scratch for the
    run's epochs. ``arch_lr``, ``arch_weight_decay``, ``arch_every``, ``warmup_epochs`` and
    ``decide_at`` set the ``TrainConfig`` fields of the mixed network's training (``arch_*``).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({ARCHITECTURE_STEPS})

    groups: tuple[str, ...] | None = setting(
        None,
        check=space_names,
        subgroups=True,
        help="candidate groups of every mixed layer; 'paper': D4,C4,D1,C2,C1 (default: the whole lattice)",
    )
    arch_lr: float = setting(0.05, above=0, help="Adam learning rate of the architecture logits alpha")
    search_epochs: float | None = setting(
        None, above=0, help="epochs of the mixed network (default: 4/3 of --epochs)"
    )
    arch_weight_decay: float = same_as(TrainConfig, "arch_weight_decay")
    prior: float = setting(
        2.0, at_least=0, help="start alpha at 0 for the ambient group and -prior for the others"
    )
    arch_every: int = same_as(TrainConfig, "arch_every")
    warmup_epochs: float | None = setting(
        None,
        at_least=0,
        replaces="arch_warmup_epochs",
        help="epochs of weight training before the architecture steps start (default: 0 with "
        "--decide-at 0, else a third of the decision's time)",
    )
    decide_at: float = setting(
        0.625,
        at_least=0,
        below=1,
        replaces="arch_epochs",
        help="fraction of the search by which every layer has halved its candidates down to one "
        "(0: keep every candidate to the end, the paper's recipe)",
    )
    stagger: bool = setting(True, help="layers halve their candidates in turns, front to back")
    normalize: bool = setting(True, help="mix candidate filters rescaled to equal norm")
    finetune_epochs: float = setting(
        0.0, at_least=0, help="epochs that continue the discretized network from the mixed weights"
    )
    retrain: bool = setting(False, help="train the discretized network from scratch for --epochs")

    def halving(self, search_epochs: float, layers: int) -> list[HalvingSchedule] | None:
        """The pruning schedule of each of ``layers`` mixed layers in a search of
        ``search_epochs`` (``None``: no pruning); ``ValueError`` when ``warmup_epochs`` leaves
        no window to decide in. With ``stagger``, layer ``l`` of ``L`` halves within the ``l``-th
        of ``L`` equal parts of the window: one layer after the other, front to back."""
        if not self.decide_at:
            return None
        end = self.decide_at * search_epochs
        begin = end / 3 if self.warmup_epochs is None else self.warmup_epochs
        if not begin < end:
            raise ValueError(
                f"warmup_epochs ({begin:g}) must end before the decision at {end:g} epochs "
                f"(decide_at {self.decide_at:g} of {search_epochs:g} search epochs)"
            )
        if not self.stagger:
            return [HalvingSchedule(begin, end)] * layers
        part = (end - begin) / layers
        return [HalvingSchedule(begin + i * part, begin + (i + 1) * part) for i in range(layers)]


def alpha_trajectories(
    initial: dict[str, dict[str, float]], history: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``[{"epoch": e, "layers": {layer: {group: z}}}]`` from epoch 0 (initial) on."""
    points = [{"epoch": 0.0, "layers": initial}]
    for record in history:
        if "architecture" in record:
            points.append({"epoch": float(record["epoch"]), "layers": record["architecture"]})
    return points


class EquiNASD(SearchMethod[EquiNASDSettings]):
    """Differentiable equivariance-aware NAS (EquiNAS_D): mixed layers whose group weights are learned.

    Every layer is a [G]-mixed layer over candidate groups weighted by softmax(alpha), learned
    by first-order bilevel steps; the default recipe halves each layer's candidates in turns
    until one group is left, then goes on training the network it found. Cost: about 1.9
    networks (the mixed network trains 4/3 of ``--epochs``); see the module docstring.
    """

    name = "equinas_d"
    settings_class = EquiNASDSettings

    def resolve(self, ctx: SearchContext) -> EquiNASDSettings:
        """``search_epochs`` (default: 4/3 of the run's epochs) and ``warmup_epochs`` (default: a
        third of the decision window's end, 0 without pruning) decided; ``ValueError`` when the
        warmup leaves no window to decide in."""
        s = self.settings
        epochs = s.search_epochs or SEARCH_EPOCHS_PER_RUN_EPOCH * ctx.train.epochs
        halving = s.halving(epochs, 1)
        warmup = (s.warmup_epochs or 0.0) if halving is None else halving[0].begin
        return dataclasses.replace(s, search_epochs=epochs, warmup_epochs=warmup)

    def run(self, ctx: SearchContext) -> SearchResult:
        s = self.settings
        ev = Evaluator(ctx, self.name)
        groups = [g.name for g in search_space(ctx.backbone.ambient, s.groups)]
        epochs = s.search_epochs
        if epochs is None:
            raise ValueError("EquiNAS_D runs on resolved settings (run_search resolves them)")
        options: dict[str, Any] = {"prior": s.prior} if s.prior else {}
        if s.normalize:
            options["normalize"] = True
        spec = ctx.backbone.spec(ctx.data, "C1", kind="mixed", **options).to_dict()
        for layer in spec["layers"]:
            layer["groups"] = groups
        warmup, arch_epochs = s.warmup_epochs or 0.0, None
        halving = s.halving(epochs, len(spec["layers"]))
        if halving is not None:
            for layer, schedule in zip(spec["layers"], halving, strict=True):
                layer["options"] = {**layer.get("options", {}), "halving": [schedule.begin, schedule.end]}
            warmup = halving[0].begin
            arch_epochs = max(h.end for h in halving) - warmup
        initial = spec_network(build_model(spec)).architecture_summary()
        train = ctx.train_dict(
            epochs=epochs,
            arch_lr=s.arch_lr,
            arch_weight_decay=s.arch_weight_decay,
            arch_every=s.arch_every,
            arch_warmup_epochs=warmup,
            arch_epochs=arch_epochs,
        )
        (mixed,) = ev.evaluate([ev.job("mixed", spec, train=train, return_state=True)], label="mixed network")

        model = ctx.run.trained_model(mixed)
        discrete = model.projected()
        # scored after recalibrating its batch norms: the kept candidate alone has another
        # scale than the mixture the statistics were gathered on
        discrete_record = functools.partial(
            score_here,
            discrete,
            discrete.spec.to_dict(),
            ctx.data,
            ctx.train,
            "discrete",
            self.name,
            candidate_seed(ctx.seed, "discrete"),
            lineage_epochs=mixed.lineage_epochs,
            parent_id="mixed",
            mutation="discretize",
        )
        records = [mixed, ev.evaluate_here("discrete", discrete_record)]
        jobs = []
        if s.finetune_epochs > 0:
            jobs.append(
                ev.job(
                    "finetuned",
                    discrete.spec,
                    state=discrete.state_dict(),
                    parent_id="mixed",
                    mutation="finetune",
                    lineage_epochs=mixed.lineage_epochs,
                    train=ctx.train_dict(epochs=s.finetune_epochs),
                )
            )
        if s.retrain:
            jobs.append(ev.job("retrained", discrete.spec, mutation="retrain"))
        records += ev.evaluate(jobs, label="final network") if jobs else []
        extras: dict[str, Any] = {
            "alpha": alpha_trajectories(initial, mixed.extra.get("history", [])),
            "discrete_groups": discrete.spec.groups_per_layer(),
        }
        retrained = next((r for r in records if r.candidate_id == "retrained"), None)
        if retrained is not None and retrained.time_s > 0:
            extras["search_overhead"] = mixed.time_s / retrained.time_s
        decided = all(conv.num_active == 1 for _, conv in model.mixed_layers())
        # once decided, the mixed network computes the discrete one: report that network
        finalists = [r for r in records if not (decided and r.candidate_id == "mixed")]
        return SearchResult(self.name, best_of(finalists), records, extras=extras)
