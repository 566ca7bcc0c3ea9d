"""EquiNAS_E: evolutionary hill-climbing with the equivariance relaxation morphism (paper Alg. 1).

Start from the most equivariant network (every layer constrained to ``start_group``, D4 by
default) and train it briefly. In every generation each parent of the population spawns
children: itself, unchanged ("continue"), and one child per (layer, maximal subgroup of the
layer's group) made by ``relax_network`` -- a child computes exactly its parent's function at
birth and inherits its trained weights. Every child trains ``epochs_per_generation`` epochs
and the next population is the best ``population`` children by validation accuracy (or the
Pareto fronts over accuracy and parameter count). Greedy: a parent survives only as its
"continue" child.

Two options make a generation cheaper or the space smaller:

- ``halving``: successive halving within a generation -- every child trains half of
  ``epochs_per_generation``, then only the better half (at least ``population``) trains the
  other half from there (``<id>+`` records). A generation costs 3/4 of the full recipe.
- ``space``: the groups a layer may take (default: the whole subgroup lattice of the
  ambient group). A layer moves to the largest groups of the space that are proper
  subgroups of its group; ``("paper",)`` is the paper's space {D4, C4, D1, C2, C1}, where
  D4 relaxes to C4 or D1 and no child contains D2.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from equinas.groups import maximal_elements
from equinas.models import ArchSpec
from equinas.morphisms import relax_network
from equinas.search.base import Evaluator, SearchContext, SearchMethod, SearchResult
from equinas.search.evaluate import CandidateJob
from equinas.search.record import CandidateRecord
from equinas.search.run_directory import spec_network
from equinas.search.selection import best_of, pareto_select, top_k
from equinas.search.space import search_space, space_setting
from equinas.settings import Settings, setting
from equinas.train.result import DIVERGENCE_ADVICE


@dataclass(frozen=True)
class EquiNASESettings(Settings):
    """``children_per_parent`` caps the relaxation children of a parent (sampled, seeded);
    ``None`` keeps every (layer, subgroup) child. ``initial_epochs`` trains the start network
    (default: ``epochs_per_generation``), so a lineage trains
    ``initial_epochs + generations * epochs_per_generation`` epochs. Without
    ``epochs_per_generation``, a run's ``TrainConfig.epochs`` is the budget of a whole lineage
    (``for_lineage``). ``halving`` and ``space``: see the module docstring."""

    start_group: str | None = setting(
        None, subgroups=True, help="group of every layer of the start network (default: the ambient group)"
    )
    generations: int = setting(3, at_least=0, help="generations of relaxation after the start network")
    population: int = setting(2, at_least=1, help="networks kept after every generation")
    epochs_per_generation: float | None = setting(
        None,
        above=0,
        help="epochs every child trains (default: --epochs, the lineage budget, split evenly between "
        "the start network and the generations)",
    )
    initial_epochs: float | None = setting(
        None, above=0, help="epochs of the start network (default: --epochs-per-generation)"
    )
    children_per_parent: int | None = setting(
        None, at_least=0, help="at most this many relaxation children per parent, sampled (default: all)"
    )
    pareto: bool = setting(False, help="keep the Pareto fronts over accuracy and parameters, not the top")
    halving: bool = setting(False, help="successive halving within a generation (3/4 of the compute)")
    space: tuple[str, ...] | None = space_setting()

    def for_lineage(self, epochs: float) -> EquiNASESettings:
        """These settings resolved against a lineage budget of ``epochs``: an unset
        ``epochs_per_generation`` is ``epochs / (generations + 1)``, or with ``initial_epochs``
        ``(epochs - initial_epochs) / generations``; an unset ``initial_epochs`` is then
        ``epochs_per_generation``."""
        per_generation = self.epochs_per_generation or self._split(epochs)
        return dataclasses.replace(
            self, epochs_per_generation=per_generation, initial_epochs=self.initial_epochs or per_generation
        )

    def _split(self, epochs: float) -> float:
        """The epochs of each generation when a lineage trains ``epochs`` in all."""
        if self.initial_epochs is None:
            return epochs / (self.generations + 1)
        if self.generations == 0 or not self.initial_epochs < epochs:
            raise self.fail(
                "initial_epochs",
                f"{self.initial_epochs:g} leaves nothing of the lineage budget ({epochs:g} epochs) "
                "for the generations",
            )
        return (epochs - self.initial_epochs) / self.generations


def relaxations(spec: ArchSpec, space: tuple[str, ...] | None = None) -> list[tuple[int, str]]:
    """Every (layer index, group) a relaxation can move to: for each layer the largest groups
    of ``space`` (default: the whole lattice, i.e. the maximal subgroups) that are proper
    subgroups of the layer's group."""
    allowed = search_space(spec.ambient_group(), space)
    moves: list[tuple[int, str]] = []
    for i in range(len(spec.layers)):
        group = spec.layer_group(i)
        below = [h for h in allowed if h != group and h.is_subgroup_of(group)]
        moves.extend((i, h.name) for h in maximal_elements(below))
    return moves


