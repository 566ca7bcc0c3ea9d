"""The report of a run (``report.md`` and its plots) and the cost-vs-accuracy comparison of runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from equinas.atomic import atomic_write_text
from equinas.groups import subgroups
from equinas.report import plots
from equinas.report.tables import TERA, candidates_table, grouped_runs, number, run_summary
from equinas.search.run_directory import RunDirectory


def comparison_plot(run_dirs: Sequence[str | Path], path: str | Path, label: str = "method") -> Path:
    """``cost_vs_accuracy``: the anytime curves of finished runs, one colour per method (or
    per run name without its seed suffix, ``label="run"``), one panel per task and split."""
    groups = grouped_runs(run_dirs, label)
    tasks = sorted({task for task, _ in groups})
    runs = {
        (key if len(tasks) == 1 else f"{task}: {key}"): [RunDirectory(s["run"]).records() for s in summaries]
        for (task, key), summaries in groups.items()
    }
    return plots.cost_vs_accuracy(runs, Path(path), "accuracy against compute: " + ", ".join(tasks))


def write_report(run_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md`` and ``plots/*.png`` into a finished run directory; returns the files."""
    run = RunDirectory(run_dir)
    if not (run.path / "result.json").exists():
        raise FileNotFoundError(f"{run.path} has no result.json: the search has not finished (or resume it)")
    summary = run_summary(run)
    meta = run.read_json("search.json")
    records = run.records()
    out_dir = run.path / "plots"
    out_dir.mkdir(exist_ok=True)
    title = f"{summary['method']} on {summary['task']}"
    files = {"pareto": plots.accuracy_vs_parameters(records, out_dir / "accuracy_vs_params.png", title)}
    extras = summary["extras"]
    if "generations" in extras:
        lattice = [g.name for g in subgroups(meta["backbone"]["ambient"])]
        files["generations"] = plots.groups_per_generation(
            extras["generations"], lattice, out_dir / "groups_per_generation.png", title
        )
    if "groups_over_training" in extras:
        lattice = [g.name for g in subgroups(meta["backbone"]["ambient"])]
        files["groups"] = plots.groups_over_training(
            extras["groups_over_training"], lattice, out_dir / "groups_over_training.png", title
        )
    if "alpha" in extras:
        files["alpha"] = plots.alpha_trajectories(extras["alpha"], out_dir / "alpha_trajectories.png", title)
    best = summary["best"]
    cost = summary["total_cost"]
    diverged = sum(not r.ok for r in records)
    lines = [
        f"# {title}",
        "",
        f"- run: `{run.path}` (seed {summary['seed']}, {len(records)} candidates"
        + (f", {diverged} diverged" if diverged else "")
        + f", {summary['wall_time']:.0f} s wall time)",
        f"- cost: {cost.total_flops / TERA:.3g}e12 multiply-adds ({cost.train_images:,} training images, "
        f"{cost.eval_images:,} evaluated), {cost.train_seconds:.0f} s of evaluations",
        f"- best: `{best.candidate_id}` groups `{' '.join(best.groups)}`, params {best.params:,}, "
        f"val {100 * (best.val_acc or 0):.2f} %, test {100 * (best.test_acc or 0):.2f} %",
    ]
    if "search_overhead" in extras:
        lines.append(
            "- search overhead (search time / training the final network alone): "
            f"{number(extras['search_overhead'], '.2f')}x"
        )
    if extras.get("equivariance_trajectory"):
        errors = ", ".join(number(p["output"], ".2g") for p in extras["equivariance_trajectory"])
        lines.append(f"- output equivariance error per epoch (ambient group, training images): {errors}")
    if extras.get("decisions"):
        lines += ["", "## Relaxations (signal / noise and p-value of the chosen subgroup's test)", ""]
        lines += [
            f"- epoch {d['epoch']:.3g}: layer {m['layer']} {m['from']} -> {m['to']} "
            f"({m['tests'][m['to']]['signal'] / max(m['tests'][m['to']]['noise'], 1e-30):.3g}, "
            f"p {m['tests'][m['to']]['p']:.2g})"
            for d in extras["decisions"]
            for m in d["layers"]
            if m["to"] is not None
        ] or ["- none"]
    lines += [
        "",
        "## Candidates (`*` = Pareto-optimal in validation accuracy vs parameters)",
        "",
        candidates_table(records),
    ]
    lines += ["## Plots", ""] + [f"![{name}](plots/{p.name})" for name, p in files.items()]
    report = run.path / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    files["report"] = report
    return files
