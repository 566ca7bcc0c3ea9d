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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from equinas.models import build_model, describe_layers
from equinas.search.base import Evaluator, SearchContext, SearchResult, best_of
from equinas.search.evaluate import candidate_seed, measure_equivariance
from equinas.search.records import CandidateRecord
from equinas.search.space import search_space, space_names
from equinas.settings import Settings, same_as, setting
from equinas.train import TrainConfig, evaluate
from equinas.train.cost import ComputeMeter
from equinas.train.norm_stats import recalibrate_batch_norm
from equinas.train.rng import derived_generator
from equinas.train.runtime import amp_dtype


@dataclass(frozen=True)
class EquiNASDSettings(Settings):
    """``prior > 0`` starts ``alpha`` at 0 for the ambient group and ``-prior`` for the rest.

    ``groups`` are the candidates of every mixed layer (default: the whole subgroup lattice of
    the ambient group; ``("paper",)``: the paper's {D4, C4, D1, C2, C1}). The mixed network
    trains ``search_epochs`` (default: the run's epochs); its architecture steps follow every
    ``arch_every``-th weight step from epoch ``warmup_epochs`` on (see ``TrainConfig``).
    ``finetune_epochs`` continue the discretized network from the mixed weights; ``retrain``
    trains it from scratch for the run's epochs. ``arch_lr``, ``arch_weight_decay``,
    ``arch_every`` and ``warmup_epochs`` set the ``TrainConfig`` fields of the mixed network's
    training (``arch_*``).
    """

    groups: tuple[str, ...] | None = setting(
        None,
        check=space_names,
        subgroups=True,
        help="candidate groups of every mixed layer; 'paper': D4,C4,D1,C2,C1 (default: the whole lattice)",
    )
    arch_lr: float = setting(0.2, above=0, help="Adam learning rate of the architecture logits alpha")
    search_epochs: float | None = setting(
        None, above=0, help="epochs of the mixed network (default: --epochs)"
    )
    arch_weight_decay: float = same_as(TrainConfig, "arch_weight_decay")
    prior: float = setting(
        0.0, at_least=0, help="start alpha at 0 for the ambient group and -prior for the others"
    )
    arch_every: int = same_as(TrainConfig, "arch_every")
    warmup_epochs: float = setting(
        0.0,
        at_least=0,
        replaces="arch_warmup_epochs",
        help="epochs of weight training before the architecture steps start",
    )
    finetune_epochs: float = setting(
        0.0, at_least=0, help="epochs that continue the discretized network from the mixed weights"
    )
    retrain: bool = setting(True, help="train the discretized network from scratch for --epochs")


def alpha_trajectories(
    initial: dict[str, dict[str, float]], history: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``[{"epoch": e, "layers": {layer: {group: z}}}]`` from epoch 0 (initial) on."""
    points = [{"epoch": 0.0, "layers": initial}]
    for record in history:
        if "architecture" in record:
            points.append({"epoch": float(record["epoch"]), "layers": record["architecture"]})
    return points


class EquiNASD:
    """Differentiable equivariance-aware NAS; see the module docstring."""

    name: ClassVar[str] = "equinas_d"

    def __init__(self, settings: EquiNASDSettings | None = None):
        self.settings = settings or EquiNASDSettings()

    def run(self, ctx: SearchContext) -> SearchResult:
        s = self.settings
        ev = Evaluator(ctx, self.name)
        groups = [g.name for g in search_space(ctx.backbone.ambient, s.groups)]
        options: dict[str, Any] = {"prior": s.prior} if s.prior else {}
        spec = ctx.backbone.spec(ctx.data, "C1", kind="mixed", **options).to_dict()
        for layer in spec["layers"]:
            layer["groups"] = groups
        initial = build_model(spec).architecture_summary()
        train = ctx.train_dict(
            epochs=s.search_epochs or ctx.train.epochs,
            arch_lr=s.arch_lr,
            arch_weight_decay=s.arch_weight_decay,
            arch_every=s.arch_every,
            arch_warmup_epochs=s.warmup_epochs,
        )
        (mixed,) = ev.evaluate([ev.job("mixed", spec, train=train, return_state=True)], label="mixed network")

        model = build_model(spec)
        model.load_state_dict(ctx.run.load_state("mixed"))
        discrete = model.projected()
        records = [mixed, ev.evaluate_here("discrete", lambda: self._discrete_record(ctx, discrete, mixed))]
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
        return SearchResult(self.name, best_of(records), records, extras=extras)

    def _discrete_record(
        self, ctx: SearchContext, model: torch.nn.Module, mixed: CandidateRecord
    ) -> CandidateRecord:
        """The discretized network evaluated without further training, computed in-process.

        Its batch-norm statistics are re-estimated first (as before every evaluation of the
        trainer, ``bn_recalibration`` batches): the kept candidate alone has another scale than
        the mixture the statistics were gathered on.
        """
        seed = candidate_seed(ctx.seed, "discrete")
        dtype = amp_dtype(ctx.train, next(model.parameters()).device)
        with ComputeMeter(model, ctx.data.train.batch(0)) as meter:
            recalibrate_batch_norm(
                model,
                ctx.data.train,
                ctx.train.bn_recalibration,
                ctx.train.batch_size,
                derived_generator(seed, "bn-recalibration", 0),
                dtype,
            )
            val = evaluate(model, ctx.data.val, ctx.train.eval_batch_size, autocast_dtype=dtype)
            test = evaluate(model, ctx.data.test, ctx.train.eval_batch_size, autocast_dtype=dtype)
            equivariance = measure_equivariance(model, ctx.data)
        cost = meter.cost()
        spec = model.spec.to_dict()
        return CandidateRecord(
            candidate_id="discrete",
            method=self.name,
            spec=spec,
            groups=describe_layers(spec),
            params=model.num_parameters(),
            val_acc=val["acc"],
            test_acc=test["acc"],
            val_loss=val["loss"],
            test_loss=test["loss"],
            epochs=0.0,
            lineage_epochs=mixed.lineage_epochs,
            parent_id="mixed",
            mutation="discretize",
            seed=seed,
            time_s=cost.train_seconds,
            equivariance=equivariance,
            cost=cost.to_dict(),
        )
