"""``folder:`` acceptance: MNIST as a PNG folder against the built-in ``mnist`` task.

1. Load times of the folder (``export_mnist_folder.py``; 60,000 train + 10,000 test PNGs),
   each in a fresh process: cold (an empty cache: list, decode, cache) and warm (the median
   of ``--repeats`` loads from the cache), and the built-in ``mnist`` task for reference.
2. Split sizes of both tasks, and a fixed D4 network (the small backbone of the demo) trained
   through ``equinas search fixed`` on each with the same seeds and budget (on the folder task
   also with another carve of its validation split, ``split_seed=1``); test accuracy on the
   full 10,000 test images. Finished runs are skipped (rerun to resume).
3. With ``--builtin-folder`` (an export with ``--builtin-splits``): a check that every split of
   that folder task holds exactly the images and labels of the built-in task's split (and the
   seeded train subset the same ones), and the same training runs on it, with the normalisation
   measured on its train split and with MNIST's fixed one (task options ``mean``/``std``):
   then the task equals the built-in one bit for bit (same ``TaskData.fingerprint()``).

Writes ``results/folder_task_cpu.json``. State the machine load (recorded: ``uptime``).

    python benchmarks/export_mnist_folder.py --out /tmp/mnist_png
    python benchmarks/export_mnist_folder.py --out /tmp/mnist_png_builtin --builtin-splits
    python benchmarks/bench_folder_task.py --folder /tmp/mnist_png --builtin-folder /tmp/mnist_png_builtin
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

from equinas.data.mnist import NORMALISATION

SRC = Path(__file__).resolve().parents[1] / "src"
LOAD = (
    "import json, sys, time; from equinas.data import load_task; "
    "t, c = time.perf_counter(), time.process_time(); "
    "d = load_task(sys.argv[1]); print(time.perf_counter() - t, time.process_time() - c); "
    "print(json.dumps({s: len(getattr(d, s)) for s in ('train', 'val', 'test')}))"
)


def _env(cache: str) -> dict[str, str]:
    return {**os.environ, "EQUINAS_CACHE": cache, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SRC)}


def load_seconds(task: str, cache: str) -> tuple[dict[str, float], dict]:
    """Wall and CPU seconds (all threads) of ``load_task(task)`` in a fresh process (the
    import not counted), and the split sizes. CPU time hardly depends on the machine's load."""
    out = subprocess.run(
        [sys.executable, "-c", LOAD, task], env=_env(cache), check=True, capture_output=True, text=True
    ).stdout.split("\n")
    wall, cpu = (float(v) for v in out[0].split())
    return {"wall_s": wall, "cpu_s": cpu}, json.loads(out[1])


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def same_images(task: str, train_size: int, seed: int) -> dict[str, bool]:
    """Per split: whether ``task`` holds exactly the images and labels of the built-in ``mnist``
    (as multisets), for the whole splits and for the seeded ``train_size`` train subset; and
    whether with MNIST's normalisation it is the same task bit for bit (fingerprints)."""
    from equinas.data import load_task

    mean, std = NORMALISATION["mnist"]
    fixed = load_task(task, train_size=train_size, seed=seed, mean=list(mean), std=list(std))
    same = fixed.fingerprint() == load_task("mnist", train_size=train_size, seed=seed).fingerprint()

    def rows(data, split: str) -> list[bytes]:
        part = getattr(data, split)
        return sorted(
            bytes([y]) + bytes(x.numpy()) for x, y in zip(part.stored, part.labels.tolist(), strict=True)
        )

    out = {}
    for size, suffix in ((None, ""), (train_size, f"_subset{train_size}_seed{seed}")):
        mine, builtin = (
            load_task(task, train_size=size, seed=seed),
            load_task("mnist", train_size=size, seed=seed),
        )
        for split in ("train",) if size else ("train", "val", "test"):
            out[split + suffix] = rows(mine, split) == rows(builtin, split)
    return {**out, f"fingerprint_with_mnist_normalisation_subset{train_size}_seed{seed}": same}


