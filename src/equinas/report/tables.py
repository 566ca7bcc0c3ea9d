"""Markdown tables of search runs: one run's candidates, and a comparison across runs/seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from equinas.metrics.cost import Cost
from equinas.search.record import CandidateRecord
from equinas.search.run_directory import RunDirectory
from equinas.search.selection import pareto_fronts

TERA = 1e12


def number(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or ``-`` when unknown (None, NaN or infinite)."""
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _pct(value: float | None) -> str:
    return number(None if value is None else 100 * value, ".2f")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def candidates_table(records: Sequence[CandidateRecord], limit: int | None = None) -> str:
    """Candidates sorted by validation accuracy, Pareto-optimal ones marked with ``*``;
    diverged candidates last, marked ``(diverged)``."""
    usable = [r for r in records if r.scored]
    front = {r.candidate_id for r in pareto_fronts(usable)[0]} if usable else set()
    ordered = sorted(records, key=lambda r: (not r.ok, -(r.val_acc or 0.0), r.params, r.candidate_id))[:limit]
    rows = [
        [
            r.candidate_id + (" *" if r.candidate_id in front else "") + ("" if r.ok else " (diverged)"),
            " ".join(r.groups),
            f"{r.params:,}",
            _pct(r.val_acc),
            _pct(r.test_acc),
            number(r.equivariance.get("output"), ".2g"),
            f"{r.lineage_epochs:g}",
            f"{Cost.from_dict(r.cost).total_flops / TERA:.3g}",
            f"{r.time_s:.1f}",
        ]
        for r in ordered
    ]
    header = [
        "candidate",
        "groups per layer",
        "params",
        "val acc %",
        "test acc %",
        "inv. error",
        "epochs",
        "cost 1e12 MAC",
        "time s",
    ]
    return markdown_table(header, rows)


def run_summary(run: RunDirectory) -> dict[str, Any]:
    """Method, task, seed, best candidate and extras of a finished run."""
    meta = run.read_json("search.json")
    result = run.read_json("result.json")
    damaged = f"{run.path / 'result.json'} is damaged"
    if not isinstance(result, dict):
        raise ValueError(f"{damaged}: not a JSON object; resume the run to write it again")
    try:
        best = CandidateRecord.from_dict(result["best"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ValueError(f"{damaged}: no best candidate; resume the run to write it again") from None
    return {
        "run": str(run.path),
        "method": meta["method"],
        "task": meta["task"],
        "seed": meta["seed"],
        "best": best,
        "wall_time": result.get("wall_time") or 0.0,
        "total_cost": Cost.from_dict(result.get("total_cost")),
        "extras": result.get("extras", {}),
    }


def _mean_std(values: Sequence[float | None]) -> str:
    """``mean ± std`` in percent of the known values (None, NaN and infinities left out)."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known:
        return "-"
    mean = statistics.fmean(known)
    if len(known) == 1:
        return f"{100 * mean:.2f}"
    return f"{100 * mean:.2f} ± {100 * statistics.stdev(known):.2f}"


ROW_LABELS = ("method", "run")  # rows of a comparison: by method, or by run name without -seed<k>


def run_label(summary: dict[str, Any], label: str) -> str:
    """A run's row in a comparison: its method, or its folder name without ``-seed<k>``."""
    if label not in ROW_LABELS:
        raise ValueError(f"unknown comparison rows {label!r}: expected one of {', '.join(ROW_LABELS)}")
    return summary["method"] if label == "method" else Path(summary["run"]).name.rsplit("-seed", 1)[0]


def grouped_runs(run_dirs: Sequence[str | Path], label: str = "method") -> dict[tuple[str, str], list[dict]]:
    """``{(task, label): [run_summary, ...]}`` of finished runs."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for path in run_dirs:
        summary = run_summary(RunDirectory(path))
        groups.setdefault((summary["task"], run_label(summary, label)), []).append(summary)
    return dict(sorted(groups.items()))


def comparison_table(run_dirs: Sequence[str | Path], label: str = "method") -> str:
    """Test accuracy (mean ± std over runs) of each method's best candidate, per task, with
    the mean compute of a whole run (``total_cost.total_flops``, in 1e12 multiply-adds).

    ``label`` groups runs by ``"method"`` or by ``"run"`` name without its seed suffix.
    """
    rows = []
    for (task, key), runs in grouped_runs(run_dirs, label).items():
        tests = [r["best"].test_acc for r in runs]
        vals = [r["best"].val_acc for r in runs]
        params = statistics.fmean(r["best"].params for r in runs)
        times = statistics.fmean(r["wall_time"] for r in runs)
        flops = statistics.fmean(r["total_cost"].total_flops for r in runs)
        groups_seen = sorted({" ".join(r["best"].groups) for r in runs})
        rows.append(
            [
                task,
                key,
                len(runs),
                _mean_std(tests),
                _mean_std(vals),
                f"{params:,.0f}",
                f"{flops / TERA:.3g}",
                f"{times:.0f}",
                "; ".join(groups_seen),
            ]
        )
    header = [
        "task",
        label,
        "seeds",
        "test acc % (mean ± std)",
        "val acc %",
        "params",
        "cost 1e12 MAC",
        "time s",
        "groups per layer",
    ]
    return markdown_table(header, rows)
