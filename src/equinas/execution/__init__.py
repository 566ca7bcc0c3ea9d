"""Executors: where candidate evaluations run (in this process, in a local process pool, both:
``auto``, the command line's default, or on Ray)."""

from __future__ import annotations

from equinas.execution.auto import AutoExecutor
from equinas.execution.base import Executor, WorkerCrashed
from equinas.execution.local import LocalExecutor
from equinas.execution.process import ProcessExecutor, end_with_parent
from equinas.execution.settings import EXECUTORS, ExecutorSettings, make_executor

__all__ = [
    "EXECUTORS",
    "AutoExecutor",
    "Executor",
    "ExecutorSettings",
    "LocalExecutor",
    "ProcessExecutor",
    "WorkerCrashed",
    "end_with_parent",
    "make_executor",
]
