"""One home for every setting: declarations, the command line generated from them, and
the library deciding what a search means whether it is started from the shell or from Python."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from equinas.cli import build_parser, main
from equinas.cli.options import destination, option_name, stood_for
from equinas.cli.search import train_fields_set_elsewhere
from equinas.data.settings import DataSettings
from equinas.execution import ExecutorSettings
from equinas.models import BackboneSettings
from equinas.search import METHODS
from equinas.settings import Settings, declared_fields, default_of, setting
from equinas.train import TrainConfig


def subparser(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    """The parser of ``equinas <names...>``."""
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def options_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions for option in action.option_strings}


def assert_declared_on(parser: argparse.ArgumentParser, cls: type, skip: set[str] = frozenset()) -> int:
    """Every declared field of ``cls`` (but ``skip``) is an option with the field's default."""
    options = options_of(parser)
    count = 0
    for f, vtype, decl in declared_fields(cls):
        assert decl is not None, f"{cls.__name__}.{f.name} is not declared with setting()"
        if f.name in skip:
            continue
        action = options.get(option_name(f, decl))
        assert action is not None, f"{cls.__name__}.{f.name}: no {option_name(f, decl)} on {parser.prog}"
        assert action.dest == destination(f, decl)
        default = default_of(f)
        if default is dataclasses.MISSING:
            assert action.required, f"{option_name(f, decl)} should be required"
        elif vtype.base is dict:  # repeatable KEY=VALUE: nothing given means the field's default
            assert action.default is None and default == {}
        else:
            assert action.default == default, f"{option_name(f, decl)}: {action.default!r} != {default!r}"
        if decl.choices is not None and vtype.base is str:
            assert tuple(action.choices) == tuple(decl.choices)
        count += 1
    return count


def test_every_declared_field_is_an_option_with_its_default() -> None:
    parser = build_parser()
    train = subparser(parser, "train")
    for cls in (TrainConfig, BackboneSettings, DataSettings):
        assert assert_declared_on(train, cls) == len(dataclasses.fields(cls))
    for name, method_cls in METHODS.items():
        settings_cls = method_cls.settings_class
        search = subparser(parser, "search", name)
        replaced = train_fields_set_elsewhere(settings_cls)
        assert assert_declared_on(search, TrainConfig, skip=replaced) == len(
            dataclasses.fields(TrainConfig)
        ) - len(replaced)
        for cls in (BackboneSettings, DataSettings, ExecutorSettings, settings_cls):
            assert_declared_on(search, cls)
    assert stood_for(METHODS["equinas_d"].settings_class, TrainConfig) == {
        "arch_lr",
        "arch_weight_decay",
        "arch_every",
        "arch_warmup_epochs",
        "arch_epochs",
    }
    assert options_of(subparser(parser, "search", "equinas_d"))["--arch-lr"].default == 0.05


ARCH_OPTIONS = {"--arch-lr", "--arch-weight-decay", "--arch-betas", "--arch-every"}
ARCH_WINDOW = {"--arch-warmup-epochs", "--arch-epochs"}


def test_a_method_offers_only_the_training_options_it_reads() -> None:
    """The architecture-step options of TrainConfig mean nothing to a method without architecture
    steps (issue 33: equinas_g listed them); EquiNAS_D offers them, its own where it sets them
    (its --warmup-epochs and --decide-at stand for the window's)."""
    parser = build_parser()
    for name in METHODS:
        options = set(options_of(subparser(parser, "search", name)))
        if name == "equinas_d":
            assert options >= ARCH_OPTIONS and not options & ARCH_WINDOW
        else:
            assert not options & (ARCH_OPTIONS | ARCH_WINDOW), name
    assert set(options_of(subparser(parser, "train"))) >= ARCH_OPTIONS | ARCH_WINDOW  # --arch mixed


