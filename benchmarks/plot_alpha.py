"""EquiNAS_D's mixing weights over training, several runs in one figure (one row per run).

Reads ``extras["alpha"]`` of each run's ``result.json`` and draws the z of every group of every
layer (``equinas.report.plots.alpha_trajectory_grid``), e.g. the paper recipe's seeds against
the default recipe's:

    python benchmarks/plot_alpha.py --out benchmarks/results/equinas_d_alpha.png \\
        --runs "before s0=benchmarks/results/acceptance/cpu-medium/methods_rotmnist/equinas_d-paper-seed0" \\
               "after s0=benchmarks/results/acceptance/cpu-medium/methods_rotmnist_eqd/equinas_d-seed0"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from equinas.report.plots import alpha_trajectory_grid


def labelled_run(text: str) -> tuple[str, Path]:
    """``LABEL=RUN_DIR`` (or a bare run directory, labelled by its name)."""
    label, sep, path = text.partition("=")
    return (label, Path(path)) if sep else (Path(text).name, Path(text))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="+", type=labelled_run, required=True, help="LABEL=RUN_DIR ...")
    parser.add_argument("--out", type=Path, required=True, help="PNG file")
    parser.add_argument("--title", default="EquiNAS_D: z = softmax(alpha) per layer")
    args = parser.parse_args()
    runs = []
    for label, run_dir in args.runs:
        result = json.loads((run_dir / "result.json").read_text())
        if "alpha" not in result.get("extras", {}):
            parser.error(f"{run_dir} has no alpha trajectories (not an EquiNAS_D run?)")
        runs.append((label, result["extras"]["alpha"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(alpha_trajectory_grid(runs, args.out, args.title))


if __name__ == "__main__":
    main()
