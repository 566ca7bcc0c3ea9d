"""The ``equinas`` command line: train | evaluate | search | report | data | demo.

Every option can also come from a TOML file given with ``--config``; its keys are the
option names with dashes or underscores (``lr = 3e-3``, ``train-size = 2000``); options on
the command line win over the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tomllib
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from equinas.nn.choices import BASIS_CHOICES, MEMORY_FORMATS

EXAMPLES = """examples:
  equinas train --task rotmnist --arch D4 --epochs 2 --run-dir runs/d4
  equinas evaluate runs/d4/checkpoint.pt --task rotmnist
  equinas search equinas_e --task rotmnist --epochs 0.5 --generations 3 --run-dir runs/e
  equinas search equinas_d --task rotmnist --epochs 3 --run-dir runs/d
  equinas report runs/e runs/d --compare
  equinas data info rotmnist
"""


DEFAULT_EPOCHS = 2.0


# -- option groups -----------------------------------------------------------------------------
def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _optional_int(text: str) -> int | None:
    if text.lower() in ("none", "null", ""):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--task",
        required=True,
        help="task name, e.g. rotmnist, mnist-c2, gmnist[rot], folder:PATH (one folder of images per "
        "class), npz:PATH (see `equinas data list`)",
    )
    g.add_argument("--data-dir", help="data folder (default: $EQUINAS_DATA, then ../shared/data)")
    g.add_argument("--train-size", type=_optional_int, help="use a class-balanced subset of the train split")
    g.add_argument("--val-size", type=_optional_int, help="subset of the validation split")
    g.add_argument("--test-size", type=_optional_int, help="subset of the test split")
    g.add_argument(
        "--task-option",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task-specific option, e.g. image_size=64 (repeatable)",
    )


def add_train_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument(
        "--epochs",
        type=float,
        help="epochs per network (default 2; fractions allowed; the budget unit); for equinas_e the "
        "budget of a whole lineage",
    )
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="adam")
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--scheduler", choices=("none", "cosine", "step"), default="none")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    g.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    g.add_argument("--threads", type=int, help="torch CPU threads")
    g.add_argument(
        "--memory-format",
        choices=MEMORY_FORMATS,
        default="auto",
        help="layout of feature maps: channels_last, contiguous (NCHW), or auto: the faster one for "
        "the device (channels_last on CPU, NCHW on GPUs); results agree to float rounding",
    )
    g.add_argument(
        "--bn-recalibration",
        type=int,
        default=16,
        metavar="BATCHES",
        help="re-estimate batch-norm statistics on this many train batches before each evaluation (0: off)",
    )
    g.add_argument(
        "--eval-every",
        type=int,
        default=1,
        metavar="EPOCHS",
        help="validate after every EPOCHS-th epoch and the last (fewer validations, same results)",
    )
    g.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard events (losses, accuracies, alphas, per-layer groups) to "
        "<run-dir>/tensorboard/ (needs the extra equinas[tensorboard])",
    )
    g.add_argument(
        "--augment",
        default="none",
        metavar="KIND",
        help="training-time augmentation: 'none'; a group (e.g. D4, C4, D1): each training image moved by "
        "a random element (exact for multiples of 90 degrees and mirrors); or 'rot': random continuous "
        "rotations (bilinear). Recorded in the run; a resume must use the same",
    )


def add_backbone_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("network (the paper's MNIST backbone by default)")
    g.add_argument(
        "--backbone",
        choices=("plain", "resnet"),
        default="plain",
        help="plain: one conv block per --widths entry; resnet: a stem conv for the first entry, then "
        "a residual block of two convs (identity or 1x1 projection skip) per further entry, "
        "every conv its own searchable layer",
    )
    g.add_argument("--ambient", default="D4", help="ambient group of the feature layout")
    g.add_argument(
        "--widths",
        type=_int_list,
        default=(16, 16, 16, 16, 32, 32, 32, 32),
        help="ambient channels per block (plain: per layer; resnet: stem, then per residual block)",
    )
    g.add_argument("--pools-after", type=_int_list, default=(2, 4), help="blocks followed by a 2x2 max pool")
    g.add_argument("--kernel-size", type=int, default=5)
    g.add_argument(
        "--kernel-basis",
        choices=BASIS_CHOICES,
        default="auto",
        help="kernel parametrisation: pixels, band-limited harmonics (exact 45-degree kernel rotations), "
        "or auto: harmonic when the ambient group has 45-degree elements",
    )
    g.add_argument(
        "--hidden", type=_optional_int, default=64, help="hidden width of the head ('none': linear head)"
    )
    g.add_argument(
        "--width-rule",
        choices=("channels", "params"),
        default="channels",
        help="keep conv channels (paper) or parameter counts comparable across groups",
    )


def add_executor_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution")
    g.add_argument(
        "--executor",
        choices=("local", "process", "ray"),
        default="local",
        help="local: one candidate after another in this process; process: a pool of local worker "
        "processes; ray: Ray tasks",
    )
    g.add_argument(
        "--workers",
        type=int,
        help="worker processes of --executor process (default: cores / --threads, --threads "
        "defaulting to 1 there)",
    )
    g.add_argument("--ray-address", help="join a running Ray cluster (default: start a local instance)")
    g.add_argument("--ray-cpus", type=int, help="CPUs of a local Ray instance")
    g.add_argument("--cpus-per-task", type=int, default=1, help="CPUs per evaluation under Ray")


# -- building blocks from parsed options ----------------------------------------------------------
def load_data(args: argparse.Namespace):
    from equinas.data import load_task

    return load_task(
        args.task,
        args.data_dir,
        train_size=args.train_size,
        val_size=args.val_size,
        test_size=args.test_size,
        **dict(args.task_option),
    )


def train_config(args: argparse.Namespace):
    from equinas.train import TrainConfig

    return TrainConfig(
        epochs=DEFAULT_EPOCHS if args.epochs is None else args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        scheduler=args.scheduler,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        num_threads=args.threads,
        bn_recalibration=args.bn_recalibration,
        eval_every=args.eval_every,
        memory_format=args.memory_format,
        augment=args.augment,
    )


def backbone_settings(args: argparse.Namespace):
    from equinas.search import BackboneSettings

    return BackboneSettings(
        ambient=args.ambient,
        widths=args.widths,
        pools_after=args.pools_after,
        kernel_size=args.kernel_size,
        basis=args.kernel_basis,
        hidden=args.hidden,
        width_rule=args.width_rule,
        backbone=args.backbone,
    )


def data_settings(args: argparse.Namespace) -> dict[str, Any]:
    """How the data was chosen, as recorded in a run (a resume must choose the same)."""
    return {
        "data_dir": str(Path(args.data_dir).resolve()) if args.data_dir else None,
        "train_size": args.train_size,
        "val_size": args.val_size,
        "test_size": args.test_size,
        "task_options": dict(args.task_option),
    }


def tensorboard_logger(args: argparse.Namespace, log_dir: Path | None):
    """With ``--tensorboard``: check that the package is installed (``ImportError`` with the
    install hint) and return a ``TensorBoardLogger`` into ``log_dir`` (None without one:
    search candidates make their own); without ``--tensorboard``: None."""
    if not args.tensorboard:
        return None
    from equinas.train.tensorboard import TensorBoardLogger, tensorboard_module

    tensorboard_module()
    return TensorBoardLogger(log_dir) if log_dir is not None else None


def executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of ``make_executor`` for ``--executor``."""
    if args.workers is not None and args.executor != "process":
        raise ValueError("--workers needs --executor process")
    if args.executor == "process":
        return {"workers": args.workers, "threads": args.threads or 1}
    if args.executor == "ray":
        return {"address": args.ray_address, "num_cpus": args.ray_cpus, "cpus_per_task": args.cpus_per_task}
    return {}