def test_every_method_help_says_what_it_does_and_costs(capsys) -> None:
    parser = build_parser()
    for name in METHODS:
        with pytest.raises(SystemExit):
            parser.parse_args(["search", name, "--help"])
        description = " ".join(capsys.readouterr().out.split("\n\n")[1].split())
        assert "Cost:" in description and description.count(". ") >= 2, (name, description)


def test_a_new_method_field_needs_no_command_line_change() -> None:
    from equinas.cli.options import add_settings, settings_from

    @dataclasses.dataclass(frozen=True)
    class Toy(Settings):
        depth: int = setting(3, at_least=1, help="layers")
        rate: float | None = setting(None, above=0, help="a rate")
        names: tuple[str, ...] = setting(("a", "b"), help="names")
        mode: str = setting("x", choices=("x", "y"), help="a mode")
        flag: bool = setting(False, help="a flag")
        options: dict = setting(factory=dict, help="options")

    parser = argparse.ArgumentParser()
    add_settings(parser, Toy, "toy")
    args = parser.parse_args(["--depth", "5", "--rate", "none", "--names", "c,d", "--mode", "y", "--flag"])
    assert settings_from(args, Toy) == Toy(depth=5, rate=None, names=("c", "d"), mode="y", flag=True)
    assert settings_from(parser.parse_args(["--options", "k=1", "--options", "j=x"]), Toy).options == {
        "k": 1,
        "j": "x",
    }
    with pytest.raises(ValueError, match=r"^Toy.depth: expected an integer >= 1, got 0$"):
        settings_from(parser.parse_args(["--depth", "0"]), Toy)


