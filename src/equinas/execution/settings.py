"""``ExecutorSettings``: which executor runs a search's evaluations, and its options (declared once)."""

from __future__ import annotations

from dataclasses import dataclass

from equinas.execution.base import Executor
from equinas.settings import Settings, setting

EXECUTORS = ("local", "process", "ray")


@dataclass(frozen=True)
class ExecutorSettings(Settings):
    """``local``: one candidate after another in this process; ``process``: a pool of
    ``workers`` local processes (``ProcessExecutor``); ``ray``: Ray tasks of ``cpus_per_task``
    CPUs on a cluster at ``ray_address`` or a local instance of ``ray_cpus`` (``RayExecutor``)."""

    executor: str = setting(
        "local",
        choices=EXECUTORS,
        help="local: one candidate after another in this process; process: a pool of local worker "
        "processes; ray: Ray tasks",
    )
    workers: int | None = setting(
        None,
        at_least=1,
        help="worker processes of --executor process (default: cores / --threads, --threads "
        "defaulting to 1 there)",
    )
    ray_address: str | None = setting(
        None, help="join a running Ray cluster (default: start a local instance)"
    )
    ray_cpus: int | None = setting(None, at_least=1, help="CPUs of a local Ray instance")
    cpus_per_task: int = setting(1, at_least=1, help="CPUs per evaluation under Ray")

    def check(self) -> None:
        if self.workers is not None and self.executor != "process":
            raise self.fail("workers", "only the process executor has workers (executor 'process')")

    def make(self, threads: int | None = None) -> Executor:
        """The executor; ``threads``: torch threads of each process worker (default 1)."""
        if self.executor == "process":
            return make_executor("process", workers=self.workers, threads=threads or 1)
        if self.executor == "ray":
            options = {
                "address": self.ray_address,
                "num_cpus": self.ray_cpus,
                "cpus_per_task": self.cpus_per_task,
            }
            return make_executor("ray", **options)
        return make_executor(self.executor)


def make_executor(name: str, **options: object) -> Executor:
    """``'local'``, ``'process'`` (options go to ``ProcessExecutor``: workers, threads) or
    ``'ray'`` (options go to ``RayExecutor``: address, num_cpus, cpus_per_task)."""
    if name == "local":
        from equinas.execution.local import LocalExecutor

        return LocalExecutor()
    if name == "process":
        from equinas.execution.process import ProcessExecutor

        return ProcessExecutor(**options)  # type: ignore[arg-type]
    if name == "ray":
        from equinas.execution.ray_executor import RayExecutor

        return RayExecutor(**options)  # type: ignore[arg-type]
    raise ValueError(f"unknown executor {name!r}: expected one of {EXECUTORS}")
