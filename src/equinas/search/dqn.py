"""A small deep-Q-learning agent over bit-vector states (used by the AEN searches, ``search.methods.aen``).

States are tuples of 0/1 bits, actions indices of bits. ``DQNAgent`` holds an epsilon-greedy
policy network ``QNetwork`` (an MLP ``n -> 400 -> 400 -> 400 -> n`` with ReLUs on ``s / 10``), a
target network and a ``ReplayMemory``; ``learn()`` is one Adam step on the Huber loss between
``Q(s, a)`` and ``y = r + gamma * max_a' Q_target(s', a')`` (no terminal masking) over a batch of
``min(batch_size, stored)`` replayed transitions, once ``learning_starts`` are stored; ``sync()``
copies the policy into the target. ``EpsilonSchedule`` maps the number of unique models
trained to epsilon. Everything runs in float64, and all randomness comes from the agent's seed.
"""

from __future__ import annotations

import bisect
import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

State = tuple[int, ...]


@dataclass(frozen=True)
class EpsilonSchedule:
    """``epsilon(m) = values[#{t in thresholds : t <= m}]`` for ``m`` unique models trained."""

    thresholds: tuple[float, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.values) != len(self.thresholds) + 1:
            raise ValueError("an epsilon schedule needs one more value than thresholds")
        if list(self.thresholds) != sorted(self.thresholds):
            raise ValueError(f"epsilon thresholds must be non-decreasing, got {self.thresholds}")
        if not all(0.0 <= v <= 1.0 for v in self.values):
            raise ValueError(f"epsilon values must lie in [0, 1], got {self.values}")

    def __call__(self, models_trained: int) -> float:
        return self.values[bisect.bisect_right(self.thresholds, models_trained)]

    def scaled(self, factor: float) -> EpsilonSchedule:
        """The same values with every threshold multiplied by ``factor`` (for smaller budgets)."""
        if factor <= 0:
            raise ValueError(f"epsilon scale must be positive, got {factor}")
        return EpsilonSchedule(tuple(t * factor for t in self.thresholds), self.values)


class Transition(NamedTuple):
    state: State
    action: int
    next_state: State
    reward: float


class ReplayMemory:
    """A ring buffer of the last ``capacity`` transitions."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.items: list[Transition] = []
        self.position = 0

    def __len__(self) -> int:
        return len(self.items)

    def push(self, transition: Transition) -> None:
        """Store ``transition``, overwriting the oldest one when full."""
        if len(self.items) < self.capacity:
            self.items.append(transition)
        else:
            self.items[self.position] = transition
        self.position = (self.position + 1) % self.capacity

    def sample(self, batch_size: int, rng: random.Random) -> list[Transition]:
        """``batch_size`` distinct stored transitions, uniformly at random."""
        if batch_size > len(self.items):
            raise ValueError(f"cannot sample {batch_size} of {len(self.items)} transitions")
        return rng.sample(self.items, batch_size)


class QNetwork(nn.Module):
    """``Q(s) [B, n_actions]`` from states ``s [B, n_bits]``: MLP on ``s / 10`` with ReLUs."""

    def __init__(self, n_bits: int, hidden: Sequence[int] = (400, 400, 400)):
        super().__init__()
        sizes = [n_bits, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Linear(sizes[-1], n_bits))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.body(states / 10)


class DQNAgent:
    """Epsilon-greedy policy network, target network, replay memory and Huber Q-learning steps.

    All randomness (initialisation, exploration, replay sampling) comes from ``seed``; the global
    torch generator is left untouched.
    """

    def __init__(
        self,
        n_bits: int,
        seed: int,
        gamma: float,
        batch_size: int,
        capacity: int,
        lr: float,
        learning_starts: int | None = None,
    ) -> None:
        self.n_bits, self.gamma, self.batch_size = n_bits, gamma, batch_size
        self.learning_starts = batch_size if learning_starts is None else learning_starts
        self.rng = random.Random(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = QNetwork(n_bits).double()
        self.target = copy.deepcopy(self.policy)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr)
        self.memory = ReplayMemory(capacity)

    @staticmethod
    def _tensor(states: Sequence[State]) -> torch.Tensor:
        return torch.tensor(states, dtype=torch.float64)

    def act(self, state: State, epsilon: float) -> int:
        """A uniformly random action with probability ``epsilon``, else ``argmax_a Q(state, a)``."""
        if self.rng.random() > epsilon:
            with torch.no_grad():
                return int(self.policy(self._tensor([state]))[0].argmax())
        return self.rng.randrange(self.n_bits)

    def learn(self) -> float | None:
        """One optimisation step on ``min(batch_size, stored)`` replayed transitions (``None``
        while the memory holds fewer than ``learning_starts``)."""
        if len(self.memory) < self.learning_starts:
            return None
        batch = self.memory.sample(min(self.batch_size, len(self.memory)), self.rng)
        states = self._tensor([t.state for t in batch])
        next_states = self._tensor([t.next_state for t in batch])
        actions = torch.tensor([t.action for t in batch]).unsqueeze(1)
        rewards = torch.tensor([t.reward for t in batch], dtype=torch.float64)
        q = self.policy(states).gather(1, actions).squeeze(1)
        with torch.no_grad():
            y = rewards + self.gamma * self.target(next_states).max(1).values
        loss = F.smooth_l1_loss(q, y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def sync(self) -> None:
        """Copy the policy network into the target network."""
        self.target.load_state_dict(self.policy.state_dict())