class EquiNASE(SearchMethod[EquiNASESettings]):
    """Evolutionary equivariance-aware NAS (EquiNAS_E): hill-climbing down the subgroup lattice.

    Each generation relaxes one layer of each parent to a subgroup by the exact relaxation
    morphism (same function, trained weights kept), trains the children and keeps the best by
    validation accuracy. Cost: ``--epochs`` is the budget of one lineage, but every child trains,
    so a search costs several networks (5.7-8.6 in the measured recipes); see the module docstring.
    """

    name = "equinas_e"
    settings_class = EquiNASESettings

    def resolve(self, ctx: SearchContext) -> EquiNASESettings:
        """``epochs_per_generation`` resolved from the lineage budget ``ctx.train.epochs``."""
        return self.settings.for_lineage(ctx.train.epochs)

    def context(self, ctx: SearchContext) -> SearchContext:
        """``ctx`` with ``epochs_per_generation`` as the per-candidate budget of the record."""
        return dataclasses.replace(ctx, train=dataclasses.replace(ctx.train, epochs=self._epochs))

    def _resolved(self, field: str) -> float:
        """The resolved epoch budget ``field`` of the settings (``resolve`` fills it)."""
        epochs = getattr(self.settings, field)
        if epochs is None:
            raise ValueError("EquiNAS_E runs on resolved settings (run_search resolves them)")
        return epochs

    @property
    def _epochs(self) -> float:
        """The resolved ``epochs_per_generation``."""
        return self._resolved("epochs_per_generation")

    def _children(
        self, ev: Evaluator, parent: CandidateRecord, generation: int, first_index: int, epochs: float
    ) -> list[CandidateJob]:
        ctx, s = ev.ctx, self.settings
        model = ctx.run.trained_model(parent)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        moves = relaxations(ArchSpec.from_dict(parent.spec), s.space)
        if s.children_per_parent is not None and len(moves) > s.children_per_parent:
            rng = random.Random(f"{ctx.seed}:{generation}:{parent.candidate_id}")
            moves = sorted(rng.sample(moves, s.children_per_parent))
        common = dict(
            generation=generation,
            parent_id=parent.candidate_id,
            lineage_epochs=parent.lineage_epochs,
            train=ctx.train_dict(epochs=epochs),
            return_state=True,
        )
        jobs = [
            ev.job(
                f"g{generation:02d}-{first_index:03d}",
                parent.spec,
                state=state,
                mutation="continue",
                **common,
            )
        ]
        for offset, (layer, group) in enumerate(moves, start=1):
            child = spec_network(relax_network(model, layer, group))
            before = parent.spec["layers"][layer]["group"]
            jobs.append(
                ev.job(
                    f"g{generation:02d}-{first_index + offset:03d}",
                    child.spec,
                    state={k: v.detach().clone() for k, v in child.state_dict().items()},
                    mutation=f"layer{layer}:{before}->{group}",
                    **common,
                )
            )
        return jobs

    def _generation(
        self, ev: Evaluator, population: list[CandidateRecord], generation: int
    ) -> list[CandidateRecord]:
        """Train the children of ``population``; the records to select from."""
        s = self.settings
        epochs = self._epochs / 2 if s.halving else self._epochs
        jobs: list[CandidateJob] = []
        for parent in population:
            jobs.extend(self._children(ev, parent, generation, len(jobs), epochs))
        label = f"generation {generation}/{s.generations}"
        children = ev.evaluate(jobs, label=label)
        if not s.halving:
            return children
        survivors = top_k(children, max(s.population, -(-len(children) // 2)))
        promoted = [
            ev.job(
                f"{child.candidate_id}+",
                child.spec,
                state=ev.ctx.run.load_state(child.candidate_id),
                generation=generation,
                parent_id=child.candidate_id,
                mutation="promoted",
                lineage_epochs=child.lineage_epochs,
                train=ev.ctx.train_dict(epochs=self._epochs - epochs),
                return_state=True,
            )
            for child in survivors
        ]
        return ev.evaluate(promoted, label=f"{label}, better half")

    def _select(self, records: list[CandidateRecord]) -> list[CandidateRecord]:
        pick = pareto_select if self.settings.pareto else top_k
        chosen = pick(records, self.settings.population)
        if not chosen:
            raise ValueError(
                f"every candidate of the generation diverged ({len(records)}); {DIVERGENCE_ADVICE}"
            )
        return chosen

    def run(self, ctx: SearchContext) -> SearchResult:
        s = self.settings
        ev = Evaluator(ctx, self.name)
        trace_path = ctx.run.path / "generations.json"
        trace: list[dict] = ctx.run.read_json("generations.json") if trace_path.exists() else []

        start = s.start_group or ctx.backbone.ambient
        if trace:
            population = self._recorded_population(ev, trace[-1])
        else:
            root = ev.job(
                "g00-000",
                ctx.backbone.spec(ctx.data, start),
                train=ctx.train_dict(epochs=self._resolved("initial_epochs")),
                return_state=True,
            )
            population = self._select(ev.evaluate([root], label="generation 0"))
            trace.append(self._trace_entry(0, population))
            ctx.run.write_json("generations.json", trace)

        for generation in range(len(trace), s.generations + 1):
            population = self._select(self._generation(ev, population, generation))
            trace.append(self._trace_entry(generation, population))
            ctx.run.write_json("generations.json", trace)
            ctx.run.drop_states({p.candidate_id for p in population})

        records = sorted(ev.done.values(), key=lambda r: r.candidate_id)
        return SearchResult(self.name, best_of(population), records, extras={"generations": trace})

    @staticmethod
    def _recorded_population(ev: Evaluator, entry: dict) -> list[CandidateRecord]:
        """The population that ``generations.json`` recorded, from the run's records; a run
        directory that lost one of them cannot continue its lineage (the weights of the
        generation before are gone), which is one line naming the record."""
        missing = [i for i in entry["population"] if i not in ev.done]
        if missing:
            raise ValueError(
                f"{ev.ctx.run.path}: generation {entry['generation']}'s population member "
                f"{missing[0]} has no record in candidates.jsonl (damaged); the lineage cannot "
                "continue without it: start a new run directory"
            )
        return [ev.done[i] for i in entry["population"]]

    @staticmethod
    def _trace_entry(generation: int, population: list[CandidateRecord]) -> dict:
        return {
            "generation": generation,
            "population": [p.candidate_id for p in population],
            "groups": [p.groups for p in population],
            "val_acc": [p.val_acc for p in population],
            "params": [p.params for p in population],
        }