@pytest.mark.parametrize(
    ("cls", "values", "message"),
    [
        (
            TrainConfig,
            {"grad_clip": 0.0},
            r"TrainConfig.grad_clip: expected a finite number > 0 or None, got 0.0",
        ),
        (
            BackboneSettings,
            {"width_rule": "area"},
            r"BackboneSettings.width_rule: expected one of 'channels'",
        ),
        (
            BackboneSettings,
            {"kernel_size": 4},
            r"BackboneSettings.kernel_size: expected a positive odd integer",
        ),
        (
            ExecutorSettings,
            {"executor": "local", "workers": 2},
            r"ExecutorSettings.workers: only the process and auto executors",
        ),
        (
            DataSettings,
            {"task": "mnist", "train_size": 0},
            r"DataSettings.train_size: expected an integer >= 1",
        ),
    ],
)
def test_settings_classes_check_their_fields_in_one_line(cls, values, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        cls(**values)
    assert "\n" not in str(info.value)


def test_help_lists_grad_clip_for_train_and_every_method(capsys) -> None:
    parser = build_parser()
    for argv in (["train", "--help"], *(["search", name, "--help"] for name in METHODS)):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert "--grad-clip" in capsys.readouterr().out, argv


# -- the same search from the shell and from Python ---------------------------------------------
def write_task(path: Path, n: int = 72, size: int = 12, classes: int = 3) -> Path:
    """A tiny learnable task as an npz: class c is a bright square at its own place."""
    rng = np.random.default_rng(7)
    labels = np.arange(n) % classes
    images = rng.integers(0, 60, (n, size, size))
    for c in range(classes):
        images[labels == c, 2 + 3 * c : 5 + 3 * c, 3:6] += 180
    np.savez(path, images=images.astype(np.uint8), labels=labels)
    return path


def comparable(run: Path) -> dict:
    """What two runs of the same search must share: the recorded search and every record but
    its timings."""
    meta = json.loads((run / "search.json").read_text())
    records = [json.loads(line) for line in (run / "candidates.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("time_s")
        record["cost"].pop("train_seconds")
        for epoch in record["extra"]["history"]:
            epoch.pop("epoch_time"), epoch.pop("wall_time")
    keys = ("method", "settings", "backbone", "train", "seed", "executor")
    return {
        "search": {k: meta[k] for k in keys},
        "fingerprint": meta["data"]["fingerprint"],
        "records": records,
        "best": json.loads((run / "best_spec.json").read_text()),
    }


def test_command_line_and_python_give_identical_records(tmp_path, capsys) -> None:
    from equinas.data import from_arrays
    from equinas.execution import LocalExecutor
    from equinas.search import SearchContext, make_method, run_search
    from equinas.search.run_directory import RunDirectory

    task = write_task(tmp_path / "task.npz")
    assert (
        main(
            [
                *("search", "equinas_e", "--task", f"npz:{task}"),
                *("--task-option", "val_fraction=0.25", "--task-option", "test_fraction=0.25"),
                *("--epochs", "0.5", "--generations", "1", "--population", "1", "--children-per-parent", "1"),
                *("--widths", "1,2", "--pools-after", "0", "--kernel-size", "3", "--hidden", "none"),
                *("--grad-clip", "1.0", "--threads", "1", "--quiet", "--run-dir", str(tmp_path / "shell")),
                *("--executor", "local"),  # the README example's executor (records are the same with auto)
            ]
        )
        == 0
    )
    capsys.readouterr()

    # the README's run_search example, with EquiNAS_E: --epochs is the budget of a lineage
    arrays = np.load(task)
    data = from_arrays(arrays["images"], arrays["labels"], val_fraction=0.25, test_fraction=0.25)
    backbone = BackboneSettings(widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None)
    config = TrainConfig(epochs=0.5, grad_clip=1.0, num_threads=1)
    ctx = SearchContext(
        "mine", data, backbone, config, LocalExecutor(), RunDirectory(tmp_path / "py"), progress=False
    )
    run_search(make_method("equinas_e", generations=1, population=1, children_per_parent=1), ctx)

    shell, python = comparable(tmp_path / "shell"), comparable(tmp_path / "py")
    assert shell == python
    assert shell["search"]["train"]["grad_clip"] == 1.0
    assert shell["search"]["settings"]["epochs_per_generation"] == shell["search"]["train"]["epochs"] == 0.25
    assert {r["epochs"] for r in shell["records"]} == {0.25}


def test_bad_values_name_the_option_on_the_command_line(tmp_path, capsys) -> None:
    task = write_task(tmp_path / "task.npz")
    base = ["search", "equinas_e", "--task", f"npz:{task}", "--quiet", "--run-dir", str(tmp_path / "run")]
    assert main([*base, "--generations", "-1"]) == 2
    err = capsys.readouterr().err
    assert err == "error: EquiNASESettings.generations (--generations): expected an integer >= 0, got -1\n"
    assert main([*base, "--initial-epochs", "2", "--epochs", "2"]) == 2
    assert "initial_epochs (--initial-epochs): 2 leaves nothing" in capsys.readouterr().err
    assert main(["train", "--task", f"npz:{task}", "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert "TrainConfig.num_threads (--threads): expected 'auto' or an integer >= 1" in err
    assert not (tmp_path / "run").exists()


def test_train_command_and_models_import_no_search_or_data(tmp_path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, contextlib, io\n"
        "import equinas.models, equinas.models.aen\n"
        "from_models = sorted(m for m in sys.modules if m.startswith('equinas.data'))\n"
        "from equinas.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['train', '--help'])\n"
        "print(from_models, sorted(m for m in sys.modules if m.startswith('equinas.search')))"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": src}
    )
    assert out.stdout.strip() == "[] []", out.stderr


def test_toml_reaches_every_training_field(tmp_path) -> None:
    from equinas.cli.common import train_config
    from equinas.cli.config import parse_with_config

    config = tmp_path / "run.toml"
    config.write_text("grad-clip = 1.0\nlr_gamma = 0.5\narch_betas = [0.6, 0.9]\nthreads = 2\nlr = 0.1\n")
    argv = ["--config", str(config), "train", "--task", "t", "--lr", "0.2"]
    args = parse_with_config(build_parser(only="train"), argv)
    assert train_config(args) == TrainConfig(
        grad_clip=1.0, gamma=0.5, arch_betas=(0.6, 0.9), num_threads=2, lr=0.2
    )
