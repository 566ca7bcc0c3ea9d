"""Symmetry recovery: does a search find the symmetry that a task has by construction?

Tasks, generated deterministically from MNIST, and their true symmetry group on the network
side (ambient D4):

    mnist              C1   upright digits (a 6 turned over is a 9)
    gmnist[hflip]      D1 of the left-right mirror (each digit mirrored with probability 1/2)
    gmnist[vflip]      D1 of the up-down mirror
    gmnist[rot]        C4   digits at any angle (exact quarter turns on the network side)
    gmnist[rot,hflip]  D4
    mnist-turns        C1   40 classes: digit x the quarter turn applied (local rotation
                            features help, global rotation invariance is wrong)

and, with ``--tasks``, the same transforms of Fashion-MNIST (``gfmnist[hflip]``, ``gfmnist[rot]``,
``gfmnist[rot,hflip]``: D1, C4, D4), data the defaults were not chosen on.

For every (task, method, seed) one ``compare_methods`` run goes into
``<out>/runs/<task>/<label>-seed<k>`` (finished runs are skipped: rerun the command to resume).
The found network's **invariance group** is measured on 64 validation images: the elements of
D4 under which its logits change by less than 1e-4 (relative), with its trained weights when
the run stored them (every method here but the grid) and otherwise on the found spec freshly
initialised (a fixed G-CNN: its group, by construction). ``<out>/summary.json`` is a list of
rows ``{task, truth, method, seed, found, test_acc, total_flops, weights}``; ``summary.md`` the
table and each method's recovery rate.

    python benchmarks/recovery.py --workers 2              # everything (about 45 min on 2 idle cores)
    python benchmarks/recovery.py --methods equinas_g --seeds 0
    python benchmarks/recovery.py --summarize              # tables of what is finished
    python benchmarks/recovery.py --methods equinas_g --train-size 4000 --out benchmarks/results/recovery_4000
    python benchmarks/recovery.py --methods equinas_g --depth8 --out benchmarks/results/recovery_depth8
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare_methods  # noqa: E402

from equinas.cli.common import data_settings  # noqa: E402
from equinas.groups import PlanarGroup, act_on_images, generated_subgroup, parse_group  # noqa: E402
from equinas.metrics import invariance_group  # noqa: E402
from equinas.models import build_model  # noqa: E402
from equinas.search.run_directory import RunDirectory  # noqa: E402

AMBIENT = parse_group("D4")
TASKS = ("mnist", "gmnist[hflip]", "gmnist[vflip]", "gmnist[rot]", "gmnist[rot,hflip]", "mnist-turns")
# the same transforms of Fashion-MNIST, a check on data the defaults were not chosen on (--tasks)
EXTRA_TASKS = ("gfmnist[hflip]", "gfmnist[rot]", "gfmnist[rot,hflip]")
METHODS = ("grid", "equinas_e", "equinas_e@g5", "equinas_g", "equinas_d")
PROFILE = [
    *("--widths", "4,4,8,8", "--pools-after", "0,1", "--hidden", "none", "--lr", "0.002"),
    *("--val-size", "500", "--test-size", "1000", "--epochs", "6"),
    *("--eval-every", "100", "--device", "cpu", "--threads", "1"),
]
# EquiNAS_E splits the 6 epochs of a lineage evenly over its start network and generations: the
# g5 variant takes 5 smaller steps (1 epoch each) where the default takes 3 (1.5 epochs each); it
# trains 31 network-epochs against 28.5 and evaluates 5 generations against 3 (1.3x the compute)
SETTINGS = {
    "equinas_e": {"generations": 3, "population": 2, "children_per_parent": 3},
    "equinas_e@g5": {"generations": 5, "population": 2, "children_per_parent": 3},
}
# --depth8: the paper's backbone (8 layers, pools after layers 2 and 4) at quarter width
DEPTH8 = ["--widths", "4,4,4,4,8,8,8,8", "--pools-after", "2,4"]
PROBE_IMAGES = 64


def mirror(flip_dim: int) -> PlanarGroup:
    """The D1 subgroup of ``AMBIENT`` whose mirror flips images along ``flip_dim``."""
    x = torch.arange(25.0).reshape(1, 5, 5)
    (g,) = [g for g in AMBIENT.elements if torch.equal(act_on_images(x, g, AMBIENT), x.flip(flip_dim))]
    return generated_subgroup(AMBIENT, [g])


TRUTH = {
    "mnist": parse_group("C1", ambient=AMBIENT),
    "gmnist[hflip]": mirror(-1),
    "gmnist[vflip]": mirror(-2),
    "gmnist[rot]": parse_group("C4", ambient=AMBIENT),
    "gmnist[rot,hflip]": AMBIENT,
    "mnist-turns": parse_group("C1", ambient=AMBIENT),
    "gfmnist[hflip]": mirror(-1),
    "gfmnist[rot]": parse_group("C4", ambient=AMBIENT),
    "gfmnist[rot,hflip]": AMBIENT,
}


def run_args(task: str, out: Path, extra: list[str]) -> argparse.Namespace:
    """``compare_methods`` arguments of one task at this benchmark's profile."""
    parser = argparse.ArgumentParser()
    compare_methods.add_options(parser)
    args = parser.parse_args([*PROFILE, *extra, "--task", task])
    args.settings = json.dumps(SETTINGS)
    args.out = str(out / "runs" / task)
    return args


