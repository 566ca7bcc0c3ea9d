"""AEN: deep-Q-learning search over which small-group equivariances to impose (Basu et al. 2021).

The state is a bit vector ``s`` saying which "small groups" are on; action ``k`` toggles bit
``k``. Every episode starts at the all-off state (the unconstrained network, evaluated first:
its validation accuracy is ``acc_base``) and lasts ``episode_length`` steps (AEN: 101). A
state's accuracy ``acc(s)`` is the validation accuracy (percent) of its network trained once
with the context's training settings -- each unique state is one candidate record, revisits
read the cache -- and the reward of a step into ``s'`` is

    r = (acc(s') - acc_base) * exp(|acc(s') - acc_base|)      (accuracies in percent).

The Q-network is an MLP ``k -> 400 -> 400 -> 400 -> k`` with ReLU on ``s / 10``; after every
step one Adam step (lr ``q_lr``) on the Huber loss between ``Q(s, a)`` and
``y = r + gamma * max_a' Q_target(s', a')`` (no terminal masking; ``gamma = 0.5``) over a batch
of ``min(q_batch_size, stored)`` transitions (``q_batch_size`` 128) sampled from a replay memory
of ``replay_capacity`` (10,000), once it holds ``q_learning_starts`` transitions. The target
network copies the policy after every step at which the number of unique models trained (the
base included) is a multiple of ``target_sync_every`` (2). Actions are epsilon-greedy, epsilon
falling with the number of unique models trained (``EpsilonSchedule``; AEN's thresholds, scaled
by ``epsilon_scale``, default ``max_models / 1000``). The run stops at ``max_models`` unique
models or ``max_episodes``.

``AENSearch`` ("aen"): bits are G-MNIST transform names (default all 12) imposed on the
fully connected ``EQNet`` (``equinas.models.aen``). ``AENGCNNSearch`` ("aen_gcnn"): bits are
generators {rot90, hflip, vflip} of the ambient dihedral group, mapped to the subgroup they
generate (C1, C4, D1, D1[axis=2], D2, D4 in D4) and used for every layer of the backbone;
states that generate the same subgroup share one record.

Deviations from AEN's code: the reward uses the validation accuracy of the final epoch (AEN:
the maximum test accuracy over epochs); the G-CNN baseline is the all-off state (AEN: P4);
the Q-network starts learning after ``q_learning_starts`` (16) transitions on smaller batches
(AEN waits for a full batch of 128, which a budget of a few dozen models never reaches, so
its policy would stay untrained; ``q_learning_starts = q_batch_size`` restores that).
The Q-learning runs in float64 so that rewards of large accuracy gaps stay finite.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from equinas.groups import Element, PlanarGroup, generated_subgroup, parse_group
from equinas.groups.grid_permutations import NETWORK_STEP, TRANSFORMS, canonical_transforms
from equinas.models.aen import AENSpec
from equinas.search.base import Evaluator, SearchContext, SearchMethod, SearchResult
from equinas.search.dqn import DQNAgent, EpsilonSchedule, State, Transition
from equinas.search.evaluate import CandidateJob, candidate_seed
from equinas.search.record import CandidateRecord
from equinas.search.selection import best_of
from equinas.settings import Settings, same_as, setting

# -- schedule and reward ------------------------------------------------------------------------
# AEN's fully connected search (gnas_fcc_MNIST.py), made for max_models = 1000
FC_EPSILON = EpsilonSchedule(
    (200, 300, 400, 500, 600, 700, 800, 900, 950, 1000, 1200),
    (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01),
)
FC_REFERENCE_MODELS = 1000
# AEN's G-CNN search (gnas_GCNN_*.py): one step down every 50 models, made for max_models = 600
GCNN_EPSILON = EpsilonSchedule(
    tuple(range(50, 601, 50)),
    (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01, 0.01),
)
GCNN_REFERENCE_MODELS = 600


def reward(accuracy: float, base_accuracy: float) -> float:
    """``(acc - base) * exp(|acc - base|)`` with both accuracies in percent."""
    delta = accuracy - base_accuracy
    return delta * math.exp(abs(delta))


def target_sync_due(models_trained: int, every: int) -> bool:
    """AEN's rule: copy the policy to the target whenever ``models_trained % every == 0``."""
    return models_trained % every == 0


