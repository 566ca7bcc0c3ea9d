"""The README's main job: EquiNAS searches on real RotMNIST data, with a table and plots.

Runs, at one budget and seed, the fixed C1, C4 and D4 G-CNNs, EquiNAS_G, EquiNAS_E and
EquiNAS_D on a class-balanced subset of RotMNIST (generated from the MNIST files on first use),
prints EquiNAS_G's relaxations as they are decided, writes every run's report (``report.md`` +
PNG plots), a comparison table ``summary.md`` with the compute of every run and the anytime plot
``cost_vs_accuracy.png``, and ends with one line per run: what it found, at what cost in
networks (its compute over that of the fixed D4 network). The six searches run at once,
each in a thread of this process, and share one pool of one-thread worker processes (one per
core) that trains their candidates: no core idles while any search has a network queued. Where
the device computes bfloat16 natively (``equinas.train.runtime.native_bf16``) training and
evaluation run under bf16 autocast. The budget is recorded in ``demo.json``: a run directory
holds the results of one budget only.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from equinas.atomic import atomic_write_text
from equinas.data import load_task
from equinas.execution import ProcessExecutor
from equinas.report import comparison_plot, comparison_table, write_report
from equinas.report.tables import run_summary
from equinas.search import BackboneSettings, SearchContext, make_method, run_search
from equinas.search.run_directory import RunDirectory
from equinas.train import TrainConfig
from equinas.train.runtime import native_bf16, resolve_device


@dataclass(frozen=True)
class DemoBudget:
    """Data sizes, epochs per network (for EquiNAS_E: per lineage), EquiNAS_E's shape, and when
    EquiNAS_G decides at what level (the quick budget's parts are too short for the default)."""

    train_size: int
    val_size: int
    test_size: int
    epochs: float
    generations: int
    children_per_parent: int
    widths: tuple[int, ...]
    decide_at: tuple[float, ...]
    alpha: float


# EquiNAS_E with 2 children per parent (3 before EquiNAS_G joined) pays for EquiNAS_G's network
FULL = DemoBudget(4000, 1000, 2000, 6.0, 3, 2, (4, 4, 8, 8), (0.1, 0.2, 0.3), 0.05)
QUICK = DemoBudget(600, 200, 300, 1.0, 1, 2, (2, 2, 4, 4), (0.5,), 0.5)
UNIT = "fixed-D4"  # the run whose compute is one network


def plans(budget: DemoBudget) -> list[tuple[str, str, dict[str, Any]]]:
    """``(run name, method, settings)`` of every run of the demo; each gets ``budget.epochs``
    (per network; EquiNAS_E splits it over a lineage itself).

    The searches use the paper's search space {D4, C4, D1, C2, C1}: EquiNAS_G trains one
    network and relaxes its layers at ``budget.decide_at``; EquiNAS_E uses successive halving;
    EquiNAS_D its default, deciding layer by layer within one run of 4/3 the budget that goes
    on training the network it found (about 1.9 times the compute of one fixed network).
    """
    fixed = [(f"fixed-{g}", "fixed", {"groups": (g,)}) for g in ("C1", "C4", "D4")]
    e_settings: dict[str, Any] = {
        "generations": budget.generations,
        "population": 2,
        "children_per_parent": budget.children_per_parent,
        "halving": True,
        "space": ("paper",),
    }
    g_settings: dict[str, Any] = {"space": ("paper",), "decide_at": budget.decide_at, "alpha": budget.alpha}
    d_settings: dict[str, Any] = {"groups": ("paper",)}
    searches = [("equinas_g", g_settings), ("equinas_e", e_settings), ("equinas_d", d_settings)]
    return [*fixed, *((name, name, settings) for name, settings in searches)]


def _check_budget(run_dir: Path, budget: DemoBudget) -> None:
    """Record the budget in ``demo.json``; refuse a directory that holds another budget's runs."""
    record = run_dir / "demo.json"
    wanted = json.loads(json.dumps(asdict(budget)))
    if record.exists():
        stored = json.loads(record.read_text())
        if stored != wanted:
            kind = "the quick demo" if stored == json.loads(json.dumps(asdict(QUICK))) else "another budget"
            raise ValueError(f"{run_dir} holds the results of {kind}; choose another --run-dir")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ValueError(f"{run_dir} is not empty and holds no demo; choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record, json.dumps(wanted, indent=2) + "\n")


def _search(plan: tuple[str, str, dict[str, Any]], run_dir: Path, progress: bool, **context: Any) -> None:
    """Run (or resume) one search of the demo into ``run_dir/<name>`` with the ``SearchContext``
    fields ``context``; a line when it is done."""
    name, method, settings = plan
    started = time.perf_counter()
    news = (lambda line: print(f"== {name}: {line}", flush=True)) if progress else None
    ctx = SearchContext("rotmnist", run=RunDirectory(run_dir / name), progress=False, news=news, **context)
    best = run_search(make_method(method, **settings), ctx, resume=True).best
    if progress:
        took = time.perf_counter() - started
        print(f"== {name}: done after {took:.0f} s, best {best.candidate_id}, test accuracy {best.test_acc}")


def run_demo(
    run_dir: Path,
    data_dir: str | None = None,
    quick: bool = False,
    progress: bool = True,
    workers: int | None = None,
) -> str:
    """Run the demo's searches into ``run_dir/<name>`` (resuming unfinished ones); the table.

    The searches with long chains of dependent candidates (EquiNAS_E's generations, EquiNAS_D's
    search and retraining) start first, the fixed networks fill the workers around them.
    """
    budget = QUICK if quick else FULL
    _check_budget(run_dir, budget)
    sizes = {"train_size": budget.train_size, "val_size": budget.val_size, "test_size": budget.test_size}
    data = load_task("rotmnist", data_dir, **sizes)
    backbone = BackboneSettings(widths=budget.widths, pools_after=(0, 1), hidden=None)
    amp = native_bf16(resolve_device(TrainConfig().device))
    config = TrainConfig(epochs=budget.epochs, lr=2e-3, amp=amp)
    runs = sorted(plans(budget), key=lambda plan: plan[1] == "fixed")  # searches first, stable
    executor = ProcessExecutor(workers=workers)
    if progress:
        precision = "bf16 autocast" if amp else "float32"
        print(
            f"== {', '.join(plan[0] for plan in runs)} on RotMNIST, {budget.train_size} images, "
            f"{budget.epochs:g} epochs per network, {executor.workers} worker processes, {precision}"
        )
    context = {
        "data": data,
        "backbone": backbone,
        "train": config,
        "executor": executor,
        "data_settings": {"data_dir": data_dir, **sizes},
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers own the cores; this process only steers the searches
    try:
        with ThreadPoolExecutor(len(runs), thread_name_prefix="demo-search") as pool:
            futures = [pool.submit(_search, plan, run_dir, progress, **context) for plan in runs]
        for future in futures:  # every search has ended (their records are kept): the first error
            future.result()
    finally:
        executor.close()
        torch.set_num_threads(threads)
    run_dirs = [run_dir / name for name, _, _ in plans(budget)]
    for path in run_dirs:
        write_report(path)
    table = comparison_table(run_dirs, label="run")
    plot = comparison_plot(run_dirs, run_dir / "cost_vs_accuracy.png", label="run")
    atomic_write_text(
        run_dir / "summary.md",
        "# equinas demo: RotMNIST\n\n" + table + f"\n![accuracy against compute]({plot.name})\n",
    )
    print(table)
    print("\n".join(found_lines(run_dirs)))
    print(f"reports: {', '.join(str(p / 'report.md') for p in run_dirs)}; plot: {plot}")
    return table


def found_lines(run_dirs: list[Path]) -> list[str]:
    """One line per run: the groups it found (layer 1 first), its test accuracy, and its
    compute in networks, i.e. over the compute of the fixed D4 network (training and scoring)."""
    summaries = {path.name: run_summary(RunDirectory(path)) for path in run_dirs}
    unit = summaries[UNIT]["total_cost"].total_flops
    lines = []
    for name, summary in summaries.items():
        best = summary["best"]
        verb = "trained" if summary["method"] == "fixed" else "found"
        networks = summary["total_cost"].total_flops / unit
        lines.append(
            f"{name:>10}: {verb} {' '.join(best.groups)}, test {100 * (best.test_acc or 0):.1f} %, "
            f"cost {networks:.2f} networks"
        )
    return lines
