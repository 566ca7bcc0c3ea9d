"""equinas vs escnn: regular G-CNNs of the same width, measured in one process.

For every group (C4, D4, C8, D8) and width (regular fields per layer) both libraries build the
same network: a lifting conv and ``layers - 1`` group convs (kernel 5, zero padding, no bias),
each followed by batch norm and ReLU, no spatial pooling, then group max pooling, a global
spatial mean and a linear classifier; input ``[batch, 1, 28, 28]``.

    equinas: EquivariantCNN(backbone(G, widths=(w,)*layers, pools_after=(), hidden=None, basis=b)),
             once per kernel basis b: "pixel" (25 values per 5x5 kernel) and "harmonic" (11
             band-limited functions, the same span as escnn's default basis)
    escnn:   R2Conv (regular fields) -> InnerBatchNorm -> ReLU, ..., GroupPooling -> mean -> Linear
    plain:   Conv2d -> BatchNorm2d -> ReLU of the same expanded width (w*|G| channels): the floor

Measured per network: build time (escnn caches bases, so a group's second width builds faster),
parameters (escnn's band-limited basis has fewer per kernel: both are reported), median time of a
train-mode forward+backward (cross-entropy, random labels) and of an eval-mode forward under
``no_grad``, the filter-expansion share of the train step (building every conv filter forward and
backward), the peak memory of one train step and one eval step (bytes allocated above those live
before the step: ``torch.cuda.max_memory_allocated`` on GPU; on CPU the running sum of the
allocator's alloc/free events recorded by ``torch.profiler(profile_memory=True)``), and the
equivariance errors in eval mode and float32: the relative L2 errors
``||f(gx) - g f(x)|| / ||g f(x)||`` of the last feature map (inside the inscribed disc) and
``||f(gx) - f(x)|| / ||f(x)||`` of the logits, the max over the exact elements (multiples of 90
degrees, mirrors included) and, for C8/D8, for the 45 degree rotation, as mean and std over
``--eq-seeds`` freshly initialised networks of each library (one network's error varies a lot
with its weights at 45 degrees). Both libraries see the same transformed input (equinas
``act_on_images``, bilinear for 45 degrees, on smooth images inside the inscribed disc); on
feature maps the spatial part of ``g`` is the same resampling for both and the fibre part is each
library's own regular representation (escnn's element ``(f, k)`` and equinas' ``Element(f, k)``
are the same map).

Writes ``benchmarks/results/escnn_<device>[_quick].json`` and ``.md``; ``--profile`` adds the
top operators of one train step of each library for the largest configuration
(``escnn_<device>[_quick]_profile.txt``). Needs escnn (see benchmarks/README.md).

    python benchmarks/bench_escnn.py [--device cpu|cuda] [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from common import RESULTS, median_time, write_json
from torch import nn
from torch.profiler import ProfilerActivity, profile

from equinas.groups import Element, PlanarGroup, act_on_features, act_on_images, parse_group
from equinas.metrics import inscribed_disc
from equinas.models import EquivariantCNN, backbone
from equinas.nn import BASES

ESCNN_INSTALL = (
    "escnn is not installed (or does not import). It is an optional benchmark dependency:\n"
    "    apt-get install -y gfortran            # py3nj (an escnn dependency) builds Fortran code\n"
    '    pip install escnn "ml_dtypes<0.6"      # pins numpy<2 via lie_learn\n'
    "(ml_dtypes<0.6 keeps the onnx packages of the 'export' extra installable with numpy<2.)"
)


@dataclass
class Subject:
    """A network under test and what the equivariance check needs from it.

    ``features(x)`` is the last block's output (``[B, C, |G|, H, W]`` or ``[B, C*|G|, H, W]``),
    ``classify`` maps it to logits ``[B, classes]``, ``act(y, g)`` is ``g . y`` on features, and
    ``expansion()`` builds every conv filter (``None`` for the plain floor).
    """

    name: str
    model: nn.Module
    build_s: float
    features: Callable[[torch.Tensor], torch.Tensor]
    classify: Callable[[torch.Tensor], torch.Tensor]
    act: Callable[[torch.Tensor, Element], torch.Tensor] | None
    expansion: Callable[[], list[torch.Tensor]] | None


# -- networks ------------------------------------------------------------------------------------
def equinas_subject(group: PlanarGroup, width: int, args: argparse.Namespace, basis: str) -> Subject:
    start = time.perf_counter()
    spec = backbone(
        group.name,
        ambient=group.name,
        widths=(width,) * args.layers,
        pools_after=(),
        kernel_size=args.kernel,
        basis=basis,
        num_classes=args.classes,
        hidden=None,
    )
    model = EquivariantCNN(spec)
    build_s = time.perf_counter() - start
    convs = [block.conv for block in model.equivariant_blocks]
    return Subject(
        f"equinas_{basis}",
        model,
        build_s,
        features=lambda x: model.features(x)[-1],
        classify=model.head,
        act=lambda y, g: act_on_features(y, g, group),
        expansion=lambda: [conv.build_filter() for conv in convs],
    )


class EscnnCNN(nn.Module):
    """The escnn network of the module doc: images ``[B, 1, H, W]`` -> logits ``[B, classes]``."""

    def __init__(self, group: PlanarGroup, width: int, layers: int, kernel: int, classes: int):
        super().__init__()
        from escnn import gspaces
        from escnn import nn as enn

        self.enn = enn
        n = group.rotation_order
        self.gspace = gspaces.flipRot2dOnR2(n) if group.is_dihedral else gspaces.rot2dOnR2(n)
        self.in_type = enn.FieldType(self.gspace, [self.gspace.trivial_repr])
        self.out_type = enn.FieldType(self.gspace, width * [self.gspace.regular_repr])
        blocks, field = [], self.in_type
        for _ in range(layers):
            blocks += [
                enn.R2Conv(field, self.out_type, kernel, padding=kernel // 2, bias=False),
                enn.InnerBatchNorm(self.out_type),
                enn.ReLU(self.out_type),
            ]
            field = self.out_type
        self.body = enn.SequentialModule(*blocks)
        self.group_pool = enn.GroupPooling(self.out_type)
        self.classifier = nn.Linear(width, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last block's output ``[B, width*|G|, H, W]``."""
        return self.body(self.enn.GeometricTensor(x, self.in_type)).tensor

    def classify(self, y: torch.Tensor) -> torch.Tensor:
        pooled = self.group_pool(self.enn.GeometricTensor(y, self.out_type)).tensor
        return self.classifier(pooled.mean(dim=(-2, -1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))

    def act(self, y: torch.Tensor, g: Element, group: PlanarGroup) -> torch.Tensor:
        """``g . y``: escnn's regular representation on the fibres, equinas' grid action in space."""
        fibre_group = self.gspace.fibergroup
        element = fibre_group.element((g.flip, g.rot) if group.is_dihedral else g.rot)
        fibres = self.enn.GeometricTensor(y, self.out_type).transform_fibers(element).tensor
        return act_on_images(fibres, g, group)

    def convs(self) -> list[nn.Module]:
        return [m for m in self.body if isinstance(m, self.enn.R2Conv)]


def escnn_subject(group: PlanarGroup, width: int, args: argparse.Namespace) -> Subject:
    start = time.perf_counter()
    model = EscnnCNN(group, width, args.layers, args.kernel, args.classes)
    build_s = time.perf_counter() - start
    convs = model.convs()
    return Subject(
        "escnn",
        model,
        build_s,
        features=model.features,
        classify=model.classify,
        act=lambda y, g: model.act(y, g, group),
        expansion=lambda: [conv.expand_parameters()[0] for conv in convs],
    )


def plain_subject(group: PlanarGroup, width: int, args: argparse.Namespace) -> Subject:
    start = time.perf_counter()
    channels, layers = width * group.order, []
    for i in range(args.layers):
        conv = nn.Conv2d(
            1 if i == 0 else channels, channels, args.kernel, padding=args.kernel // 2, bias=False
        )
        layers += [conv, nn.BatchNorm2d(channels), nn.ReLU()]
    body = nn.Sequential(*layers)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, args.classes))
    model = nn.Sequential(body, head)
    return Subject("plain", model, time.perf_counter() - start, body, head, act=None, expansion=None)


