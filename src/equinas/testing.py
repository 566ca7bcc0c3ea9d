"""Public equivariance checks for layers, blocks and whole networks.

``equivariance_report(module)`` reads the layout off ``module`` -- what its first equinas
layer takes (images ``[B, C, H, W]`` or group feature maps ``[B, C, |G|, H, W]``), the
ambient group, and the group every equinas layer inside it promises (the intersection of
their groups) -- samples an input, and measures for every element ``g`` but the identity

    err(g) = ||F(g.x) - g.F(x)|| / ||g.F(x)||,

where ``g`` acts on the output as the output's layout requires (feature maps, images after
group pooling, or nothing for invariant values such as logits). Elements that map the pixel
grid onto itself (multiples of 90 degrees, mirrors) are checked against ``TOLERANCES`` of the
dtype; the 45-degree-like elements of C8, D8, ... can only be interpolated on a grid, so
their errors are measured inside the inscribed disc and reported on their own.
``assert_equivariant`` raises an ``AssertionError`` naming the worst element.

>>> from equinas.nn import LiftingConv
>>> assert_equivariant(LiftingConv(1, 4, 3, "D4")).passed
True
>>> equivariance_report(LiftingConv(1, 4, 3, "C1", "C4"), group="C4").passed  # unconstrained filters
False
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from equinas.groups import Element, PlanarGroup, intersection, parse_group
from equinas.metrics import act_on_layout, element_error, inscribed_disc
from equinas.nn.conv import ConvBase
from equinas.nn.mixed import MixedGroupConv
from equinas.nn.norm import GroupBatchNorm
from equinas.nn.pooling import SpatialPool

# Bound on the relative error of exact elements, per dtype: ~170 ulps of float32 (deep stacks
# sum thousands of products) and ~10^4 ulps of float64. ``bfloat16`` means mixed precision: a
# float32 module under bf16 autocast, whose convolutions round their float32 sums to bf16 (8
# bits): F(g.x) and g.F(x) then differ by a rounding flip in some values, about 5 ulps of bf16.
TOLERANCES: dict[torch.dtype, float] = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 2e-2}
# dtypes that ``equivariance_report`` runs as autocast over a float32 copy (mixed precision)
AUTOCAST_DTYPES = (torch.bfloat16,)

# Smallest side of a sampled input (rounded up to a multiple of the spatial pooling windows).
MIN_SIZE = 12
# Width (pixels) of the Gaussian that smooths sampled inputs: interpolated rotations of white
# noise are meaningless, of smooth maps they are close to the continuous rotation.
SMOOTHING = 1.5


class InexactEquivarianceWarning(UserWarning):
    """Interpolated (e.g. 45-degree) elements were measured but not held to a bound."""


def tolerance(dtype: torch.dtype) -> float:
    """The bound on the relative equivariance error of exact elements for ``dtype``."""
    if dtype not in TOLERANCES:
        raise ValueError(
            f"no equivariance tolerance for {dtype}: pass atol=, or use one of {list(TOLERANCES)}"
        )
    return TOLERANCES[dtype]


def element_name(g: Element, group: PlanarGroup) -> str:
    """``R(90)`` for a rotation by 90 degrees, ``R(45)F`` for the mirror ``x -> -x`` followed by it."""
    degrees = float(group.angle(g)) * 360
    return f"R({degrees:g}){'F' if g.flip else ''}"


@dataclass(frozen=True)
class EquivarianceReport:
    """Measured equivariance errors of one module under one group (see the module doc).

    ``exact`` and ``interpolated`` map element names (``element_name``) to relative errors;
    ``interpolated`` errors are measured inside the inscribed disc and count as failures only
    when ``interpolated_tolerance`` is set.
    """

    module: str
    group: str
    ambient: str
    dtype: torch.dtype
    layout: str
    tolerance: float
    exact: dict[str, float]
    interpolated: dict[str, float] = field(default_factory=dict)
    interpolated_tolerance: float | None = None

    def failures(self) -> list[tuple[str, float, float]]:
        """``(element, error, bound)`` of every element over its bound, worst first."""
        bounds = [(self.exact, self.tolerance), (self.interpolated, self.interpolated_tolerance)]
        over = [
            (name, err, bound)
            for errors, bound in bounds
            if bound is not None
            for name, err in errors.items()
            if not err <= bound  # NaN fails
        ]
        return sorted(over, key=lambda item: -item[1] if math.isfinite(item[1]) else -math.inf)

    @property
    def passed(self) -> bool:
        return not self.failures()

    def __str__(self) -> str:
        head = f"{self.module} under {self.group} (ambient {self.ambient}, {self.dtype}): {self.layout}"
        rows = [f"  {name:>10}  {err:.2e}  (bound {self.tolerance:.0e})" for name, err in self.exact.items()]
        bound = (
            "not held to a bound"
            if self.interpolated_tolerance is None
            else f"bound {self.interpolated_tolerance:.0e}"
        )
        rows += [
            f"  {name:>10}  {err:.2e}  (interpolated, inside the disc, {bound})"
            for name, err in self.interpolated.items()
        ]
        return "\n".join([head, *rows])


class _Autocast(nn.Module):
    """``module`` run under autocast to ``dtype``, its output returned in float32."""

    def __init__(self, module: nn.Module, device: torch.device, dtype: torch.dtype):
        super().__init__()
        self.module, self.device_type, self.dtype = module, device.type, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.module(x).float()


def _equinas_layers(module: nn.Module) -> list[ConvBase | GroupBatchNorm]:
    return [m for m in module.modules() if isinstance(m, ConvBase | GroupBatchNorm)]


def _promised_group(layer: ConvBase | GroupBatchNorm) -> PlanarGroup:
    """The group ``layer`` is equivariant to: a mixed layer's common subgroup, else its group."""
    if isinstance(layer, MixedGroupConv):
        return layer.common
    group = getattr(layer, "group", None)
    if group is None:
        raise TypeError(f"{type(layer).__name__} names no group: pass group= to the check")
    return group


def _sample_input(
    module: nn.Module,
    layers: list[ConvBase | GroupBatchNorm],
    dtype: torch.dtype,
    device: torch.device,
    size: int | None,
    seed: int,
) -> tuple[torch.Tensor, str]:
    """A random input in the layout of ``layers[0]``, the first equinas layer of ``module``:
    ``(x, layout)``; its side is a multiple of all spatial pooling windows of ``module``."""
    first = layers[0]
    if size is None:
        window = math.prod(m.kernel for m in module.modules() if isinstance(m, SpatialPool))
        size = window * math.ceil(MIN_SIZE / window)
    gen = torch.Generator().manual_seed(seed)
    shape: tuple[int, ...]
    if isinstance(first, ConvBase) and first.lifting:
        shape, layout = (2, first.in_channels, size, size), "image"
    else:
        channels = first.in_channels if isinstance(first, ConvBase) else first.channels
        shape, layout = (2, channels, first.ambient.order, size, size), "features"
    return smooth_noise(shape, gen).to(device=device, dtype=dtype), layout


def smooth_noise(
    shape: tuple[int, ...], generator: torch.Generator, sigma: float = SMOOTHING
) -> torch.Tensor:
    """float64 white noise of ``shape`` (``[..., H, W]``) blurred over the last two axes by a
    Gaussian of width ``sigma`` pixels (zero padding)."""
    radius = math.ceil(3 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    planes = torch.randn(shape, generator=generator, dtype=torch.float64).reshape(-1, 1, *shape[-2:])
    planes = F.conv2d(planes, kernel.view(1, 1, -1, 1), padding=(radius, 0))
    planes = F.conv2d(planes, kernel.view(1, 1, 1, -1), padding=(0, radius))
    return planes.reshape(shape)


def _output_layout(y: torch.Tensor, ambient: PlanarGroup, module: nn.Module) -> str:
    if y.dim() == 5 and y.shape[2] == ambient.order:
        return "features"
    if y.dim() == 4:
        return "image"
    if y.dim() == 2:
        return "invariant"
    raise TypeError(
        f"cannot read the output layout of {type(module).__name__}: expected [B, C, {ambient.order}, H, W] "
        f"features, [B, C, H, W] maps or [B, K] invariant values, got {tuple(y.shape)}"
    )


def equivariance_report(
    module: nn.Module,
    group: PlanarGroup | str | None = None,
    dtype: torch.dtype = torch.float64,
    atol: float | None = None,
    interpolated_atol: float | None = None,
    x: torch.Tensor | None = None,
    size: int | None = None,
    seed: int = 0,
) -> EquivarianceReport:
    """Equivariance errors of ``module`` under every element of ``group``; never raises on them.

    Args:
        module: a lifting/group/mixed/relaxed layer, a ``GroupBatchNorm``, a block, a whole
            ``EquivariantCNN``, or any module built from them; its first equinas layer (in
            registration order) fixes the input layout. It is not changed: a copy is cast to
            ``dtype`` and run in eval mode under ``torch.no_grad()``.
        group: the group to test (a subgroup of the ambient group); default: the group all
            equinas layers in ``module`` promise (mixed layers: their common subgroup).
        dtype: computation dtype (float64 separates real breaks from rounding best);
            ``torch.bfloat16`` runs a float32 copy under bf16 autocast (mixed precision, as
            ``TrainConfig.amp`` trains) and compares its outputs in float32.
        atol: bound on the relative error of exact elements; default ``tolerance(dtype)``.
        interpolated_atol: bound for interpolated (45-degree) elements; default: none.
        x: an input to use instead of a sampled ``[2, C, (|G|,) S, S]`` one (smooth noise,
            ``smooth_noise``; ``S`` = 12 rounded up to a multiple of the spatial pooling
            windows, or ``size``).
        seed: seed of the sampled input (the global RNG is not touched).
    """
    layers = _equinas_layers(module)
    if not layers:
        raise TypeError(
            f"cannot read the layout of {type(module).__name__}: it contains no equinas layer "
            "(LiftingConv, GroupConv, MixedGroupConv, the nn.relaxed layers or GroupBatchNorm)"
        )
    ambient = layers[0].ambient
    if any(layer.ambient != ambient for layer in layers):
        found = sorted({str(layer.ambient) for layer in layers})
        raise ValueError(f"{type(module).__name__} mixes ambient groups {found}")
    if group is None:
        tested = intersection([ambient.embed(_promised_group(layer)) for layer in layers])
    else:
        tested = parse_group(group, ambient=ambient)
    bound = tolerance(dtype) if atol is None else atol
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    mixed = dtype in AUTOCAST_DTYPES
    storage = torch.float32 if mixed else dtype
    model = copy.deepcopy(module).to(dtype=storage).eval()
    if mixed:
        model = _Autocast(model, device, dtype)
    if x is None:
        x, in_layout = _sample_input(module, layers, storage, device, size, seed)
    else:
        x = x.to(device=device, dtype=storage)
        in_layout = "features" if x.dim() == 5 else "image"
    exact = {}
    interpolated = {}
    with torch.no_grad():
        y = model(x)
        out_layout = _output_layout(y, ambient, module)
        x_disc = x * inscribed_disc(x)
        y_disc = model(x_disc) if not tested.is_exact else None
        for g in tested.elements[1:]:
            name = element_name(g, tested)
            if ambient.is_exact_element(g):
                exact[name] = element_error(
                    model(act_on_layout(x, g, ambient, in_layout)), y, g, ambient, out_layout
                )
            else:
                gx = act_on_layout(x_disc, g, ambient, in_layout)
                y_ref = cast(torch.Tensor, y_disc)  # set above: an inexact element, so tested is inexact
                interpolated[name] = element_error(model(gx), y_ref, g, ambient, out_layout, within_disc=True)
    return EquivarianceReport(
        module=type(module).__name__,
        group=str(tested),
        ambient=str(ambient),
        dtype=dtype,
        layout=f"{in_layout} {list(x.shape)} -> {out_layout} {list(y.shape)}",
        tolerance=bound,
        exact=exact,
        interpolated=interpolated,
        interpolated_tolerance=interpolated_atol,
    )


def assert_equivariant(
    module: nn.Module,
    group: PlanarGroup | str | None = None,
    dtype: torch.dtype = torch.float64,
    atol: float | None = None,
    **options: Any,
) -> EquivarianceReport:
    """Raise ``AssertionError`` naming the worst element unless ``module`` is equivariant.

    Same arguments as ``equivariance_report`` (``options``: ``interpolated_atol``, ``x``,
    ``size``, ``seed``), whose report it returns when the check passes. Interpolated
    (45-degree) elements without ``interpolated_atol`` are not asserted; their measured errors
    come as an ``InexactEquivarianceWarning`` instead of passing silently.

    >>> from equinas.nn import GroupConv
    >>> report = assert_equivariant(GroupConv(2, 3, 3, "C2", "D4"))
    >>> report.group, sorted(report.exact)
    ('C2', ['R(180)'])
    """
    __tracebackhide__ = True  # pytest shows the caller's frame
    report = equivariance_report(module, group, dtype, atol, **options)
    failures = report.failures()
    if failures:
        name, err, bound = failures[0]
        others = ", ".join(f for f, _, _ in failures[1:])
        also = f" (also failing: {others})" if others else ""
        raise AssertionError(
            f"{report.module} is not {report.group}-equivariant in {dtype}: element {name} has "
            f"relative error {err:.3g} > {bound:.0e}{also}\n{report}"
        )
    if report.interpolated and report.interpolated_tolerance is None:
        worst = max(report.interpolated, key=report.interpolated.__getitem__)
        warnings.warn(
            f"{report.module}: {len(report.interpolated)} interpolated element(s) of {report.group} were "
            f"measured, not asserted (worst {worst}: {report.interpolated[worst]:.3g} inside the "
            "inscribed disc); pass interpolated_atol= to hold them to a bound",
            InexactEquivarianceWarning,
            stacklevel=2,
        )
    return report


__all__ = [
    "AUTOCAST_DTYPES",
    "TOLERANCES",
    "EquivarianceReport",
    "InexactEquivarianceWarning",
    "assert_equivariant",
    "element_name",
    "equivariance_report",
    "smooth_noise",
    "tolerance",
]
