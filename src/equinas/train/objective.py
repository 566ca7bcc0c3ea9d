"""What a weight step minimises: an ``Objective`` of the model's logits on a training batch.

The default, ``LabelLoss``, is cross-entropy against the labels plus the model's optional
``regularization_loss()`` and ``score_function_loss`` (``equinas.train.hooks``); symmetry
cloning's logit matching (``equinas.train.distill.LogitMatching``) is another. The trainer
runs every objective the same way: under its autocast, with its gradient scaler, gradient
clipping and divergence check.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from equinas.train import hooks


class Objective(Protocol):
    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, data term)`` of ``logits = model(images)`` ``[B, K]`` for a batch with
        ``labels`` ``[B]``: the loss to minimise and the part of it that fits the data (logged)."""
        ...


class LabelLoss:
    """Cross-entropy of the logits against the labels (float32), plus the model's hooks."""

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ce = F.cross_entropy(logits.float(), labels)
        extra = hooks.regularization_loss(model)
        loss = ce if extra is None else ce + extra
        surrogate = hooks.score_function_loss(model, logits, labels)
        return (loss if surrogate is None else loss + surrogate), ce
