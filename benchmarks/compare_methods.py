"""Accuracy comparison of search methods and baselines at one budget over several seeds.

Each (method, seed) is a full ``run_search`` into ``<out>/<label>-seed<k>``, seed by seed;
finished runs are skipped, so the script can be re-run after an interruption. At the end it
writes ``<out>/summary.md`` (test accuracy mean ± std and compute per method),
``<out>/summary.json`` (``rows``: ``{task, method, seeds, test_acc_mean, test_acc_std,
params, total_flops_mean, total_seconds_mean}``, ``params`` listing the parameter counts of the
picked networks, ``total_seconds`` being the summed seconds of the run's evaluations) and
``<out>/cost_vs_accuracy.png``. The candidates of a ``grid`` run are
also rows ``fixed-<G>`` (they are the fixed networks: same ids, seeds and budget).

Methods are given as ``name``, ``name:GROUP`` (``fixed:C4`` = the fixed C4 G-CNN,
``prior:C1`` = D4 prior relaxed to C1) or ``name@variant`` (a second configuration of the
same method); settings come from ``--settings`` JSON keyed by ``name`` or ``name@variant``,
e.g. ``'{"equinas_e": {"generations": 3}, "equinas_d@prior": {"prior": 2.0}}'``. The key
``"train"`` of an entry overrides training settings for that variant only, e.g. a plain CNN
trained with D4 augmentation: ``--methods fixed@augD4:C1 --settings '{"fixed@augD4": {"train":
{"augment": "D4"}}}'`` (row ``fixed-augD4-C1``).

    python benchmarks/compare_methods.py --task rotmnist --seeds 0 1 2 --epochs 2 \\
        --methods equinas_e equinas_d fixed:C1 fixed:C4 fixed:D4 rpp --workers 4 --device cuda

Every option of ``equinas search`` for the data, training and network applies (e.g.
``--backbone resnet --widths 4,4,8,8 --pools-after 1,2 --kernel-size 3``); ``--epochs`` is the
budget per network, and EquiNAS_E splits it over a lineage itself, as in ``equinas search``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

from equinas.atomic import atomic_write_text
from equinas.cli.common import add_setting_groups, backbone_settings, data_settings, train_config
from equinas.execution import LocalExecutor, end_with_parent
from equinas.metrics.cost import Cost
from equinas.report import comparison_plot, comparison_table, write_report
from equinas.report.tables import grouped_runs
from equinas.search import SearchContext, make_method, run_search
from equinas.search.run_directory import RunDirectory
from equinas.train.threads import resolve_threads, share_cores, threads_per_worker

GROUP_SETTING = {"fixed": "groups", "prior": "targets", "rpp": "group", "rgconv": "group", "cr": "group"}


def method_settings(entry: str, extra: dict) -> tuple[str, str, dict, dict]:
    """``(label, method name, settings, training overrides)`` for ``name``, ``name:GROUP`` or
    ``name@variant``."""
    variant, _, group = entry.partition(":")
    name = variant.partition("@")[0]
    settings = dict(extra.get(variant, {}))
    overrides = settings.pop("train", {})
    if group:
        key = GROUP_SETTING[name]
        settings[key] = (group,) if key in ("groups", "targets") else group
    return entry.replace(":", "-").replace("@", "-"), name, settings, overrides


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` spawned processes that end with this one, even when it is killed (SIGKILL)."""
    return ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=end_with_parent, initargs=(os.getpid(),)
    )


def run_one(args: argparse.Namespace, entry: str, seed: int) -> str:
    label, name, settings, overrides = method_settings(entry, json.loads(args.settings))
    path = Path(args.out) / f"{label}-seed{seed}"
    if (path / "result.json").exists():
        return str(path)
    share_cores(threads_per_worker(args.threads, args.workers))  # this process is one of --workers
    torch.set_num_threads(resolve_threads(args.threads))
    data = data_settings(args)
    ctx = SearchContext(
        data.task,
        data.load(),
        backbone_settings(args),
        dataclasses.replace(train_config(args), seed=seed, **overrides),
        LocalExecutor(),
        RunDirectory(path),
        seed=seed,
        progress=False,
        data_settings=data.record(),
    )
    run_search(make_method(name, **settings), ctx, resume=True)
    write_report(path)
    return str(path)


def _row(task: str, method: str, results: list[tuple[float, Cost, int]]) -> dict:
    tests = [100 * acc for acc, _, _ in results]
    return {
        "task": task,
        "method": method,
        "seeds": len(results),
        "test_acc_mean": statistics.fmean(tests),
        "test_acc_std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
        "params": sorted({params for _, _, params in results}),
        "total_flops_mean": statistics.fmean(c.total_flops for _, c, _ in results),
        "total_seconds_mean": statistics.fmean(c.train_seconds for _, c, _ in results),
    }


def summary_rows(paths: list[str]) -> list[dict]:
    """One row per (task, method label), plus ``fixed-<G>`` rows from the candidates of grids."""
    rows, fixed = [], {}
    for (task, label), runs in grouped_runs(paths, label="run").items():
        rows.append(
            _row(task, label, [(r["best"].test_acc or 0.0, r["total_cost"], r["best"].params) for r in runs])
        )
        if label != "grid":
            continue
        for run in runs:
            for record in RunDirectory(run["run"]).records():
                key = (task, record.candidate_id)
                fixed.setdefault(key, []).append(
                    (record.test_acc or 0.0, Cost.from_dict(record.cost), record.params)
                )
    own = {(row["task"], row["method"]) for row in rows}
    rows += [
        _row(task, cid, results) for (task, cid), results in sorted(fixed.items()) if (task, cid) not in own
    ]
    return rows


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``equinas search`` for data, training and network (from their declarations)."""
    add_setting_groups(parser)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_options(parser)
    parser.add_argument(
        "--methods", nargs="+", default=["equinas_e", "equinas_d", "fixed:C1", "fixed:C4", "fixed:D4", "rpp"]
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0, 1, 2], help="one run per seed (replaces --seed)"
    )
    parser.add_argument("--settings", default="{}", help="JSON: {method or method@variant: {setting: value}}")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--out", default="benchmarks/results/compare")
    args = parser.parse_args()

    start = time.perf_counter()
    jobs = [(entry, seed) for seed in args.seeds for entry in args.methods]
    with worker_pool(args.workers) as pool:
        paths = list(pool.map(run_one, [args] * len(jobs), *zip(*jobs, strict=True)))
    table = comparison_table(paths, label="run")
    out = Path(args.out)
    header = f"# {args.task}: {args.epochs:g} epochs per network, seeds {args.seeds}\n\n"
    atomic_write_text(out / "summary.md", header + table)
    comparison_plot(paths, out / "cost_vs_accuracy.png", label="run")
    summary = {"args": vars(args), "rows": summary_rows(paths), "runs": sorted(paths)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    print(header + table)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
