"""Executors: where candidate evaluations run (in this process by default, in a local
process pool, or on Ray)."""

from __future__ import annotations

from equinas.execution.base import Executor
from equinas.execution.local import LocalExecutor
from equinas.execution.process import ProcessExecutor, WorkerCrashed, available_cores

EXECUTORS = ("local", "process", "ray")


def make_executor(name: str, **options: object) -> Executor:
    """``'local'``, ``'process'`` (options go to ``ProcessExecutor``: workers, threads) or
    ``'ray'`` (options go to ``RayExecutor``: address, num_cpus, cpus_per_task)."""
    if name == "local":
        return LocalExecutor()
    if name == "process":
        return ProcessExecutor(**options)  # type: ignore[arg-type]
    if name == "ray":
        from equinas.execution.ray_executor import RayExecutor

        return RayExecutor(**options)  # type: ignore[arg-type]
    raise ValueError(f"unknown executor {name!r}: expected one of {EXECUTORS}")


__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "ProcessExecutor",
    "WorkerCrashed",
    "available_cores",
    "make_executor",
]
