"""Re-estimation of batch-norm running statistics before an evaluation.

After a short or fast-changing training run, the exponential running averages of batch
norms lag behind the current weights and eval-mode accuracy falls far below train-mode
accuracy. Recalibration resets every norm's statistics and re-estimates them as the plain
average over a few training batches (momentum ``None``), leaving the weights untouched.
"""

from __future__ import annotations

from typing import Protocol, cast

import torch
from torch import nn

from equinas.data.task import Split
from equinas.train.runtime import autocast


class _RunningStats(Protocol):
    """What a batch norm with running statistics has (torch's and equinas' GroupBatchNorm)."""

    running_mean: torch.Tensor
    running_var: torch.Tensor
    num_batches_tracked: torch.Tensor
    momentum: float | None


def _norms(model: nn.Module) -> list[_RunningStats]:
    """Modules with batch-norm running statistics (torch's and equinas' GroupBatchNorm)."""
    found = [
        m
        for m in model.modules()
        if isinstance(getattr(m, "running_mean", None), torch.Tensor) and hasattr(m, "momentum")
    ]
    return cast(list[_RunningStats], found)  # a running mean and a momentum: a batch norm's statistics


def recalibrate_batch_norm(
    model: nn.Module,
    split: Split,
    num_batches: int,
    batch_size: int,
    generator: torch.Generator,
    autocast_dtype: torch.dtype | None = None,
) -> None:
    """Recompute running statistics from ``num_batches`` random batches of ``split``.

    Batches are drawn (without replacement, from ``generator``) and run in train mode under
    ``torch.inference_mode()``; the model's mode and the norms' momenta are restored afterwards.
    """
    norms = _norms(model)
    if not norms or len(split) == 0 or num_batches < 1:
        return
    device = split.labels.device
    order = torch.randperm(len(split), generator=generator)[: num_batches * batch_size].to(device)
    momenta = [m.momentum for m in norms]
    was_training = model.training
    with torch.inference_mode():
        for m in norms:
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
            m.num_batches_tracked.zero_()
            m.momentum = None
        model.train()
        try:
            with autocast(device, autocast_dtype):
                for start in range(0, len(order), batch_size):
                    model(split.batch(order[start : start + batch_size]))
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
            model.train(was_training)
