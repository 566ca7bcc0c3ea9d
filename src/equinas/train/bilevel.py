"""The architecture half of bilevel training: when architecture steps happen, and on which batch.

With ``config.arch_lr > 0`` and a model with ``architecture_parameters()``, weight step ``s``
is followed by architecture step ``(s - start) / arch_every`` when ``start <= s < stop`` and
``arch_every`` divides ``s - start`` (``start``: ``arch_warmup_epochs``, ``stop - start``:
``arch_epochs``, both in steps). Architecture step ``i`` uses batch ``i`` of an endless
stream over the search split, reshuffled after every full pass from ``(config.seed, pass)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from equinas.data.task import Split
from equinas.train.config import TrainConfig
from equinas.train.optim import build_arch_optimizer
from equinas.train.rng import derived_generator


class ArchitectureSteps:
    """The architecture optimizer (``None`` without architecture search), its window and stream."""

    def __init__(
        self, params: list[nn.Parameter], config: TrainConfig, search: Split, steps_per_epoch: int, task: str
    ) -> None:
        self.config, self.search = config, search
        self.optimizer = build_arch_optimizer(params, config) if params and config.arch_lr > 0 else None
        if self.optimizer is not None and len(search) == 0:
            raise ValueError(
                "architecture search needs a non-empty search split (search_split, by default "
                f"the val split of task {task!r})"
            )
        self.start = round(config.arch_warmup_epochs * steps_per_epoch)
        window = math.inf if config.arch_epochs is None else round(config.arch_epochs * steps_per_epoch)
        self.stop = self.start + window
        self._order: tuple[int, torch.Tensor] | None = None

    def index(self, step: int) -> int | None:
        """Which architecture step follows weight step ``step`` (its place in the search
        stream), or ``None`` when none does (no architecture search, outside its window, or
        skipped)."""
        if self.optimizer is None or not self.start <= step < self.stop:
            return None
        index, offset = divmod(step - self.start, self.config.arch_every)
        return index if offset == 0 else None

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index`` of the endless search stream: ``(images, labels)``."""
        batch_size = self.config.batch_size
        cycle, batch = divmod(index, math.ceil(len(self.search) / batch_size))
        if self._order is None or self._order[0] != cycle:
            generator = derived_generator(self.config.seed, "search", cycle)
            order = torch.randperm(len(self.search), generator=generator).to(self.search.labels.device)
            self._order = (cycle, order)
        chosen = self._order[1][batch * batch_size : (batch + 1) * batch_size]
        return self.search.batch(chosen), self.search.labels[chosen]
