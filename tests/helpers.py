"""Test helpers: equivariance errors of small layer stacks, printed as a table."""

from __future__ import annotations

import torch
from torch import nn

from equinas.groups import PlanarGroup, act_on_features, act_on_images
from equinas.metrics import relative_error
from equinas.nn import GroupConv, GroupPool, LiftingConv, SpatialPool


class Stack(nn.Module):
    """Lifting conv and ``depth - 1`` group convs with ReLU and 2x2 pooling, all over ``group``."""

    def __init__(self, group: PlanarGroup, ambient: PlanarGroup, depth: int = 3, width: int = 2, k: int = 3):
        super().__init__()
        layers: list[nn.Module] = [LiftingConv(1, width, k, group, ambient)]
        for i in range(depth - 1):
            layers += [
                nn.ReLU(),
                SpatialPool(2) if i == 0 else nn.Identity(),
                GroupConv(width, width, k, group, ambient),
            ]
        self.body = nn.Sequential(*layers)
        self.pool = GroupPool("max")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def stack_errors(group: PlanarGroup, ambient: PlanarGroup, x: torch.Tensor) -> tuple[int, float, float]:
    """(number of exact elements tested, max feature equivariance error, max invariance error)."""
    model = Stack(group, ambient).to(x.dtype)
    out = model(x)
    exact = [g for g in group.elements if ambient.is_exact_element(g)]
    feat_err = inv_err = 0.0
    for g in exact:
        out_g = model(act_on_images(x, g, ambient))
        feat_err = max(feat_err, relative_error(out_g, act_on_features(out, g, ambient)))
        pooled, pooled_g = model.pool(out), model.pool(out_g)
        inv_err = max(inv_err, relative_error(pooled_g, act_on_images(pooled, g, ambient)))
    return len(exact), feat_err, inv_err


def print_table(rows: list[tuple[str, str, int, int, float, float]]) -> None:
    """Print (ambient, group, |G|, exact elements tested, equivariance error, invariance error)."""
    print(f"\n{'ambient':>7} {'group':>12} {'|G|':>4} {'tested':>6} {'equiv. error':>13} {'invariance':>11}")
    for ambient, group, order, tested, feat, inv in rows:
        print(f"{ambient:>7} {group:>12} {order:>4} {tested:>6} {feat:>13.2e} {inv:>11.2e}")


def add_shared(job: int, shared: torch.Tensor) -> tuple[int, float, int]:
    """A job for executor tests: ``(job, job + shared.sum(), torch threads)``; job -1 kills its
    worker process."""
    import os

    if job == -1:
        os._exit(3)
    return job, job + float(shared.sum()), torch.get_num_threads()