def run(out: Path, extra: list[str], task: str, method: str, seed: int) -> str:
    return compare_methods.run_one(run_args(task, out, extra), method, seed)


def found_group(path: Path, images: torch.Tensor) -> tuple[PlanarGroup, str]:
    """The invariance group of a run's found network, and which weights it was measured with."""
    result = json.loads((path / "result.json").read_text())
    best = result["best"]
    model = build_model(best["spec"])
    run_dir = RunDirectory(path)
    weights = "initial"
    if run_dir.has_state(best["candidate_id"]):
        model.load_state_dict(run_dir.load_state(best["candidate_id"]))
        weights = "trained"
    return invariance_group(model, images, AMBIENT), weights


def summarize(out: Path, extra: list[str]) -> list[dict]:
    """Rows of every finished run; writes ``summary.json`` and ``summary.md``."""
    rows = []
    for task in TASKS + EXTRA_TASKS:
        runs = sorted((out / "runs" / task).glob("*-seed*/result.json"))
        if not runs:
            continue
        images = data_settings(run_args(task, out, extra)).load().val.batch(slice(PROBE_IMAGES))
        for result in runs:
            label, _, seed = result.parent.name.rpartition("-seed")
            found, weights = found_group(result.parent, images)
            summary = json.loads(result.read_text())
            rows.append(
                {
                    "task": task,
                    "truth": TRUTH[task].name,
                    "method": label,
                    "seed": int(seed),
                    "found": found.name,
                    "test_acc": summary["best"]["test_acc"],
                    "total_flops": summary["total_cost"]["total_flops"],
                    "weights": weights,
                }
            )
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(rows))
    return rows


def markdown(rows: list[dict]) -> str:
    """Per (task, method): the groups found per seed (hits marked), mean test accuracy; then the
    recovery rate per method."""
    methods = sorted({r["method"] for r in rows})
    lines = [
        "# Symmetry recovery (ambient D4; found = invariance group of the found network's logits)",
        "",
        "| task | truth | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for task in [t for t in TASKS + EXTRA_TASKS if any(r["task"] == t for r in rows)]:
        cells = []
        for method in methods:
            mine = sorted(
                (r for r in rows if r["task"] == task and r["method"] == method), key=lambda r: r["seed"]
            )
            if not mine:
                cells.append("")
                continue
            found = " ".join(r["found"] + ("✓" if r["found"] == r["truth"] else "✗") for r in mine)
            acc = statistics.fmean(100 * (r["test_acc"] or 0.0) for r in mine)
            cells.append(f"{found} ({acc:.1f} %)")
        if any(cells):
            lines.append(f"| {task} | {TRUTH[task].name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| method | runs recovered | tasks recovered in >= 2 of 3 seeds | mean compute (1e12 MACs) |",
    ]
    lines.append("|---|---|---|---|")
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        hits = sum(r["found"] == r["truth"] for r in mine)
        complete = [t for t in TASKS + EXTRA_TASKS if sum(r["task"] == t for r in mine) >= 3]
        tasks = sum(sum(r["found"] == r["truth"] for r in mine if r["task"] == t) >= 2 for t in complete)
        per_task = f"{tasks}/{len(complete)}" if complete else "- (no task with 3 seeds yet)"
        flops = statistics.fmean(r["total_flops"] for r in mine) / 1e12
        lines.append(f"| {method} | {hits}/{len(mine)} | {per_task} | {flops:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS + EXTRA_TASKS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help="compare_methods entries")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel (one thread each)")
    parser.add_argument("--out", default="benchmarks/results/recovery")
    parser.add_argument("--summarize", action="store_true", help="only write the tables")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--train-size", type=int, default=2000, help="training images per task (6 epochs of them per network)"
    )
    parser.add_argument(
        "--depth8", action="store_true", help="the paper's 8-layer backbone at quarter width, not 4 layers"
    )
    args = parser.parse_args()
    out = Path(args.out)
    extra = ["--train-size", str(args.train_size)] + (["--data-dir", args.data_dir] if args.data_dir else [])
    extra += DEPTH8 if args.depth8 else []
    start = time.perf_counter()
    if not args.summarize:
        # seed-major: every (task, method) gets its first seed before any gets its second
        jobs = [(t, m, s) for s in args.seeds for t in args.tasks for m in args.methods]
        with compare_methods.worker_pool(args.workers) as pool:
            for path in pool.map(run, *zip(*[(out, extra, *job) for job in jobs], strict=True)):
                print(path, flush=True)
    summarize(out, extra)
    print((out / "summary.md").read_text())
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
