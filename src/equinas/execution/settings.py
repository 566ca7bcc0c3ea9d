"""``ExecutorSettings``: which executor runs a search's evaluations, and its options (declared once)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from equinas.execution.base import Executor
from equinas.settings import Settings, setting
from equinas.train.threads import AUTO

EXECUTORS = ("auto", "local", "process", "ray")


@dataclass(frozen=True)
class ExecutorSettings(Settings):
    """``auto``: several candidates at once in a pool of ``workers`` local processes, a single one
    in this process (``AutoExecutor``); ``local``: one candidate after another in this process;
    ``process``: always the pool (``ProcessExecutor``); ``ray``: Ray tasks of ``cpus_per_task``
    CPUs on a cluster at ``ray_address`` or a local instance of ``ray_cpus`` (``RayExecutor``)."""

    executor: str = setting(
        "auto",
        choices=EXECUTORS,
        help="auto: several candidates at once in a pool of local worker processes, a single one in "
        "this process; local: one candidate after another in this process; process: always the pool; "
        "ray: Ray tasks",
    )
    workers: int | None = setting(
        None,
        at_least=1,
        help="worker processes of --executor process or auto (default: usable cores / --threads, one per "
        "core for --threads auto, which then gives each worker cores / workers threads)",
    )
    ray_address: str | None = setting(
        None, help="join a running Ray cluster (default: start a local instance)"
    )
    ray_cpus: int | None = setting(None, at_least=1, help="CPUs of a local Ray instance")
    cpus_per_task: int = setting(1, at_least=1, help="CPUs per evaluation under Ray")

    def check(self) -> None:
        if self.workers is not None and self.executor not in ("process", "auto"):
            raise self.fail("workers", "only the process and auto executors have workers")

    def make(self, threads: int | str = AUTO) -> Executor:
        """The executor; ``threads``: torch threads of each process worker, or ``auto``
        (``equinas.train.threads``)."""
        if self.executor in ("process", "auto"):
            return make_executor(self.executor, workers=self.workers, threads=threads)
        if self.executor == "ray":
            options = {
                "address": self.ray_address,
                "num_cpus": self.ray_cpus,
                "cpus_per_task": self.cpus_per_task,
            }
            return make_executor("ray", **options)
        return make_executor(self.executor)


def make_executor(name: str, **options: Any) -> Executor:
    """``'local'``, ``'process'`` or ``'auto'`` (options go to ``ProcessExecutor`` or
    ``AutoExecutor``: workers, threads) or ``'ray'`` (options go to ``RayExecutor``: address,
    num_cpus, cpus_per_task)."""
    if name == "auto":
        from equinas.execution.auto import AutoExecutor

        return AutoExecutor(**options)
    if name == "local":
        from equinas.execution.local import LocalExecutor

        return LocalExecutor()
    if name == "process":
        from equinas.execution.process import ProcessExecutor

        return ProcessExecutor(**options)
    if name == "ray":
        from equinas.execution.ray_executor import RayExecutor

        return RayExecutor(**options)
    raise ValueError(f"unknown executor {name!r}: expected one of {EXECUTORS}")
