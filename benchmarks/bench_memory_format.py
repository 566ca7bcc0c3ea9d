"""Per-op time of equinas layers on NCHW (``contiguous``) vs ``channels_last`` group feature maps.

Every op of the demo backbone (D4, widths 4,4,8,8, 28 px, batch 64) at the shape where it runs
there: the lifting conv, a group conv, a [G]-mixed conv over the whole D4 lattice, the three
relaxed convs (rpp, rgconv, cr), spatial max pooling, group batch norm (affine shared by D4 and
by C4), group pooling and the invariant head. Each is timed in eval (``inference_mode``) and
train (forward + backward) on the same values in both layouts; repeats interleave the layouts.
Writes ``benchmarks/results/memory_format_ops_<device>.{json,md}``.

    OMP_NUM_THREADS=1 python benchmarks/bench_memory_format.py [--threads 1] [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from common import RESULTS, write_json
from torch import nn

from equinas.nn import GroupBatchNorm, GroupConv, GroupPool, InvariantHead, LiftingConv, SpatialPool
from equinas.nn.layout import set_memory_format
from equinas.nn.mixed import MixedGroupConv
from equinas.nn.relaxed import ConstraintRelaxedConv, RelaxedGroupConv, ResidualPathwayConv

BATCH, ORDER = 64, 8


def ops() -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """``(name, module, input shape)`` of every op, at its place in the demo backbone."""
    return [
        ("lifting conv 1->4, 28px", LiftingConv(1, 4, 5, "D4"), (BATCH, 1, 28, 28)),
        ("group conv 4->4, 14px", GroupConv(4, 4, 5, "D4"), (BATCH, 4, ORDER, 14, 14)),
        ("group conv 4->8, 7px", GroupConv(4, 8, 5, "D4"), (BATCH, 4, ORDER, 7, 7)),
        ("mixed conv 4->4 (10 groups), 14px", MixedGroupConv(4, 4, 5, "D4"), (BATCH, 4, ORDER, 14, 14)),
        ("rpp conv 4->4, 14px", ResidualPathwayConv(4, 4, 5, "C4", "D4"), (BATCH, 4, ORDER, 14, 14)),
        ("rgconv 4->4, 14px", RelaxedGroupConv(4, 4, 5, "C4", "D4"), (BATCH, 4, ORDER, 14, 14)),
        ("cr conv 4->4, 14px", ConstraintRelaxedConv(4, 4, 5, "C4", "D4"), (BATCH, 4, ORDER, 14, 14)),
        ("spatial max pool, 28px", SpatialPool(2), (BATCH, 4, ORDER, 28, 28)),
        ("batch norm (D4 affine), 28px", GroupBatchNorm(4, "D4"), (BATCH, 4, ORDER, 28, 28)),
        ("batch norm (C4 affine), 28px", GroupBatchNorm(4, "C4", "D4"), (BATCH, 4, ORDER, 28, 28)),
        ("group pool, 7px", GroupPool("max"), (BATCH, 8, ORDER, 7, 7)),
        ("head (linear), 7px", InvariantHead(8, 10), (BATCH, 8, ORDER, 7, 7)),
    ]


def layout(x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """``x`` (4-D image or 5-D group map) in ``memory_format`` (the 4-D view of a 5-D map)."""
    if x.dim() == 4:
        return x.contiguous(memory_format=memory_format)
    b, c, g, h, w = x.shape
    return x.reshape(b, c * g, h, w).contiguous(memory_format=memory_format).reshape(b, c, g, h, w)


def runner(module: nn.Module, x: torch.Tensor, train: bool) -> Callable[[], None]:
    if not train:

        def run() -> None:
            with torch.inference_mode():
                module(x)

        return run
    x = x.detach().requires_grad_(not isinstance(module, LiftingConv))
    with torch.no_grad():
        grad = torch.randn_like(module(x))  # an upstream gradient in the output's layout

    def step() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x).backward(grad)

    return step


def interleaved(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each function; one call of each per round, after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for name, module, shape in ops():
        x = torch.randn(shape)
        row = {"op": name, "input": list(shape)}
        for mode in ("eval", "train"):
            module.train(mode == "train")
            fns = {}
            for label, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
                fns[label] = _with_layout(module, fmt, runner(module, layout(x, fmt), mode == "train"))
            t = interleaved(fns, args.repeats)
            row[f"{mode}_nchw_ms"] = 1e3 * t["nchw"]
            row[f"{mode}_channels_last_ms"] = 1e3 * t["channels_last"]
            row[f"{mode}_ratio"] = t["channels_last"] / t["nchw"]
        rows.append(row)
        print(
            f"{name:38s} eval {row['eval_nchw_ms']:7.2f} -> {row['eval_channels_last_ms']:7.2f} ms "
            f"({row['eval_ratio']:.2f}x)  train {row['train_nchw_ms']:7.2f} -> "
            f"{row['train_channels_last_ms']:7.2f} ms ({row['train_ratio']:.2f}x)",
            flush=True,
        )
    load = os.getloadavg()
    suffix = "cpu" if args.threads == 1 else f"cpu_{args.threads}threads"
    write_json(f"memory_format_ops_{suffix}", {"threads": args.threads, "loadavg": load, "ops": rows})
    lines = [
        f"# Per-op time, NCHW vs channels-last ({suffix}, {args.threads} torch thread(s), "
        f"median of {args.repeats} interleaved repeats, load average {load[0]:.2f})",
        "",
        "| op | input | eval NCHW ms | eval CL ms | CL/NCHW | train NCHW ms | train CL ms | CL/NCHW |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['op']} | {'x'.join(map(str, r['input']))} | {r['eval_nchw_ms']:.2f} | "
            f"{r['eval_channels_last_ms']:.2f} | {r['eval_ratio']:.2f} | {r['train_nchw_ms']:.2f} | "
            f"{r['train_channels_last_ms']:.2f} | {r['train_ratio']:.2f} |"
        )
    (RESULTS / f"memory_format_ops_{suffix}.md").write_text("\n".join(lines) + "\n")


def _with_layout(module: nn.Module, fmt: torch.memory_format, fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` run with ``module``'s convolutions set to ``fmt`` (both layouts share one module)."""

    def run() -> None:
        set_memory_format(module, fmt)
        fn()

    return run


if __name__ == "__main__":
    main()
