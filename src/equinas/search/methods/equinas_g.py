"""EquiNAS_G: find each layer's group while training ONE network, by tested relaxations.

Every layer starts at ``start_group`` (default: the ambient group) and the network trains for
the run's epochs as one run (one seed, schedule and batch order; the optimizer state restarts
with each part), cut into parts at the fractions ``decide_at`` of the budget. During each part
but the last, the gradients of its own training steps are recorded
(``equinas.search.relaxation_signal``): for every layer and every subgroup ``H`` of its group,
a sign-flip test of the null hypothesis "the directions an ``H``-layer frees carry no expected
gradient" (the data is symmetric there), with the signal and noise it estimates. The level of
one layer's test at one decision is ``alpha / (layers * decisions)``, so a run relaxes any layer
whose constraint costs nothing with chance at most ``alpha``. Each layer whose test rejects the
null for some ``H`` is relaxed, by the exact relaxation morphism, to the one of those with the
largest signal-to-noise ratio, and training goes on from the same function. A decision costs no
extra pass, and only the last part is scored (batch-norm recalibration, validation, test): the
whole search costs what training and scoring one network cost, counted in the records.

Records: one per part (``p00``, ``p01``, ...; the last is the found network, the others have
no accuracies). The decisions (``decisions.json`` and ``result.extras["decisions"]``: epoch,
layer, from, to, and the test of every candidate; announced as they are taken) are a pure
function of the stored parts, so a resumed run neither repeats nor loses one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from equinas.groups import parse_group
from equinas.models import ArchSpec
from equinas.morphisms import relax_network
from equinas.search.base import Evaluator, SearchContext, SearchMethod, SearchResult
from equinas.search.evaluate import candidate_seed
from equinas.search.record import CandidateRecord
from equinas.search.relaxation_signal import RelaxationSignal, decide
from equinas.search.run_directory import spec_network
from equinas.search.space import search_space, space_setting
from equinas.settings import Settings, setting
from equinas.train.config import step_at
from equinas.train.result import DIVERGENCE_ADVICE


@dataclass(frozen=True)
class EquiNASGSettings(Settings):
    """When relaxations are decided, the level of their tests, and the groups a layer may take;
    see the module docstring. Every part but the last must have enough training steps (the
    samples of its tests) for a test to reject at all; a run that would not is refused before
    training."""

    decide_at: tuple[float, ...] = setting(
        (0.1, 0.2, 0.3),
        above=0,
        below=1,
        help="fractions of the budget after which relaxations are decided (strictly increasing)",
    )
    alpha: float = setting(
        0.05,
        above=0,
        below=1,
        help="significance level of the run's relaxation tests: the chance that it relaxes any layer whose "
        "constraint costs nothing (each layer's test at each decision gets alpha / (layers * decisions))",
    )
    decide_epochs: tuple[float, ...] | None = setting(
        None, above=0, help="epochs after which relaxations are decided (default: --decide-at of --epochs)"
    )
    start_group: str | None = setting(
        None, subgroups=True, help="group of every layer at the start (default: the ambient group)"
    )
    space: tuple[str, ...] | None = space_setting()

    def check(self) -> None:
        fractions = self.decide_at
        if not fractions:
            raise self.fail("decide_at", "expected at least one fraction")
        if any(b <= a for a, b in zip(fractions, fractions[1:], strict=False)):
            raise self.fail("decide_at", f"expected strictly increasing fractions, got {fractions!r}")


class EquiNASG(SearchMethod[EquiNASGSettings]):
    """One network, each layer relaxed while it trains where a test finds its constraint costs loss.

    Every layer starts at the ambient group; at 10, 20 and 30 % of the budget (``--decide-at``)
    a sign-flip test on the gradients training computed anyway relaxes each layer whose
    constraint measurably costs loss, by the exact relaxation morphism. Cost: one network (no
    extra passes; only the end of the run is scored).
    """

    name = "equinas_g"
    settings_class = EquiNASGSettings

    def resolve(self, ctx: SearchContext) -> EquiNASGSettings:
        """``decide_epochs`` decided (``decide_at`` of the run's epochs); refuses, before any
        training, decisions out of order or past the end, and parts too short for a test to reject."""
        s, epochs = self.settings, ctx.train.epochs
        decide = s.decide_epochs or tuple(f * epochs for f in s.decide_at)
        if any(b <= a for a, b in zip(decide, decide[1:], strict=False)) or not decide[-1] < epochs:
            raise s.fail(
                "decide_epochs", f"expected increasing epochs below --epochs {epochs:g}, got {decide}"
            )
        resolved = dataclasses.replace(s, decide_epochs=decide)
        needed = min_steps(self._level(ctx))
        _check_parts(_bounds(resolved, epochs), len(ctx.data.train), ctx.train.batch_size, needed)
        return resolved

    def _level(self, ctx: SearchContext) -> float:
        """The level of one layer's test at one decision: ``alpha / (layers * decisions)``."""
        return self.settings.alpha / (len(ctx.backbone.layer_blocks()) * len(self.settings.decide_at))

    def run(self, ctx: SearchContext) -> SearchResult:
        s = self.settings
        ev = Evaluator(ctx, self.name)
        ambient = parse_group(ctx.backbone.ambient)
        space = search_space(ambient, s.space)
        bounds = _bounds(s, ctx.train.epochs)
        spec = ctx.backbone.spec(ctx.data, s.start_group or ctx.backbone.ambient)
        state: dict[str, Any] | None = None
        parent: CandidateRecord | None = None
        trace: list[dict[str, Any]] = []
        parts = []
        for part, (start, stop) in enumerate(zip(bounds, bounds[1:], strict=False)):
            last = part == len(bounds) - 2
            job = ev.job(
                f"p{part:02d}",
                spec,
                state=state,
                train=ctx.train_dict(span=[start, stop]),
                generation=part,
                parent_id=parent.candidate_id if parent else None,
                mutation=_mutation(trace, part),
                lineage_epochs=start,
                return_state=True,
                probe=None if last else RelaxationSignal(),
                score=last,
            )
            job.seed = candidate_seed(ctx.seed, "p00")  # one run: every part draws the batches of one seed
            (record,) = ev.evaluate([job], label=f"part {part + 1}/{len(bounds) - 1}")
            if not record.ok:
                raise ValueError(
                    f"part {part} of the network diverged ({record.extra.get('divergence')}); "
                    f"{DIVERGENCE_ADVICE}"
                )
            parts.append(record)
            if last:
                break
            decisions = decide(record.extra["signal"], ambient, space, self._level(ctx))
            spec, state = self._relaxed(ctx, record, decisions)
            trace.append({"part": part, "epoch": stop, "layers": decisions})
            ctx.announce(f"relaxations at epoch {stop:g}: {_mutation(trace, part + 1)}")
            ctx.run.write_json("decisions.json", trace)
            parent = record
        extras = {"decisions": trace, "groups_over_training": _groups_over_training(parts)}
        return SearchResult(self.name, parts[-1], parts, extras=extras)

    @staticmethod
    def _relaxed(
        ctx: SearchContext, record: CandidateRecord, decisions: list[dict[str, Any]]
    ) -> tuple[ArchSpec, dict[str, Any]]:
        """The part's trained network with every decided relaxation applied (same function)."""
        model = ctx.run.trained_model(record)
        for decision in decisions:
            if decision["to"] is not None:
                model = spec_network(relax_network(model, decision["layer"], decision["to"]))
        return model.spec, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _bounds(settings: EquiNASGSettings, epochs: float) -> list[float]:
    """Epochs where the parts start (resolved ``decide_epochs``), then the end of the run."""
    if settings.decide_epochs is None:
        raise ValueError("EquiNAS_G runs on resolved settings (run_search resolves them)")
    return [0.0, *settings.decide_epochs, epochs]


def min_steps(level: float) -> int:
    """The fewest steps whose sign-flip test can reach ``p <= level``: with ``B`` steps the
    smallest p-value is ``2^-(B-1)`` (and a test needs 2 steps)."""
    return max(2, 1 + math.ceil(math.log2(1 / level) - 1e-9))


def _check_parts(bounds: list[float], num_train: int, batch_size: int, needed: int) -> None:
    """``ValueError`` unless every part but the last has at least ``needed`` training steps."""
    steps_per_epoch = math.ceil(num_train / batch_size)
    starts = [step_at(b, steps_per_epoch) for b in bounds]
    steps = [b - a for a, b in zip(starts[:-1], starts[1:-1], strict=False)]
    short = [i for i, count in enumerate(steps) if count < needed]
    if short:
        raise ValueError(
            f"part {short[0]} of the run has {steps[short[0]]} training steps ({steps_per_epoch} per epoch); "
            f"its relaxation tests need at least {needed} to reject at --alpha over every layer and "
            "decision; train longer, decide later (decide_at) or raise alpha"
        )


def _mutation(trace: list[dict[str, Any]], part: int) -> str | None:
    """``"layer1:D4->C4,layer3:D4->D2"`` for the relaxations before ``part`` (``"none"`` if none)."""
    if part == 0:
        return None
    moves = [f"layer{d['layer']}:{d['from']}->{d['to']}" for d in trace[part - 1]["layers"] if d["to"]]
    return ",".join(moves) or "none"


def _groups_over_training(parts: list[CandidateRecord]) -> list[dict[str, Any]]:
    """``[{"epoch": start of the part, "groups": [group per layer]}]``, then the end of training."""
    points = [{"epoch": p.lineage_epochs - p.epochs, "groups": list(p.groups)} for p in parts]
    points.append({"epoch": parts[-1].lineage_epochs, "groups": list(parts[-1].groups)})
    return points
