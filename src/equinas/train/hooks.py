"""Optional, duck-typed model hooks the engine calls when a model defines them.

- ``regularization_loss() -> Tensor | float``: added to the weight-step loss every step.
- ``score_function_loss(losses: Tensor) -> Tensor``: given the detached per-example losses ``[B]``
  of the step's forward pass, a surrogate added to the weight-step loss (for models that draw
  random choices in their forward pass and learn them by the score-function estimator).
- ``set_training_progress(epoch: int, num_epochs: int)``: called before each epoch's batches.
- ``set_training_time(epochs_done: float)``: called after each step (weight and architecture)
  with the (fractional) epochs trained so far.
- ``architecture_parameters() -> Iterable[Parameter]``: kept out of the weight optimizer.
- ``architecture_summary() -> dict``: JSON-able; recorded with every epoch's summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from equinas.runlog import jsonable


def regularization_loss(model: nn.Module) -> torch.Tensor | float | None:
    """The model's extra loss term, or ``None`` when it defines none."""
    hook = getattr(model, "regularization_loss", None)
    return hook() if callable(hook) else None


def score_function_loss(model: nn.Module, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
    """The model's score-function surrogate for the per-example cross-entropies of ``logits``
    (detached), or ``None`` when it defines none."""
    hook = getattr(model, "score_function_loss", None)
    if not callable(hook):
        return None
    return hook(F.cross_entropy(logits.detach().float(), labels, reduction="none"))


def set_training_progress(model: nn.Module, epoch: int, num_epochs: int) -> None:
    """Tell the model that 0-based epoch ``epoch`` of ``num_epochs`` is about to start."""
    hook = getattr(model, "set_training_progress", None)
    if callable(hook):
        hook(epoch, num_epochs)


def set_training_time(model: nn.Module, epochs_done: float) -> None:
    """Tell the model that ``epochs_done`` epochs are trained (after a step, before the next)."""
    hook = getattr(model, "set_training_time", None)
    if callable(hook):
        hook(epochs_done)


def architecture_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The model's architecture parameters (deduplicated; empty when it defines none).

    Raises ``ValueError`` for one that is not a parameter of ``model``: it would be missing
    from the model's ``state_dict`` and hence from checkpoints.
    """
    hook = getattr(model, "architecture_parameters", None)
    if not callable(hook):
        return []
    model_params = {id(p) for p in model.parameters()}
    unique: dict[int, nn.Parameter] = {}
    for param in hook():
        if id(param) not in model_params:
            raise ValueError(
                "architecture_parameters() returned a tensor of shape "
                f"{tuple(param.shape)} that is not a parameter of the model"
            )
        unique[id(param)] = param
    return list(unique.values())


def architecture_summary(model: nn.Module) -> dict[str, Any] | None:
    """The model's architecture summary as plain JSON types, or ``None`` when it has none."""
    hook = getattr(model, "architecture_summary", None)
    if not callable(hook):
        return None
    with torch.no_grad():
        return jsonable(hook())


def epoch_callbacks(callbacks: Iterable[Any]) -> tuple[Any, ...]:
    """``callbacks`` as a tuple (``TypeError`` naming one without ``on_epoch_end(state)``)."""
    callbacks = tuple(callbacks)
    for callback in callbacks:
        if not callable(getattr(callback, "on_epoch_end", None)):
            raise TypeError(f"callback {callback!r} has no on_epoch_end(state) method")
    return callbacks