# -- settings ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DQNSettings(Settings):
    """Budget and Q-learning settings shared by both AEN searches (AEN's values where fixed).

    ``epsilon_scale`` multiplies the thresholds of the epsilon schedule; ``None`` scales AEN's
    schedule to ``max_models``. ``top_k`` visited states are listed in the result.
    """

    max_models: int = setting(20, at_least=1, help="stop after this many unique networks trained")
    max_episodes: int = setting(60, at_least=1, help="stop after this many episodes")
    episode_length: int = setting(25, at_least=1, help="steps per episode (AEN: 101)")
    epsilon_scale: float | None = setting(
        None,
        above=0,
        help="factor on the thresholds of AEN's epsilon schedule (default: scaled to --max-models)",
    )
    gamma: float = setting(0.5, at_least=0, below=1, help="discount of the Q-learning targets")
    q_batch_size: int = setting(128, at_least=1, help="replayed transitions per Q-learning step")
    q_learning_starts: int = setting(16, at_least=1, help="transitions stored before Q-learning starts")
    replay_capacity: int = setting(10_000, at_least=1, help="transitions kept in the replay memory")
    q_lr: float = setting(1e-3, above=0, help="Adam learning rate of the Q-network")
    target_sync_every: int = setting(
        2, at_least=1, help="copy the policy to the target network when the models trained are a multiple"
    )
    top_k: int = setting(5, at_least=1, help="best visited states listed in the result")


def _transform_bits(value: Any) -> tuple[str, ...]:
    """Distinct G-MNIST transform names (aliases resolved), in the given order."""
    if isinstance(value, str) or not isinstance(value, tuple | list):
        raise ValueError(f"expected a list of G-MNIST transform names, got {value!r}")
    names = tuple(canonical_transforms([g])[0] for g in value)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"expected distinct G-MNIST transform names, got {tuple(value)}")
    return names


@dataclass(frozen=True)
class AENSettings(DQNSettings):
    """``groups``: the small groups (G-MNIST transform names, one state bit each, in this order);
    ``hidden_grid``, ``translation_step``, ``reference_quirks``: see ``equinas.models.aen``."""

    groups: tuple[str, ...] = setting(
        TRANSFORMS, check=_transform_bits, help="G-MNIST transforms, one state bit each (default: all 12)"
    )
    hidden_grid: int = setting(20, at_least=1, help="side of EQNet's square hidden grid")
    translation_step: int = setting(NETWORK_STEP, at_least=1, help="shift of htrans/vtrans on the grids")
    reference_quirks: bool = setting(False, help="reproduce AEN's code (scalar biases after the ReLU)")


GCNN_GENERATORS = ("rot90", "hflip", "vflip")


def _generators(value: Any) -> tuple[str, ...]:
    names = tuple(value) if isinstance(value, tuple | list) else ()
    if not names or len(set(names)) != len(names) or not set(names) <= set(GCNN_GENERATORS):
        raise ValueError(f"expected distinct names from {', '.join(GCNN_GENERATORS)}, got {value!r}")
    return names


@dataclass(frozen=True)
class AENGCNNSettings(DQNSettings):
    """``generators``: a subset of rot90, hflip, vflip (one state bit each). The default budget
    covers the six subgroups of D4 they generate."""

    max_models: int = same_as(DQNSettings, "max_models", 6)
    episode_length: int = same_as(DQNSettings, "episode_length", 10)
    max_episodes: int = same_as(DQNSettings, "max_episodes", 20)
    generators: tuple[str, ...] = setting(
        GCNN_GENERATORS, check=_generators, help="generators of D4, one state bit each: rot90, hflip, vflip"
    )


# -- state spaces -------------------------------------------------------------------------------------
class StateSpace(Protocol):
    """What the DQN searches over: ``bits`` names the state bits."""

    bits: tuple[str, ...]

    def key(self, state: State) -> str:
        """Cache key and candidate id: states with the same key share one trained network."""
        ...

    def job(self, ev: Evaluator, state: State) -> CandidateJob: ...

    def describe(self, state: State) -> dict[str, Any]: ...


def state_string(state: State) -> str:
    return "".join(str(b) for b in state)


def selected(bits: Sequence[str], state: State) -> list[str]:
    return [name for name, on in zip(bits, state, strict=True) if on]


