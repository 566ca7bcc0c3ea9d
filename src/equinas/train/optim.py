"""Optimizers for weights and architecture parameters, and the per-step learning-rate schedule."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, overload

import torch
from torch import nn

from equinas.train.config import TrainConfig


def _unguarded(guarded: Callable[..., Any]) -> Callable[..., Any]:
    """The function a torch compile guard wraps while ``torch._dynamo`` is not loaded, else the guard."""
    if "torch._dynamo" in sys.modules:
        return guarded
    # torch's guards set __wrapped__ (functools.wraps) but are typed as the bare function
    wrapped: Callable[..., Any] = guarded.__wrapped__  # type: ignore[attr-defined]
    return wrapped


class _Eager:
    """Mixin for a ``torch.optim`` optimizer: the same updates and state, without importing
    ``torch._dynamo`` (about 1.3 s per process) when nothing is being compiled.

    ``Optimizer.add_param_group``/``state_dict``/``load_state_dict``/``zero_grad`` are wrapped
    in ``torch._disable_dynamo``, which imports ``torch._dynamo`` on first call, and ``step``
    in a guard that imports it to place graph breaks and then runs the update under
    ``torch.no_grad()`` (for optimizers that are not ``differentiable``). Outside compilation
    those wrappers do nothing else, so while ``torch._dynamo`` is not loaded (no compilation can
    be running) the wrapped functions are called directly, the update under ``torch.no_grad()``;
    once it is loaded, torch's wrappers are used unchanged.
    """

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _unguarded(torch.optim.Optimizer.add_param_group)(self, param_group)

    def state_dict(self) -> dict[str, Any]:
        return _unguarded(torch.optim.Optimizer.state_dict)(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _unguarded(torch.optim.Optimizer.load_state_dict)(self, state_dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _unguarded(torch.optim.Optimizer.zero_grad)(self, set_to_none)

    @overload  # the overloads of torch.optim.Optimizer.step
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        guarded = super().step  # type: ignore[misc]
        if "torch._dynamo" in sys.modules or self.defaults.get("differentiable"):  # type: ignore[attr-defined]
            return guarded(closure)
        with torch.no_grad():
            return guarded.__func__.__wrapped__(self, closure)


class Adam(_Eager, torch.optim.Adam):
    """``torch.optim.Adam`` that imports no ``torch._dynamo`` (see ``_Eager``)."""


class AdamW(_Eager, torch.optim.AdamW):
    """``torch.optim.AdamW`` that imports no ``torch._dynamo`` (see ``_Eager``)."""


class SGD(_Eager, torch.optim.SGD):
    """``torch.optim.SGD`` that imports no ``torch._dynamo`` (see ``_Eager``)."""


def build_optimizer(params: Sequence[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The weight optimizer named by ``config.optimizer`` (``sgd`` uses ``momentum``)."""
    params = list(params)
    if not params:
        raise ValueError("the model has no trainable weight parameters to optimise")
    if config.optimizer == "sgd":
        return SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def build_arch_optimizer(params: Sequence[nn.Parameter], config: TrainConfig) -> torch.optim.Adam:
    """Adam over architecture parameters (``arch_lr``, ``arch_betas``, ``arch_weight_decay``)."""
    return Adam(
        list(params),
        lr=config.arch_lr,
        betas=config.arch_betas,
        weight_decay=config.arch_weight_decay,
    )


@dataclass(frozen=True)
class LRSchedule:
    """Learning rate as a pure function of the global step (so a step counter is its state).

    ``factor(step)`` = linear warmup over ``warmup_steps`` times the decay of
    ``config.scheduler``: 1 (``none``), a half cosine from 1 at the end of warmup to 0 at
    ``total_steps`` (``cosine``), or ``gamma ** (step // (step_size * steps_per_epoch))``
    (``step``).
    """

    config: TrainConfig
    steps_per_epoch: int
    total_steps: int

    @property
    def warmup_steps(self) -> int:
        return round(self.config.warmup_epochs * self.steps_per_epoch)

    def factor(self, step: int) -> float:
        warmup = self.warmup_steps
        ramp = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        if self.config.scheduler == "cosine":
            progress = max(0, step - warmup) / max(1, self.total_steps - warmup)
            decay = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        elif self.config.scheduler == "step":
            decay = self.config.gamma ** (step // (self.config.step_size * self.steps_per_epoch))
        else:
            decay = 1.0
        return ramp * decay

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set the lr that step ``step`` (0-based) uses on every param group; return it."""
        lr = self.config.lr * self.factor(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr
