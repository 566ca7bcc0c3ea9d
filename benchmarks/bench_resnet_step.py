"""Train step of the equinas D4 ResNet vs. a plain residual CNN of the same expanded width.

The floor is what the equivariant network computes, written with ``nn.Conv2d`` /
``nn.BatchNorm2d`` / ``nn.MaxPool2d`` on ``C*|G|`` channels (no torchvision, no weight sharing,
no filter expansion): the same conv shapes, the same skips and pools, a max over each
channel's ``|G|`` planes and the same head. Both train in ONE process with one torch thread;
their steps (forward, cross-entropy, backward, SGD step) alternate, and the ratio of the
medians is the overhead of equivariance (filter expansion, group batch norm, 5-d reshapes).

    PYTHONPATH=src python benchmarks/bench_resnet_step.py            # writes results/resnet_step_cpu.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from common import write_json
from torch import nn

from equinas.models import backbone, build_network


class FloorBlock(nn.Module):
    """``ReLU(BN(conv(ReLU(BN(conv(x))))) + skip(x))`` [-> 2x2 max pool] on ``[B, C, H, W]``."""

    def __init__(self, c_in: int, c_out: int, k: int, pool: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
        self.norm1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, k, padding=k // 2, bias=False)
        self.norm2 = nn.BatchNorm2d(c_out)
        self.skip = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
            if c_in != c_out
            else None
        )
        self.pool = nn.MaxPool2d(2) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))
        y = F.relu(y + (x if self.skip is None else self.skip(x)))
        return self.pool(y) if self.pool is not None else y


class FloorResNet(nn.Module):
    """The plain residual CNN with the conv shapes of the equinas ResNet of ``widths`` (fields of a
    group of ``order`` elements): stem ``1 -> w0*order``, then one ``FloorBlock`` per width."""

    def __init__(self, widths, pools_after, k: int, order: int, hidden: int, classes: int = 10):
        super().__init__()
        self.order = order
        channels = [w * order for w in widths]
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels[0], k, padding=k // 2, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU()
        )
        self.stem_pool = nn.MaxPool2d(2) if 0 in pools_after else None
        self.blocks = nn.Sequential(
            *[FloorBlock(channels[i - 1], channels[i], k, i in pools_after) for i in range(1, len(widths))]
        )
        self.head = nn.Sequential(
            nn.Linear(widths[-1], hidden), nn.BatchNorm1d(hidden), nn.ELU(), nn.Linear(hidden, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if self.stem_pool is not None:
            x = self.stem_pool(x)
        x = self.blocks(x)
        b, c, h, w = x.shape
        pooled = x.view(b, c // self.order, self.order, h, w).amax(dim=2).mean(dim=(-2, -1))
        return self.head(pooled)


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def uptime() -> str:
    with open("/proc/loadavg") as f:
        return f.read().strip()


def measure(widths, pools_after, k: int, size: int, batch: int, repeats: int, hidden: int) -> dict:
    spec = backbone(
        "D4", widths=widths, pools_after=pools_after, kernel_size=k, hidden=hidden, backbone="resnet"
    )
    equi = build_network(spec)
    floor = FloorResNet(widths, pools_after, k, spec.ambient_group().order, hidden)
    x, y = torch.randn(batch, 1, size, size), torch.randint(0, 10, (batch,))
    steps = {"equinas": make_step(equi, x, y), "floor": make_step(floor, x, y)}
    for fn in steps.values():  # warm-up
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(repeats):
        order = list(steps) if r % 2 == 0 else list(reversed(steps))  # interleaved, alternating first
        for name in order:
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    pair = [e / f for e, f in zip(times["equinas"], times["floor"], strict=True)]
    conv_shapes = [tuple(m.weight.shape) for m in floor.modules() if isinstance(m, nn.Conv2d)]
    expanded = [tuple(conv.filter().shape) for conv in equi.layer_convs()]
    expanded += [tuple(b.skip.conv.filter().shape) for b in equi.residual_blocks if b.skip is not None]
    assert sorted(conv_shapes) == sorted(expanded), (
        "the floor must have the equivariant network's conv shapes"
    )
    return {
        "widths": list(widths),
        "pools_after": list(pools_after),
        "kernel_size": k,
        "image_size": size,
        "batch": batch,
        "repeats": repeats,
        "params": {"equinas": equi.num_parameters(), "floor": sum(p.numel() for p in floor.parameters())},
        "median_step_s": med,
        "ratio_of_medians": med["equinas"] / med["floor"],
        "median_pair_ratio": statistics.median(pair),
        "conv_shapes": [list(s) for s in conv_shapes],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--name", default="resnet_step_cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    configs = [  # the RotMNIST comparison's network, then a wider one and a 64 px input
        dict(widths=(4, 4, 8, 8), pools_after=(1, 2), k=3, size=28),
        dict(widths=(8, 8, 16, 16), pools_after=(1, 2), k=3, size=28),
        dict(widths=(4, 4, 8, 8), pools_after=(0, 1, 2), k=3, size=64),
    ]
    load_before = uptime()
    rows = []
    for cfg in configs:
        row = measure(**cfg, batch=args.batch, repeats=args.repeats, hidden=64)
        rows.append(row)
        med = row["median_step_s"]
        print(
            f"widths {row['widths']} {row['image_size']}px: equinas {med['equinas'] * 1e3:.1f} ms, "
            f"floor {med['floor'] * 1e3:.1f} ms, ratio {row['ratio_of_medians']:.3f} "
            f"(median of pairs {row['median_pair_ratio']:.3f})"
        )
    payload = {
        "what": "train step (forward, cross-entropy, backward, SGD) of the equinas D4 ResNet / a plain "
        "nn.Conv2d residual CNN with the same expanded conv shapes, interleaved in one process",
        "torch_threads": torch.get_num_threads(),
        "loadavg_before": load_before,
        "loadavg_after": uptime(),
        "cpu_count": os.cpu_count(),
        "rows": rows,
    }
    print(f"written {write_json(args.name, payload)}")


if __name__ == "__main__":
    main()
