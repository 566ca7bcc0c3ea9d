"""Wall time of a demo-size ``equinas train`` run, this checkout against another, and where it goes.

Runs ``equinas train --task rotmnist --arch D4 --epochs 3 --widths 4,4,8,8 --pools-after 0,1
--hidden none --train-size 4000 --threads 1`` (each process one torch thread) alternately with
this checkout's sources and ``--baseline``'s (default ``/work/main``), ``--repeats`` times each,
then once more each under ``cProfile`` to split the time into: weight steps, batch-norm
recalibration, validation, test evaluation, checkpoints, data loading, optimizer construction
and the rest (interpreter start and imports). Writes ``benchmarks/results/train_run_cpu.{json,md}``.

    python benchmarks/bench_train_run.py [--baseline /work/main] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS

HERE = Path(__file__).resolve().parents[1]
ARGS = [
    "train",
    "--task",
    "rotmnist",
    "--arch",
    "D4",
    "--epochs",
    "3",
    "--widths",
    "4,4,8,8",
    "--pools-after",
    "0,1",
    "--hidden",
    "none",
    "--train-size",
    "4000",
    "--threads",
    "1",
    "--quiet",
]
# cumulative time of these functions (file suffix, function name) = one piece of the run
PIECES = {
    "weight steps": ("train/engine.py", "_weight_step"),
    "bn recalibration": ("train/norm_stats.py", "recalibrate_batch_norm"),
    "evaluation (val + test)": ("train/evaluate.py", "evaluate"),
    "checkpoints": ("train/checkpoint.py", "save_checkpoint"),
    "data loading": ("data/registry.py", "load_task"),
    "optimizer construction": ("train/optim.py", "build_optimizer"),
}


def command(repo: Path, run_dir: str, profile: str | None) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "OMP_NUM_THREADS": "1"}
    env.setdefault("EQUINAS_DATA", str(HERE.parent / "shared" / "data"))  # for a copy elsewhere
    prefix = [sys.executable] + (["-m", "cProfile", "-o", profile] if profile else [])
    return [*prefix, "-m", "equinas.cli", *ARGS, "--run-dir", run_dir], env


def timed_run(repo: Path, profile: str | None = None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd, env = command(repo, str(Path(tmp) / "run"), profile)
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
        return time.perf_counter() - start


def pieces(profile: str, total: float) -> dict[str, float]:
    stats = pstats.Stats(profile).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    out = {}
    for piece, (suffix, name) in PIECES.items():
        out[piece] = sum(v[3] for (f, _, n), v in stats.items() if n == name and f.endswith(suffix))
    out["rest (start, imports, ...)"] = total - sum(out.values())
    return out


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, default=Path("/work/main"))
    parser.add_argument("--this", type=Path, default=HERE, help="the checkout to measure (default: this one)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    repos = {"baseline": args.baseline, "this": args.this}
    before = uptime()
    walls: dict[str, list[float]] = {name: [] for name in repos}
    for _ in range(args.repeats):
        for name, repo in repos.items():
            walls[name].append(timed_run(repo))
            print(name, f"{walls[name][-1]:.1f} s", flush=True)
    shares = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, repo in repos.items():
            profile = str(Path(tmp) / f"{name}.prof")
            total = timed_run(repo, profile)
            shares[name] = {"profiled_total_s": total, "pieces_s": pieces(profile, total)}
    median = {name: statistics.median(t) for name, t in walls.items()}
    result = {
        "command": "equinas " + " ".join(ARGS),
        "baseline": str(args.baseline),
        "uptime_before": before,
        "uptime_after": uptime(),
        "wall_s": walls,
        "median_wall_s": median,
        "ratio_this_vs_baseline": median["this"] / median["baseline"],
        "profile": shares,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_run_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# `equinas train`, demo size, 3 epochs: this checkout vs {args.baseline}",
        "",
        f"Median wall time of {args.repeats} alternating runs each (one torch thread per process): "
        f"baseline {median['baseline']:.1f} s, this {median['this']:.1f} s, ratio "
        f"**{result['ratio_this_vs_baseline']:.2f}**. Load: `{before}` / `{result['uptime_after']}`.",
        "",
        "One cProfile'd run each (profiling adds overhead to Python-heavy parts):",
        "",
        "| piece | baseline s | share | this s | share |",
        "|---|---:|---:|---:|---:|",
    ]
    for piece in shares["baseline"]["pieces_s"]:
        row = [piece]
        for name in repos:
            total = shares[name]["profiled_total_s"]
            value = shares[name]["pieces_s"][piece]
            row += [f"{value:.1f}", f"{100 * value / total:.0f}%"]
        lines.append("| " + " | ".join(row) + " |")
    totals = [f"{shares[n]['profiled_total_s']:.1f}" for n in repos]
    lines.append(f"| total | {totals[0]} | 100% | {totals[1]} | 100% |")
    (RESULTS / "train_run_cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
