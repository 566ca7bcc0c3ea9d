"""Regular group convolutions: the lifting convolution Z2 -> G and the group convolution G -> G.

Both keep their learnable weight in the reduced form of ``FilterExpansion`` and expand it
to one ``conv2d`` filter per forward pass (paper Section 3.1). A layer constrained to a
subgroup ``H`` of the ambient group ``G`` is the relaxation of a G-layer (paper Eqs. 3-4);
``H = G`` gives the plain G-CNN layer.

Shapes (``C`` ambient channels, ``|G|`` ambient order):
    LiftingConv: ``[B, C_in, H, W]`` -> ``[B, C_out, |G|, H, W]``
    GroupConv:   ``[B, C_in, |G|, H, W]`` -> ``[B, C_out, |G|, H, W]``
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from equinas.groups import PlanarGroup, parse_group
from equinas.nn.basis import KernelBasis, kernel_basis
from equinas.nn.cache import CachedFilter
from equinas.nn.expansion import FilterExpansion


def check_count(name: str, value: object) -> None:
    """``value`` must be a positive integer (``bool`` and ``float`` are refused, ``TypeError``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def check_kernel_size(kernel_size: int) -> None:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, numbers.Integral):
        raise TypeError(
            f"kernel_size must be a positive odd integer, got {type(kernel_size).__name__} {kernel_size!r}"
        )
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be a positive odd number (even kernels have no centre pixel "
            f"to rotate about), got {kernel_size}"
        )


def resolve_groups(
    group: PlanarGroup | str, ambient: PlanarGroup | str | None
) -> tuple[PlanarGroup, PlanarGroup]:
    """``(ambient, group)`` with ``group`` embedded in ``ambient`` (default: the group itself)."""
    amb = parse_group(group if ambient is None else ambient)
    return amb, parse_group(group, ambient=amb)


class ConvBase(CachedFilter):
    """A convolution on ambient-layout maps computed as ONE ``conv2d`` with an expanded filter.

    Subclasses define ``build_filter()`` (``[C_out*|G|, C_in*|G| or C_in, k, k]``) and may
    define ``expanded_bias()``. ``lifting`` selects image input ``[B, C_in, H, W]`` instead
    of group feature maps ``[B, C_in, |G|, H, W]``; ``basis`` parametrises the kernels
    (``equinas.nn.basis``: ``'pixel'``, ``'harmonic'``, or ``'auto'``: harmonic exactly when
    the ambient group has 45-degree-like elements).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        ambient: PlanarGroup,
        lifting: bool,
        basis: str | KernelBasis = "auto",
    ):
        super().__init__()
        check_kernel_size(kernel_size)
        check_count("in_channels", in_channels)
        check_count("out_channels", out_channels)
        self.in_channels, self.out_channels, self.kernel_size = (
            int(in_channels),
            int(out_channels),
            int(kernel_size),
        )
        self.ambient, self.lifting = ambient, lifting
        self.basis = kernel_basis(basis, kernel_size, ambient)
        # layout of filter and output (``equinas.nn.layout``); a plain attribute, not state
        self.memory_format = torch.contiguous_format
        # called with the gradient of the expanded filter after every backward pass through
        # ``forward`` (a probe that watches training sets it); not state
        self.filter_grad_hook: Callable[[torch.Tensor], None] | None = None

    @property
    def fan_in(self) -> int:
        """Inputs summed into each output value: ``C_in * |G_in| * k * k``."""
        group_in = 1 if self.lifting else self.ambient.order
        return self.in_channels * group_in * self.kernel_size**2

    def expanded_bias(self) -> torch.Tensor | None:
        """Bias per ambient conv channel ``[C_out*|G|]``, or ``None``."""
        return None

    def input_shape_hint(self) -> str:
        if self.lifting:
            return f"[B, {self.in_channels}, H, W]"
        return f"[B, {self.in_channels}, {self.ambient.order}, H, W]"

    def output_shape_hint(self) -> str:
        return f"[B, {self.out_channels}, {self.ambient.order}, H, W]"

    def layout_repr(self) -> str:
        """``input -> output`` shapes and the parameter count, for ``extra_repr``."""
        params = sum(p.numel() for p in self.parameters())
        return f"{self.input_shape_hint()} -> {self.output_shape_hint()}, params={params}"

    def check_input(self, x: torch.Tensor) -> None:
        expected = (self.in_channels,) if self.lifting else (self.in_channels, self.ambient.order)
        if x.dim() != len(expected) + 3 or tuple(x.shape[1 : 1 + len(expected)]) != expected:
            raise ValueError(
                f"{type(self).__name__} ({self.ambient} layout) expects input of shape "
                f"{self.input_shape_hint()}, got {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        filt = self.filter()
        if self.filter_grad_hook is not None and filt.requires_grad:
            filt.register_hook(self.filter_grad_hook)
        return self.conv_with(x, filt, self.expanded_bias())

    def conv_with(self, x: torch.Tensor, filt: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """Convolve ambient-layout ``x`` with an expanded filter; returns ``[B, C_out, |G|, H, W]``
        laid out in ``self.memory_format`` (its 4-D view ``[B, C_out*|G|, H, W]``)."""
        batch, height, width = x.shape[0], x.shape[-2], x.shape[-1]
        planes = math.prod(x.shape[1:-2])  # explicit: reshape cannot infer -1 for an empty batch
        layout = self.memory_format
        if layout == torch.channels_last and planes == 1:
            # one input plane: its NCHW and channels-last layouts are the same memory and torch
            # picks the conv's path by the strides; the channels-last ones give channels-last
            # output, forward and backward 1.5x faster than with a zero second input channel
            # and 1.9x faster than in NCHW (the demo network's lifting conv, one thread)
            flat = x.reshape(batch, height, width, 1).permute(0, 3, 1, 2)
        else:
            flat = x.reshape(batch, planes, height, width)
        flat, filt = flat.contiguous(memory_format=layout), filt.contiguous(memory_format=layout)
        out = F.conv2d(flat, filt, bias, padding=self.kernel_size // 2)
        return out.reshape(batch, self.out_channels, self.ambient.order, height, width)

    def export(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` on flattened ``[B, C*|G|, H, W]`` maps with the same function."""
        filt = self.filter().detach()
        bias = self.expanded_bias()
        conv = nn.Conv2d(
            filt.shape[1],
            filt.shape[0],
            self.kernel_size,
            padding=self.kernel_size // 2,
            bias=bias is not None,
        ).to(device=filt.device, dtype=filt.dtype)
        with torch.no_grad():
            conv.weight.copy_(filt)
            if bias is not None and conv.bias is not None:  # conv has a bias exactly when bias does
                conv.bias.copy_(bias)
        return conv


