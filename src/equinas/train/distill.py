"""Logit matching on group-transformed inputs: the cloning phase of symmetry cloning.

``clone_logits(student, teacher, split, config, group)`` trains ``student`` so that
``student(g . x) ~ teacher(g . x)`` for training images ``x`` and random elements ``g`` of
``group`` (one per image, drawn from ``(config.seed, step)`` like ``TrainConfig.augment``).
The teacher runs in eval mode without gradients; only the student's weights move. Losses:

- ``mse``: ``mean_{i,c} (s_ic - t_ic)^2`` over the batch and the logits;
- ``kl``: ``T^2 * mean_i KL(softmax(t_i / T) || softmax(s_i / T))`` with temperature ``T``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from equinas.data.task import Split
from equinas.groups import PlanarGroup
from equinas.train.augment import Augmenter
from equinas.train.config import TrainConfig
from equinas.train.optim import LRSchedule, build_optimizer
from equinas.train.rng import derived_generator
from equinas.train.runtime import amp_dtype, autocast

CLONE_LOSSES = ("mse", "kl")


def logit_loss(
    student: torch.Tensor, teacher: torch.Tensor, loss: str, temperature: float = 1.0
) -> torch.Tensor:
    """The ``mse`` or ``kl`` distance (see the module doc) between logits ``[B, K]``."""
    if loss == "mse":
        return F.mse_loss(student, teacher)
    if loss == "kl":
        log_s = F.log_softmax(student / temperature, dim=1)
        log_t = F.log_softmax(teacher / temperature, dim=1)
        return temperature**2 * F.kl_div(log_s, log_t, log_target=True, reduction="batchmean")
    raise ValueError(f"unknown cloning loss {loss!r}: expected one of {', '.join(CLONE_LOSSES)}")


def clone_logits(
    student: nn.Module,
    teacher: nn.Module,
    split: Split,
    config: TrainConfig,
    group: PlanarGroup,
    loss: str = "mse",
    temperature: float = 1.0,
    progress: bool = False,
) -> list[float]:
    """Train ``student`` on ``ceil(config.epochs * ceil(N / batch_size))`` steps of logit
    matching on the ``N`` images of ``split`` (made into float batches one at a time, moved
    with ``split.background`` as the fill of interpolating transforms); returns the mean loss
    of every (partial) epoch.

    Uses ``config``'s optimizer, learning rate and schedule, batch size, seed and mixed precision
    (``config.amp``: both networks' forward passes under autocast, the loss in float32); the
    order of each epoch comes from ``(config.seed, "clone", epoch)``. Raises ``ValueError`` when
    the loss becomes NaN or infinite.
    """
    batch_size = config.batch_size
    steps_per_epoch = math.ceil(len(split) / batch_size)
    total = max(1, math.ceil(config.epochs * steps_per_epoch - 1e-9))
    optimizer = build_optimizer([p for p in student.parameters() if p.requires_grad], config)
    schedule = LRSchedule(config, steps_per_epoch, total)
    transform = Augmenter(group, config.seed, stream="clone", background=split.background)
    device = next(student.parameters()).device
    dtype = amp_dtype(config, device)
    teacher.eval()
    student.train()
    history: list[float] = []
    step = 0
    with tqdm(total=total, desc="cloning", unit="step", disable=None if progress else True) as bar:
        while step < total:
            epoch = step // steps_per_epoch
            order = torch.randperm(len(split), generator=derived_generator(config.seed, "clone", epoch))
            losses = []
            for batch in range(steps_per_epoch):
                if step >= total:
                    break
                index = order[batch * batch_size : (batch + 1) * batch_size]
                moved = transform(split.batch(index).to(device), step)
                with autocast(device, dtype):
                    with torch.no_grad():
                        target = teacher(moved)
                    logits = student(moved)
                value = logit_loss(logits.float(), target.float(), loss, temperature)
                if not math.isfinite(value.item()):
                    raise ValueError(f"the cloning loss became {value.item()} at step {step}; try a lower lr")
                schedule.apply(optimizer, step)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
                losses.append(value.item())
                step += 1
                bar.update(1)
            history.append(sum(losses) / len(losses))
            bar.set_postfix(loss=f"{history[-1]:.4f}")
    return history


def logit_distance(
    student: nn.Module, teacher: nn.Module, images: torch.Tensor, group: PlanarGroup, seed: int = 0
) -> float:
    """Mean squared logit difference of the two models (eval mode) on ``images`` moved by
    random elements of ``group`` (drawn from ``seed``): how well ``student`` imitates ``teacher``
    on transformed inputs."""
    moved = Augmenter(group, seed, stream="clone-check")(images, 0)
    was = student.training, teacher.training
    student.eval()
    teacher.eval()
    try:
        with torch.no_grad():
            return F.mse_loss(student(moved), teacher(moved)).item()
    finally:
        student.train(was[0])
        teacher.train(was[1])
