"""The paper-depth profile: the paper's 8-layer backbone on the standard RotMNIST split.

Setup: RotMNIST as generated (10,000 train, 2,000 val, all 50,000 test images), the 8-layer
backbone with kernel 5 at ``--widths`` (default quarter width: 4,4,4,4,8,8,8,8 D4 fields, the
widest whose profile fits a session of 2 cores), every method at the same ``--epochs``, one
thread per run. Runs, each a ``compare_methods`` run in ``<out>/runs/<label>-seed<k>``
(finished runs are skipped: rerun the command to resume):

- fixed C1, C4, D4, EquiNAS_G and EquiNAS_D (default recipe), seeds 0-2;
- the five RotMNIST architectures of the paper (``paper:rotmnist-1`` ...), seed 0, then seeds 1-2
  of the one with the best seed-0 validation accuracy.

``--stage fixed`` runs the fixed networks and paper architectures, ``--stage search`` the two
searches, ``--stage all`` both (in that order); ``--summarize`` only writes the results of
what is finished:

- ``summary.json``: rows ``{task, method, seed, test_acc, val_acc, total_flops, groups,
  num_layers, train_size, test_size, widths, epochs}``;
- ``summary.md``: mean ± std per method, compute in units of one fixed network (the mean
  total MACs of the fixed C1/C4/D4 runs);
- ``groups.png``: the group of every layer found by each EquiNAS_G seed beside the paper's five.

    nohup python benchmarks/paper_depth.py --stage all --workers 2 &
    python benchmarks/paper_depth.py --summarize
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare_methods  # noqa: E402

from equinas.atomic import atomic_write_text  # noqa: E402
from equinas.models.paper import PAPER_ARCHITECTURES  # noqa: E402

OUT = Path("benchmarks/results/paper_depth")
SEEDS = (0, 1, 2)
FIXED = ("fixed:C1", "fixed:C4", "fixed:D4")
SEARCHES = ("equinas_g", "equinas_d")
PAPER = tuple(f"fixed:paper:{name}" for name in PAPER_ARCHITECTURES if name.startswith("rotmnist"))


def profile(widths: str, epochs: float) -> list[str]:
    return [
        *("--task", "rotmnist", "--widths", widths, "--kernel-size", "5", "--epochs", f"{epochs:g}"),
        *("--eval-every", f"{epochs:g}", "--device", "cpu", "--threads", "1"),
    ]


def run_args(out: Path, widths: str, epochs: float) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    compare_methods.add_options(parser)
    args = parser.parse_args(profile(widths, epochs))
    args.settings = "{}"
    args.out = str(out / "runs")
    return args


def label(entry: str) -> str:
    """The run label ``compare_methods`` gives ``entry`` (``fixed:C4`` -> ``fixed-C4``)."""
    return compare_methods.method_settings(entry, {})[0]


def result(out: Path, entry: str, seed: int) -> dict | None:
    path = out / "runs" / f"{label(entry)}-seed{seed}" / "result.json"
    return json.loads(path.read_text()) if path.exists() else None


def best_paper(out: Path) -> str | None:
    """The paper architecture with the best seed-0 validation accuracy, once all five ran."""
    results = {entry: result(out, entry, 0) for entry in PAPER}
    if any(r is None for r in results.values()):
        return None
    return max(PAPER, key=lambda e: results[e]["best"]["val_acc"])


def run_jobs(args: argparse.Namespace, jobs: list[tuple[str, int]], workers: int) -> None:
    with compare_methods.worker_pool(workers) as pool:
        for path in pool.map(compare_methods.run_one, [args] * len(jobs), *zip(*jobs, strict=True)):
            print("finished", path, flush=True)


def rows(out: Path, widths: str, epochs: float) -> list[dict]:
    table = []
    for path in sorted((out / "runs").glob("*-seed*/result.json")):
        name, _, seed = path.parent.name.rpartition("-seed")
        summary = json.loads(path.read_text())
        best = summary["best"]
        search = json.loads((path.parent / "search.json").read_text())
        data = search.get("data") or {}
        table.append(
            {
                "task": "rotmnist",
                "method": name,
                "seed": int(seed),
                "test_acc": best["test_acc"],
                "val_acc": best["val_acc"],
                "total_flops": summary["total_cost"]["total_flops"],
                "groups": best["groups"],
                "num_layers": len(best["groups"]),
                "train_size": data.get("train_size") or 10_000,
                "test_size": data.get("test_size") or 50_000,
                "widths": [int(w) for w in widths.split(",")],
                "epochs": epochs,
            }
        )
    return table


def markdown(table: list[dict], widths: str, epochs: float) -> str:
    fixed = [r["total_flops"] for r in table if r["method"] in {label(e) for e in FIXED}]
    unit = statistics.fmean(fixed) if fixed else None
    lines = [
        f"# RotMNIST at the paper's depth: 8 layers (widths {widths}), {epochs:g} epochs, "
        "10,000 train / 2,000 val / 50,000 test",
        "",
        "| method | seeds | test acc (%) | val acc (%) | compute (x one fixed network) "
        "| groups (seed 0, layer 1 first) |",
        "|---|---|---|---|---|---|",
    ]
    for method in sorted({r["method"] for r in table}):
        runs = sorted((r for r in table if r["method"] == method), key=lambda r: r["seed"])
        tests = [100 * r["test_acc"] for r in runs]
        vals = [100 * r["val_acc"] for r in runs]
        spread = f" ± {statistics.stdev(tests):.2f}" if len(tests) > 1 else ""
        cost = statistics.fmean(r["total_flops"] for r in runs) / unit if unit else float("nan")
        accuracy = f"{statistics.fmean(tests):.2f}{spread} | {statistics.fmean(vals):.2f}"
        lines.append(f"| {method} | {len(runs)} | {accuracy} | {cost:.3f} | {' '.join(runs[0]['groups'])} |")
    return "\n".join(lines) + "\n"


def groups_figure(table: list[dict], path: Path) -> None:
    """One row per EquiNAS_G seed and per paper architecture: the group of each layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = ["C1", "C2", "D1", "C4", "D2", "D4"]
    found = sorted((r for r in table if r["method"] == "equinas_g"), key=lambda r: r["seed"])
    archs = [(f"EquiNAS_G seed {r['seed']}", r["groups"]) for r in found]
    archs += [
        (f"paper {name}", list(groups)) for name, groups in PAPER_ARCHITECTURES.items() if "rotmnist" in name
    ]
    layers = max(len(groups) for _, groups in archs)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(archs) + 1.2))
    for row, (_, groups) in enumerate(archs):
        for col, group in enumerate(groups):
            base = group.split("[")[0]
            shade = order.index(base) / (len(order) - 1) if base in order else 0.5
            ax.add_patch(plt.Rectangle((col, row), 1, 1, color=plt.cm.viridis(shade)))
            ink = "black" if shade > 0.6 else "white"
            ax.text(col + 0.5, row + 0.5, group, ha="center", va="center", fontsize=7, color=ink)
    ax.set_xlim(0, layers)
    ax.set_ylim(len(archs), 0)
    ax.set_xticks([i + 0.5 for i in range(layers)], [f"layer {i + 1}" for i in range(layers)], fontsize=7)
    ax.set_yticks([i + 0.5 for i in range(len(archs))], [name for name, _ in archs], fontsize=7)
    ax.set_title("Groups per layer: EquiNAS_G (this profile) and the paper's EquiNAS_E finds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarize(out: Path, widths: str, epochs: float) -> None:
    table = rows(out, widths, epochs)
    atomic_write_text(out / "summary.json", json.dumps(table, indent=2) + "\n")
    text = markdown(table, widths, epochs)
    atomic_write_text(out / "summary.md", text)
    groups_figure(table, out / "groups.png")
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stage", choices=("fixed", "search", "all"), default="all")
    parser.add_argument("--summarize", action="store_true", help="only write the summary of finished runs")
    parser.add_argument("--widths", default="4,4,4,4,8,8,8,8")
    parser.add_argument("--epochs", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    options = parser.parse_args()
    out = options.out
    if not options.summarize:
        args = run_args(out, options.widths, options.epochs)
        if options.stage in ("fixed", "all"):
            run_jobs(
                args,
                [(e, 0) for e in (*FIXED, *PAPER)] + [(e, s) for s in SEEDS[1:] for e in FIXED],
                options.workers,
            )
            best = best_paper(out)
            run_jobs(args, [(best, s) for s in SEEDS[1:]], options.workers)
            summarize(out, options.widths, options.epochs)
        if options.stage in ("search", "all"):
            run_jobs(args, [(e, s) for s in SEEDS for e in SEARCHES], options.workers)
    summarize(out, options.widths, options.epochs)


if __name__ == "__main__":
    main()
