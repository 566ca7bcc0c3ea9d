"""``equinas search <method>``: one subcommand per registered method, options from declarations.

A method's options are the fields of its settings dataclass, beside the shared data, training,
network and executor options; a method setting that sets a training field itself (EquiNAS_D's
``--arch-lr``) takes that field's place on its command, and training fields that need what the
method does not do (the architecture steps of ``--arch-*``) are left off it. Its description is
the first two paragraphs of the method's docstring (what it does and what it costs). Adding a method
or a field needs no change here.
"""

from __future__ import annotations

import argparse

from equinas.cli import common
from equinas.cli.options import add_settings, not_needed, settings_from, stood_for


def add_search(sub: argparse._SubParsersAction, with_methods: bool) -> None:
    """``search`` and, with ``with_methods`` (needs torch), one subcommand per method."""
    parser = sub.add_parser(
        "search",
        help="run an architecture search or a baseline",
        description="Run a search method; every candidate is recorded in the run directory.",
    )
    if not with_methods:
        return
    from equinas.execution.settings import ExecutorSettings
    from equinas.search import METHODS

    methods = parser.add_subparsers(dest="method", required=True)
    for name, method_cls in sorted(METHODS.items()):
        settings_cls = method_cls.settings_class
        summary, description = method_help(method_cls)
        p = methods.add_parser(name, help=summary, description=description)
        names = common.add_setting_groups(p, skip_train=train_fields_set_elsewhere(settings_cls))
        common.add_run_flags(p)
        add_settings(p, ExecutorSettings, "execution")
        add_settings(p, settings_cls, f"{settings_cls.__name__} (method settings)")
        names.add(ExecutorSettings)
        names.add(settings_cls)
        p.add_argument("--run-dir", help="default: runs/<method>-<task>-seed<seed>")
        p.set_defaults(func=cmd_search, option_names=names)


def method_help(method_cls: type) -> tuple[str, str]:
    """``(summary, description)`` of a method from its docstring: its first line, and that line
    with the paragraph after it (what the method does and what it costs), each on one line."""
    paragraphs = (method_cls.__doc__ or method_cls.__name__).strip().split("\n\n")
    summary = " ".join(paragraphs[0].split())
    return summary, " ".join(" ".join(paragraphs[:2]).replace("``", "").split())


def train_fields_set_elsewhere(settings_cls: type) -> set[str]:
    """``TrainConfig`` fields a method's command does not offer: those its own settings stand
    for and those it never reads; they keep their defaults (or the method's values)."""
    from equinas.train.config import TrainConfig

    return stood_for(settings_cls, TrainConfig) | not_needed(settings_cls, TrainConfig)


def cmd_search(args: argparse.Namespace) -> int:
    from equinas.execution.settings import ExecutorSettings
    from equinas.report import write_report
    from equinas.search import METHODS, SearchContext, run_search
    from equinas.search.run_directory import RunDirectory

    method_cls = METHODS[args.method]
    settings_cls = method_cls.settings_class
    method = method_cls(settings_from(args, settings_cls))
    config = common.train_config(args, skip=train_fields_set_elsewhere(settings_cls))
    backbone = common.backbone_settings(args)
    execution = settings_from(args, ExecutorSettings)
    data = common.data_settings(args)
    common.tensorboard_logger(args, None)
    loaded = data.load()
    run_dir = common.search_run_directory(args)
    executor = execution.make(threads=config.num_threads)
    ctx = SearchContext(
        data.task,
        loaded,
        backbone,
        config,
        executor,
        RunDirectory(run_dir),
        seed=config.seed,
        progress=not args.quiet,
        data_settings=data.record(),
        tensorboard=args.tensorboard,
    )
    try:
        result = run_search(method, ctx, resume=args.resume)
    finally:
        executor.close()
    files = write_report(run_dir)
    best = result.best
    print(
        f"best {best.candidate_id}: {' '.join(best.groups)} | params {best.params:,} | "
        f"val {100 * (best.val_acc or 0):.2f}% | test {100 * (best.test_acc or 0):.2f}%"
    )
    print(f"report: {files['report']}")
    return 0
