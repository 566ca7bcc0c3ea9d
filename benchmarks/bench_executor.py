"""EquiNAS_E in one process vs. a pool of one-thread worker processes, in one run.

Runs the same EquiNAS_E search (RotMNIST subset, the small backbone) three times: in this
process with one torch thread, in this process with every core, and with ``--executor
process`` (one one-thread worker per core); checks that the records are identical to the
one-thread run (same candidates, seeds and accuracies) and writes the wall times and their
ratios to ``results/executor_cpu.json``. State the machine's load when you quote it: the
ratio is meaningful only when nothing else runs.

    python benchmarks/bench_executor.py [--train-size 4000] [--generations 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from common import write_json

from equinas.data import load_task
from equinas.execution import LocalExecutor, ProcessExecutor
from equinas.search import BackboneSettings, SearchContext, make_method, run_search
from equinas.search.run_directory import RunDirectory
from equinas.train import TrainConfig
from equinas.train.threads import usable_cores


def search(path: Path, data, executor, threads: int, args: argparse.Namespace) -> float:
    """Wall seconds of one EquiNAS_E search into ``path``."""
    torch.set_num_threads(threads)
    ctx = SearchContext(
        "rotmnist",
        data,
        BackboneSettings(widths=(4, 4, 8, 8), pools_after=(0, 1), hidden=None),
        TrainConfig(epochs=args.epochs_per_generation, lr=2e-3, seed=0, bn_recalibration=16),
        executor,
        RunDirectory(path),
        progress=False,
    )
    settings = {
        "generations": args.generations,
        "population": 2,
        "epochs_per_generation": args.epochs_per_generation,
        "children_per_parent": 3,
    }
    start = time.perf_counter()
    try:
        run_search(make_method("equinas_e", **settings), ctx)
    finally:
        executor.close()
    return time.perf_counter() - start


def scores(path: Path) -> dict[str, tuple]:
    """``{candidate: (seed, val acc, test acc)}`` of a run."""
    rows = (json.loads(line) for line in (path / "candidates.jsonl").read_text().splitlines())
    return {r["candidate_id"]: (r["seed"], r["val_acc"], r["test_acc"]) for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--epochs-per-generation", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=usable_cores())
    args = parser.parse_args()
    data = load_task("rotmnist", train_size=args.train_size, val_size=1000, test_size=2000)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one = search(root / "one-thread", data, LocalExecutor(), 1, args)
        cores = search(root / "all-cores", data, LocalExecutor(), usable_cores(), args)
        pool = search(root / "process", data, ProcessExecutor(workers=args.workers), 1, args)
        identical = scores(root / "one-thread") == scores(root / "process")
        candidates = len(scores(root / "one-thread"))
    result = {
        "search": vars(args) | {"candidates": candidates},
        "load_average_before": load,
        "seconds": {"local_1_thread": one, "local_all_cores": cores, "process": pool},
        "process_vs_local_1_thread": pool / one,
        "process_vs_local_all_cores": pool / cores,
        "records_identical_to_1_thread": identical,
    }
    path = write_json("executor_cpu", result)
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
