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

import random
from dataclasses import dataclass
from typing import ClassVar

from equinas.groups import maximal_elements
from equinas.models import ArchSpec, build_model
from equinas.morphisms import relax_network
from equinas.search.base import Evaluator, SearchContext, SearchResult, best_of
from equinas.search.evaluate import CandidateJob
from equinas.search.records import CandidateRecord
from equinas.search.selection import pareto_select, top_k
from equinas.search.space import search_space, space_names


@dataclass(frozen=True)
class EquiNASESettings:
    """``children_per_parent`` caps the relaxation children of a parent (sampled, seeded);
    ``None`` keeps every (layer, subgroup) child. ``initial_epochs`` trains the start network
    (default: ``epochs_per_generation``), so a lineage trains
    ``initial_epochs + generations * epochs_per_generation`` epochs. ``halving`` and
    ``space``: see the module docstring."""

    start_group: str | None = None
    generations: int = 3
    population: int = 2
    epochs_per_generation: float = 0.5
    initial_epochs: float | None = None
    children_per_parent: int | None = None
    pareto: bool = False
    halving: bool = False
    space: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.generations < 0 or self.population < 1 or not self.epochs_per_generation > 0:
            raise ValueError("generations >= 0, population >= 1 and epochs_per_generation > 0 are required")
        if self.initial_epochs is not None and not self.initial_epochs > 0:
            raise ValueError("initial_epochs must be > 0 (or None: epochs_per_generation)")
        if self.children_per_parent is not None and self.children_per_parent < 0:
            raise ValueError("children_per_parent must be >= 0 or None")
        object.__setattr__(self, "space", space_names(self.space))


def relaxations(spec: ArchSpec, space: tuple[str, ...] | None = None) -> list[tuple[int, str]]:
    """Every (layer index, group) a relaxation can move to: for each layer the largest groups
    of ``space`` (default: the whole lattice, i.e. the maximal subgroups) that are proper
    subgroups of the layer's group."""
    allowed = search_space(spec.ambient_group(), space)
    moves = []
    for i in range(len(spec.layers)):
        group = spec.layer_group(i)
        below = [h for h in allowed if h != group and h.is_subgroup_of(group)]
        moves.extend((i, h.name) for h in maximal_elements(below))
    return moves


class EquiNASE:
    """Evolutionary equivariance-aware NAS; see the module docstring."""

    name: ClassVar[str] = "equinas_e"

    def __init__(self, settings: EquiNASESettings | None = None):
        self.settings = settings or EquiNASESettings()

    def _children(
        self, ev: Evaluator, parent: CandidateRecord, generation: int, first_index: int, epochs: float
    ) -> list[CandidateJob]:
        ctx, s = ev.ctx, self.settings
        state = ctx.run.load_state(parent.candidate_id)
        model = build_model(parent.spec)
        model.load_state_dict(state)
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
            child = relax_network(model, layer, group)
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
        epochs = s.epochs_per_generation / 2 if s.halving else s.epochs_per_generation
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
                train=ev.ctx.train_dict(epochs=s.epochs_per_generation - epochs),
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
                f"every candidate of the generation diverged ({len(records)}); "
                "try a lower --lr or --grad-clip"
            )
        return chosen

    def run(self, ctx: SearchContext) -> SearchResult:
        s = self.settings
        ev = Evaluator(ctx, self.name)
        trace_path = ctx.run.path / "generations.json"
        trace: list[dict] = ctx.run.read_json("generations.json") if trace_path.exists() else []

        start = s.start_group or ctx.backbone.ambient
        if trace:
            population = [ev.done[i] for i in trace[-1]["population"]]
        else:
            root = ev.job(
                "g00-000",
                ctx.backbone.spec(ctx.data, start),
                train=ctx.train_dict(epochs=s.initial_epochs or s.epochs_per_generation),
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
    def _trace_entry(generation: int, population: list[CandidateRecord]) -> dict:
        return {
            "generation": generation,
            "population": [p.candidate_id for p in population],
            "groups": [p.groups for p in population],
            "val_acc": [p.val_acc for p in population],
            "params": [p.params for p in population],
        }
