"""Data scaling: test accuracy against training-set size, equivariant vs plain networks.

For each task, training-set size (log-spaced: 250 times powers of 4 up to 16,000 or the whole
split: 250, 1,000, 4,000, 16,000; RotMNIST's train split has 10,000 images),
seed and method, one ``compare_methods.run_one`` run into
``<out>/<task>/steps<S>/n<size>/<label>-seed<k>`` (finished runs are skipped: rerun the same command to
resume). Every network gets the same number of optimizer steps, ``--steps`` (a fixed compute
budget): ``epochs = steps / ceil(size / batch_size)``, so small sets are seen for many epochs
and large ones for few. The validation split has ``min(--val-size, size)`` images (a search
never sees more labelled validation data than training data); the test split is fixed.

After every (seed, size) it rewrites ``<out>/summary.json`` (``rows``: task, method, train_size, seeds,
test_acc_mean, test_acc_std, total_flops_mean, total_seconds_mean; over every finished run of
every task) and ``<out>/<task>.png`` (accuracy against size, log x). Run one process per task:

    python benchmarks/scaling.py --task rotmnist --steps 150 &
    python benchmarks/scaling.py --task mnist-c2 --steps 150 &
    python benchmarks/scaling.py --summarize        # tables and plots of what is finished

Methods are ``compare_methods`` entries; the default set is the plain CNN with and without D4
augmentation, the C4 and D4 G-CNNs, EquiNAS_D's cheap recipe (search for half the steps on
the paper's groups, then retrain) and symmetry cloning (a C4 teacher for 40% of the steps,
cloning 30%, fine-tuning 30%); other methods (``lps``, ``symmetry_breaking``) can be added
with ``--methods ... lps`` (and their settings with ``--settings``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare_methods  # noqa: E402

from equinas.atomic import atomic_write_text  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "scaling"
TRAIN_SPLIT = {"rotmnist": 10_000}  # tasks whose train split is smaller than 16,000
SMALL_BACKBONE = ["--widths", "4,4,8,8", "--pools-after", "0,1", "--hidden", "none", "--lr", "0.002"]
METHODS = ["fixed:C1", "fixed@augD4:C1", "fixed:C4", "fixed:D4", "equinas_d@fast", "clone"]
LABELS = {
    "fixed-C1": "C1 (plain CNN)",
    "fixed-augD4-C1": "C1 + D4 augmentation",
    "fixed-C4": "C4 G-CNN",
    "fixed-D4": "D4 G-CNN",
    "equinas_d-fast": "EquiNAS_D (fast)",
    "clone": "symmetry cloning (C4 teacher)",
    "lps": "LPS (C1 backbone, D4)",
    "symmetry_breaking": "symmetry breaking (D4, K=2)",
}


def sizes(task: str, smallest: int = 250, largest: int = 16_000, factor: int = 4) -> list[int]:
    """``smallest * factor**k`` up to ``largest``, capped by the train split (then its size is last)."""
    cap = min(largest, TRAIN_SPLIT.get(task, largest))
    out = [smallest]
    while out[-1] * factor < cap:
        out.append(out[-1] * factor)
    return out if out[-1] == cap else [*out, cap]


def epochs_for(size: int, steps: int, batch_size: int) -> float:
    """Epochs that make ``steps`` optimizer steps on ``size`` images."""
    return steps / math.ceil(size / batch_size)


def variant_settings(epochs: float) -> dict:
    """compare_methods ``--settings`` of the study's variants at ``epochs`` per network."""
    return {
        "fixed@augD4": {"train": {"augment": "D4"}},
        "equinas_d@fast": {"arch_lr": 0.2, "groups": ["paper"], "search_epochs": epochs / 2},
        "clone": {"group": "C4", "split": [0.4, 0.3, 0.3]},
    }


def run_args(args: argparse.Namespace, size: int) -> argparse.Namespace:
    """The compare_methods arguments of one (task, size)."""
    epochs = epochs_for(size, args.steps, args.batch_size)
    parser = argparse.ArgumentParser()
    compare_methods.add_options(parser)
    parsed = parser.parse_args(
        [
            "--task", args.task, "--train-size", str(size), "--val-size", str(min(args.val_size, size)),
            "--test-size", str(args.test_size), "--epochs", repr(epochs),
            "--batch-size", str(args.batch_size), "--eval-every", "100000", "--device", "cpu",
            "--threads", "1", *SMALL_BACKBONE,
        ]
    )  # fmt: skip
    parsed.settings = json.dumps({**variant_settings(epochs), **json.loads(args.settings)})
    parsed.out = str(Path(args.out) / args.task / f"steps{args.steps}" / f"n{size}")
    return parsed


def finished_runs(out: Path) -> list[dict]:
    """``{task, size, label, seed, test_acc, cost}`` of every finished run under ``out``."""
    runs = []
    for result in sorted(out.glob("*/steps*/n*/*-seed*/result.json")):
        run = result.parent
        label, _, seed = run.name.rpartition("-seed")
        data = json.loads(result.read_text())
        train = json.loads((run / "search.json").read_text())["train"]
        runs.append(
            {
                "task": run.parent.parent.parent.name,
                "size": int(run.parent.name[1:]),
                "label": label,
                "seed": int(seed),
                "test_acc": 100 * (data["best"]["test_acc"] or 0.0),
                "steps": round(train["epochs"] * math.ceil(int(run.parent.name[1:]) / train["batch_size"])),
                "cost": data["total_cost"],
            }
        )
    return runs


def summarize(out: Path) -> list[dict]:
    """Rows of ``summary.json`` (one per task, method, size) and one plot per task."""
    groups: dict[tuple[str, str, int, int], list[dict]] = {}
    for run in finished_runs(out):
        groups.setdefault((run["task"], run["label"], run["steps"], run["size"]), []).append(run)
    rows = []
    for (task, label, steps, size), runs in sorted(groups.items()):
        accs = [r["test_acc"] for r in runs]
        rows.append(
            {
                "task": task,
                "method": label,
                "train_size": size,
                "seeds": len(runs),
                "steps_per_network": steps,
                "test_acc_mean": statistics.fmean(accs),
                "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "total_flops_mean": statistics.fmean(r["cost"]["total_flops"] for r in runs),
                "total_seconds_mean": statistics.fmean(r["cost"]["train_seconds"] for r in runs),
            }
        )
    atomic_write_text(out / "summary.json", json.dumps({"rows": rows}, indent=2) + "\n")
    for task in sorted({row["task"] for row in rows}):
        plot(task, [row for row in rows if row["task"] == task], out / f"{task}.png")
    return rows


def plot(task: str, rows: list[dict], path: Path) -> None:
    """Mean test accuracy (± std over seeds) against training-set size, log x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.0, 4.6))
    budgets = sorted({row["steps_per_network"] for row in rows})
    order = list(LABELS)
    methods = sorted(
        {row["method"] for row in rows}, key=lambda m: (order.index(m) if m in order else len(order), m)
    )
    colors = plt.get_cmap("tab10")
    for i, label in enumerate(methods):
        for steps in budgets:
            mine = [r for r in rows if (r["method"], r["steps_per_network"]) == (label, steps)]
            if not mine:
                continue
            mine.sort(key=lambda r: r["train_size"])
            counts = sorted({r["seeds"] for r in mine})
            seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
            name = LABELS.get(label, label) + (f", {steps} steps" if len(budgets) > 1 else "")
            ax.errorbar(
                [r["train_size"] for r in mine],
                [r["test_acc_mean"] for r in mine],
                yerr=[r["test_acc_std"] for r in mine],
                marker="o",
                capsize=3,
                color=colors(i % 10),
                linestyle="-" if steps == budgets[-1] else "--",
                label=f"{name} ({seeds} seeds)",
            )
    ax.set_xscale("log")
    ax.set_xlabel("training images")
    ax.set_ylabel("test accuracy (%)")
    steps_text = (
        ", ".join(map(str, budgets)) + " steps per network" + ("; dashed: fewer" if len(budgets) > 1 else "")
    )
    ax.set_title(f"{task}: test accuracy vs training-set size ({steps_text})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", help="rotmnist, mnist-c2, ... (omit with --summarize)")
    parser.add_argument("--methods", nargs="+", default=METHODS, help="compare_methods entries")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--sizes", nargs="+", type=int, help="training-set sizes (default: log-spaced)")
    parser.add_argument("--steps", type=int, default=150, help="optimizer steps per network (the budget)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--val-size", type=int, default=1000, help="at most this many, and at most the size")
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--settings", default="{}", help="JSON merged over the study's variant settings")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--summarize", action="store_true", help="only rewrite summary.json and the plots")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.summarize:
        for row in summarize(out):
            print(json.dumps(row))
        return
    if not args.task:
        parser.error("--task is required (or --summarize)")
    jobs = [
        (seed, size, entry)
        for seed in args.seeds
        for size in (args.sizes or sizes(args.task))
        for entry in args.methods
    ]
    start = time.perf_counter()
    for done, (seed, size, entry) in enumerate(jobs, 1):
        began = time.perf_counter()
        try:
            path = compare_methods.run_one(run_args(args, size), entry, seed)
        except Exception as err:  # one failing run must not stop an hour-long study
            print(f"[{done}/{len(jobs)}] {args.task} n={size} {entry} seed {seed}: FAILED: {err}", flush=True)
            continue
        result = json.loads(Path(path, "result.json").read_text())
        print(
            f"[{done}/{len(jobs)}] {args.task} n={size} {entry} seed {seed}: "
            f"test {100 * (result['best']['test_acc'] or 0):.2f}% "
            f"({time.perf_counter() - began:.0f} s; {time.perf_counter() - start:.0f} s in all)",
            flush=True,
        )
        if entry == args.methods[-1]:
            summarize(out)
    summarize(out)


if __name__ == "__main__":
    main()
