"""``--threads auto``: usable cores (affinity, cgroup quota), shares of pool workers, records."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from equinas.cli import build_parser
from equinas.cli.common import train_config
from equinas.execution import AutoExecutor, ProcessExecutor
from equinas.search import make_method, run_search
from equinas.train import TrainConfig, load_checkpoint, train
from equinas.train import threads as threads_module
from equinas.train.threads import (
    cgroup_cpu_limit,
    default_workers,
    resolve_threads,
    thread_choice,
    threads_per_worker,
    usable_cores,
)
from helpers import auto_threads_of_worker
from test_search import context
from test_train_engine import make_task


@pytest.fixture
def cores(monkeypatch, tmp_path):
    """``set(cores, quota=None)``: this process may run on ``cores`` CPUs under a cgroup quota of
    ``quota`` CPUs (None: no quota file); outside any pool."""
    monkeypatch.setattr(threads_module, "_share", None)

    def set_cores(count: int, quota: str | None = None) -> None:
        monkeypatch.setattr(threads_module.os, "sched_getaffinity", lambda pid: set(range(count)))
        path = tmp_path / "cpu.max"
        if quota is not None:
            path.write_text(quota + "\n")
        monkeypatch.setattr(threads_module, "CPU_MAX", path)

    return set_cores


@pytest.mark.parametrize("value, expected", [("auto", "auto"), (3, 3), ("2", 2), (" 4 ", 4)])
def test_thread_choice_takes_auto_or_a_count(value, expected) -> None:
    assert thread_choice(value) == expected


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "x", "", None, "0"])
def test_thread_choice_refuses_the_rest(value) -> None:
    with pytest.raises(ValueError, match="expected 'auto' or an integer >= 1"):
        thread_choice(value)


@pytest.mark.parametrize(
    "text, cpus", [("max 100000", None), ("200000 100000", 2), ("150000 100000", 1), ("50000 100000", 1)]
)
def test_cgroup_quota_in_whole_cpus(tmp_path, text, cpus) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(text + "\n")
    assert cgroup_cpu_limit(path) == cpus
    assert cgroup_cpu_limit(tmp_path / "missing") is None


def test_usable_cores_are_the_affinity_capped_by_the_quota(cores) -> None:
    cores(8)
    assert usable_cores() == 8
    cores(8, "max 100000")
    assert usable_cores() == 8
    cores(8, "300000 100000")
    assert usable_cores() == 3
    cores(2, "400000 100000")
    assert usable_cores() == 2


@given(count=st.integers(1, 64), workers=st.integers(1, 80), explicit=st.integers(1, 8))
def test_pool_workers_share_the_cores(count, workers, explicit) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(threads_module, "usable_cores", lambda: count)
        share = threads_per_worker("auto", workers)
        assert share == max(1, count // workers)
        assert workers * share <= count or share == 1
        assert threads_per_worker(explicit, workers) == explicit
        assert default_workers("auto") == count  # one-thread workers, one per core
        assert default_workers(explicit) == max(1, count // explicit)


def test_a_network_alone_gets_every_core_and_a_worker_its_share(cores) -> None:
    cores(6, "400000 100000")
    assert resolve_threads("auto") == 4
    assert resolve_threads(3) == 3
    threads_module.share_cores(2)  # what a pool's worker does when it starts
    assert resolve_threads("auto") == 2
    assert resolve_threads(3) == 3


def test_executors_give_auto_workers_their_share(cores) -> None:
    cores(8)
    assert (ProcessExecutor().workers, ProcessExecutor().threads) == (8, 1)
    assert ProcessExecutor(workers=3).threads == 2
    assert ProcessExecutor(workers=3, threads=1).threads == 1
    assert (ProcessExecutor(threads=4).workers, ProcessExecutor(threads=4).threads) == (2, 4)
    cores(1)
    assert AutoExecutor()._pool is None and ProcessExecutor().threads == 1


def test_a_pool_worker_resolves_auto_to_its_share() -> None:
    executor = ProcessExecutor(workers=1)  # one worker: every usable core
    try:
        ((_, (torch_threads, auto)),) = executor.map(auto_threads_of_worker, [0], None)
    finally:
        executor.close()
    assert torch_threads == auto == executor.threads == usable_cores()


def test_the_command_line_reads_auto_and_counts() -> None:
    parser = build_parser(only="train")
    assert train_config(parser.parse_args(["train", "--task", "t"])).num_threads == "auto"
    assert train_config(parser.parse_args(["train", "--task", "t", "--threads", "3"])).num_threads == 3
    assert TrainConfig.from_dict(TrainConfig(num_threads=2).to_dict()).num_threads == 2
    with pytest.raises(ValueError, match="num_threads: expected 'auto' or an integer >= 1, got 0"):
        TrainConfig(num_threads=0)


class ThreadsSeen(nn.Module):
    """A linear classifier of 8x8 images that notes torch's thread count at every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 2)
        self.seen: set[int] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.add(torch.get_num_threads())
        return self.linear(x.flatten(1))


def test_training_runs_and_records_with_the_resolved_count(cores, tmp_path) -> None:
    cores(16, "300000 100000")
    before = torch.get_num_threads()
    model = ThreadsSeen()
    config = TrainConfig(epochs=0.5, batch_size=64, device="cpu", bn_recalibration=0)
    train(model, make_task(), config, tmp_path, progress=False)
    assert model.seen == {3} and torch.get_num_threads() == before
    start = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])
    assert start["event"] == "start" and start["config"]["num_threads"] == 3
    assert load_checkpoint(tmp_path / "checkpoint.pt")["config"]["num_threads"] == 3

    cores(2)  # the same run resumed elsewhere (a finished run is re-evaluated, with 2 threads)
    model = ThreadsSeen()
    train(model, make_task(), config, tmp_path, progress=False, resume=True)
    assert model.seen == {2}


def test_searches_recorded_with_a_count_or_none_resume_with_auto(tmp_path) -> None:
    def search(name: str, resume: bool = False, **train) -> None:
        run_search(make_method("fixed", groups=("C1",)), context(tmp_path, name, **train), resume=resume)

    search("one", num_threads=1)
    search("one", resume=True, num_threads="auto")

    search("older")
    record = tmp_path / "older" / "search.json"
    meta = json.loads(record.read_text())
    del meta["train"]["num_threads"]  # recorded before threads had a default
    record.write_text(json.dumps(meta))
    search("older", resume=True, num_threads="auto")
