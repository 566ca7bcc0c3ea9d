"""Accuracy and mean cross-entropy of a model on a data split."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from equinas.data.task import Split
from equinas.train.runtime import autocast


def evaluate(
    model: nn.Module,
    split: Split,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float | int]:
    """``{"acc", "loss", "count"}`` of ``model`` on ``split``.

    Runs in eval mode under ``torch.inference_mode()`` (the model's previous train/eval mode is
    restored afterwards), in batches of ``batch_size`` moved to ``device`` (default: the device
    of the model's first parameter, else CPU). ``autocast_dtype`` runs the forward passes under
    autocast to that dtype. The loss is the mean cross-entropy per example, accumulated in float64.
    """
    if len(split) == 0:
        raise ValueError("cannot evaluate on an empty split")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    try:
        with torch.inference_mode(), autocast(device, autocast_dtype):
            for start in range(0, len(split), batch_size):
                images = split.batch(slice(start, start + batch_size)).to(device, non_blocking=True)
                labels = split.labels[start : start + batch_size].to(device, non_blocking=True)
                logits = model(images).float()
                total_loss += F.cross_entropy(logits, labels, reduction="sum").double()
                correct += (logits.argmax(dim=1) == labels).sum()
    finally:
        model.train(was_training)
    count = len(split)
    return {"acc": correct.item() / count, "loss": total_loss.item() / count, "count": count}