def train_fixed_d4(name: str, task: list[str], seed: int, args: argparse.Namespace, cache: str) -> dict:
    """``equinas search fixed --groups D4`` on ``task``; the result's best record."""
    run_dir = args.runs / f"{name}-seed{seed}"
    if not (run_dir / "result.json").exists():
        command = [
            *(sys.executable, "-m", "equinas.cli", "search", "fixed", "--task", *task, "--groups", "D4"),
            *("--widths", "4,4,8,8", "--pools-after", "0,1", "--hidden", "none", "--lr", "2e-3"),
            *("--train-size", str(args.train_size), "--val-size", str(args.val_size)),
            *("--epochs", str(args.epochs), "--seed", str(seed), "--threads", "1"),
            *("--run-dir", str(run_dir), "--quiet", "--resume"),
        ]
        subprocess.run(command, env=_env(cache), check=True)
    return json.loads((run_dir / "result.json").read_text())["best"]


def differences(runs: list[dict], name: str) -> dict:
    """Test accuracy of ``name`` minus that of ``mnist`` in points: per seed and of the means."""
    mine = {r["seed"]: r["test_acc"] for r in runs if r["task"] == name}
    builtin = {r["seed"]: r["test_acc"] for r in runs if r["task"] == "mnist"}
    per_seed = {seed: 100 * (mine[seed] - builtin[seed]) for seed in mine}
    return {"per_seed": per_seed, "mean": statistics.mean(per_seed.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/mnist_png"))
    parser.add_argument("--builtin-folder", type=Path, help="an export with --builtin-splits")
    parser.add_argument("--runs", type=Path, default=Path("/tmp/equinas_folder_runs"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=float, default=6)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--val-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    # folder_split1: another class-balanced carve of val out of train/ (the seed-to-subset noise)
    tasks = {
        "mnist": ["mnist"],
        "folder": [f"folder:{args.folder}"],
        "folder_split1": [f"folder:{args.folder}", "--task-option=split_seed=1"],
    }
    if args.builtin_folder:
        tasks["folder_builtin_splits"] = [f"folder:{args.builtin_folder}"]
        fixed = zip(("mean", "std"), NORMALISATION["mnist"], strict=True)
        norm = [f"--task-option={key}={json.dumps(list(value))}" for key, value in fixed]
        tasks["folder_builtin_splits_fixed_norm"] = [f"folder:{args.builtin_folder}", *norm]
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as cache:
        os.environ["EQUINAS_CACHE"] = cache
        loads = {"uptime_before": uptime()}
        loads["cold"], folder_sizes = load_seconds(tasks["folder"][0], cache)
        warm = [load_seconds(tasks["folder"][0], cache)[0] for _ in range(args.repeats)]
        loads["warm_median"] = {key: statistics.median(w[key] for w in warm) for key in ("wall_s", "cpu_s")}
        loads["warm_all"] = warm
        loads["mnist_builtin"], mnist_sizes = load_seconds("mnist", cache)
        loads["uptime_after"] = uptime()
        print(json.dumps(loads, indent=2))
        identical = None
        if args.builtin_folder:
            identical = same_images(tasks["folder_builtin_splits"][0], args.train_size, seeds[0])
            print("same images as the built-in task:", identical)
        runs = []
        for seed in seeds:
            for name, task in tasks.items():
                best = train_fixed_d4(name, task, seed, args, cache)
                runs.append(
                    {"task": name, "seed": seed, "test_acc": best["test_acc"], "val_acc": best["val_acc"]}
                )
                runs[-1]["train_seconds"] = best["cost"]["train_seconds"]
                print(runs[-1])
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
        "same_images_as_builtin": identical,
        "runs": runs,
        "mean_test_acc": {
            name: statistics.mean(r["test_acc"] for r in runs if r["task"] == name) for name in tasks
        },
        "difference_points_vs_mnist": {name: differences(runs, name) for name in tasks if name != "mnist"},
        "uptime_end": uptime(),
    }
    print(write_json("folder_task_cpu", payload))


if __name__ == "__main__":
    main()
