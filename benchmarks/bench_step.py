"""equinas against the plain-conv floor: train step, eval batch and a whole small training run.

In ONE process, on the same data: the demo backbone (D4, widths 4,4,8,8, pools after blocks 0
and 1, linear head; 28 px, batch 64) as an ``EquivariantCNN`` in NCHW and in channels-last, and
a plain CNN of the same expanded width (conv channels 32,32,64,64, ``nn.BatchNorm2d``, ReLU, 2x2
max pools, global mean pool, linear head) in NCHW (the floor) and in channels-last. Timed:

* ``train``: forward, cross-entropy, backward and an Adam step on one batch;
* ``eval``: a forward pass of one batch under ``torch.inference_mode`` in eval mode;
* ``run``: ``equinas.train.train`` for ``--run-epochs`` epochs on ``--run-images`` random images
  (validation and test of the same size, batch-norm recalibration on), the whole engine.

Repeats interleave the networks (one call of each per round; eval twice as many rounds) and the
median is reported, with
``uptime`` (the machine is shared). Writes ``benchmarks/results/step_<device>.json`` with
``eval_vs_nchw_floor`` and ``train_vs_nchw_floor`` (equinas in its ``auto`` layout / plain NCHW).

    OMP_NUM_THREADS=1 python benchmarks/bench_step.py [--threads 1] [--repeats 30] [--device cpu]
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
from equinas.models import EquivariantCNN, backbone
from equinas.nn.layout import set_memory_format
from equinas.train import TrainConfig, train
from equinas.train.optim import build_optimizer
from equinas.train.runtime import memory_format

WIDTHS, POOLS, ORDER, SIZE, BATCH = (4, 4, 8, 8), (0, 1), 8, 28, 64
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def equinas_net() -> nn.Module:
    torch.manual_seed(0)
    return EquivariantCNN(backbone("D4", widths=WIDTHS, pools_after=POOLS, hidden=None))


def plain_net() -> nn.Module:
    """A CNN with the equinas network's conv channels (``width * |D4|``), pools and head."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    channels = 1
    for i, width in enumerate(WIDTHS):
        out = width * ORDER
        layers += [nn.Conv2d(channels, out, 5, padding=2, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
        if i in POOLS:
            layers.append(nn.MaxPool2d(2))
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10)]
    return nn.Sequential(*layers)


def networks(device: torch.device) -> dict[str, nn.Module]:
    """``{name: model}``: equinas and plain nets in both layouts, on ``device``."""
    nets = {}
    for layout, fmt in LAYOUTS.items():
        nets[f"equinas_{layout}"] = set_memory_format(equinas_net(), fmt).to(device)
        nets[f"plain_{layout}"] = plain_net().to(device=device, memory_format=fmt)
    return nets


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    optimizer = build_optimizer(list(model.parameters()), TrainConfig())
    model.train()

    def step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()

    return step


def eval_batch(model: nn.Module, images: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        model.eval()
        with torch.inference_mode():
            model(images)

    return run


def interleaved(fns: dict[str, Callable[[], None]], repeats: int, sync: Callable[[], None]) -> dict:
    """Median seconds per function over ``repeats`` rounds (one call each), after a warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def random_task(count: int, device: torch.device) -> TaskData:
    generator = torch.Generator().manual_seed(0)

    def split() -> Split:
        images = torch.randn(count, 1, SIZE, SIZE, generator=generator)
        return Split(images, torch.randint(0, 10, (count,), generator=generator))

    return TaskData("random", 10, split(), split(), split())


def whole_runs(device: torch.device, args: argparse.Namespace) -> dict[str, float]:
    """Seconds of ``train()`` per network (fresh model each time), interleaved over repeats."""
    data = random_task(args.run_images, device)
    times: dict[str, list[float]] = {}
    for _ in range(args.run_repeats):
        for name, model in networks(device).items():
            layout = "channels_last" if name.endswith("channels_last") else "contiguous"
            config = TrainConfig(
                epochs=args.run_epochs,
                device=device.type,
                bn_recalibration=16 if name.startswith("equinas") else 0,
                memory_format=layout,
                num_threads=args.threads,
                seed=0,
            )
            start = time.perf_counter()
            train(model, data, config, progress=False)
            times.setdefault(name, []).append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--run-images", type=int, default=1000)
    parser.add_argument("--run-epochs", type=float, default=1.0)
    parser.add_argument("--run-repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    before = uptime()
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(BATCH, 1, SIZE, SIZE, generator=generator).to(device)
    labels = torch.randint(0, 10, (BATCH,), generator=generator).to(device)
    nets = networks(device)
    train_s = interleaved({n: train_step(m, images, labels) for n, m in nets.items()}, args.repeats, sync)
    eval_fns = {n: eval_batch(m, images) for n, m in nets.items()}
    eval_s = interleaved(eval_fns, 2 * args.repeats, sync)  # short and noisy: twice the repeats
    run_s = whole_runs(device, args) if args.run_repeats else {}
    auto = "channels_last" if memory_format(TrainConfig(), device) == torch.channels_last else "nchw"
    floor_train, floor_eval = train_s["plain_nchw"], eval_s["plain_nchw"]
    result = {
        "setup": {
            "backbone": {"group": "D4", "widths": WIDTHS, "pools_after": POOLS, "hidden": None},
            "image_size": SIZE,
            "batch": BATCH,
            "threads": args.threads,
            "repeats": args.repeats,
            "device": str(device),
            "auto_layout": auto,
            "run": {"images": args.run_images, "epochs": args.run_epochs, "repeats": args.run_repeats},
        },
        "uptime_before": before,
        "uptime_after": uptime(),
        "train_step_ms": {n: 1e3 * t for n, t in train_s.items()},
        "eval_batch_ms": {n: 1e3 * t for n, t in eval_s.items()},
        "run_s": run_s,
        "eval_vs_nchw_floor": eval_s[f"equinas_{auto}"] / floor_eval,
        "train_vs_nchw_floor": train_s[f"equinas_{auto}"] / floor_train,
        "eval_vs_channels_last_floor": eval_s[f"equinas_{auto}"] / eval_s["plain_channels_last"],
        "train_vs_channels_last_floor": train_s[f"equinas_{auto}"] / train_s["plain_channels_last"],
    }
    if run_s:
        result["run_vs_nchw_floor"] = run_s[f"equinas_{auto}"] / run_s["plain_nchw"]
    name = "step_cpu" if device.type == "cpu" else f"step_{device.type}"
    print(write_json(name, result))
    for key in ("train_step_ms", "eval_batch_ms", "run_s"):
        print(key, {n: round(v, 2) for n, v in result[key].items()})
    for key in ("eval_vs_nchw_floor", "train_vs_nchw_floor"):
        print(key, round(result[key], 3))


if __name__ == "__main__":
    main()