@dataclass
class EQNetSpace:
    """States are subsets of G-MNIST transforms imposed on AEN's ``EQNet``."""

    bits: tuple[str, ...]
    num_classes: int
    input_grid: int
    hidden_grid: int
    step: int
    reference_quirks: bool

    @classmethod
    def from_context(cls, ctx: SearchContext, s: AENSettings) -> EQNetSpace:
        shape = tuple(ctx.data.train.shape[1:])
        if len(shape) != 3 or shape[0] != 1 or shape[1] != shape[2]:
            raise ValueError(f"AEN's EQNet needs square single-channel images [N, 1, n, n], got {shape}")
        return cls(
            s.groups, ctx.data.num_classes, shape[1], s.hidden_grid, s.translation_step, s.reference_quirks
        )

    def key(self, state: State) -> str:
        return f"aen-{state_string(state)}"

    def spec(self, state: State) -> dict[str, Any]:
        return AENSpec(
            tuple(selected(self.bits, state)),
            self.num_classes,
            self.input_grid,
            self.hidden_grid,
            self.step,
            self.reference_quirks,
        ).to_dict()

    def job(self, ev: Evaluator, state: State) -> CandidateJob:
        return ev.job(self.key(state), self.spec(state), extra={"state": state_string(state)})

    def describe(self, state: State) -> dict[str, Any]:
        return {"equivariances": selected(self.bits, state)}


