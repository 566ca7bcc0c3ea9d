"""The headline figure: test accuracy against compute, in units of one fixed network.

Reads the merged rows of a ``compare_methods`` comparison (``summary.json``: a list of rows
``{task, method, seeds, test_acc_mean, test_acc_std, total_flops_mean, ...}``, as
``merge_summaries.py`` writes it), keeps one task, and draws every method as its seed mean
with the seed standard deviation as an error bar, the grid's fixed G-CNNs (``fixed-<G>``) as
labelled grey points. The unit of compute is the mean compute of those fixed networks. Writes
``<out>.png`` and ``<out>.md`` (the same numbers as a table).

    python benchmarks/headline.py benchmarks/results/acceptance/cpu-medium/summary.json \\
        --task rotmnist --out benchmarks/results/acceptance/cpu-medium/headline
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load_rows(path: Path, task: str) -> list[dict]:
    rows = [r for r in json.loads(path.read_text()) if r["task"] == task]
    if not rows:
        raise SystemExit(f"{path} has no rows of task {task!r}")
    return rows


GROUP_NAME = re.compile(r"[CD]\d+(\[axis=\d+\])?")


def is_fixed(row: dict) -> bool:
    """A fixed G-CNN of the grid: ``fixed-<group name>`` (not a variant such as ``fixed-augD4-C1``)."""
    name = row["method"].removeprefix("fixed-")
    return name != row["method"] and GROUP_NAME.fullmatch(name) is not None


def unit_of_compute(rows: list[dict]) -> float:
    """Mean compute of one fixed G-CNN (the ``fixed-<G>`` rows)."""
    fixed = [r["total_flops_mean"] for r in rows if is_fixed(r)]
    if not fixed:
        raise SystemExit("no fixed-<G> rows: run the grid (or fixed networks) to get the unit of compute")
    return statistics.fmean(fixed)


def table(rows: list[dict], unit: float, task: str) -> str:
    lines = [
        f"# {task}: test accuracy against compute (one fixed network = {unit / 1e12:.2f}e12 multiply-adds)",
        "",
        "| method | seeds | test acc % | compute (1e12 MACs) | x one network |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (is_fixed(r), -r["test_acc_mean"])):
        lines.append(
            f"| {r['method']} | {r['seeds']} | {r['test_acc_mean']:.1f} ± {r['test_acc_std']:.1f} | "
            f"{r['total_flops_mean'] / 1e12:.2f} | {r['total_flops_mean'] / unit:.2f} |"
        )
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], unit: float, task: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = plt.get_cmap("tab20")
    markers = "osD^v<>pX*"
    methods = [r for r in rows if not is_fixed(r)]
    for r in rows:
        if is_fixed(r):
            x = r["total_flops_mean"] / unit
            ax.scatter(x, r["test_acc_mean"], color="0.6", s=14, zorder=2)
            ax.annotate(
                r["method"].removeprefix("fixed-"),
                (x, r["test_acc_mean"]),
                fontsize=6,
                color="0.4",
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
            )
    for i, r in enumerate(sorted(methods, key=lambda r: r["method"])):
        ax.errorbar(
            r["total_flops_mean"] / unit,
            r["test_acc_mean"],
            yerr=r["test_acc_std"],
            fmt=markers[i % len(markers)],
            color=colors(i % 20),
            capsize=3,
            label=f"{r['method']} ({r['seeds']} seeds)",
            zorder=3,
        )
    ax.set_xscale("log")
    ax.set_xlabel("compute (x one fixed network, log)")
    ax.set_ylabel("test accuracy (%), mean ± std over seeds")
    ax.set_title(f"{task}: accuracy against compute (grey: the grid's fixed G-CNNs)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=140)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("summary", type=Path)
    parser.add_argument("--task", default="rotmnist")
    parser.add_argument("--out", type=Path, required=True, help="path without suffix")
    args = parser.parse_args()
    rows = load_rows(args.summary, args.task)
    unit = unit_of_compute(rows)
    text = table(rows, unit, args.task)
    args.out.with_suffix(".md").write_text(text)
    figure(rows, unit, args.task, args.out.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    main()
