"""The [G]-mixed equivariant layer (paper Section 3.2, Eqs. 10-11).

For a set of groups ``[G] = {G_1, ..., G_K}`` inside one ambient group, the layer keeps one
reduced kernel ``psi_i`` per group and architecture logits ``alpha``; ``z = softmax(alpha)``.
Every kernel is transformed to the common subgroup ``G0 = G_1 ∩ ... ∩ G_K`` by the
relaxation morphism (Eq. 4) and the transformed kernels are summed:

    psi_0 = sum_i z_i * relax_{G0}(psi_i)                      (Eq. 11)
    y     = f *_{G0} psi_0                                      (ONE convolution)

which equals the naive weighted sum of K convolutions ``sum_i z_i (f *_{G_i} psi_i)``
(Eq. 10) because every step is linear. ``forward_naive`` computes Eq. 10 for checks and
benchmarks. Every candidate keeps the same ambient width ``C*|G|`` (its ``G_i`` channels
number ``C*|G:G_i|``), so the parameters of candidate ``i`` number ``C_out C_in |G|^2 n /|G_i|``
(``n`` coefficients per kernel: ``k^2`` pixels, or the size of a harmonic basis).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from equinas.groups import PlanarGroup, intersection, parse_group, subgroups
from equinas.nn.basis import KernelBasis
from equinas.nn.conv import ConvBase, RegularConv, regular_conv_from_weight
from equinas.nn.expansion import FilterExpansion


def prior_logits(groups: Sequence[PlanarGroup], favoured: PlanarGroup, strength: float) -> list[float]:
    """Logits ``0`` for ``favoured`` and ``-strength`` for every other group."""
    if favoured not in groups:
        raise ValueError(f"prior group {favoured} is not among {[str(g) for g in groups]}")
    return [0.0 if g == favoured else -strength for g in groups]


class MixedGroupConv(ConvBase):
    """A [G]-mixed lifting (``lifting=True``) or group convolution computed as one conv.

    Args:
        in_channels, out_channels: ambient channels (each spans ``|G|`` planes).
        kernel_size: odd kernel size.
        ambient: the ambient group ``G`` of the feature layout.
        groups: the set ``[G]`` (names or groups, subgroups of ``ambient``); default: the
            whole subgroup lattice of ``ambient``.
        lifting: image input instead of group feature maps.
        alpha_init: initial logits (default all zero = uniform mixture); see ``prior_logits``.
        basis: kernel parametrisation shared by every candidate (``equinas.nn.basis``).

    One convolution computes the weighted sum of the K candidate convolutions (Eq. 10), and
    the layer is equivariant to the common subgroup:

    >>> layer = MixedGroupConv(2, 3, 3, "D4", groups=["D4", "C4", "C2"])
    >>> x = torch.randn(1, 2, 8, 9, 9)
    >>> torch.allclose(layer(x), layer.forward_naive(x), atol=1e-5)
    True
    >>> str(layer.common), [k.numel() for k in layer.kernels]  # C_out C_in |G|^2/|G_i| k^2
    ('C2', [432, 864, 1728])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        ambient: PlanarGroup | str,
        groups: Sequence[PlanarGroup | str] | None = None,
        lifting: bool = False,
        alpha_init: Sequence[float] | None = None,
        basis: str | KernelBasis = "auto",
    ):
        amb = parse_group(ambient)
        super().__init__(in_channels, out_channels, kernel_size, amb, lifting, basis)
        chosen = subgroups(amb) if groups is None else [parse_group(g, ambient=amb) for g in groups]
        if not chosen:
            raise ValueError("a mixed layer needs at least one group")
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"duplicate groups in {[str(g) for g in chosen]}")
        self.groups: tuple[PlanarGroup, ...] = tuple(chosen)
        self.common = intersection(self.groups)
        self.expansions = nn.ModuleList(
            FilterExpansion(amb, g, kernel_size, lifting, self.basis) for g in self.groups
        )
        self.common_expansion = FilterExpansion(amb, self.common, kernel_size, lifting, self.basis)
        self.kernels = nn.ParameterList(
            nn.Parameter(torch.empty(e.weight_shape(out_channels, in_channels))) for e in self.expansions
        )
        logits = [0.0] * len(self.groups) if alpha_init is None else list(alpha_init)
        if len(logits) != len(self.groups):
            raise ValueError(f"alpha_init has {len(logits)} values for {len(self.groups)} groups")
        self.alpha = nn.Parameter(torch.tensor(logits, dtype=torch.get_default_dtype()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal kernels (fan-in of the expanded filter); logits are left as they are."""
        with torch.no_grad():
            for kernel in self.kernels:
                kernel.normal_(0.0, math.sqrt(2.0 / self.fan_in))

    def mixing_weights(self) -> torch.Tensor:
        """``z = softmax(alpha)``, shape ``[K]``."""
        return torch.softmax(self.alpha, dim=0)

    def architecture_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def candidate_filters(self) -> list[torch.Tensor]:
        """Expanded filter of every candidate ``G_i``, each ``[C_out*|G|, ..., k, k]``."""
        return [e(k) for e, k in zip(self.expansions, self.kernels, strict=True)]

    def common_weight(self) -> torch.Tensor:
        """``psi_0 = sum_i z_i relax_{G0}(psi_i)``: the reduced kernel over ``G0`` (Eq. 11)."""
        z = self.mixing_weights()
        relaxed = [self.common_expansion.restrict(f) for f in self.candidate_filters()]
        return sum(zi * w for zi, w in zip(z, relaxed, strict=True))

    def build_filter(self) -> torch.Tensor:
        """``E_{G0}(psi_0)``, computed as ``sum_i z_i E_i(psi_i)``.

        Both are equal: every ``E_i(psi_i)`` is G0-equivariant and ``E_{G0}`` undoes
        ``relax_{G0}`` on G0-equivariant filters, so the read-off/expand round trip of
        ``common_weight`` is skipped in the hot path.
        """
        z = self.mixing_weights()
        return sum(zi * f for zi, f in zip(z, self.candidate_filters(), strict=True))

    def forward_naive(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 10: the weighted sum of K separate convolutions (reference, K times slower)."""
        self.check_input(x)
        z = self.mixing_weights()
        outs = [zi * self.conv_with(x, f, None) for zi, f in zip(z, self.candidate_filters(), strict=True)]
        return sum(outs)

    def to_common_layer(self) -> RegularConv:
        """A plain ``G0`` layer with the same function as this mixed layer (frozen ``z``)."""
        return regular_conv_from_weight(self, self.common, self.common_weight().detach())

    def discretize(self, group: PlanarGroup | str | None = None) -> RegularConv:
        """The candidate layer of ``group`` (default: the largest ``z``) with its own kernel."""
        if group is None:
            pick = int(torch.argmax(self.alpha))
        else:
            wanted = parse_group(group, ambient=self.ambient)
            if wanted not in self.groups:
                raise ValueError(f"{wanted} is not a candidate of this layer: {self.groups}")
            pick = self.groups.index(wanted)
        return regular_conv_from_weight(self, self.groups[pick], self.kernels[pick].detach())

    def extra_repr(self) -> str:
        names = ", ".join(str(g) for g in self.groups)
        kind = "lifting" if self.lifting else "group"
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, {kind}, "
            f"ambient={self.ambient}, groups=[{names}], common={self.common}, basis={self.basis.name}, "
            f"{self.layout_repr()}"
        )