# -- measurements ---------------------------------------------------------------------------------
def train_step(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """One train-mode forward+backward (gradients reset to ``None`` first)."""
    params = list(model.parameters())

    def run() -> None:
        for p in params:
            p.grad = None
        F.cross_entropy(model(x), labels).backward()

    return run


def eval_step(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            model(x)

    return run


def expansion_step(subject: Subject) -> Callable[[], None]:
    """Build every conv filter and backpropagate ones through them (train mode)."""

    def run() -> None:
        filters = subject.expansion()
        torch.autograd.backward(filters, [torch.ones_like(f) for f in filters])

    return run


def peak_bytes(fn: Callable[[], None], device: str) -> int:
    """Peak bytes allocated during ``fn()`` above those live before it (see the module doc)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
        key=lambda e: e.start_ns(),
    )
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def smooth_images(batch: int, size: int, device: str) -> torch.Tensor:
    """Band-limited random images ``[batch, 1, size, size]`` that vanish outside the inscribed disc."""
    coarse = torch.randn(batch, 1, size // 4, size // 4, device=device)
    images = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
    return images * inscribed_disc(images)


def checked_elements(group: PlanarGroup) -> dict[str, list[Element]]:
    """Exact non-identity elements and, for groups with 45 degree steps, the 45 degree rotation."""
    elements = {"exact": [g for g in group.elements[1:] if group.is_exact_element(g)]}
    if group.n % 8 == 0:
        elements["rot45"] = [Element(0, group.n // 8)]
    return elements


def equivariance(subject: Subject, group: PlanarGroup, x: torch.Tensor) -> dict[str, float]:
    """``{<set>_features, <set>_logits}`` errors (module doc) for every element set; eval-mode model."""
    mask = inscribed_disc(x)
    out: dict[str, float] = {}
    with torch.no_grad():
        feats = subject.features(x)
        logits = subject.classify(feats)
        for name, elements in checked_elements(group).items():
            feat_err = logit_err = 0.0
            for g in elements:
                feats_g = subject.features(act_on_images(x, g, group))
                expected = subject.act(feats, g) * mask
                feat_err = max(feat_err, float((feats_g * mask - expected).norm() / expected.norm()))
                logit_err = max(logit_err, float((subject.classify(feats_g) - logits).norm() / logits.norm()))
            out[f"{name}_features"], out[f"{name}_logits"] = feat_err, logit_err
    return out


def equivariance_over_seeds(make: Callable[[], Subject], group: PlanarGroup, args) -> dict[str, dict]:
    """``{key: {"mean", "std", "values"}}`` of ``equivariance`` over ``args.eq_seeds`` fresh networks."""
    images = smooth_images(8, args.size, args.device)
    runs = []
    for seed in range(args.eq_seeds):
        torch.manual_seed(seed)
        subject = make()
        subject.model.to(args.device).eval()
        runs.append(equivariance(subject, group, images))
    return {
        key: {
            "mean": statistics.mean(r[key] for r in runs),
            "std": statistics.pstdev(r[key] for r in runs),
            "values": [r[key] for r in runs],
        }
        for key in runs[0]
    }


def interleaved_ms(steps: dict[str, Callable[[], None]], repeats: int, device: str) -> dict[str, float]:
    """Median milliseconds of every step, timed in rounds that run each step once.

    Interleaving makes a change of machine load during the run hit every network alike.
    """
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(repeats + 1):  # round 0 is the warm-up
        for name, fn in steps.items():
            seconds = median_time(fn, 1, warmup=0, device=device)
            if round_:
                times[name].append(1e3 * seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def measure(subjects: list[Subject], args: argparse.Namespace) -> dict[str, dict]:
    """Every number of the module doc for each network (their parameters move to ``args.device``)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 1, args.size, args.size, generator=gen).to(args.device)
    labels = torch.randint(args.classes, (args.batch,), generator=gen).to(args.device)
    models = {s.name: s.model.to(args.device).train() for s in subjects}
    results = {
        s.name: {"build_s": s.build_s, "params": sum(p.numel() for p in s.model.parameters())}
        for s in subjects
    }
    phases = {
        "train": {name: train_step(model, x, labels) for name, model in models.items()},
        "expansion": {s.name: expansion_step(s) for s in subjects if s.expansion is not None},
    }
    for phase, steps in phases.items():
        for name, ms in interleaved_ms(steps, args.repeats, args.device).items():
            results[name][f"{phase}_ms"] = ms
    for name, step in phases["train"].items():
        results[name]["train_peak_mb"] = peak_bytes(step, args.device) / 2**20
    for model in models.values():
        model.eval()
    evals = {name: eval_step(model, x) for name, model in models.items()}
    for name, ms in interleaved_ms(evals, args.repeats, args.device).items():
        results[name]["eval_ms"] = ms
        results[name]["eval_peak_mb"] = peak_bytes(evals[name], args.device) / 2**20
    for s in subjects:
        if s.expansion is not None:
            results[s.name]["expansion_share"] = (
                results[s.name].pop("expansion_ms") / results[s.name]["train_ms"]
            )
    return results


RATIO_KEYS = ("train_ms", "eval_ms", "train_peak_mb", "eval_peak_mb", "build_s", "params")


def makers(group: PlanarGroup, width: int, args: argparse.Namespace) -> dict[str, Callable[[], Subject]]:
    """Builders of every network of one configuration, by subject name."""
    out: dict[str, Callable[[], Subject]] = {
        f"equinas_{basis}": functools.partial(equinas_subject, group, width, args, basis)
        for basis in args.bases
    }
    out["escnn"] = functools.partial(escnn_subject, group, width, args)
    out["plain"] = functools.partial(plain_subject, group, width, args)
    return out


def compare(group: PlanarGroup, width: int, args: argparse.Namespace) -> dict:
    """Every network of one configuration, and the equinas/escnn ratios of each equinas basis."""
    build = makers(group, width, args)
    subjects = []
    for make in build.values():
        torch.manual_seed(0)
        subjects.append(make())
    row: dict = {"group": group.name, "width": width, "channels": width * group.order}
    row |= measure(subjects, args)
    for s in subjects:
        if s.act is not None:
            row[s.name]["equivariance"] = equivariance_over_seeds(build[s.name], group, args)
    row["over_escnn"] = {
        f"equinas_{basis}": {k: row[f"equinas_{basis}"][k] / row["escnn"][k] for k in RATIO_KEYS}
        for basis in args.bases
    }
    return row


# -- profile and report ---------------------------------------------------------------------------
def profile_table(group: PlanarGroup, width: int, args: argparse.Namespace) -> str:
    """Top operators (self time) of one train step of every equinas basis and of escnn."""
    sort_by = "self_device_time_total" if args.device.startswith("cuda") else "self_cpu_time_total"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
    sections = []
    for name, make in makers(group, width, args).items():
        if name == "plain":
            continue
        model = make().model.to(args.device).train()
        x = torch.randn(args.batch, 1, args.size, args.size, device=args.device)
        labels = torch.randint(args.classes, (args.batch,), device=args.device)
        step = train_step(model, x, labels)
        step()
        with profile(activities=activities) as prof:
            step()
        table = prof.key_averages().table(sort_by=sort_by, row_limit=15)
        sections.append(f"== {name} {group.name} x{width}: one train step\n{table}")
    return "\n".join(sections)


def _error(stats: dict | None) -> str:
    return "-" if stats is None else f"{stats['mean']:.2g} ± {stats['std']:.1g}"


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    """Tables of times, memory and parameters, and of equivariance errors."""
    lines = [
        f"# equinas vs escnn ({args.device}, {args.layers} layers, kernel {args.kernel}, batch {args.batch}, "
        f"{args.size}x{args.size})",
        "",
        "Times are medians in ms; memory is the peak MiB allocated during one step; ratio = equinas/escnn; "
        "plain = Conv2d net of the same expanded width; expansion = share of the train step spent "
        "building filters (forward+backward); basis = equinas' kernel basis (escnn: its own "
        "band-limited basis, the span of `harmonic`).",
        "",
        "| config | ch | basis | train eq / es / plain | ratio | eval eq / es / plain | ratio | "
        "train MiB eq / es | eval MiB eq / es | expansion eq / es | build s eq / es | params eq / es |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        es, pl = r["escnn"], r["plain"]
        for basis in args.bases:
            eq, ratio = r[f"equinas_{basis}"], r["over_escnn"][f"equinas_{basis}"]
            lines.append(
                f"| {r['group']} x{r['width']} | {r['channels']} | {basis} "
                f"| {eq['train_ms']:.0f} / {es['train_ms']:.0f} / {pl['train_ms']:.0f} "
                f"| {ratio['train_ms']:.2f} "
                f"| {eq['eval_ms']:.0f} / {es['eval_ms']:.0f} / {pl['eval_ms']:.0f} | {ratio['eval_ms']:.2f} "
                f"| {eq['train_peak_mb']:.0f} / {es['train_peak_mb']:.0f} "
                f"| {eq['eval_peak_mb']:.0f} / {es['eval_peak_mb']:.0f} "
                f"| {eq['expansion_share']:.1%} / {es['expansion_share']:.1%} "
                f"| {eq['build_s']:.2f} / {es['build_s']:.2f} | {eq['params']:,} / {es['params']:,} |"
            )
    names = [f"equinas_{b}" for b in args.bases] + ["escnn"]
    header = " / ".join(n.replace("equinas_", "") for n in names)
    lines += [
        "",
        f"Equivariance errors (eval, float32, relative L2, mean ± std over {args.eq_seeds} fresh networks): "
        "features ||f(gx) - g f(x)|| / ||g f(x)|| inside the inscribed disc, logits "
        f"||f(gx) - f(x)|| / ||f(x)||; each cell: {header}.",
        "",
        "| config | exact: features | exact: logits | 45 deg: features | 45 deg: logits |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        cells = []
        for key in ("exact_features", "exact_logits", "rot45_features", "rot45_logits"):
            stats = [r[n]["equivariance"].get(key) for n in names]
            cells.append("-" if stats[0] is None else " / ".join(_error(x) for x in stats))
        lines.append(f"| {r['group']} x{r['width']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--quick", action="store_true", help="C4 and D4, widths 2 and 4, batch 8: a smoke run"
    )
    parser.add_argument("--profile", action="store_true", help="also profile the largest configuration")
    parser.add_argument("--groups", nargs="+", default=["C4", "D4", "C8", "D8"])
    parser.add_argument("--widths", nargs="+", type=int, default=[4, 8], help="regular fields per layer")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--kernel", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--bases", nargs="+", choices=BASES, default=list(BASES), help="equinas kernel bases to measure"
    )
    parser.add_argument(
        "--eq-seeds", type=int, default=5, help="networks per library for the equivariance errors"
    )
    parser.add_argument(
        "--threads", type=int, help="CPU threads (torch.set_num_threads); 1 is steadier on a shared machine"
    )
    args = parser.parse_args()
    if args.quick:
        args.groups, args.widths, args.batch, args.repeats, args.eq_seeds = ["C4", "D4"], [2, 4], 8, 2, 2
    return args


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        importlib.import_module("escnn")
    except ImportError as err:
        sys.exit(f"{ESCNN_INSTALL}\n(import escnn failed: {err})")
    load_before, rows = os.getloadavg(), []
    for name in args.groups:
        for width in args.widths:
            rows.append(compare(parse_group(name), width, args))
            ratios = ", ".join(
                f"{basis} train {ratio['train_ms']:.2f} eval {ratio['eval_ms']:.2f}"
                for basis, ratio in rows[-1]["over_escnn"].items()
            )
            print(f"{name} x{width}: equinas/escnn {ratios}", flush=True)
    name = f"escnn_{args.device.split(':')[0]}" + ("_quick" if args.quick else "")
    load = {"before": load_before, "after": os.getloadavg()}
    payload = {"benchmark": "equinas_vs_escnn", "config": vars(args), "load_average": load, "rows": rows}
    path = write_json(name, payload)
    (RESULTS / f"{name}.md").write_text(markdown(rows, args))
    if args.profile:
        largest = max(
            ((parse_group(g), w) for g in args.groups for w in args.widths), key=lambda c: c[0].order * c[1]
        )
        (RESULTS / f"{name}_profile.txt").write_text(profile_table(*largest, args))
    print(f"-> {path} and {name}.md")


if __name__ == "__main__":
    main()