class RegularConv(ConvBase):
    """A lifting or group convolution constrained to one subgroup; use the two subclasses."""

    lifting: bool

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        group: PlanarGroup | str,
        ambient: PlanarGroup | str | None = None,
        bias: bool = False,
        basis: str | KernelBasis = "auto",
    ):
        amb, grp = resolve_groups(group, ambient)
        super().__init__(in_channels, out_channels, kernel_size, amb, self.lifting, basis)
        self.group = grp
        self.expansion = FilterExpansion(amb, grp, kernel_size, self.lifting, self.basis)
        self.weight = nn.Parameter(torch.empty(self.expansion.weight_shape(out_channels, in_channels)))
        self.bias = nn.Parameter(torch.zeros(out_channels * self.expansion.index)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal initialisation with the fan-in of the expanded filter."""
        with torch.no_grad():
            self.weight.normal_(0.0, math.sqrt(2.0 / self.fan_in))
            if self.bias is not None:
                self.bias.zero_()

    def build_filter(self) -> torch.Tensor:
        return self.expansion(self.weight, self.memory_format)

    def expanded_bias(self) -> torch.Tensor | None:
        return None if self.bias is None else self.expansion.vector(self.bias).reshape(-1)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"group={self.group}, ambient={self.ambient}, bias={self.bias is not None}, "
            f"basis={self.basis.name}, {self.layout_repr()}"
        )


class LiftingConv(RegularConv):
    """Lifting convolution (paper Eq. 2): images ``[B, C_in, H, W]`` -> ``[B, C_out, |G|, H, W]``.

    Equivariant to ``group`` (a subgroup of ``ambient``): ``conv(g.x) = g.conv(x)`` for every
    ``g`` in ``group``, exactly for elements that are multiples of 90 degrees. Its weight has
    ``C_out |G:H| C_in`` kernels of ``|H|``-orbit-free pixels (``k*k`` each).

    >>> conv = LiftingConv(1, 4, 3, "D4")
    >>> conv  # doctest: +NORMALIZE_WHITESPACE
    LiftingConv(
      1, 4, kernel_size=3, group=D4, ambient=D4, bias=False, basis=pixel,
      [B, 1, H, W] -> [B, 4, 8, H, W], params=36
      (expansion): FilterExpansion()
    )
    >>> conv(torch.randn(2, 1, 9, 9)).shape
    torch.Size([2, 4, 8, 9, 9])
    >>> LiftingConv(1, 4, 3, "C1", ambient="D4").weight.numel()  # |D4:C1| = 8 times more
    288
    """

    lifting = True


class GroupConv(RegularConv):
    """Group convolution (paper Eq. 1): ``[B, C_in, |G|, H, W]`` -> ``[B, C_out, |G|, H, W]``.

    Equivariant to ``group`` ``H`` (a subgroup of ``ambient`` ``G``); its weight holds
    ``C_out C_in |G|^2 / |H|`` kernels. Any module built from these layers can be checked with
    ``equinas.testing.assert_equivariant``.

    >>> conv = GroupConv(4, 4, 3, "C4", ambient="D4")  # C4-equivariant on D4-layout maps
    >>> conv(torch.randn(2, 4, 8, 9, 9)).shape
    torch.Size([2, 4, 8, 9, 9])
    >>> conv.weight.numel() == 4 * 4 * 8**2 // 4 * 3 * 3
    True
    """

    lifting = False


def regular_conv_from_weight(like: ConvBase, group: PlanarGroup, weight: torch.Tensor) -> RegularConv:
    """A ``LiftingConv``/``GroupConv`` over ``group`` holding ``weight``, with ``like``'s widths,
    kernel size, kernel basis, ambient group and input kind (on ``weight``'s device and dtype)."""
    cls = LiftingConv if like.lifting else GroupConv
    layer = cls(like.in_channels, like.out_channels, like.kernel_size, group, like.ambient, basis=like.basis)
    layer.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer
