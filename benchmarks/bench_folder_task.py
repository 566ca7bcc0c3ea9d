"""``folder:`` acceptance: MNIST as a PNG folder against the built-in ``mnist`` task.

1. Load times of the folder (``export_mnist_folder.py``; 60,000 train + 10,000 test PNGs),
   each in a fresh process: cold (an empty cache: list, decode, cache) and warm (the median
   of ``--repeats`` loads from the cache), and the built-in ``mnist`` task for reference.
2. Split sizes of both tasks, and a fixed D4 network (the small backbone of the demo) trained
   through ``equinas search fixed`` on each with the same seeds and budget; test accuracy on
   the full 10,000 test images. Finished runs are skipped (rerun to resume).

Writes ``results/folder_task_cpu.json``. State the machine load (recorded: ``uptime``).

    python benchmarks/export_mnist_folder.py --out /tmp/mnist_png
    python benchmarks/bench_folder_task.py --folder /tmp/mnist_png [--seeds 0,1,2] [--epochs 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import write_json

SRC = Path(__file__).resolve().parents[1] / "src"
LOAD = (
    "import json, sys, time; from equinas.data import load_task; t = time.perf_counter(); "
    "d = load_task(sys.argv[1]); print(time.perf_counter() - t); "
    "print(json.dumps({s: len(getattr(d, s)) for s in ('train', 'val', 'test')}))"
)


def _env(cache: str) -> dict[str, str]:
    return {**os.environ, "EQUINAS_CACHE": cache, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SRC)}


def load_seconds(task: str, cache: str) -> tuple[float, dict]:
    """Seconds of ``load_task(task)`` in a fresh process, and the split sizes."""
    out = subprocess.run(
        [sys.executable, "-c", LOAD, task], env=_env(cache), check=True, capture_output=True, text=True
    ).stdout.split("\n")
    return float(out[0]), json.loads(out[1])


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def train_fixed_d4(task: str, seed: int, args: argparse.Namespace, cache: str) -> dict:
    """``equinas search fixed --groups D4`` on ``task``; the result's best record."""
    name = "folder" if task.startswith("folder:") else task
    run_dir = args.runs / f"{name}-seed{seed}"
    if not (run_dir / "result.json").exists():
        command = [
            *(sys.executable, "-m", "equinas.cli", "search", "fixed", "--task", task, "--groups", "D4"),
            *("--widths", "4,4,8,8", "--pools-after", "0,1", "--hidden", "none", "--lr", "2e-3"),
            *("--train-size", str(args.train_size), "--val-size", str(args.val_size)),
            *("--epochs", str(args.epochs), "--seed", str(seed), "--threads", "1"),
            *("--run-dir", str(run_dir), "--quiet", "--resume"),
        ]
        subprocess.run(command, env=_env(cache), check=True)
    return json.loads((run_dir / "result.json").read_text())["best"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/mnist_png"))
    parser.add_argument("--runs", type=Path, default=Path("/tmp/equinas_folder_runs"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=float, default=6)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--val-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder_task = f"folder:{args.folder}"
    with tempfile.TemporaryDirectory() as cache:
        loads = {"uptime_before": uptime()}
        loads["cold_s"], folder_sizes = load_seconds(folder_task, cache)
        warm = [load_seconds(folder_task, cache)[0] for _ in range(args.repeats)]
        loads["warm_s"], loads["warm_all_s"] = statistics.median(warm), warm
        loads["mnist_builtin_s"], mnist_sizes = load_seconds("mnist", cache)
        loads["uptime_after"] = uptime()
        print(json.dumps(loads, indent=2))
        runs = []
        for seed in (int(s) for s in args.seeds.split(",")):
            for task in ("mnist", folder_task):
                best = train_fixed_d4(task, seed, args, cache)
                runs.append(
                    {
                        "task": "folder" if task == folder_task else task,
                        "seed": seed,
                        "test_acc": best["test_acc"],
                    }
                    | {"val_acc": best["val_acc"], "train_seconds": best["cost"]["train_seconds"]}
                )
                print(runs[-1])
    accuracy = {
        task: statistics.mean(r["test_acc"] for r in runs if r["task"] == task)
        for task in ("mnist", "folder")
    }
    payload = {
        "images": sum(folder_sizes.values()),
        "split_sizes": {"folder": folder_sizes, "mnist": mnist_sizes},
        "load": loads,
        "budget": {
            "network": "fixed D4, widths 4,4,8,8, pools after 0,1, linear head",
            "epochs": args.epochs,
            "train_size": args.train_size,
            "val_size": args.val_size,
            "test_size": "all",
            "lr": 2e-3,
            "threads": 1,
        },
        "runs": runs,
        "mean_test_acc": accuracy,
        "difference_points": 100 * (accuracy["folder"] - accuracy["mnist"]),
        "uptime_end": uptime(),
    }
    print(write_json("folder_task_cpu", payload))


if __name__ == "__main__":
    main()