def lineage_budget(settings: dict[str, Any], epochs: float | None) -> dict[str, Any]:
    """EquiNAS_E: ``--epochs`` is the lineage budget, split into the initial training and the
    generations; ``--epochs-per-generation`` sets the per-candidate budget instead (not both)."""
    from equinas.search.equinas_e import EquiNASESettings

    if epochs is None:
        return {"epochs_per_generation": EquiNASESettings.epochs_per_generation, **settings}
    if "epochs_per_generation" in settings:
        raise ValueError(
            "give either --epochs (the budget of a whole lineage: initial training plus every "
            "generation) or --epochs-per-generation, not both"
        )
    generations = settings.get("generations", EquiNASESettings.generations)
    initial = settings.get("initial_epochs")
    if initial is None:
        return {**settings, "epochs_per_generation": epochs / (generations + 1)}
    if generations == 0 or not initial < epochs:
        raise ValueError(
            f"--initial-epochs {initial:g} leaves nothing of --epochs {epochs:g} for the generations"
        )
    return {**settings, "epochs_per_generation": (epochs - initial) / generations}


def resolve_arch(arch: str, args: argparse.Namespace, data) -> Any:
    """``--arch``: a spec JSON file, ``mixed``, or a group name used for every layer."""
    from equinas.models import ArchSpec

    if arch.endswith(".json") or Path(arch).is_file():
        return ArchSpec.load(arch)
    settings = backbone_settings(args)
    return settings.spec(data, "C1", kind="mixed") if arch == "mixed" else settings.spec(data, arch)


