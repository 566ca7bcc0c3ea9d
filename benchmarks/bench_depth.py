"""The paper's 8-layer backbone against a plain CNN of the same conv shapes, by width and threads.

In ONE process, on the same data: the 8-layer backbone (fields 16,16,16,16,32,32,32,32 times
``--scales``: 1/4, 1/2 and 1 by default; pools after blocks 2 and 4, hidden layer of 64; 28 px)
over C4 and D4 as ``EquivariantCNN``s, and ``bench_step.plain_net`` with the same conv channels
(``width * |D4|``), pools and head, both in NCHW and channels-last; float32, and bf16 autocast
where the CPU has native bf16 (``equinas.train.runtime``). For each scale and each thread count
(``--threads``), interleaved rounds time:

* ``train``: one step of 64 images (forward, float32 cross-entropy, backward, Adam);
* ``eval``: one batch of ``TrainConfig.eval_batch_size`` images in eval mode;

as medians of wall time and of the process's CPU time (all threads). ``rate``: multiply-adds per
second of a train step (3 x forward MACs of the plain network) against ``torch.mm`` and a large
conv on one core. ``uptime`` before and after. Writes ``benchmarks/results/depth_step_cpu.json``
with the summary keys ``train_vs_plain_channels_last`` and ``eval_vs_plain_channels_last`` (the
worse of C4/D4 at full width, one thread, CPU time) and ``two_thread_speedup`` (full width,
train, wall time of one thread over two, per network).

    python benchmarks/bench_depth.py [--scales 0.25 0.5 1] [--threads 1 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_step import eval_batch, interleaved, networks, peak_rates, plain_net, train_step, uptime
from common import machine, write_json

from equinas.metrics.cost import macs_per_image
from equinas.train import TrainConfig
from equinas.train.runtime import keep_freed_memory, native_bf16

PAPER_WIDTHS, POOLS, HIDDEN, SIZE, BATCH = (16, 16, 16, 16, 32, 32, 32, 32), (2, 4), 64, 28, 64
GROUPS = ("C4", "D4")


def measure(scale: float, threads: int, precisions: dict, repeats: int) -> dict:
    """Train-step and eval times of every network at one width ``scale`` and thread count."""
    torch.set_num_threads(threads)
    widths = tuple(max(1, round(w * scale)) for w in PAPER_WIDTHS)
    shape = {"widths": widths, "pools": POOLS, "hidden": HIDDEN}
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(BATCH, 1, SIZE, SIZE, generator=generator)
    eval_images = torch.randn(TrainConfig().eval_batch_size, 1, SIZE, SIZE, generator=generator)
    labels = torch.randint(0, 10, (BATCH,), generator=generator)
    train_fns, eval_fns = {}, {}
    for name, model in networks(torch.device("cpu"), list(GROUPS), **shape).items():
        for precision, dtype in precisions.items():
            train_fns[f"{name}@{precision}"] = train_step(model, images, labels, dtype)
            eval_fns[f"{name}@{precision}"] = eval_batch(model, eval_images, dtype)
    # process CPU time: every thread a step uses
    train_wall, train_cpu = interleaved(train_fns, repeats, lambda: None, time.process_time)
    eval_wall, eval_cpu = interleaved(eval_fns, 2 * repeats, lambda: None, time.process_time)
    step_macs = 3 * BATCH * macs_per_image(plain_net(**shape), images[0])
    return {
        "widths": widths,
        "threads": threads,
        "train_step_macs": step_macs,
        "train_ms": {n: 1e3 * t for n, t in train_wall.items()},
        "train_cpu_ms": {n: 1e3 * t for n, t in train_cpu.items()},
        "eval_ms": {n: 1e3 * t for n, t in eval_wall.items()},
        "eval_cpu_ms": {n: 1e3 * t for n, t in eval_cpu.items()},
        "train_macs_per_s": {n: step_macs / t for n, t in train_wall.items()},
    }


def worst_ratio(times: dict[str, float], precision: str) -> float:
    """The slower of the C4/D4 networks (channels-last) over the plain channels-last CNN."""
    plain = times[f"plain_channels_last@{precision}"]
    return max(times[f"equinas_{g}_channels_last@{precision}"] / plain for g in GROUPS)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scales", nargs="+", type=float, default=[0.25, 0.5, 1.0])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    keep_freed_memory()
    precisions = {
        "float32": None,
        **({"bfloat16": torch.bfloat16} if native_bf16(torch.device("cpu")) else {}),
    }
    before = uptime()
    torch.set_num_threads(1)
    peaks = peak_rates(torch.device("cpu"), 5, lambda: None)
    runs = [
        measure(scale, threads, precisions, args.repeats) for scale in args.scales for threads in args.threads
    ]
    full = [r for r in runs if r["widths"] == PAPER_WIDTHS]
    one = next((r for r in full if r["threads"] == 1), None)
    two = next((r for r in full if r["threads"] == 2), None)
    result = {
        "setup": {
            "backbone": {"widths": PAPER_WIDTHS, "pools_after": POOLS, "hidden": HIDDEN, "groups": GROUPS},
            "scales": args.scales,
            "threads": args.threads,
            "repeats": args.repeats,
            "precisions": list(precisions),
            "batch": BATCH,
            "eval_batch": TrainConfig().eval_batch_size,
        },
        "machine": {**machine(), "native_bf16": "bfloat16" in precisions},
        "uptime_before": before,
        "train_vs_plain_channels_last": worst_ratio(one["train_cpu_ms"], "float32") if one else None,
        "eval_vs_plain_channels_last": worst_ratio(one["eval_cpu_ms"], "float32") if one else None,
        "two_thread_speedup": (
            {n: one["train_ms"][n] / two["train_ms"][n] for n in one["train_ms"]} if one and two else None
        ),
        "peak_macs_per_s_one_core": peaks,
        "runs": runs,
        "uptime_after": uptime(),
    }
    print(write_json("depth_step_cpu", result))
    print(result["uptime_before"], "|", result["uptime_after"])
    for run in runs:
        print(run["widths"], run["threads"], "train ms", {n: round(v) for n, v in run["train_ms"].items()})
        print(run["widths"], run["threads"], "eval ms", {n: round(v) for n, v in run["eval_ms"].items()})
    for key in ("train_vs_plain_channels_last", "eval_vs_plain_channels_last", "two_thread_speedup"):
        print(key, result[key])


if __name__ == "__main__":
    main()