def generator_elements(ambient: PlanarGroup) -> dict[str, Element]:
    """rot90, hflip (``x.flip(-1)``) and vflip (``x.flip(-2)``) as elements of ``ambient``."""
    n = ambient.n
    elements = {"rot90": Element(0, n // 4), "hflip": Element(1, 0), "vflip": Element(1, n // 2)}
    if n % 4 or not all(e in ambient for e in elements.values()):
        raise ValueError(f"the AEN G-CNN search needs an ambient group containing D4, got {ambient.name}")
    return elements


def generated_group(ambient: PlanarGroup, names: Sequence[str]) -> PlanarGroup:
    """The subgroup of ``ambient`` generated by the named generators (C1 for none)."""
    elements = generator_elements(ambient)
    return generated_subgroup(ambient, [elements[name] for name in names])


@dataclass
class GroupSpace:
    """States are generator subsets; each maps to the subgroup it generates (the cache key)."""

    bits: tuple[str, ...]
    ambient: PlanarGroup
    ctx: SearchContext = field(repr=False)

    def group(self, state: State) -> PlanarGroup:
        return generated_group(self.ambient, selected(self.bits, state))

    def key(self, state: State) -> str:
        name = self.group(state).name.replace("[axis=", "-axis").replace("]", "")
        return f"aen_gcnn-{name}"

    def job(self, ev: Evaluator, state: State) -> CandidateJob:
        spec = self.ctx.backbone.spec(self.ctx.data, self.group(state).name)
        return ev.job(self.key(state), spec, extra={"state": state_string(state)})

    def describe(self, state: State) -> dict[str, Any]:
        return {"generators": selected(self.bits, state), "group": self.group(state).name}


# -- the search loop ----------------------------------------------------------------------------------
@dataclass
class Visit:
    """A unique network (cache entry): its first state, record, accuracy (percent) and reward."""

    state: State
    record: CandidateRecord
    accuracy: float
    reward: float


class StateCache:
    """Accuracy and reward per cache key; a network is trained only on a key's first visit."""

    def __init__(self, ev: Evaluator, space: StateSpace):
        self.ev, self.space = ev, space
        self.visits: dict[str, Visit] = {}
        self.base_accuracy = 0.0

    def lookup(self, state: State) -> tuple[Visit, bool]:
        """``(visit, new)``: ``new`` when this call trained the network."""
        key = self.space.key(state)
        if key in self.visits:
            return self.visits[key], False
        (record,) = self.ev.evaluate([self.space.job(self.ev, state)], label=key)
        accuracy = 100.0 * (record.val_acc or 0.0)
        if not self.visits:
            self.base_accuracy = accuracy
        self.visits[key] = Visit(state, record, accuracy, reward(accuracy, self.base_accuracy))
        return self.visits[key], True


def toggle(state: State, action: int) -> State:
    return tuple(b ^ (i == action) for i, b in enumerate(state))


D = TypeVar("D", bound=DQNSettings)


class DQNSearch(SearchMethod[D]):
    """The loop shared by both AEN searches; subclasses choose the state space and schedule."""

    reference_schedule: ClassVar[EpsilonSchedule]
    reference_models: ClassVar[int]

    def resolve(self, ctx: SearchContext) -> D:
        return self.settings

    @abstractmethod
    def space(self, ctx: SearchContext) -> StateSpace: ...

    def schedule(self) -> EpsilonSchedule:
        s = self.settings
        scale = s.epsilon_scale if s.epsilon_scale is not None else s.max_models / self.reference_models
        return self.reference_schedule.scaled(scale)

    def run(self, ctx: SearchContext) -> SearchResult:
        s, space, schedule = self.settings, self.space(ctx), self.schedule()
        cache = StateCache(Evaluator(ctx, self.name), space)
        start: State = (0,) * len(space.bits)
        cache.lookup(start)  # the base network: acc_base, reward 0
        models_trained, episodes, t = 1, 0, 0
        state = start
        agent = DQNAgent(
            len(space.bits),
            candidate_seed(ctx.seed, f"{self.name}:dqn"),
            s.gamma,
            s.q_batch_size,
            s.replay_capacity,
            s.q_lr,
            s.q_learning_starts,
        )
        history = []
        while models_trained < s.max_models and episodes < s.max_episodes:
            epsilon = schedule(models_trained)
            action = agent.act(state, epsilon)
            next_state = toggle(state, action)
            visit, new = cache.lookup(next_state)
            models_trained += int(new)
            agent.memory.push(Transition(state, action, next_state, visit.reward))
            loss = agent.learn()
            t += 1
            history.append(
                {
                    "episode": episodes,
                    "step": t,
                    "action": action,
                    "state": state_string(next_state),
                    "reward": visit.reward,
                    "epsilon": epsilon,
                    "new": new,
                    "q_loss": loss,
                }
            )
            state = next_state
            if t >= s.episode_length:
                episodes, t, state = episodes + 1, 0, start
            if target_sync_due(models_trained, s.target_sync_every):
                agent.sync()
        return self._result(space, cache, history, models_trained, episodes)

    def _result(
        self,
        space: StateSpace,
        cache: StateCache,
        history: list[dict[str, Any]],
        models_trained: int,
        episodes: int,
    ) -> SearchResult:
        visited = [
            {
                "key": key,
                "state": state_string(v.state),
                **space.describe(v.state),
                "val_acc": v.record.val_acc,
                "test_acc": v.record.test_acc,
                "params": v.record.params,
                "reward": v.reward,
            }
            for key, v in cache.visits.items()
        ]
        top = sorted(visited, key=lambda v: (-v["reward"], v["params"], v["key"]))[: self.settings.top_k]
        records = [v.record for v in cache.visits.values()]
        extras = {
            "bits": list(space.bits),
            "base_val_acc": records[0].val_acc,
            "models_trained": models_trained,
            "episodes": episodes,
            "steps": len(history),
            "cache_hits": sum(not h["new"] for h in history),
            "visited": visited,
            "top_states": top,
            "history": history,
        }
        return SearchResult(self.name, best_of(records), records, extras=extras)


class AENSearch(DQNSearch[AENSettings]):
    """AEN over small-group equivariances of the fully connected EQNet.

    A deep-Q agent walks over subsets of small groups to impose and trains the network of every
    new subset it visits. Cost: one (small, fully connected) network per unique subset, at most
    ``--max-models`` (20); see the module docstring.
    """

    name = "aen"
    settings_class = AENSettings
    reference_schedule = FC_EPSILON
    reference_models = FC_REFERENCE_MODELS

    def space(self, ctx: SearchContext) -> EQNetSpace:
        return EQNetSpace.from_context(ctx, self.settings)


class AENGCNNSearch(DQNSearch[AENGCNNSettings]):
    """AEN over generator subsets of D4 for the G-CNN backbone.

    The deep-Q agent of ``aen`` over subsets of {rot90, hflip, vflip}, each training the G-CNN of
    the subgroup they generate. Cost: one network per unique subgroup, at most ``--max-models``
    (6); see the module docstring.
    """

    name = "aen_gcnn"
    settings_class = AENGCNNSettings
    reference_schedule = GCNN_EPSILON
    reference_models = GCNN_REFERENCE_MODELS

    def space(self, ctx: SearchContext) -> GroupSpace:
        return GroupSpace(self.settings.generators, parse_group(ctx.backbone.ambient), ctx)
