"""Logit matching on group-transformed inputs: the cloning phase of symmetry cloning.

``clone_logits(student, teacher, data, config, group)`` trains ``student`` so that
``student(g . x) ~ teacher(g . x)`` for training images ``x`` and random elements ``g`` of
``group`` (one per image, drawn from ``(config.seed, step)``: ``TrainConfig.augment``), through
the one training engine with the ``LogitMatching`` objective. The teacher runs in eval mode
without gradients; only the student's weights move. Losses:

- ``mse``: ``mean_{i,c} (s_ic - t_ic)^2`` over the batch and the logits;
- ``kl``: ``T^2 * mean_i KL(softmax(t_i / T) || softmax(s_i / T))`` with temperature ``T``.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from equinas.data.task import TaskData
from equinas.groups import PlanarGroup
from equinas.train.augment import Augmenter
from equinas.train.config import TrainConfig
from equinas.train.engine import train
from equinas.train.result import TrainResult

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


class LogitMatching:
    """The cloning ``Objective`` (``equinas.train.objective``): ``logit_loss`` between the
    student's logits and the teacher's on the same (transformed) batch. The teacher runs in
    eval mode without gradients, under the trainer's autocast; the loss is in float32."""

    def __init__(self, teacher: nn.Module, loss: str = "mse", temperature: float = 1.0) -> None:
        if loss not in CLONE_LOSSES:
            raise ValueError(f"unknown cloning loss {loss!r}: expected one of {', '.join(CLONE_LOSSES)}")
        self.teacher, self.loss, self.temperature = teacher, loss, temperature

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.teacher.eval()
        with torch.no_grad():
            target = self.teacher(images)
        value = logit_loss(logits.float(), target.float(), self.loss, self.temperature)
        return value, value


def clone_logits(
    student: nn.Module,
    teacher: nn.Module,
    data: TaskData,
    config: TrainConfig,
    group: PlanarGroup,
    loss: str = "mse",
    temperature: float = 1.0,
    progress: bool = False,
) -> TrainResult:
    """Train ``student`` by logit matching on ``data``'s training images moved by random
    elements of ``group`` (``config.augment`` set to ``group``): the ``Trainer`` with the
    ``LogitMatching`` objective, so ``config``'s optimizer, schedule, gradient clipping, mixed
    precision and divergence check (``TrainingDiverged``) apply, and the student is scored
    (batch-norm recalibration, validation, test) as every trained network is. The labels are
    only measured, never fitted."""
    config = dataclasses.replace(config, augment=group.name)
    return train(
        student, data, config, progress=progress, objective=LogitMatching(teacher, loss, temperature)
    )


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