# -- commands -------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from equinas.models import build_network
    from equinas.search.validation import option_error
    from equinas.train import train
    from equinas.train.files import directory_problem

    if args.run_dir is not None:
        if not args.run_dir.strip():
            raise ValueError("--run-dir is empty (it would write into the current directory); name a folder")
        if Path(args.run_dir, "search.json").exists():
            raise ValueError(
                f"--run-dir {args.run_dir} holds a search run (search.json); train into another folder"
            )
        problem = directory_problem(args.run_dir)
        if problem:
            raise ValueError(f"--run-dir: {problem}")
    if args.tensorboard and args.run_dir is None:
        raise ValueError("--tensorboard needs --run-dir (the events go to <run-dir>/tensorboard/)")
    logger = tensorboard_logger(args, args.run_dir and Path(args.run_dir, "tensorboard"))
    config = train_config(args)
    data = load_data(args)
    try:
        spec = resolve_arch(args.arch, args, data)
        spec.check_input_size(*data.image_size)
    except ValueError as err:
        raise ValueError(option_error(err)) from None
    if args.constraint_relaxation:
        for i, layer in enumerate(spec.layers):
            if layer.kind == "regular":
                spec = spec.with_layer(i, kind="cr")
    torch.manual_seed(args.seed)
    model = build_network(spec)
    result = train(
        model,
        data,
        config,
        run_dir=args.run_dir,
        resume=args.resume,
        progress=not args.quiet,
        metadata={"spec": spec.to_dict(), "task": args.task},
        callbacks=[logger] if logger else (),
    )
    if logger is not None:
        logger.write_final(result.metrics, result.history[-1]["step"])
    summary = {
        "task": args.task,
        "spec": spec.groups_per_layer(),
        "params": model.num_parameters(),
        **result.metrics,
    }
    if args.run_dir:
        Path(args.run_dir, "spec.json").write_text(spec.to_json() + "\n")
    print(json.dumps(summary, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from equinas.metrics import equivariance_summary
    from equinas.models import build_model
    from equinas.train import evaluate, load_checkpoint
    from equinas.train.files import output_file_problem

    problem = output_file_problem(args.output) if args.output else None
    if problem:
        raise ValueError(f"--output: {problem}")
    checkpoint = load_checkpoint(args.checkpoint)
    spec = (checkpoint.get("metadata") or {}).get("spec")
    if spec is None:
        raise SystemExit(f"error: {args.checkpoint} has no architecture spec in its metadata")
    model = build_model(spec)
    model.load_state_dict(checkpoint["model"])
    data = load_data(args)
    report: dict[str, Any] = {"checkpoint": str(args.checkpoint), "task": args.task}
    for split in ("val", "test"):
        report[split] = evaluate(model, getattr(data, split), args.batch_size)
    if hasattr(model, "ambient"):
        report["equivariance"] = equivariance_summary(model, data.test.batch(slice(args.equivariance_batch)))
    text = json.dumps(report, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from equinas.execution import make_executor
    from equinas.search import METHODS, SearchContext, make_method, run_search
    from equinas.search.records import RunDirectory

    _, settings_cls = METHODS[args.method]
    settings = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(settings_cls)
        if getattr(args, f.name) is not None
    }
    config = train_config(args)
    if args.method == "equinas_e":
        settings = lineage_budget(settings, args.epochs)
        config = dataclasses.replace(config, epochs=settings["epochs_per_generation"])
    method = make_method(args.method, **settings)
    tensorboard_logger(args, None)
    data = load_data(args)
    from equinas.search.validation import validate_search_settings

    validate_search_settings(getattr(method, "settings", None), backbone_settings(args), data)
    executor = make_executor(args.executor, **executor_options(args))
    run_dir = args.run_dir or f"runs/{args.method}-{args.task}-seed{args.seed}"
    ctx = SearchContext(
        args.task,
        data,
        backbone_settings(args),
        config,
        executor,
        RunDirectory(run_dir),
        seed=args.seed,
        progress=not args.quiet,
        data_settings=data_settings(args),
        tensorboard=args.tensorboard,
    )
    try:
        result = run_search(method, ctx, resume=args.resume)
    finally:
        executor.close()
    from equinas.report import write_report

    files = write_report(run_dir)
    best = result.best
    print(
        f"best {best.candidate_id}: {' '.join(best.groups)} | params {best.params:,} | "
        f"val {100 * (best.val_acc or 0):.2f}% | test {100 * (best.test_acc or 0):.2f}%"
    )
    print(f"report: {files['report']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import os

    from equinas.report import comparison_plot, comparison_table, write_report
    from equinas.train.files import atomic_write_text, output_file_problem

    for run_dir in args.run_dirs:
        path = Path(run_dir)
        if not path.exists():
            raise FileNotFoundError(f"run directory {run_dir} does not exist")
        if not path.is_dir():
            raise ValueError(f"{run_dir} is not a run directory (not a folder)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write the report into {run_dir}: the folder is read-only")
    problem = output_file_problem(args.output) if args.output else None
    if problem:
        raise ValueError(f"--output: {problem}")
    for run_dir in args.run_dirs:
        files = write_report(run_dir)
        print(f"{run_dir}: " + ", ".join(str(p) for p in files.values()))
    if args.compare or len(args.run_dirs) > 1 or args.output:
        table = comparison_table(args.run_dirs, label=args.group_by)
        print(table)
        if args.output:
            atomic_write_text(args.output, table if table.endswith("\n") else table + "\n")
        plot = Path(args.output).parent if args.output else Path(args.run_dirs[0]).parent
        print(f"plot: {comparison_plot(args.run_dirs, plot / 'cost_vs_accuracy.png', label=args.group_by)}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    if args.action == "list":
        from equinas.data.names import list_tasks

        print("\n".join(list_tasks()))
        return 0
    from equinas.data import describe_task, prepare_task

    if not args.task:
        raise SystemExit("error: `equinas data prepare|info` needs a task name")
    options = dict(args.task_option)
    if args.action == "prepare":
        path = prepare_task(args.task, args.data_dir, **options)
        print(f"{args.task}: " + (f"cached at {path}" if path else "nothing to prepare (files found)"))
    else:
        print(json.dumps(describe_task(args.task, args.data_dir, **options), indent=2, default=str))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from equinas.demo import run_demo

    run_demo(
        Path(args.run_dir),
        data_dir=args.data_dir,
        quick=args.quick,
        progress=not args.quiet,
        workers=args.workers,
    )
    return 0


# -- parser ----------------------------------------------------------------------------------------
def _settings_arguments(p: argparse.ArgumentParser, settings_cls: type) -> None:
    """One option per field of a method's Settings dataclass (default None = the method's default)."""
    hints = typing.get_type_hints(settings_cls)
    g = p.add_argument_group(f"{settings_cls.__name__} (method settings)")
    for f in dataclasses.fields(settings_cls):
        hint = hints[f.name]
        base = _base_type(hint)
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f"default: {default}"
        if base is dict:
            g.add_argument(
                flag,
                dest=f.name,
                type=_key_value,
                action="append",
                default=None,
                metavar="KEY=VALUE",
                help="layer option (repeatable)",
            )
        elif base is bool:
            g.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif base is tuple:
            g.add_argument(
                flag,
                dest=f.name,
                type=lambda t: tuple(v.strip() for v in t.split(",") if v.strip()),
                default=None,
                help=help_text + " (comma-separated)",
            )
        else:
            g.add_argument(flag, dest=f.name, type=base, default=None, help=help_text)


def _base_type(hint: Any) -> type:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    origin = typing.get_origin(hint)
    return origin if origin is not None else hint


def _add_methods(search: argparse.ArgumentParser) -> None:
    """One subcommand of ``equinas search`` per method, with its settings as options."""
    from equinas.search import METHODS

    methods = search.add_subparsers(dest="method", required=True)
    for name, (_, settings_cls) in sorted(METHODS.items()):
        summary = (METHODS[name][0].__doc__ or name).strip().splitlines()[0]
        mp = methods.add_parser(name, help=summary, description=summary)
        add_data_options(mp)
        add_train_options(mp)
        add_backbone_options(mp)
        add_executor_options(mp)
        _settings_arguments(mp, settings_cls)
        mp.add_argument("--run-dir", help="default: runs/<method>-<task>-seed<seed>")
        mp.add_argument("--resume", action="store_true", help="continue an interrupted search in --run-dir")
        mp.add_argument("--quiet", action="store_true", help="no progress bars")
        mp.set_defaults(func=cmd_search)


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is no option or ``--config`` value)."""
    words = iter(argv)
    for word in words:
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(methods: bool = True) -> argparse.ArgumentParser:
    """The ``equinas`` parser; ``methods=False`` leaves out the subcommands of ``search`` (their
    options come from the methods' settings, which needs torch: ``--help`` stays fast)."""
    parser = argparse.ArgumentParser(
        prog="equinas",
        description="Equivariance-aware architecture optimization (EquiNAS) for image classifiers.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="TOML file with option values (command-line options win)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "train", help="train one network", description="Train one network and write checkpoints/logs."
    )
    add_data_options(p)
    add_train_options(p)
    add_backbone_options(p)
    p.add_argument(
        "--arch", default="D4", help="group for every layer (e.g. D4, C4, C1), 'mixed', or a spec JSON file"
    )
    p.add_argument(
        "--constraint-relaxation",
        action="store_true",
        help="train with constraint relaxation (Pertigkiozoglou et al. 2024); ends exactly equivariant",
    )
    p.add_argument("--run-dir", help="write checkpoint.pt, log.jsonl, summary.json, spec.json here")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy and equivariance error of a checkpoint")
    p.add_argument("checkpoint", help="checkpoint.pt written by `equinas train`")
    add_data_options(p)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument(
        "--equivariance-batch", type=int, default=64, help="test images used for the equivariance error"
    )
    p.add_argument("--output", help="also write the JSON report here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "search",
        help="run an architecture search or a baseline",
        description="Run a search method; every candidate is recorded in the run directory.",
    )
    if methods:
        _add_methods(p)

    p = sub.add_parser("report", help="results table and plots of finished runs")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--compare", action="store_true", help="also print a comparison table across the runs")
    p.add_argument(
        "--group-by",
        choices=("method", "run"),
        default="method",
        help="rows of the comparison: by method, or by run name without its -seedN suffix",
    )
    p.add_argument(
        "--output",
        help="write the comparison table (markdown) here; cost_vs_accuracy.png goes beside it "
        "(default: beside the first run directory)",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("data", help="list, inspect or prepare data sets")
    p.add_argument("action", choices=("list", "info", "prepare"))
    p.add_argument("task", nargs="?")
    p.add_argument("--data-dir")
    p.add_argument("--task-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("demo", help="the README's main job: a small search on RotMNIST with table and plots")
    p.add_argument("--run-dir", default="runs/demo")
    p.add_argument("--data-dir")
    p.add_argument("--quick", action="store_true", help="a much smaller budget (a smoke test)")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def _apply_config(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; values from ``--config`` fill the options not given on the command line."""
    args = parser.parse_args(argv)
    if not args.config:
        return args
    try:
        values = tomllib.loads(Path(args.config).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        parser.error(f"cannot read config {args.config}: {err}")
    known = vars(args)
    given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in argv if a.startswith("--")}
    for key, value in values.items():
        dest = key.replace("-", "_")
        if dest not in known or dest in ("command", "func", "config"):
            parser.error(f"config {args.config}: unknown option {key!r} for `{args.command}`")
        if dest in given:
            continue
        current = known[dest]
        known[dest] = tuple(value) if isinstance(current, tuple) and isinstance(value, list) else value
    return argparse.Namespace(**known)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(methods=_command(argv) == "search")
    args = _apply_config(parser, argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        resumable = getattr(args, "resume", None) is not None
        hint = "; rerun the same command with --resume to continue" if resumable else ""
        print(f"interrupted{hint}", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, ImportError) as err:  # OSError: unwritable dirs, full disk
        message = " ".join(str(err).split()) or type(err).__name__  # one line
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
