"""The paper's EquiNAS_E architectures as named specs: every one parses and builds on the 8-layer
backbone at any width, bad names and backbones are one-line errors, and the fixed baseline
trains them."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY_MNIST_ARGS, needs_data, synthetic_task
from equinas.cli import main
from equinas.execution import LocalExecutor
from equinas.groups import parse_group
from equinas.models import BackboneSettings, SpecError, build_model
from equinas.models.backbone import named_spec
from equinas.models.paper import NAMES, PAPER_ARCHITECTURES, paper_groups
from equinas.search import SearchContext, make_method, run_search
from equinas.search.run_directory import RunDirectory
from equinas.train import TrainConfig

QUARTER = BackboneSettings(widths=(1, 1, 1, 1, 2, 2, 2, 2), hidden=None)


def test_fifteen_architectures_five_per_task_eight_d4_subgroups_each():
    assert len(NAMES) == 15
    for task in ("rotmnist", "galaxy10", "isic"):
        assert sum(name.startswith(task) for name in PAPER_ARCHITECTURES) == 5
    for groups in PAPER_ARCHITECTURES.values():
        assert len(groups) == 8
        for group in groups:
            parse_group(group, ambient="D4")
    # spot checks against the official code's encodings (layer 1 first)
    assert paper_groups("paper:rotmnist-1") == ("C4",) * 3 + ("C2",) * 4 + ("C1",)
    assert paper_groups("paper:galaxy10-2") == ("C4", "C4") + ("C2",) * 6
    assert paper_groups("paper:isic-4") == ("D4",) * 6 + ("C4", "C4")


@pytest.mark.parametrize("name", NAMES)
def test_every_paper_architecture_builds_and_runs(name):
    data = synthetic_task(size=28, classes=10)
    spec = named_spec(name, QUARTER, data)
    assert spec.groups_per_layer() == list(paper_groups(name))
    model = build_model(spec.to_dict())
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_paper_architectures_take_any_width_of_the_backbone():
    data = synthetic_task(size=28, classes=10)
    narrow = named_spec("paper:isic-2", QUARTER, data)
    wide = named_spec("paper:isic-2", BackboneSettings(widths=(2, 2, 2, 2, 4, 4, 4, 4), hidden=None), data)
    assert [layer.channels for layer in wide.layers] == [2 * layer.channels for layer in narrow.layers]


@pytest.mark.parametrize(
    "arch, settings, message",
    [
        (
            "paper:unknown",
            QUARTER,
            "unknown paper architecture 'paper:unknown'; the names are paper:rotmnist-1",
        ),
        ("paper:rotmnist-1", BackboneSettings(widths=(2, 2, 2, 2)), "has 8 layers; this backbone has 4"),
        ("paper:rotmnist-2", BackboneSettings(widths=(1,) * 8, ambient="C8"), "paper:rotmnist-2: "),
    ],
)
def test_bad_paper_names_and_backbones_are_one_line_errors(arch, settings, message):
    with pytest.raises(SpecError, match=message) as err:
        named_spec(arch, settings, synthetic_task(size=28))
    assert "\n" not in str(err.value)


def test_the_fixed_baseline_trains_a_paper_architecture_and_checks_its_name(tmp_path):
    data = synthetic_task(size=28)
    config = TrainConfig(epochs=0.2, batch_size=32)

    def context(path):
        return SearchContext(
            "synthetic", data, QUARTER, config, LocalExecutor(), RunDirectory(path), progress=False
        )

    result = run_search(make_method("fixed", groups=("paper:rotmnist-5", "C4")), context(tmp_path / "ok"))
    ids = {r.candidate_id: r.groups for r in result.candidates}
    assert ids == {"fixed-paper-rotmnist-5": list(paper_groups("paper:rotmnist-5")), "fixed-C4": ["C4"] * 8}
    with pytest.raises(ValueError, match="FixedSettings.groups: unknown paper architecture"):
        run_search(make_method("fixed", groups=("paper:nope",)), context(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="listed more than once"):
        run_search(make_method("fixed", groups=("paper:isic-1", "paper:isic-1")), context(tmp_path / "twice"))


@needs_data
def test_an_unknown_paper_name_on_the_command_line_is_one_line_listing_the_names(capsys):
    assert main(["train", "--arch", "paper:unknown", *TINY_MNIST_ARGS, "--epochs", "0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown paper architecture 'paper:unknown'; the names are paper:rotmnist-1")
    assert "paper:isic-5" in err and len(err.splitlines()) == 1


@needs_data
def test_an_out_of_range_decision_setting_is_one_line_before_any_training(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["search", "equinas_g", *TINY_MNIST_ARGS, "--alpha", "1.5", "--run-dir", str(run_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "alpha" in err and len(err.splitlines()) == 1 and not run_dir.exists()
