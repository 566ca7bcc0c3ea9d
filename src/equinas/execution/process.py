"""Run evaluations in a pool of worker processes on this machine.

Small networks gain more from a second process than from a second torch thread, so by default
as many one-thread workers as usable cores run at once; ``threads`` sets the torch threads of
each worker, ``auto`` (the default) the usable cores divided among the workers
(``equinas.train.threads``). The shared object (the data set) reaches every worker once, when the pool starts:
its tensors travel through shared memory (``torch.multiprocessing``), not as a copy per job.
The pool lives across ``map`` calls that share the same object (the generations of a search),
and several threads may ``map`` at once over the same object: their jobs share the workers (the
demo runs its searches this way, so that no core idles while any search has work queued).

Workers end with the process that started them, even when it is killed with SIGKILL: a
watcher thread in every worker ends it once its parent is gone (``os.getppid()`` changes;
checked every ``PARENT_POLL_S`` seconds). Linux's parent-death signal (``PR_SET_PDEATHSIG``)
is not used: it follows the thread that spawned a worker, and workers are spawned by whichever
thread submits jobs, so a finished thread of the demo would kill a live pool's worker.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import torch
import torch.multiprocessing as torch_mp

from equinas.execution.base import WorkerCrashed, job_name
from equinas.train.threads import AUTO, default_workers, share_cores, threads_per_worker, usable_cores

J = TypeVar("J")
R = TypeVar("R")

_shared: Any = None
_started: Any = None
PARENT_POLL_S = 0.5


def _watch_parent(parent: int) -> None:
    """End this worker process once process ``parent`` is gone (it is then adopted by another)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def end_with_parent(parent: int) -> None:
    """Make this process end once process ``parent`` is gone, even after a SIGKILL of it: the
    initializer of any pool's workers, e.g. ``ProcessPoolExecutor(initializer=end_with_parent,
    initargs=(os.getpid(),))`` (the benchmark scripts' pools)."""
    if os.getppid() != parent:  # the parent died while this worker started
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()


def _start_worker(shared: Any, threads: int, started: Any, parent: int) -> None:
    global _shared, _started
    end_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to report, in one line
    _shared, _started = shared, started
    share_cores(threads)
    torch.set_num_threads(threads)


def _run(fn: Callable[[Any, Any], Any], job: Any, token: tuple[int, int]) -> Any:
    _started.put(token)  # (map call, job index): the parent can name the job of a worker that dies
    return fn(job, _shared)


class ProcessExecutor:
    """Executor over ``workers`` local processes with ``threads`` torch threads each.

    Args:
        workers: processes (default: the usable cores divided by ``threads``, one per core for
            ``auto``); more workers x threads than cores warns (they would slow each other down).
        threads: torch threads per worker, or ``auto``: the usable cores divided among the
            workers (at least 1); a network with ``TrainConfig.num_threads='auto'`` in a worker
            trains with as many.
    """

    name = "process"

    def __init__(self, workers: int | None = None, threads: int | str = AUTO):
        cores = usable_cores()
        if threads != AUTO and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads per worker must be 'auto' or an integer >= 1, got {threads!r}")
        if workers is None:
            workers = default_workers(threads)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        threads = threads_per_worker(threads, workers)
        if workers * threads > cores:
            warnings.warn(
                f"{workers} workers x {threads} threads exceed the {cores} available cores; "
                "evaluations will slow each other down",
                RuntimeWarning,
                stacklevel=2,
            )
        self.workers, self.threads = workers, threads
        self._lock = threading.Lock()  # one pool, also when several threads map at once
        self._pool: ProcessPoolExecutor | None = None
        self._shared_id: int | None = None
        self._started: Any = None
        self._calls = 0  # map calls so far: tells the jobs of one call from those of others

    def _pool_for(self, shared: Any) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None or self._shared_id != id(shared):
                self.close()
                context = torch_mp.get_context("spawn")
                self._started = context.SimpleQueue()
                self._pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=context,
                    initializer=_start_worker,
                    initargs=(shared, self.threads, self._started, os.getpid()),
                )
                self._shared_id = id(shared)
            return self._pool

    def _crashed(self, call: int, names: list[str], finished: set[int]) -> WorkerCrashed:
        """The error for a dead worker, naming the jobs of map call ``call`` that had started
        and not finished (``names[i]`` is job ``i``'s name)."""
        started = []
        queue = self._started  # None when another thread's map already closed the pool
        while queue is not None and not queue.empty():
            started.append(queue.get())
        running = [names[i] for c, i in started if c == call and i not in finished] or ["an unknown job"]
        self.close()
        return WorkerCrashed(
            f"a worker process died while evaluating {', '.join(running)}; the candidates that "
            "finished are kept: resume (--resume) to evaluate the rest"
        )

    def map(self, fn: Callable[[J, Any], R], jobs: Sequence[J], shared: Any) -> Iterator[tuple[int, R]]:
        if not jobs:
            return
        pool = self._pool_for(shared)
        with self._lock:
            self._calls += 1
            call = self._calls
        names = [job_name(job, i) for i, job in enumerate(jobs)]
        futures: dict[Future, int] = {pool.submit(_run, fn, job, (call, i)): i for i, job in enumerate(jobs)}
        finished: set[int] = set()
        try:
            for future in as_completed(futures):
                index = futures[future]
                try:
                    result = future.result()
                except BrokenProcessPool:
                    raise self._crashed(call, names, finished) from None
                except Exception as err:
                    raise RuntimeError(f"evaluating {names[index]} failed: {err}") from err
                finished.add(index)
                yield index, result
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        """Stop the workers (jobs not yet started are cancelled)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = self._shared_id = self._started = None
