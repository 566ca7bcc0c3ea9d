"""Bad inputs fail up front with one clear line: method settings, network specs, run dirs."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from conftest import SMALL_NET_ARGS, needs_data, synthetic_task
from equinas.atomic import atomic_write_text
from equinas.cli import main
from equinas.models import EquivariantCNN, SpecError, backbone
from equinas.search.methods.aen import AENGCNNSettings, AENSettings
from equinas.search.methods.equinas_d import EquiNASDSettings
from equinas.search.methods.equinas_e import EquiNASESettings
from equinas.search.methods.fixed import FixedSettings
from equinas.search.methods.layer_kinds import LayerKindSettings
from equinas.search.methods.prior import PriorSettings
from equinas.search.methods.random_search import RandomSettings
from equinas.search.validation import validate_method_settings

SMALL = ["--train-size", "64", "--val-size", "32", "--test-size", "32", "--epochs", "0.2", "--quiet"]


def _files(path: Path) -> list[Path]:
    return sorted(path.rglob("*"))


# -- method settings -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: FixedSettings(groups=("C1", "Z9")), r"FixedSettings.groups: unknown group name 'Z9'"),
        (lambda: FixedSettings(groups=("C1", "C8")), r"C8 is not a subgroup of D4"),
        (lambda: FixedSettings(groups=("C4", "C4")), r"C4 listed more than once"),
        (lambda: FixedSettings(groups=()), r"at least one group"),
        (lambda: EquiNASESettings(start_group="XX"), r"EquiNASESettings.start_group: unknown group"),
        (lambda: EquiNASESettings(epochs_per_generation=math.nan), r"epochs_per_generation"),
        (lambda: EquiNASESettings(initial_epochs=0.0), r"initial_epochs.*> 0"),
        (lambda: EquiNASDSettings(arch_lr=math.nan), r"arch_lr"),
        (lambda: EquiNASDSettings(groups=("D4", "C3")), r"C3 is not a subgroup of D4"),
        (lambda: EquiNASDSettings(prior=math.inf), r"prior"),
        (lambda: PriorSettings(prior="C4", targets=("D1",)), r"D1 is not a subgroup of the prior C4"),
        (lambda: PriorSettings(prior_fraction=math.nan), r"prior_fraction"),
        (lambda: RandomSettings(samples=0), r"RandomSettings.samples: expected an integer >= 1"),
        (lambda: LayerKindSettings(group="Q4"), r"LayerKindSettings.group: unknown group"),
        (lambda: LayerKindSettings(options={"free_decay": math.nan}), r"free_decay=nan"),
        (lambda: AENGCNNSettings(q_lr=math.nan), r"q_lr"),
    ],
)
def test_bad_method_settings_are_refused(build, message) -> None:
    with pytest.raises(ValueError, match=message):
        validate_method_settings(build(), "D4")  # construction itself may refuse it already


def test_good_method_settings_pass() -> None:
    for settings in (
        FixedSettings(),
        EquiNASESettings(start_group="D1[axis=1]"),
        EquiNASDSettings(groups=("C1", "D4"), prior=2.0),
        PriorSettings(),
        AENSettings(),  # its groups are G-MNIST transforms, not planar groups
        LayerKindSettings(options={"free_decay": 1e-3}),
    ):
        validate_method_settings(settings, "D4")
    with pytest.raises(ValueError, match=r"ambient: unknown group"):
        validate_method_settings(FixedSettings(), "X4")


# -- network specs -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"widths": (0, 0)}, r"widths: expected positive integers .* got 0 for layer 0"),
        ({"widths": (2, True)}, r"widths: .* got True"),
        ({"widths": ()}, r"widths: a network needs at least one layer"),
        ({"widths": (2, 2), "pools_after": (2,)}, r"pools_after: layer 2 does not exist; the 2 layers are 0"),
        ({"widths": (2, 2), "pools_after": (-1,)}, r"pools_after: layer -1 does not exist"),
        ({"widths": (2, 2), "pools_after": (0, 0)}, r"pools_after: a layer is listed twice"),
    ],
)
def test_backbone_layout_is_validated(kwargs, message) -> None:
    with pytest.raises(SpecError, match=message):
        backbone("C4", **kwargs)


def test_too_many_pools_fail_up_front_and_name_the_option() -> None:
    spec = backbone("C4", widths=(1,) * 6, pools_after=(0, 1, 2, 3, 4), kernel_size=3, hidden=None)
    assert backbone("C4", widths=(1, 1), pools_after=(0, 1)).check_input_size(28, 28) == (7, 7)
    with pytest.raises(SpecError, match=r"pools_after: the 2x2 pool after layer 4 gets a 1x1 map"):
        spec.check_input_size(28, 28)
    with pytest.raises(SpecError, match="pools_after"):
        EquivariantCNN(spec)(torch.zeros(1, 1, 28, 28))


# -- command line ----------------------------------------------------------------------------------
@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    from equinas.data import resolve_data_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EQUINAS_DATA", str(resolve_data_dir()))
    monkeypatch.setenv("EQUINAS_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))
    return tmp_path


@needs_data
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "fixed", "--groups", "C1,Z9"], "unknown group name 'Z9'"),
        (["search", "fixed", "--groups", "C1,C8"], "C8 is not a subgroup of D4"),
        (["search", "equinas_e", "--start-group", "XX"], "start_group (--start-group)"),
        (["search", "equinas_d", "--arch-lr", "nan"], "arch_lr"),
        (
            ["search", "equinas_d", "--decide-at", "1.5"],
            "decide_at (--decide-at): expected a finite number >= 0 and < 1",
        ),
        (["search", "fixed", "--lr", "nan"], "TrainConfig.lr"),
        (["search", "random", "--samples", "0"], "samples (--samples)"),
        (["search", "fixed", "--widths", "0,0", "--pools-after", ""], "widths (--widths)"),
        (["search", "fixed", "--pools-after", "0,5"], "pools_after (--pools-after): layer 5"),
        (
            ["search", "fixed", "--widths", "1,1,1,1,1,1", "--pools-after", "0,1,2,3,4"],
            "pools_after (--pools-after): the 2x2 pool after layer 4",
        ),
        (["train", "--widths", "1,1,1,1,1,1", "--pools-after", "0,1,2,3,4"], "pools_after (--pools-after)"),
        (["train", "--lr", "nan"], "TrainConfig.lr"),
    ],
)
def test_cli_refuses_bad_settings_before_creating_files(in_tmp, capsys, argv, message) -> None:
    command = argv[:2] if argv[0] == "search" else argv[:1]
    options = argv[len(command) :]  # after the defaults below, so they win
    assert main([*command, "--task", "mnist", *SMALL, *SMALL_NET_ARGS, *options, "--run-dir", "out"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert _files(in_tmp) == []


@needs_data
def test_train_run_dir_must_be_a_fresh_training_folder(in_tmp, capsys) -> None:
    base = ["train", "--task", "mnist", *SMALL, *SMALL_NET_ARGS]
    assert main([*base, "--run-dir", ""]) == 2
    assert "--run-dir is empty" in capsys.readouterr().err
    search_dir = in_tmp / "search"
    search_dir.mkdir()
    (search_dir / "search.json").write_text("{}")
    assert main([*base, "--run-dir", str(search_dir)]) == 2
    assert "holds a search run" in capsys.readouterr().err
    (in_tmp / "file").write_text("")
    assert main([*base, "--run-dir", "file/run"]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert sorted(p.name for p in in_tmp.iterdir()) == ["file", "search"]
    assert sorted(p.name for p in search_dir.iterdir()) == ["search.json"]


def test_ctrl_c_prints_how_to_resume(tmp_path, monkeypatch, capsys) -> None:
    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr("equinas.data.settings.DataSettings.load", interrupted)
    argv = ["train", "--task", "mnist", *SMALL, "--run-dir", str(tmp_path / "run")]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.strip() == "interrupted; rerun the same command with --resume to continue"


def test_evaluate_checks_its_output_before_computing(tmp_path, capsys) -> None:
    missing_folder = tmp_path / "no" / "report.json"
    assert main(["evaluate", "never-read.pt", "--task", "mnist", "--output", str(missing_folder)]) == 2
    err = capsys.readouterr().err
    assert "--output" in err and "does not exist" in err and "never-read.pt" not in err
    assert main(["evaluate", "never-read.pt", "--task", "mnist", "--output", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    from equinas.execution import LocalExecutor
    from equinas.search import BackboneSettings, SearchContext, make_method, run_search
    from equinas.search.run_directory import RunDirectory
    from equinas.train import TrainConfig

    path = tmp_path_factory.mktemp("runs") / "fixed-seed0"
    ctx = SearchContext(
        "synthetic",
        synthetic_task(),
        BackboneSettings(widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None),
        TrainConfig(epochs=0.5, batch_size=32, num_threads=1),
        LocalExecutor(),
        RunDirectory(path),
        progress=False,
    )
    run_search(make_method("fixed", groups=("C1",)), ctx)
    return path


def test_report_output_without_compare_writes_the_table(finished_run, tmp_path, capsys) -> None:
    table = tmp_path / "table.md"
    assert main(["report", str(finished_run), "--output", str(table)]) == 0
    assert "| synthetic | fixed |" in table.read_text()
    assert main(["report", str(finished_run), "--output", str(tmp_path / "no" / "t.md")]) == 2
    assert "--output" in capsys.readouterr().err


def test_report_on_missing_or_unwritable_dirs(finished_run, tmp_path, monkeypatch, capsys) -> None:
    assert main(["report", str(tmp_path / "nosuch")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "not finished" not in err

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(finished_run / "report.md"))

    monkeypatch.setattr("equinas.report.write_report", read_only)
    assert main(["report", str(finished_run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Permission denied" in err and "report.md" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_report_on_a_read_only_dir(finished_run, capsys) -> None:
    finished_run.chmod(0o555)
    try:
        assert main(["report", str(finished_run)]) == 2
    finally:
        finished_run.chmod(0o755)
    assert "read-only" in capsys.readouterr().err


def test_atomic_writes_honour_the_umask(tmp_path) -> None:
    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.json", "{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o600


@needs_data
def test_ray_address_without_a_cluster_is_one_line(in_tmp, monkeypatch, capsys) -> None:
    import socket

    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray instance is running in this process")
    services = pytest.importorskip("ray._private.services")
    # no cluster on this machine, whatever other processes run: Ray's own lookups find nothing
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: frozenset())
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir: None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    argv = ["search", "fixed", "--task", "mnist", *SMALL, *SMALL_NET_ARGS, "--groups", "C1"]
    argv += ["--executor", "ray"]
    for address, message in (("auto", "Could not find any running Ray instance"), (closed, "no Ray cluster")):
        assert main([*argv, "--ray-address", address, "--run-dir", "out"]) == 2
        err = capsys.readouterr().err
        assert f"cannot join the Ray cluster at {address!r}" in err and message in err
        assert len(err.strip().splitlines()) == 1
    assert _files(in_tmp) == []
