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

Progressive discretisation: ``prune_to(keep)`` removes all but the ``keep`` active candidates
of largest ``alpha`` for good (a boolean buffer ``active`` in the state dict); ``z`` is the
softmax over the active candidates only (``z_i = 0`` for a pruned one, which no longer enters
the filter nor receives gradients). A layer built with a ``HalvingSchedule`` prunes itself as
training reaches the times the schedule names (``set_training_time``, a trainer hook).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from equinas.groups import PlanarGroup, intersection, parse_group, subgroups
from equinas.nn.basis import KernelBasis
from equinas.nn.conv import ConvBase, RegularConv, regular_conv_from_weight
from equinas.nn.expansion import FilterExpansion


@dataclass(frozen=True)
class HalvingSchedule:
    """Successive halving of a layer's candidates over the window ``[begin, end]`` (epochs).

    With ``K`` candidates there are ``H = ceil(log2 K)`` halvings (each keeps ``ceil(n / 2)``);
    every halving gets twice the time of the one before it (the survivors are ever closer, so
    each decision needs more evidence than the last): the ``j``-th comes at
    ``t_j = begin + (end - begin) (2^j - 1) / (2^H - 1)``, and one candidate is left from
    ``end`` on.

    >>> schedule = HalvingSchedule(begin=0.0, end=15.0)
    >>> [schedule.keep(10, t) for t in (0.0, 0.9, 1.0, 3.0, 7.0, 14.9, 15.0, 20.0)]
    [10, 10, 5, 3, 2, 2, 1, 1]
    >>> [schedule.keep(5, t) for t in (2.0, 2.2, 6.5, 15.0)]
    [5, 3, 2, 1]
    """

    begin: float
    end: float

    def __post_init__(self) -> None:
        finite = all(isinstance(v, int | float) and math.isfinite(v) for v in (self.begin, self.end))
        if not finite or not 0 <= self.begin < self.end:
            raise ValueError(f"a halving window needs 0 <= begin < end, got [{self.begin}, {self.end}]")

    def keep(self, candidates: int, epochs_done: float) -> int:
        """Candidates left of ``candidates`` after ``epochs_done`` epochs of training."""
        halvings = math.ceil(math.log2(candidates)) if candidates > 1 else 0
        # elapsed share of the window in units of the first interval; 1e-9: a halving that
        # falls on a step boundary happens at that step despite float rounding
        units = (epochs_done - self.begin) * (2**halvings - 1) / (self.end - self.begin) + 1e-9
        done = sum(1 for j in range(1, halvings + 1) if units >= 2**j - 1)
        left = candidates
        for _ in range(done):
            left = math.ceil(left / 2)
        return left


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
        halving: prune the candidates on this schedule (default: never).
        normalize: rescale every candidate's expanded filter to the norm of its He
            initialisation before mixing, so that ``z`` alone sets each candidate's share of
            the mixture (without it, a candidate whose filter grows faster dominates whatever
            ``z`` says).

    One convolution computes the weighted sum of the K candidate convolutions (Eq. 10), and
    the layer is equivariant to the common subgroup:

    >>> layer = MixedGroupConv(2, 3, 3, "D4", groups=["D4", "C4", "C2"])
    >>> x = torch.randn(1, 2, 8, 9, 9)
    >>> torch.allclose(layer(x), layer.forward_naive(x), atol=1e-5)
    True
    >>> str(layer.common), [k.numel() for k in layer.kernels]  # C_out C_in |G|^2/|G_i| k^2
    ('C2', [432, 864, 1728])
    """

    active: torch.Tensor  # buffer, registered in __init__

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
        halving: HalvingSchedule | None = None,
        normalize: bool = False,
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
        expansions = [FilterExpansion(amb, g, kernel_size, lifting, self.basis) for g in self.groups]
        self.expansions = nn.ModuleList(expansions)
        self.common_expansion = FilterExpansion(amb, self.common, kernel_size, lifting, self.basis)
        self.kernels = nn.ParameterList(
            nn.Parameter(torch.empty(e.weight_shape(out_channels, in_channels))) for e in expansions
        )
        logits = [0.0] * len(self.groups) if alpha_init is None else list(alpha_init)
        if len(logits) != len(self.groups):
            raise ValueError(f"alpha_init has {len(logits)} values for {len(self.groups)} groups")
        self.alpha = nn.Parameter(torch.tensor(logits, dtype=torch.get_default_dtype()))
        self.register_buffer("active", torch.ones(len(self.groups), dtype=torch.bool))
        # the indices of the active candidates as plain ints, kept in step with ``active`` by
        # ``prune_to`` and state loading: the forward pass reads them without a tensor->list
        # conversion (which torch.compile cannot trace)
        self._active_indices = tuple(range(len(self.groups)))
        self.halving = halving
        self.normalize = normalize
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal kernels (fan-in of the expanded filter); logits are left as they are."""
        with torch.no_grad():
            for kernel in self.kernels:
                kernel.normal_(0.0, math.sqrt(2.0 / self.fan_in))

    def mixing_weights(self) -> torch.Tensor:
        """``z = softmax(alpha)`` over the active candidates (0 for pruned ones), shape ``[K]``."""
        return torch.softmax(self.alpha.masked_fill(~self.active, -math.inf), dim=0)

    def architecture_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    @property
    def num_active(self) -> int:
        return len(self._active_indices)

    def active_groups(self) -> list[PlanarGroup]:
        return [self.groups[i] for i in self._active_indices]

    def prune_to(self, keep: int) -> list[PlanarGroup]:
        """Deactivate all but the ``keep`` active candidates of largest ``alpha`` (ties: the
        earlier candidate stays); returns the pruned groups. A pruned candidate never returns."""
        if keep < 1:
            raise ValueError(f"a mixed layer keeps at least one candidate, got keep={keep}")
        active = list(self._active_indices)
        if keep >= len(active):
            return []
        alpha = self.alpha.detach().tolist()
        ranked = sorted(active, key=lambda i: (-alpha[i], i))
        dropped = sorted(ranked[keep:])
        self.active[dropped] = False
        self._active_indices = tuple(i for i in active if i not in dropped)
        return [self.groups[i] for i in dropped]

    def set_training_time(self, epochs_done: float) -> None:
        """Trainer hook: prune to what the halving schedule keeps at ``epochs_done`` (idempotent)."""
        if self.halving is not None:
            self.prune_to(self.halving.keep(len(self.groups), epochs_done))

    def _mixture(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(z_i, E_i(psi_i))`` of every active candidate; ``E_i(psi_i)`` is the expanded
        filter ``[C_out*|G|, ..., k, k]`` of candidate ``G_i``."""
        z = self.mixing_weights()
        return [(z[i], self._expanded(i)) for i in self._active_indices]

    def _expanded(self, i: int) -> torch.Tensor:
        """``E_i(psi_i)``, rescaled to the He-initialisation norm ``sqrt(2 n / fan_in)`` of an
        ``n``-entry filter when ``normalize``."""
        filt = self.expansions[i](self.kernels[i])
        if not self.normalize:
            return filt
        return filt * (math.sqrt(2.0 * filt.numel() / self.fan_in) / filt.norm())

    def common_weight(self) -> torch.Tensor:
        """``psi_0 = sum_i z_i relax_{G0}(psi_i)``: the reduced kernel over ``G0`` (Eq. 11)."""
        # a sum over the active candidates, of which there is at least one: a tensor, never sum()'s 0
        return cast(torch.Tensor, sum(zi * self.common_expansion.restrict(f) for zi, f in self._mixture()))

    def build_filter(self) -> torch.Tensor:
        """``E_{G0}(psi_0)``, computed as ``sum_i z_i E_i(psi_i)``.

        Both are equal: every ``E_i(psi_i)`` is G0-equivariant and ``E_{G0}`` undoes
        ``relax_{G0}`` on G0-equivariant filters, so the read-off/expand round trip of
        ``common_weight`` is skipped in the hot path.
        """
        return cast(torch.Tensor, sum(zi * f for zi, f in self._mixture()))  # >= 1 term: a tensor

    def forward_naive(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 10: the weighted sum of K separate convolutions (reference, K times slower)."""
        self.check_input(x)
        terms = (zi * self.conv_with(x, f, None) for zi, f in self._mixture())
        return cast(torch.Tensor, sum(terms))  # >= 1 term: a tensor

    def to_common_layer(self) -> RegularConv:
        """A plain ``G0`` layer with the same function as this mixed layer (frozen ``z``)."""
        return regular_conv_from_weight(self, self.common, self.common_weight().detach())

    def discretize(self, group: PlanarGroup | str | None = None) -> RegularConv:
        """The candidate layer of ``group`` (default: the largest ``z``) with its own kernel."""
        if group is None:
            pick = int(torch.argmax(self.mixing_weights()))
        else:
            wanted = parse_group(group, ambient=self.ambient)
            if wanted not in self.groups:
                raise ValueError(f"{wanted} is not a candidate of this layer: {self.groups}")
            pick = self.groups.index(wanted)
        kernel = self.kernels[pick].detach()
        if self.normalize:  # the expansion is linear: scale the kernel as its filter is scaled
            with torch.no_grad():
                kernel = kernel * (self._expanded(pick).norm() / self.expansions[pick](kernel).norm())
        return regular_conv_from_weight(self, self.groups[pick], kernel)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # noqa: ANN001
        """States saved before pruning existed lack ``active``: every candidate is active."""
        state_dict.setdefault(prefix + "active", torch.ones_like(self.active))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._active_indices = tuple(self.active.nonzero().flatten().tolist())

    def extra_repr(self) -> str:
        flags = self.active.tolist()
        names = ", ".join(str(g) if on else f"{g} (pruned)" for g, on in zip(self.groups, flags, strict=True))
        kind = "lifting" if self.lifting else "group"
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, {kind}, "
            f"ambient={self.ambient}, groups=[{names}], common={self.common}, basis={self.basis.name}, "
            f"{self.layout_repr()}"
        )
