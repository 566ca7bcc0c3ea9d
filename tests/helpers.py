"""Test helpers: a small equivariant layer stack, reports printed as a table, executor jobs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from equinas.groups import PlanarGroup
from equinas.nn import GroupConv, LiftingConv, SpatialPool
from equinas.testing import EquivarianceReport
from equinas.train.threads import resolve_threads

# hypothesis examples per dtype: float64 shows that errors drop to rounding level, which a few
# examples show as well as many; the float32 runs explore the inputs.
EXAMPLES = {torch.float32: 25, torch.float64: 5}


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def print_table(rows: list[tuple[EquivarianceReport, EquivarianceReport]]) -> None:
    """Print (ambient, group, exact elements tested, worst equivariance / invariance error)."""
    print(f"\n{'ambient':>7} {'group':>12} {'tested':>6} {'equiv. error':>13} {'invariance':>11}")
    for feat, inv in rows:
        worst = max(feat.exact.values(), default=0.0)
        worst_inv = max(inv.exact.values(), default=0.0)
        print(f"{feat.ambient:>7} {feat.group:>12} {len(feat.exact):>6} {worst:>13.2e} {worst_inv:>11.2e}")


def add_shared(job: int, shared: torch.Tensor) -> tuple[int, float, int]:
    """A job for executor tests: ``(job, job + shared.sum(), torch threads)``; job -1 kills its
    worker process."""
    if job == -1:
        os._exit(3)
    return job, job + float(shared.sum()), torch.get_num_threads()


def job_process(job: int, shared: object) -> tuple[int, int]:
    """A job for executor tests: ``(job, id of the process that ran it)``."""
    return job, os.getpid()


def on_ray_node(fn, started: str | None, delay: float, job, shared):
    """A Ray task wrapper for executor tests: ``(id of the Ray node it ran on, fn(job, shared))``.
    With ``started`` (a folder), first notes ``<node id> <candidate id>`` in a file there, then
    waits ``delay`` seconds (a window in which the test can kill the node)."""
    import time

    import ray

    node = ray.get_runtime_context().get_node_id()
    if started is not None:
        with open(os.path.join(started, f"{node}-{job.candidate_id}"), "w") as handle:
            handle.write(f"{node} {job.candidate_id}\n")
        time.sleep(delay)
    return node, fn(job, shared)


@dataclass
class NamedJob:
    """An executor test job with a name, as search jobs have (``candidate_id``)."""

    candidate_id: str
    value: int


def add_shared_named(job: NamedJob, shared: torch.Tensor) -> tuple[int, float, int]:
    """``add_shared`` of ``job.value``."""
    return add_shared(job.value, shared)


def auto_threads_of_worker(job: int, shared: object) -> tuple[int, int]:
    """A job for executor tests: ``(torch threads, what --threads auto resolves to)`` in its worker."""
    return torch.get_num_threads(), resolve_threads("auto")


def sigint_ignored(job: int, shared: object) -> tuple[int, bool]:
    """A job for executor tests: ``(job, whether this worker ignores SIGINT)``."""
    import signal

    return job, signal.getsignal(signal.SIGINT) == signal.SIG_IGN
