"""equinas against the plain-conv floor and the core's matmul rate, float32 and bf16 autocast.

In ONE process, on the same data: the demo backbone (widths 4,4,8,8, pools after blocks 0 and 1,
linear head; 28 px, batch 64) over C4 and D4 (``--groups``) as ``EquivariantCNN``s in NCHW and in
channels-last, and a plain CNN of the same expanded width (conv channels 32,32,64,64,
``nn.BatchNorm2d``, ReLU, 2x2 max pools, global mean pool, linear head) in NCHW (the floor) and in
channels-last; each in float32 and under bf16 autocast (``--precisions``). Timed:

* ``train``: forward, cross-entropy (in float32), backward and an Adam step on one batch;
* ``eval``: a forward pass of one batch of 128 (``TrainConfig.eval_batch_size``, what the engine
  evaluates in) under ``torch.inference_mode`` in eval mode;
* ``run``: ``equinas.train.train`` for ``--run-epochs`` epochs on ``--run-images`` random images
  (validation and test of the same size, batch-norm recalibration on), the whole engine, for the
  D4 network in its ``auto`` layout and the plain NCHW floor, in every precision;
* ``rate``: multiply-adds per second of a train step (3 x the forward MACs, the cost convention
  of ``equinas.metrics.cost``, counted on the plain network: the same conv shapes without the
  lifting conv's zero channel), against large float32 and bf16 matmuls (``torch.mm``, 2048^2) and
  a large channels-last conv (64 -> 64 channels, 5x5, 28x28, batch 64) on the same core.

Repeats interleave every variant (one call of each per round; eval twice as many rounds) and the
median is reported, both wall time (``*_ms``) and the thread's CPU time (``*_cpu_ms``: what the
step cost the core, less sensitive to other processes on a shared machine); ratios use CPU time.
``uptime`` before and after. The process keeps freed memory as the training engine does
(``equinas.train.runtime.keep_freed_memory``; ``--glibc-default`` measures without it). Writes
``benchmarks/results/step_<device>.json``.

    python benchmarks/bench_step.py [--threads 1] [--repeats 30] [--device cpu] [--groups C4 D4]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from common import write_json
from torch import nn

from equinas.data.task import Split, TaskData
from equinas.metrics.cost import macs_per_image
from equinas.models import EquivariantCNN, backbone
from equinas.nn.layout import set_memory_format
from equinas.train import TrainConfig, train
from equinas.train.optim import build_optimizer
from equinas.train.runtime import keep_freed_memory, memory_format

WIDTHS, POOLS, ORDER, SIZE, BATCH = (4, 4, 8, 8), (0, 1), 8, 28, 64
EVAL_BATCH = TrainConfig().eval_batch_size
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}
MATMUL_SIZE = 2048


def equinas_net(
    group: str, widths: tuple[int, ...] = WIDTHS, pools: tuple[int, ...] = POOLS, hidden: int | None = None
) -> nn.Module:
    torch.manual_seed(0)
    return EquivariantCNN(backbone(group, widths=widths, pools_after=pools, hidden=hidden))


def plain_net(
    widths: tuple[int, ...] = WIDTHS, pools: tuple[int, ...] = POOLS, hidden: int | None = None
) -> nn.Module:
    """A CNN with the equinas network's conv channels (``width * |D4|``), pools and head (a global
    mean pool, then a hidden layer of ``hidden`` units if given, then the classes)."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    channels = 1
    for i, width in enumerate(widths):
        out = width * ORDER
        layers += [nn.Conv2d(channels, out, 5, padding=2, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
        if i in pools:
            layers.append(nn.MaxPool2d(2))
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if hidden:
        layers += [nn.Linear(channels, hidden), nn.ReLU()]
        channels = hidden
    layers.append(nn.Linear(channels, 10))
    return nn.Sequential(*layers)


def networks(device: torch.device, groups: list[str], **shape) -> dict[str, nn.Module]:
    """``{name: model}``: equinas nets (per group) and plain nets in both layouts, on ``device``;
    ``shape``: ``widths``, ``pools``, ``hidden`` (default: the demo network)."""
    nets = {}
    for layout, fmt in LAYOUTS.items():
        for group in groups:
            nets[f"equinas_{group}_{layout}"] = set_memory_format(equinas_net(group, **shape), fmt).to(device)
        nets[f"plain_{layout}"] = plain_net(**shape).to(device=device, memory_format=fmt)
    return nets


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def train_step(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype | None
) -> Callable[[], None]:
    """One step as the engine takes it: forward under autocast, float32 loss, Adam."""
    optimizer = build_optimizer(list(model.parameters()), TrainConfig())

    def step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast(images.device, dtype):
            logits = model(images)
        F.cross_entropy(logits.float(), labels).backward()
        optimizer.step()

    return step


def eval_batch(model: nn.Module, images: torch.Tensor, dtype: torch.dtype | None) -> Callable[[], None]:
    def run() -> None:
        model.eval()
        with torch.inference_mode(), autocast(images.device, dtype):
            model(images)

    return run


def interleaved(
    fns: dict[str, Callable[[], None]],
    repeats: int,
    sync: Callable[[], None],
    cpu_clock: Callable[[], float] = time.thread_time,
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and CPU seconds (``cpu_clock``: this thread's by default) per function over
    ``repeats`` rounds (one call each), after a warm-up round."""
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            sync()
            start, start_cpu = time.perf_counter(), cpu_clock()
            fn()
            sync()
            if round_:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(cpu_clock() - start_cpu)
    median = statistics.median
    return {n: median(t) for n, t in wall.items()}, {n: median(t) for n, t in cpu.items()}


def peak_rates(device: torch.device, repeats: int, sync: Callable[[], None]) -> dict[str, float]:
    """Multiply-adds per second of a large matmul and a large channels-last conv, per precision."""
    generator = torch.Generator().manual_seed(2)
    n = MATMUL_SIZE
    a, b = (torch.randn(n, n, generator=generator).to(device) for _ in range(2))
    x = torch.randn(64, 64, 28, 28, generator=generator).to(device, memory_format=torch.channels_last)
    w = torch.randn(64, 64, 5, 5, generator=generator).to(device, memory_format=torch.channels_last)
    fns, macs = {}, {}
    for precision, dtype in PRECISIONS.items():
        low = dtype or torch.float32
        a_p, b_p, x_p, w_p = (t.to(low) for t in (a, b, x, w))
        fns[f"matmul_{precision}"] = lambda a_p=a_p, b_p=b_p: torch.mm(a_p, b_p)
        fns[f"conv_{precision}"] = lambda x_p=x_p, w_p=w_p: F.conv2d(x_p, w_p, padding=2)
        macs[f"matmul_{precision}"] = n**3
        macs[f"conv_{precision}"] = 64 * 28 * 28 * 64 * 64 * 25
    _, cpu = interleaved(fns, max(3, repeats // 5), sync)
    return {name: macs[name] / seconds for name, seconds in cpu.items()}


def random_task(count: int) -> TaskData:
    generator = torch.Generator().manual_seed(0)

    def split() -> Split:
        images = torch.randn(count, 1, SIZE, SIZE, generator=generator)
        return Split(images, torch.randint(0, 10, (count,), generator=generator))

    return TaskData("random", 10, split(), split(), split())


def whole_runs(device: torch.device, args: argparse.Namespace, auto: str) -> dict[str, float]:
    """Seconds of ``train()`` per network and precision (fresh model each time), interleaved."""
    data = random_task(args.run_images)
    times: dict[str, list[float]] = {}
    for _ in range(args.run_repeats):
        for precision, dtype in PRECISIONS.items():
            if precision not in args.precisions:
                continue
            for name, model in (("equinas_D4_" + auto, equinas_net("D4")), ("plain_nchw", plain_net())):
                layout = "channels_last" if name.endswith("channels_last") else "contiguous"
                config = TrainConfig(
                    epochs=args.run_epochs,
                    device=device.type,
                    amp=dtype is not None,
                    bn_recalibration=16 if name.startswith("equinas") else 0,
                    memory_format=layout,
                    num_threads=args.threads,
                    seed=0,
                )
                start = time.perf_counter()
                train(model, data, config, progress=False)
                times.setdefault(f"{name}@{precision}", []).append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def ratios(cpu: dict[str, float], groups: list[str], precisions: list[str], auto: str) -> dict:
    """bf16 / float32 per network, and equinas (auto layout) / the plain floors per precision."""
    out: dict[str, dict[str, float]] = {key: {} for key in ("bf16_vs_float32", "vs_nchw_floor")}
    out["vs_channels_last_floor"] = {}
    names = sorted({key.split("@")[0] for key in cpu})
    if "bfloat16" in precisions and "float32" in precisions:
        out["bf16_vs_float32"] = {n: cpu[f"{n}@bfloat16"] / cpu[f"{n}@float32"] for n in names}
    for precision in precisions:
        for group in groups:
            net = f"equinas_{group}_{auto}@{precision}"
            out["vs_nchw_floor"][net] = cpu[net] / cpu[f"plain_nchw@{precision}"]
            out["vs_channels_last_floor"][net] = cpu[net] / cpu[f"plain_channels_last@{precision}"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--groups", nargs="+", default=["C4", "D4"])
    parser.add_argument("--precisions", nargs="+", choices=tuple(PRECISIONS), default=list(PRECISIONS))
    parser.add_argument("--run-images", type=int, default=1000)
    parser.add_argument("--run-epochs", type=float, default=1.0)
    parser.add_argument("--run-repeats", type=int, default=3)
    parser.add_argument("--glibc-default", action="store_true", help="leave malloc's settings alone")
    parser.add_argument("--name", help="result file name (default step_<device>)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kept = False if args.glibc_default else keep_freed_memory()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    before = uptime()
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(BATCH, 1, SIZE, SIZE, generator=generator).to(device)
    eval_images = torch.randn(EVAL_BATCH, 1, SIZE, SIZE, generator=generator).to(device)
    labels = torch.randint(0, 10, (BATCH,), generator=generator).to(device)
    nets = networks(device, args.groups)
    precisions = {p: PRECISIONS[p] for p in args.precisions}
    train_fns, eval_fns = {}, {}
    for name, model in nets.items():
        for precision, dtype in precisions.items():
            train_fns[f"{name}@{precision}"] = train_step(model, images, labels, dtype)
            eval_fns[f"{name}@{precision}"] = eval_batch(model, eval_images, dtype)
    train_wall, train_cpu = interleaved(train_fns, args.repeats, sync)
    eval_wall, eval_cpu = interleaved(eval_fns, 2 * args.repeats, sync)  # short and noisy: twice the repeats
    peaks = peak_rates(device, args.repeats, sync)
    auto = "channels_last" if memory_format(TrainConfig(), device) == torch.channels_last else "nchw"
    run_s = whole_runs(device, args, auto) if args.run_repeats else {}
    step_macs = 3 * BATCH * macs_per_image(plain_net(), images[0])
    rate = {
        name: step_macs / seconds
        for name, seconds in train_cpu.items()
        if name.startswith("equinas") and f"_{auto}@" in name
    }
    result = {
        "setup": {
            "backbone": {"groups": args.groups, "widths": WIDTHS, "pools_after": POOLS, "hidden": None},
            "image_size": SIZE,
            "batch": BATCH,
            "eval_batch": EVAL_BATCH,
            "threads": args.threads,
            "repeats": args.repeats,
            "device": str(device),
            "auto_layout": auto,
            "keep_freed_memory": kept,
            "run": {"images": args.run_images, "epochs": args.run_epochs, "repeats": args.run_repeats},
        },
        "uptime_before": before,
        "uptime_after": uptime(),
        "train_step_ms": {n: 1e3 * t for n, t in train_wall.items()},
        "train_step_cpu_ms": {n: 1e3 * t for n, t in train_cpu.items()},
        "eval_batch_ms": {n: 1e3 * t for n, t in eval_wall.items()},
        "eval_batch_cpu_ms": {n: 1e3 * t for n, t in eval_cpu.items()},
        "run_s": run_s,
        "train": ratios(train_cpu, args.groups, list(precisions), auto),
        "eval": ratios(eval_cpu, args.groups, list(precisions), auto),
        "rate": {
            "train_step_macs": step_macs,
            "peak_macs_per_s": peaks,
            "train_step_macs_per_s": rate,
            "train_step_vs_peak": {
                name: {peak: value / peaks[peak] for peak in peaks} for name, value in rate.items()
            },
        },
    }
    name = args.name or ("step_cpu" if device.type == "cpu" else f"step_{device.type}")
    print(write_json(name, result))
    print(result["uptime_before"], "|", result["uptime_after"])
    for key in ("train_step_cpu_ms", "eval_batch_cpu_ms", "run_s"):
        print(key, {n: round(v, 2) for n, v in result[key].items()})
    for kind in ("train", "eval"):
        for key, values in result[kind].items():
            print(kind, key, {n: round(v, 3) for n, v in values.items()})
    print("peak GMAC/s", {n: round(v / 1e9, 1) for n, v in peaks.items()})
    print("train step GMAC/s", {n: round(v / 1e9, 1) for n, v in rate.items()})


if __name__ == "__main__":
    main()
