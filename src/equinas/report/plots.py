"""PNG plots of search runs (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from equinas.atomic import atomic_write  # noqa: E402
from equinas.metrics.cost import Cost  # noqa: E402
from equinas.report.tables import TERA  # noqa: E402
from equinas.search.record import CandidateRecord  # noqa: E402
from equinas.search.selection import pareto_fronts  # noqa: E402


def _save(fig: Any, path: Path) -> None:
    """Write ``fig`` as a PNG to ``path`` atomically and release it."""
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=130))
    plt.close(fig)


def accuracy_vs_parameters(records: Sequence[CandidateRecord], path: Path, title: str) -> Path:
    """Validation accuracy against parameter count; the Pareto front is drawn as a step line."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    records = [r for r in records if r.scored]
    front = pareto_fronts(records)[0] if records else []
    front_ids = {r.candidate_id for r in front}
    others = [r for r in records if r.candidate_id not in front_ids]
    ax.scatter(
        [r.params for r in others],
        [100 * (r.val_acc or 0) for r in others],
        s=18,
        alpha=0.5,
        label="candidates",
    )
    front_sorted = sorted(front, key=lambda r: r.params)
    ax.step(
        [r.params for r in front_sorted],
        [100 * (r.val_acc or 0) for r in front_sorted],
        where="post",
        color="tab:red",
        marker="o",
        label="Pareto front",
    )
    for r in front_sorted:
        ax.annotate(
            "-".join(r.groups),
            (r.params, 100 * (r.val_acc or 0)),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    params = [r.params for r in records]
    wide = bool(params) and max(params) > 10 * min(params)
    if wide:  # several decades: log scale, labels on the decades only
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("parameters" + (" (log scale)" if wide else ""))
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    _save(fig, path)
    return path


def group_grid(
    columns: Sequence[Sequence[str]],
    ticks: Sequence[str],
    xlabel: str,
    lattice: Sequence[str],
    path: Path,
    title: str,
) -> Path:
    """The group of every layer (rows) in each of ``columns`` (one list of per-layer groups per
    x tick), coloured by the group's place in ``lattice``."""
    depth = len(columns[0])
    index = {name: i for i, name in enumerate(lattice)}
    grid = [[index[column[layer]] for column in columns] for layer in range(depth)]
    colors = plt.get_cmap("tab20")(range(len(lattice)))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(columns) + 2.5), 0.45 * depth + 1.6))
    ax.imshow(grid, cmap=ListedColormap(colors), vmin=-0.5, vmax=len(lattice) - 0.5, aspect="auto")
    for layer in range(depth):
        for x, column in enumerate(columns):
            ax.text(x, layer, column[layer], ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(columns)), list(ticks))
    ax.set_yticks(range(depth), [f"layer {i}" for i in range(depth)])
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)
    return path


def groups_per_generation(
    trace: list[dict[str, Any]], lattice: Sequence[str], path: Path, title: str
) -> Path:
    """EquiNAS_E: the group of every layer of each generation's best network (rows: layers)."""
    columns = [entry["groups"][0] for entry in trace]
    ticks = [str(entry["generation"]) for entry in trace]
    return group_grid(columns, ticks, "generation", lattice, path, title)


def groups_over_training(
    points: list[dict[str, Any]], lattice: Sequence[str], path: Path, title: str
) -> Path:
    """EquiNAS_G: the group of every layer from each epoch on (``[{"epoch", "groups"}]``)."""
    columns = [p["groups"] for p in points]
    ticks = [f"{p['epoch']:.3g}" for p in points]
    return group_grid(columns, ticks, "epoch (the groups from then on)", lattice, path, title)


def alpha_trajectories(points: list[dict[str, Any]], path: Path, title: str) -> Path:
    """EquiNAS_D: the mixing weights z of every group, one panel per layer, over epochs."""
    return alpha_trajectory_grid([("", points)], path, title)


def alpha_trajectory_grid(runs: Sequence[tuple[str, list[dict[str, Any]]]], path: Path, title: str) -> Path:
    """EquiNAS_D runs one row each (labelled on the left), one panel per layer: the mixing
    weights z of every group over epochs; a candidate pruned for good drops to 0."""
    layers = list(runs[0][1][0]["layers"])
    groups = list(runs[0][1][0]["layers"][layers[0]])
    single = len(runs) == 1
    cols = min(4, len(layers)) if single else len(layers)
    rows_per_run = -(-len(layers) // cols)
    rows = rows_per_run * len(runs)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.5 * rows), squeeze=False, sharey=True)
    colors = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    for r, (label, points) in enumerate(runs):
        epochs = [p["epoch"] for p in points]
        for i, layer in enumerate(layers):
            ax = axes[r * rows_per_run + i // cols][i % cols]
            for j, group in enumerate(groups):
                values = [p["layers"][layer].get(group, 0.0) for p in points]
                ax.plot(epochs, values, color=colors(j), label=group, marker=".")
            ax.set_title(f"{label} {layer}".strip(), fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
            ax.grid(alpha=0.3)
        for k in range(len(layers), rows_per_run * cols):
            axes[r * rows_per_run + k // cols][k % cols].axis("off")
        axes[r * rows_per_run][0].set_ylabel("z = softmax(alpha)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(groups), 10), fontsize=7, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 1) if single else (0, 0.03, 1, 0.98))
    _save(fig, path)
    return path


def anytime_curve(records: Sequence[CandidateRecord]) -> list[tuple[float, float, float]]:
    """``(cumulative cost, best-so-far val acc, test acc of that candidate)`` after every
    record, in the order the records were stored (cost: ``total_flops``)."""
    points: list[tuple[float, float, float]] = []
    spent, best = 0.0, None  # best: (val acc, test acc) of the best record so far
    for r in records:
        spent += Cost.from_dict(r.cost).total_flops
        val = r.val_acc if r.scored else None
        if val is not None and (best is None or val > best[0]):
            best = (val, r.test_acc or 0.0)
        if best is not None:
            points.append((spent, *best))
    return points


def plain_log_ticks(axis: Any) -> None:
    """Label a log-scaled axis at 1, 2 and 5 times the powers of ten, as plain numbers (``0.5``,
    ``2``), and leave the other ticks unlabelled: matplotlib's default labels every minor tick
    of a short range in scientific notation, and the labels overlap."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def cost_vs_accuracy(runs: Mapping[str, Sequence[Sequence[CandidateRecord]]], path: Path, title: str) -> Path:
    """Best-so-far validation and test accuracy against cumulative compute, one colour per
    label (``runs[label]`` holds the records of each of its runs, e.g. one per seed): a step line
    over the run's candidates, and a marker at its end, so a run with a single point (a fixed
    network, a one-network search) is a visible marker."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharex=True)
    colors = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    for k, (label, seeds) in enumerate(sorted(runs.items())):
        for s, records in enumerate(seeds):
            curve = anytime_curve(records)
            if not curve:
                continue
            cost = [c / TERA for c, _, _ in curve]
            for panel, ax in enumerate(axes):
                acc = [100 * point[panel + 1] for point in curve]
                if len(curve) > 1:
                    ax.step(cost, acc, where="post", alpha=0.8, color=colors(k))
                end = {"marker": "D", "s": 30, "color": colors(k), "label": label if s == 0 else None}
                ax.scatter(cost[-1:], acc[-1:], **end)
    for ax, name in zip(axes, ("validation", "test"), strict=True):
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis)
        ax.set_xlabel("cumulative compute (1e12 multiply-adds, log scale)")
        ax.set_ylabel(f"{name} accuracy of the best-so-far candidate (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    return path
