"""A search on a two-node Ray cluster on this machine, every service bound to 127.0.0.1: the
records of a local run, and a node killed mid-search loses nothing after a resume.

The nodes are started with ``node_ip_address="127.0.0.1"``, where Ray binds every service to
loopback; the test reads the listening sockets of every process of the cluster (``ss``) and
skips, never falling back, when any listens on another address.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from conftest import synthetic_search_context
from equinas.execution import LocalExecutor, WorkerCrashed
from equinas.search import make_method, run_search
from helpers import on_ray_node

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")
ray_executor = pytest.importorskip("equinas.execution.ray_executor")

LOOPBACK = "127.0.0.1"
GROUPS = ("C1", "C2", "C4", "D1", "D2", "D4")
NODE = {"node_ip_address": LOOPBACK, "num_cpus": 1, "object_store_memory": 80 * 2**20}


def _search(path: Path, executor) -> list[dict]:
    ctx = synthetic_search_context(path, executor)
    run_search(make_method("fixed", groups=GROUPS), ctx, resume=True)
    return _records(path)


def _stored_ids(records: Path) -> set[str]:
    """Candidate ids of the complete lines of ``records`` so far (the last may be half written)."""
    text = records.read_text() if records.exists() else ""
    return {json.loads(line)["candidate_id"] for line in text[: text.rfind("\n") + 1].splitlines()}


def _records(path: Path) -> list[dict]:
    records = [json.loads(line) for line in (path / "candidates.jsonl").read_text().splitlines()]
    for record in records:
        for volatile in ("time_s", "cost", "extra"):
            record.pop(volatile)
    return sorted(records, key=lambda r: r["candidate_id"])


class NodeRecording(ray_executor.RayExecutor):
    """The Ray executor, noting the node every job ran on; with ``started`` (a folder) every
    job notes its node and candidate there when it starts, then waits ``delay`` seconds."""

    def __init__(self, started: Path | None = None, delay: float = 0.0) -> None:
        super().__init__(cpus_per_task=1)
        self.nodes: list[str] = []
        self.started, self.delay = None if started is None else str(started), delay

    def map(self, fn, jobs, shared):
        wrapped = partial(on_ray_node, fn, self.started, self.delay)
        for index, (node, result) in super().map(wrapped, jobs, shared):
            self.nodes.append(node)
            yield index, result


def _descendants(root: int) -> set[int]:
    """``root`` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def _listeners() -> list[tuple[str, str]]:
    """``(host, ss line)`` of every socket that this process or one below it listens on."""
    pids = _descendants(os.getpid())
    out = subprocess.run(["ss", "-Hltunp"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        if {int(p) for p in re.findall(r"pid=(\d+)", line)} & pids:
            host = line.split()[4].rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")  # IPv4-mapped
            found.append((host, " ".join(line.split())))
    return found


def _skip_unless_loopback(cluster) -> None:
    """Skip (after stopping Ray) unless every socket of the cluster listens on 127.0.0.1 only."""
    listeners = _listeners()
    foreign = [line for host, line in listeners if host != LOOPBACK]
    reason = None
    if not listeners:  # the driver listens: ss cannot see the owners of sockets here
        reason = "cannot tell which addresses Ray listens on (ss shows no owning processes)"
    elif foreign:
        reason = f"Ray listens on other addresses than {LOOPBACK}: {foreign[:3]}"
    if reason:
        ray.shutdown()
        cluster.shutdown()
        pytest.skip(reason)


@pytest.fixture
def cluster(monkeypatch):
    if shutil.which("ss") is None:
        pytest.skip("needs `ss` (iproute2) to check which addresses Ray listens on")
    if ray.is_initialized():
        pytest.skip("a Ray instance is running in this process")
    src = Path(ray_executor.__file__).parents[2]
    tests = Path(__file__).parent
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(src), str(tests), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    nodes = cluster_utils.Cluster(
        initialize_head=True, head_node_args={**NODE, "include_dashboard": False, "dashboard_host": LOOPBACK}
    )
    try:
        worker = nodes.add_node(**NODE)
        ray_executor._init_on_loopback(ray, {"address": nodes.address, "log_to_driver": False})
        nodes.wait_for_nodes()
        _skip_unless_loopback(nodes)
        yield nodes, worker
    finally:
        ray.shutdown()
        nodes.shutdown()


def test_a_two_node_cluster_gives_the_local_records_and_survives_a_node_kill(cluster, tmp_path) -> None:
    nodes, worker = cluster
    local = _search(tmp_path / "local", LocalExecutor())
    both = NodeRecording()
    assert _search(tmp_path / "ray", both) == local
    assert set(both.nodes) == {n["NodeID"] for n in ray.nodes() if n["Alive"]}  # both nodes worked

    killed_dir, started = tmp_path / "killed", tmp_path / "started"
    started.mkdir()
    records = killed_dir / "candidates.jsonl"

    def kill_the_worker_node_mid_job() -> None:
        """Once a record is stored, kill the worker node while it waits in a job's start."""
        deadline = time.time() + 120
        while time.time() < deadline:
            done = _stored_ids(records)
            waiting = [p for p in started.glob(f"{worker.node_id}-*") if p.name.split("-", 1)[1] not in done]
            if done and waiting:
                break
            time.sleep(0.02)
        nodes.remove_node(worker, allow_graceful=False)

    killer = threading.Thread(target=kill_the_worker_node_mid_job)
    killer.start()
    with pytest.raises(WorkerCrashed, match="resume"):
        _search(killed_dir, NodeRecording(started, delay=2.0))
    killer.join()
    kept = _records(killed_dir)
    assert 0 < len(kept) < len(GROUPS)
    assert _search(killed_dir, NodeRecording()) == local  # the head node alone finishes the search
    _skip_unless_loopback(nodes)  # the worker processes the searches started as well
