"""Option groups shared by ``equinas train`` and ``equinas search``, and the objects they make.

Each group is a declared settings class (``equinas.cli.options.add_settings``): the data
(``DataSettings``), the training (``TrainConfig``), the network (``BackboneSettings``) and, for
searches, the executor (``ExecutorSettings``). Nothing here decides a value: defaults, choices
and checks are the declarations'.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from equinas.cli.options import OptionNames, add_settings, not_offered, settings_from

if TYPE_CHECKING:  # the classes import torch: the functions below import them when called
    from equinas.data.settings import DataSettings
    from equinas.models.backbone import BackboneSettings
    from equinas.train.config import TrainConfig


def settings_classes() -> dict[str, type]:
    """The shared option groups by title (imports torch: the classes live with their layers)."""
    from equinas.data.settings import DataSettings
    from equinas.models.backbone import BackboneSettings
    from equinas.train.config import TrainConfig

    return {
        "data": DataSettings,
        "training": TrainConfig,
        "network (the paper's MNIST backbone by default)": BackboneSettings,
    }


def add_setting_groups(parser: argparse.ArgumentParser, skip_train: Iterable[str] = ()) -> OptionNames:
    """The data, training and network options (``skip_train``: training fields a method sets);
    the names of their options, for error messages."""
    names = OptionNames()
    for title, cls in settings_classes().items():
        skip = skip_train if title == "training" else ()
        add_settings(parser, cls, title, skip)
        names.add(cls, skip)
    return names


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """``--tensorboard``, ``--resume`` and ``--quiet`` of a run."""
    parser.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard events (losses, accuracies, alphas, per-layer groups) to "
        "<run-dir>/tensorboard/ (needs the extra equinas[tensorboard])",
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --run-dir")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def json_text(value: Any) -> str:
    """``value`` as strict, indented JSON: NaN and infinities become null, as in the run files."""
    from equinas.runlog import jsonable

    return json.dumps(jsonable(value), indent=2, allow_nan=False)


def data_settings(args: argparse.Namespace) -> DataSettings:
    from equinas.data.settings import DataSettings

    return settings_from(args, DataSettings)


def train_config(args: argparse.Namespace, skip: Iterable[str] = ()) -> TrainConfig:
    """The ``TrainConfig`` of the parsed options; fields in ``skip`` and those the command does
    not offer (a search method's unneeded ``--arch-*``) keep their defaults."""
    from equinas.train.config import TrainConfig

    return settings_from(args, TrainConfig, {*skip, *not_offered(args, TrainConfig)})


def backbone_settings(args: argparse.Namespace) -> BackboneSettings:
    from equinas.models.backbone import BackboneSettings

    return settings_from(args, BackboneSettings)


def tensorboard_logger(args: argparse.Namespace, log_dir: Path | None):
    """With ``--tensorboard``: check that the package is installed (``ImportError`` with the
    install hint) and return a ``TensorBoardLogger`` into ``log_dir`` (None without one:
    search candidates make their own); without ``--tensorboard``: None."""
    if not args.tensorboard:
        return None
    from equinas.train.tensorboard import TensorBoardLogger, tensorboard_module

    tensorboard_module()
    return TensorBoardLogger(log_dir) if log_dir is not None else None


def search_run_directory(args: argparse.Namespace) -> str:
    """The run directory of ``search``: ``--run-dir``, default ``runs/<method>-<task>-seed<seed>``."""
    return args.run_dir or f"runs/{args.method}-{args.task}-seed{args.seed}"


def run_directory(args: argparse.Namespace) -> str | None:
    """The run directory a command writes: ``--run-dir`` of ``train``, that of ``search``
    (``search_run_directory``); None for other commands and an empty one."""
    if args.command == "search":
        return search_run_directory(args)
    if args.command == "train" and args.run_dir and args.run_dir.strip():
        return args.run_dir
    return None


def quiet_data(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """With ``--quiet``: no progress bar while image folders are decoded."""
    if not getattr(args, "quiet", False):
        return contextlib.nullcontext()
    from equinas.data.folder import decoding_progress

    return decoding_progress(False)


def run_directory_lock(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """The lock of the command's run directory (``equinas.run_lock``), if it has one: taken
    before anything is read or written, so a second command on it stops at once."""
    run_dir = run_directory(args)
    if run_dir is None:
        return contextlib.nullcontext()
    from equinas.run_lock import hold_run_directory

    return hold_run_directory(run_dir)
