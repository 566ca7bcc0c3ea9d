"""Where candidate evaluations run: the executor interface."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

J = TypeVar("J")
R = TypeVar("R")


class Executor(Protocol):
    """Runs ``fn(job, shared)`` for every job and yields ``(index, result)`` as each finishes.

    ``shared`` (e.g. the data set) is sent to workers once per ``map`` call. Results may come
    in any order; an exception in ``fn`` propagates to the caller.
    """

    name: str

    def map(self, fn: Callable[[J, Any], R], jobs: Sequence[J], shared: Any) -> Iterator[tuple[int, R]]: ...

    def close(self) -> None: ...


class WorkerCrashed(RuntimeError):
    """A worker process or node died (killed, out of memory, crashed) while evaluating jobs;
    the message names the jobs that had not finished."""


def job_name(job: Any, index: int) -> str:
    """How errors name a job: its ``candidate_id``, else ``job <index>``."""
    return str(getattr(job, "candidate_id", f"job {index}"))
