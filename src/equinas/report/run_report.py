"""The report of a run (``report.md`` and its plots) and the cost-vs-accuracy comparison of runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from equinas.atomic import atomic_write_text
from equinas.groups import subgroups
from equinas.report import plots
from equinas.report.sections import LINES, PLOTS
from equinas.report.tables import TERA, candidates_table, grouped_runs, run_summary
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
    lattice = [g.name for g in subgroups(meta["backbone"]["ambient"])]
    for key, (name, draw) in PLOTS.items():
        if key in extras:
            files[name] = draw(extras[key], lattice, out_dir, title)
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
    for key, section in LINES.items():
        if key in extras:
            lines += section(extras[key])
    if not any(r.scored for r in records):
        lines.append(
            f"- no candidate with a validation accuracy in {run.jsonl.name} "
            f"({len(records)} records; torn, diverged or missing): the plots are empty"
        )
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
