"""The command line's default executor: independent candidates in parallel, single ones here."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from equinas.execution.local import LocalExecutor
from equinas.execution.process import ProcessExecutor
from equinas.train.threads import AUTO, default_workers

J = TypeVar("J")
R = TypeVar("R")


class AutoExecutor:
    """A ``map`` of several jobs goes to a ``ProcessExecutor`` (``workers`` processes of
    ``threads`` torch threads; by default one one-thread worker per usable core), started on first use
    and kept for later maps; a map of one job, or any map on a one-core machine, runs in this
    process (``LocalExecutor``: no worker start-up for a single network).

    A grid or fixed-group search thus trains its networks side by side, EquiNAS_E its children,
    while EquiNAS_D's single mixed network trains here. Records are the same as sequential ones
    (each candidate's seed depends only on its id).
    """

    name = "auto"

    def __init__(self, workers: int | None = None, threads: int | str = AUTO):
        self.workers, self.threads = workers, threads
        self._local = LocalExecutor()
        self._pool: ProcessExecutor | None = None

    def map(self, fn: Callable[[J, Any], R], jobs: Sequence[J], shared: Any) -> Iterator[tuple[int, R]]:
        if len(jobs) < 2 or (self.workers is None and default_workers(self.threads) < 2):
            return self._local.map(fn, jobs, shared)
        if self._pool is None:
            self._pool = ProcessExecutor(self.workers, self.threads)
        return self._pool.map(fn, jobs, shared)

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
