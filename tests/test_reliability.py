"""Bad input gets a clear error and leaves no partial files; a killed search resumes exactly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import SMALL_NET_ARGS, TINY_MNIST_ARGS, needs_data
from equinas.cli import main
from equinas.data import resolve_data_dir
from equinas.models import ArchSpec, EquivariantCNN, SpecError, backbone
from equinas.nn import EquivarianceBreakWarning, SpatialPool

SPEC = backbone("D4", widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None).to_dict()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("layers"), r"missing required field\(s\) \['layers'\]"),
        (lambda d: d.update(depth=3), r"unknown field\(s\) \['depth'\]"),
        (
            lambda d: d["layers"][0].pop("channels"),
            r"layers\[0\]: missing required field\(s\) \['channels'\]",
        ),
        (lambda d: d["layers"][1].update(colour="red"), r"layers\[1\]: unknown field\(s\) \['colour'\]"),
        (lambda d: d["layers"][0].update(group="Q8"), r"layers\[0\]\.group: unknown group name"),
        (lambda d: d["layers"][0].update(group="C8"), r"layers\[0\]\.group: C8 is not a subgroup of D4"),
        (
            lambda d: d["layers"][0].update(kernel_size=4),
            r"layers\[0\]\.kernel_size: expected a positive odd",
        ),
        (lambda d: d["layers"][0].update(kind="conv"), r"layers\[0\]\.kind: unknown kind 'conv'"),
        (lambda d: d["layers"][0].update(channels=0), r"layers\[0\]\.channels: expected a positive integer"),
        (lambda d: d["head"].update(group_pool="median"), r"head\.group_pool: expected one of"),
        (lambda d: d["head"].update(width=3), r"head: unknown field\(s\) \['width'\]"),
        (lambda d: d.update(ambient="X4"), r"ambient: unknown group name"),
        (lambda d: d["layers"][0].update(options={"free_decay": 1}), r"layers\[0\]\.options: unknown option"),
        (lambda d: d.update(layers=[]), r"layers: a network needs at least one layer"),
    ],
)
def test_bad_arch_specs_name_the_field(mutate, message) -> None:
    data = json.loads(json.dumps(SPEC))
    mutate(data)
    with pytest.raises(SpecError, match=message):
        ArchSpec.from_dict(data)


def test_spec_json_round_trip_and_file_errors(tmp_path) -> None:
    spec = ArchSpec.from_dict(SPEC)
    assert ArchSpec.from_json(spec.to_json()) == spec
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match=r"bad.json: not valid JSON"):
        ArchSpec.load(bad)


def test_pooling_odd_sizes_warns_that_rotations_break() -> None:
    model = EquivariantCNN(ArchSpec.from_dict(SPEC))
    with pytest.warns(EquivarianceBreakWarning, match="7x7"):
        model(torch.randn(2, 1, 7, 7))
    with pytest.warns(EquivarianceBreakWarning):
        SpatialPool(2)(torch.randn(1, 1, 4, 5, 6))


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*"))


@needs_data
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--task", "mnist", "--arch", "Q4"], "unknown group name"),
        (["train", "--task", "mnist", "--arch", "D4", "--train-size", "0"], "train_size"),
        (["train", "--task", "nosuch", "--arch", "D4"], "unknown task"),
        (["search", "equinas_e", "--task", "mnist", "--population", "0"], "population"),
        (["evaluate", "missing.pt", "--task", "mnist"], "missing.pt"),
    ],
)
def test_cli_errors_are_clear_and_leave_no_files(tmp_path, monkeypatch, capsys, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EQUINAS_DATA", str(resolve_data_dir()))
    monkeypatch.setenv("EQUINAS_CACHE", str(tmp_path / "cache"))
    assert main([*argv, "--run-dir", "out"] if argv[0] != "evaluate" else argv) == 2
    assert message in capsys.readouterr().err
    assert _files(tmp_path) == []


@needs_data
def test_corrupt_checkpoint_is_reported(tmp_path, capsys) -> None:
    broken = tmp_path / "checkpoint.pt"
    broken.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    assert main(["evaluate", str(broken), "--task", "mnist"]) == 2
    assert "checkpoint.pt" in capsys.readouterr().err


SEARCH = [
    "search",
    "equinas_e",
    *TINY_MNIST_ARGS,
    *[
        "--generations",
        "2",
        "--population",
        "2",
        "--epochs-per-generation",
        "0.5",
        "--children-per-parent",
        "2",
        "--quiet",
    ],
    *SMALL_NET_ARGS,
]


def _run_cli(args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "equinas.cli", *args], env=env, **kwargs)


def _kill_after(proc: subprocess.Popen, records: Path, count: int) -> list[str]:
    """SIGKILL ``proc`` once ``records`` holds ``count`` lines; the candidate ids stored then."""
    deadline = time.time() + 240
    while time.time() < deadline and (not records.exists() or len(records.read_text().splitlines()) < count):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return [json.loads(line)["candidate_id"] for line in records.read_text().splitlines() if line.strip()]


def _stop_once_locked(proc: subprocess.Popen, lock: Path) -> None:
    """SIGSTOP ``proc`` as soon as it holds the run directory's lock (its pid in ``lock``)."""
    deadline = time.time() + 120
    while time.time() < deadline and not (lock.exists() and lock.read_text().strip() == str(proc.pid)):
        time.sleep(0.01)
    proc.send_signal(signal.SIGSTOP)
    assert lock.read_text().strip() == str(proc.pid)


