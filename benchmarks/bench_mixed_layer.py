"""Forward+backward time of the [G]-mixed layer: one convolution (Eq. 11) vs K convolutions (Eq. 10).

Compares, in one process and on the same input, over the whole D4 subgroup lattice (K = 10):
  * ``single``: MixedGroupConv.forward (mix the kernels, then ONE conv2d),
  * ``naive``: MixedGroupConv.forward_naive (K conv2d calls, weighted sum),
  * ``plain``: one C1-relaxed GroupConv of the same width (an unconstrained conv: the floor).
Writes ``benchmarks/results/mixed_layer[_<basis>][_<device>].json`` with times and the two
ratios (targets: single/plain <= 1.3, naive/single >= 3); ``--basis harmonic`` measures layers
with harmonic kernels (``equinas.nn.basis``), whose expansion is an einsum instead of a gather.

    python benchmarks/bench_mixed_layer.py [--device cuda] [--batch 64] [--channels 8] [--basis harmonic]
"""

from __future__ import annotations

import argparse

import torch
from common import median_time, write_json

from equinas.groups import parse_group
from equinas.nn import BASES, GroupConv
from equinas.nn.mixed import MixedGroupConv


def step(fn, x: torch.Tensor, params: list[torch.nn.Parameter]):
    def run() -> None:
        for p in params:
            p.grad = None
        fn(x).sum().backward()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=8, help="ambient channels (x8 conv channels)")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--kernel", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--basis", choices=BASES, default="pixel")
    args = parser.parse_args()

    d4 = parse_group("D4")
    c = args.channels
    mixed = MixedGroupConv(c, c, args.kernel, d4, basis=args.basis).to(args.device)
    plain = GroupConv(c, c, args.kernel, "C1", d4, basis=args.basis).to(args.device)
    x = torch.randn(args.batch, c, d4.order, args.size, args.size, device=args.device)
    params = list(mixed.parameters())
    times = {
        "single": median_time(step(mixed, x, params), args.repeats, device=args.device),
        "naive": median_time(step(mixed.forward_naive, x, params), args.repeats, device=args.device),
        "plain": median_time(step(plain, x, list(plain.parameters())), args.repeats, device=args.device),
    }
    result = {
        "benchmark": "mixed_layer_forward_backward",
        "config": vars(args) | {"groups": [str(g) for g in mixed.groups]},
        "seconds": times,
        "single_over_plain": times["single"] / times["plain"],
        "naive_over_single": times["naive"] / times["single"],
        "targets": {"single_over_plain_max": 1.3, "naive_over_single_min": 3.0},
    }
    suffix = "" if args.basis == "pixel" else f"_{args.basis}"
    suffix += "" if args.device == "cpu" else f"_{args.device.split(':')[0]}"
    path = write_json(f"mixed_layer{suffix}", result)
    print(
        f"single {times['single'] * 1e3:.1f} ms | naive {times['naive'] * 1e3:.1f} ms | "
        f"plain C1 {times['plain'] * 1e3:.1f} ms | single/plain {result['single_over_plain']:.2f} | "
        f"naive/single {result['naive_over_single']:.2f} -> {path}"
    )


if __name__ == "__main__":
    main()
