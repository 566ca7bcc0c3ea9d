"""Compute accounting: what training and evaluating a model cost, machine-independently.

The unit is the multiply-add (MAC) of convolutions and matrix products -- the "FLOPs" of the
NAS literature. ``macs_per_image`` measures a model's MACs per image in one forward pass with
``torch.utils.flop_counter.FlopCounterMode`` (which counts 2 flops per MAC of ``conv``,
``mm``, ``addmm``, ``bmm``) on batches of 1 and 2 images: the difference is the per-image
count, so work done once per batch whatever its size (building group filters from weights,
mixing the candidates of a [G]-mixed layer) is excluded. ``ComputeMeter`` counts the images a
model sees and turns them into a ``Cost``:

- a forward pass with autograd enabled is a training pass (the engine always backpropagates
  it): ``3 x`` the train-mode MACs per image (forward + backward, the usual estimate);
- a forward pass without autograd is an evaluation pass (validation, test, batch-norm
  recalibration): ``1 x`` the MACs of the mode it runs in.

Only calls of the model itself are counted (``model(x)``); diagnostics that call its parts,
such as the per-block equivariance errors of a record (a few hundred images), are not.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

BACKWARD_FACTOR = 3


@dataclass
class Cost:
    """Images and MACs of training and evaluation, and the wall time they took.

    ``train_images`` counts images of training passes (weight and architecture steps, repeats
    counted), ``train_flops`` their MACs times ``BACKWARD_FACTOR``; ``eval_images`` and
    ``eval_flops`` the same for evaluation passes; ``total_flops`` is the sum;
    ``train_seconds`` the wall time of the metered block (a candidate's training and
    evaluation).
    """

    train_images: int = 0
    eval_images: int = 0
    train_flops: int = 0
    eval_flops: int = 0
    total_flops: int = 0
    train_seconds: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Cost:
        """The cost of a ``to_dict``; unknown keys are ignored, unknown values (None) count 0."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known and v is not None})

    @staticmethod
    def total(costs: list[Cost]) -> Cost:
        return sum(costs, Cost())


def _forward_macs(model: nn.Module, images: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        model(images)
    return counter.get_total_flops() // 2


def macs_per_image(model: nn.Module, example: torch.Tensor, train_mode: bool = False) -> int:
    """MACs of one forward pass per image of ``model`` in train or eval mode.

    ``example`` is one input ``[C, H, W]`` (or a batch, of which the first image is used).
    Measured on a copy of the model (a train-mode pass would update batch-norm statistics), as
    the difference of batches of 4 and 2 copies (a train-mode ``BatchNorm1d`` refuses batches of 1).
    """
    image = example[:1] if example.dim() == 4 else example.unsqueeze(0)
    probe = copy.deepcopy(model).train(train_mode)
    image = image.to(next(probe.parameters()).device)
    return (
        _forward_macs(probe, image.repeat(4, 1, 1, 1)) - _forward_macs(probe, image.repeat(2, 1, 1, 1))
    ) // 2


class ComputeMeter:
    """Counts the images ``model`` processes while active (a context manager).

    ``example`` is one input of the model (shape ``[C, H, W]``); MACs per image are measured
    once, in train and in eval mode, when the meter starts. ``cost()`` gives the ``Cost`` so far.
    """

    def __init__(self, model: nn.Module, example: torch.Tensor):
        self.model = model
        self.macs = {True: macs_per_image(model, example, True), False: macs_per_image(model, example, False)}
        self.train_images = self.eval_images = 0
        self.train_macs = self.eval_macs = 0
        self._handle: Any = None
        self._start = 0.0
        self._seconds: float | None = None

    def _count(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        batch = int(args[0].shape[0])
        macs = batch * self.macs[module.training]
        if torch.is_grad_enabled():
            self.train_images += batch
            self.train_macs += macs
        else:
            self.eval_images += batch
            self.eval_macs += macs

    def __enter__(self) -> ComputeMeter:
        self._handle = self.model.register_forward_pre_hook(self._count)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()
        self._seconds = time.perf_counter() - self._start

    def cost(self) -> Cost:
        """The cost counted so far (the wall time up to now, or up to the end of the block)."""
        seconds = self._seconds if self._seconds is not None else time.perf_counter() - self._start
        train_flops = BACKWARD_FACTOR * self.train_macs
        return Cost(
            train_images=self.train_images,
            eval_images=self.eval_images,
            train_flops=train_flops,
            eval_flops=self.eval_macs,
            total_flops=train_flops + self.eval_macs,
            train_seconds=seconds,
        )
