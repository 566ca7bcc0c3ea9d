"""How many torch threads a network trains and evaluates with: ``--threads auto`` resolved.

``auto`` gives a network the cores this process may use: every usable core when it trains
alone, its share of them in a pool of worker processes (the pool's ``threads_per_worker``:
``usable_cores() // workers``, at least 1, announced to each worker with ``share_cores``).
Usable cores are those of the process's CPU affinity, capped by a cgroup v2 CPU quota
(``/sys/fs/cgroup/cpu.max``: ``quota period``, i.e. ``quota / period`` CPUs, rounded down, at
least 1), so a container limited to 2 CPUs on a 64-core host runs 2 threads, not 64.

Measured on an idle 2-core machine: a second thread trains the paper's 8-layer backbone
1.9-2.1x faster (``benchmarks/results/depth_step_cpu.json``), and even the 4-layer demo
network, whose ops are small, 1.77x per train step and 1.95x per eval batch (interleaved, load
1.1; ``benchmarks/results/speed_notes.md``) and 1.65x over a whole EquiNAS_E search (93.7 s on
one thread, 56.8 s on two; ``results/executor_cpu.json``). So ``auto`` never leaves a core idle
under a network that trains alone, whatever its size. Two one-thread worker processes did that
search in 55.6 s, slightly better than two threads, hence one thread per worker by default
when several networks train at once. (On a machine whose other core is busy, a second thread
made the demo step slower, 0.66-0.74x: ``auto`` counts the cores it may use, not their load;
pass ``--threads 1`` there.)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

AUTO = "auto"
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")

_share: int | None = None  # the cores of this process when it is one worker of a pool


def thread_choice(value: Any) -> int | str:
    """``'auto'`` or a thread count >= 1 (an integer or its digits): the check of thread settings."""
    if value == AUTO:
        return AUTO
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"expected 'auto' or an integer >= 1, got {value!r}")


def cgroup_cpu_limit(path: Path) -> int | None:
    """CPUs the cgroup v2 quota in ``path`` allows (``quota // period``, at least 1), or None
    when there is no such file or no quota (``max``)."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, int(quota) // int(period))


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by the cgroup's CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(CPU_MAX)
    return min(cores, limit) if limit is not None else cores


def default_workers(threads: int | str) -> int:
    """Worker processes of a pool by default: one per ``threads`` usable cores (one per core
    for ``auto``, where small networks gain more from a second process than a second thread)."""
    return max(1, usable_cores() // (1 if threads == AUTO else int(threads)))


def threads_per_worker(threads: int | str, workers: int) -> int:
    """Torch threads of each of ``workers`` processes: ``threads``, or for ``auto`` the
    usable cores divided among the workers (at least 1)."""
    return max(1, usable_cores() // workers) if threads == AUTO else int(threads)


def share_cores(threads: int) -> None:
    """Announce that this process is a pool worker owning ``threads`` cores (``auto`` in it
    then means ``threads``); pools call it when a worker starts."""
    global _share
    _share = threads


def resolve_threads(threads: int | str) -> int:
    """The thread count of a network trained or evaluated in this process: ``threads``, or
    for ``auto`` this worker's share of the cores, or every usable core outside a pool."""
    if threads != AUTO:
        return int(threads)
    return _share if _share is not None else usable_cores()


@contextlib.contextmanager
def torch_threads(threads: int | str) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (``auto`` resolved by ``resolve_threads``),
    then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(resolve_threads(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