@needs_data
def test_search_killed_with_sigkill_resumes_to_the_same_result(tmp_path, monkeypatch) -> None:
    env = {**os.environ, "EQUINAS_DATA": str(resolve_data_dir()), "EQUINAS_CACHE": str(tmp_path / "cache")}
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    for name in ("EQUINAS_DATA", "EQUINAS_CACHE"):
        monkeypatch.setenv(name, env[name])
    assert main([*SEARCH, "--run-dir", str(reference)]) == 0  # in this process: the same command, faster

    # killed twice, at points drawn at random (seeded), each time resumed
    first, second = sorted(random.Random(16).sample(range(1, 10), 2))
    records = killed / "candidates.jsonl"
    partial = _kill_after(_run_cli([*SEARCH, "--run-dir", str(killed)], env), records, first)
    assert first <= len(partial) < 10, "the kill should land mid-search"
    assert json.loads((killed / "search.json").read_text())["status"] == "running"
    for written in killed.rglob("*.json"):  # a kill mid-write leaves a temp file, never a torn file
        json.loads(written.read_text())
    resumed = _run_cli([*SEARCH, "--run-dir", str(killed), "--resume"], env)
    partial = _kill_after(resumed, records, max(second, len(partial) + 1))

    # two resumes at once: the second is refused at once, naming the first, which finishes
    final = _run_cli([*SEARCH, "--run-dir", str(killed), "--resume"], env)
    _stop_once_locked(final, killed / ".lock")
    try:
        second = _run_cli(
            [*SEARCH, "--run-dir", str(killed), "--resume"], env, stderr=subprocess.PIPE, text=True
        )
        err = second.communicate(timeout=60)[1]  # never waits for the (stopped) first resume
    finally:
        final.send_signal(signal.SIGCONT)
    assert second.returncode == 2 and len(err.strip().splitlines()) == 1
    assert f"in use by process {final.pid}" in err
    assert final.wait(timeout=300) == 0
    assert not list(killed.rglob("*.tmp"))  # a resume clears what killed writes left behind
    ref = {r["candidate_id"]: r["val_acc"] for r in map(json.loads, (reference / "candidates.jsonl").open())}
    got = [json.loads(line) for line in records.read_text().splitlines()]
    assert {r["candidate_id"]: r["val_acc"] for r in got} == ref  # same numbers, nothing lost
    assert len(got) == len(ref) == len({r["candidate_id"] for r in got})  # none evaluated twice
    assert set(partial) <= {r["candidate_id"] for r in got}
    ref_result = json.loads((reference / "result.json").read_text())
    got_result = json.loads((killed / "result.json").read_text())
    assert got_result["best"]["candidate_id"] == ref_result["best"]["candidate_id"]
    assert got_result["best"]["test_acc"] == ref_result["best"]["test_acc"]
