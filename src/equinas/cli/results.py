"""``equinas report`` (tables and plots of finished runs), ``equinas data`` and ``equinas demo``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from equinas.cli.options import add_settings


def add_report(sub: argparse._SubParsersAction, with_options: bool) -> None:
    p = sub.add_parser("report", help="results table and plots of finished runs")
    if not with_options:
        return
    from equinas.report.tables import ROW_LABELS

    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--compare", action="store_true", help="also print a comparison table across the runs")
    p.add_argument(
        "--group-by",
        choices=ROW_LABELS,
        default="method",
        help="rows of the comparison: by method, or by run name without its -seedN suffix",
    )
    p.add_argument(
        "--output",
        help="write the comparison table (markdown) here; cost_vs_accuracy.png goes beside it "
        "(default: beside the first run directory)",
    )
    p.set_defaults(func=cmd_report)


def add_data(sub: argparse._SubParsersAction, with_options: bool) -> None:
    p = sub.add_parser("data", help="list, inspect or prepare data sets")
    if not with_options:
        return
    from equinas.data.settings import DataSettings

    p.add_argument("action", choices=("list", "info", "prepare"))
    p.add_argument("task", nargs="?")
    add_settings(p, DataSettings, "data", skip=("task", "train_size", "val_size", "test_size"))
    p.set_defaults(func=cmd_data)


def add_demo(sub: argparse._SubParsersAction, with_options: bool) -> None:
    p = sub.add_parser("demo", help="the README's main job: a small search on RotMNIST with table and plots")
    if not with_options:
        return
    p.add_argument("--run-dir", default="runs/demo")
    p.add_argument("--data-dir")
    p.add_argument("--quick", action="store_true", help="a much smaller budget (a smoke test)")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)


def _check_run_dirs(run_dirs: list[str]) -> None:
    for run_dir in run_dirs:
        path = Path(run_dir)
        if not path.exists():
            raise FileNotFoundError(f"run directory {run_dir} does not exist")
        if not path.is_dir():
            raise ValueError(f"{run_dir} is not a run directory (not a folder)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write the report into {run_dir}: the folder is read-only")


def cmd_report(args: argparse.Namespace) -> int:
    from equinas.atomic import atomic_write_text
    from equinas.files import output_file_problem
    from equinas.report import comparison_plot, comparison_table, write_report

    _check_run_dirs(args.run_dirs)
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
    options = dict(args.task_option or {})
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
