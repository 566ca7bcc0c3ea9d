"""Run evaluations as Ray tasks, on a local Ray instance or an existing cluster.

Requires the optional extra ``equinas[ray]``. Each job becomes one Ray task with
``num_cpus`` CPUs; the shared object (the data set) is put in the object store once per
``map`` call. The job function must be importable by the workers (a module-level function).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from equinas.execution.base import WorkerCrashed, job_name

J = TypeVar("J")
R = TypeVar("R")
LOOPBACK = "127.0.0.1"
PROBE_TIMEOUT_S = 5.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError("the Ray executor needs the 'ray' package: pip install 'equinas[ray]'") from None
    return ray


class RayExecutor:
    """Executor backed by Ray tasks.

    Args:
        address: ``None`` starts a local instance (its services listen on 127.0.0.1 only;
            ``$RAY_ADDRESS`` joins that cluster instead); ``"auto"`` or ``"ray://host:port"``
            joins a running cluster (``RuntimeError`` with one line when none is found).
        num_cpus: CPUs of a local instance (ignored when joining a cluster).
        cpus_per_task: CPUs reserved by each evaluation (torch threads are set to match);
            ``ValueError`` when the cluster has fewer CPUs in all (the tasks would never start).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, cpus_per_task: int = 1):
        for name, value in (("cpus_per_task", cpus_per_task), ("num_cpus", num_cpus)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self._ray = _import_ray()
        self.cpus_per_task = cpus_per_task
        self._started_here = not self._ray.is_initialized()
        if self._started_here:
            kwargs: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": False}
            local = address is None and not os.environ.get("RAY_ADDRESS")
            if local:  # a new instance of our own: never join a cluster another process started
                kwargs["address"] = "local"
                if num_cpus is not None:
                    kwargs["num_cpus"] = num_cpus
            where = address or os.environ.get("RAY_ADDRESS")
            try:
                if local:
                    _init_on_loopback(self._ray, kwargs)
                else:
                    _probe_cluster(where)
                    self._ray.init(**kwargs)
            except ConnectionError as err:
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise RuntimeError(f"cannot join the Ray cluster at {where!r}: {reason}") from None
        try:
            self._check_resources()
        except BaseException:
            self.close()
            raise

    def _check_resources(self) -> None:
        """``ValueError`` when no node could ever run a task (Ray would wait forever)."""
        total = self._ray.cluster_resources().get("CPU", 0)
        if self.cpus_per_task > total:
            raise ValueError(
                f"each Ray task asks for {self.cpus_per_task} CPUs (--cpus-per-task) but the Ray "
                f"cluster has {total:g} in all; lower --cpus-per-task or give Ray more CPUs (--ray-cpus)"
            )

    def map(self, fn: Callable[[J, Any], R], jobs: Sequence[J], shared: Any) -> Iterator[tuple[int, R]]:
        """Yield ``(index, fn(job, shared))`` as tasks finish. An exception raised by ``fn``
        propagates (as Ray's ``RayTaskError`` of its type); a task lost to a dead worker or node
        is a ``WorkerCrashed`` naming the jobs that had not finished. Tasks not yet done when
        the caller stops are cancelled."""
        ray = self._ray
        self._check_resources()
        remote = ray.remote(num_cpus=self.cpus_per_task, max_retries=0)(_call_with_threads)
        shared_ref = ray.put(shared)
        pending = {remote.remote(fn, job, shared_ref, self.cpus_per_task): i for i, job in enumerate(jobs)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError:
                    raise
                except ray.exceptions.RayError as err:
                    unfinished = ", ".join(job_name(jobs[i], i) for i in sorted(pending.values()))
                    raise WorkerCrashed(
                        f"a Ray worker or node died while evaluating {unfinished} ({type(err).__name__}); "
                        "the candidates that finished are kept: resume (--resume) to evaluate the rest"
                    ) from None
                yield pending.pop(ref), result
        finally:
            for ref in pending:
                with contextlib.suppress(Exception):  # already finished or its node is gone
                    ray.cancel(ref)

    def close(self) -> None:
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()


def _cluster_endpoint(address: str | None) -> tuple[str, int] | None:
    """``(host, port)`` that ``address`` names, after Ray's own lookup for ``"auto"``
    (``ConnectionError`` when it finds no cluster); None when it cannot be told."""
    target: object = address
    if address == "auto":
        try:
            services = importlib.import_module("ray._private.services")
            lookup = services.get_ray_address_from_environment
        except (ImportError, AttributeError):  # pragma: no cover - another Ray layout
            return None
        target = lookup("auto", None)
    if not isinstance(target, str) or target in ("auto", "local"):
        return None
    host, sep, port = target.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    return host.strip("[]"), int(port)


def _probe_cluster(address: str | None) -> None:
    """Fail fast (``ConnectionError``) when nothing listens where ``address`` points: Ray itself
    retries a stale or wrong address for minutes before giving up."""
    endpoint = _cluster_endpoint(address)
    if endpoint is None:
        return
    try:
        with socket.create_connection(endpoint, timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as err:
        host, port = endpoint
        raise ConnectionError(
            f"no Ray cluster answers at {host}:{port} ({err.strerror or type(err).__name__})"
        ) from None


def _init_on_loopback(ray: Any, kwargs: dict[str, Any]) -> None:
    """Start a local Ray instance whose services listen on 127.0.0.1 only.

    ``ray.init(_node_ip_address="127.0.0.1")`` alone is not enough in Ray 2.x on Linux: it
    rewrites loopback addresses to the machine's outward IP unless
    ``ray_constants.ENABLE_RAY_CLUSTER`` is off (Ray's own mode for single-machine use on
    macOS and Windows), so that switch is turned off for the duration of ``init``.
    """
    kwargs = {**kwargs, "_node_ip_address": LOOPBACK}
    constants: Any  # Ray's module of settings: attributes that only exist at run time
    try:
        constants = importlib.import_module("ray._private.ray_constants")
    except ImportError:  # pragma: no cover - a Ray without the switch
        constants = None
    previous = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if previous is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(**kwargs)
    finally:
        if previous is not None:
            constants.ENABLE_RAY_CLUSTER = previous


def _call_with_threads(fn: Callable[[Any, Any], Any], job: Any, shared: Any, threads: int) -> Any:
    import torch

    from equinas.train.threads import share_cores

    share_cores(threads)
    torch.set_num_threads(threads)
    return fn(job, shared)
