"""Approximately equivariant convolutions used as baselines, all computed as ONE conv.

Each layer is an H-constrained lifting/group convolution (H a subgroup of the ambient G)
plus a symmetry-breaking part, expressed as an additive change of the expanded filter:

* ``ResidualPathwayConv`` -- residual pathway priors (Finzi, Benton & Wilson 2021):
  ``W = E_H(psi) + W_free`` with a broad L2 prior on ``psi`` and a narrow one on the
  unconstrained ``W_free`` (``regularization_loss``).
* ``RelaxedGroupConv`` -- relaxed group convolution (Wang, Walters & Yu 2022): ``L`` kernel
  banks mixed with weights that may vary over the output group element,
  ``W[(d, g), :] = sum_l w_l(g) E_H(psi_l)[(d, g), :]``; constant ``w_l`` on the cosets ``Hg``
  is exactly H-equivariant and the penalty ``alpha * sum |w_l(g) - w_l(g')|`` pulls towards it.
* ``ConstraintRelaxedConv`` -- training by constraint relaxation (Pertigkiozoglou et al.
  2024): ``W = E_H(psi) + theta * W_free`` with ``W_free`` initialised to zero, ``theta``
  following a triangular schedule that ends at 0, and a penalty on ``W_free`` and on its
  discrete Lie derivatives ``g.W_free - W_free`` for the generators ``g`` of ``H``.

Every layer can be ``project()``-ed to the plain ``H`` layer (dropping the breaking part).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from equinas.groups import PlanarGroup, act_on_filters, generators
from equinas.nn.basis import KernelBasis
from equinas.nn.conv import ConvBase, RegularConv, regular_conv_from_weight, resolve_groups
from equinas.nn.expansion import FilterExpansion


class _ConstrainedBase(ConvBase):
    """An H-constrained kernel ``weight`` (as in ``RegularConv``) plus subclass-specific parts."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        group: PlanarGroup | str,
        ambient: PlanarGroup | str | None,
        lifting: bool,
        basis: str | KernelBasis,
        banks: int | None = None,
    ):
        amb, grp = resolve_groups(group, ambient)
        super().__init__(in_channels, out_channels, kernel_size, amb, lifting, basis)
        self.group = grp
        self.expansion = FilterExpansion(amb, grp, kernel_size, lifting, self.basis)
        shape = self.expansion.weight_shape(out_channels, in_channels)
        self.weight = nn.Parameter(torch.empty(shape if banks is None else (banks, *shape)))
        with torch.no_grad():
            self.weight.normal_(0.0, math.sqrt(2.0 / self.fan_in))

    def filter_shape(self) -> tuple[int, int, int, int]:
        group_in = 1 if self.lifting else self.ambient.order
        k = self.kernel_size
        return (self.out_channels * self.ambient.order, self.in_channels * group_in, k, k)

    def equivariant_filter(self) -> torch.Tensor:
        return self.expansion(self.weight)

    def project(self) -> RegularConv:
        """The plain H layer with this layer's equivariant kernel (breaking part dropped)."""
        return regular_conv_from_weight(self, self.group, self.equivariant_kernel())

    def equivariant_kernel(self) -> torch.Tensor:
        return self.weight.detach()

    def extra_repr(self) -> str:
        kind = "lifting" if self.lifting else "group"
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, {kind}, "
            f"group={self.group}, ambient={self.ambient}, basis={self.basis.name}, {self.layout_repr()}"
        )


class ResidualPathwayConv(_ConstrainedBase):
    """RPP: ``E_H(psi) + W_free``; priors ``equivariant_decay*|psi|^2 + free_decay*|W_free|^2``.

    Defaults follow the RPP CIFAR setting (1e-4 on the equivariant path, 1e-2 on the free
    path); ``W_free`` starts at ``free_init`` times the He scale.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        group: PlanarGroup | str,
        ambient: PlanarGroup | str | None = None,
        lifting: bool = False,
        basis: str | KernelBasis = "auto",
        equivariant_decay: float = 1e-4,
        free_decay: float = 1e-2,
        free_init: float = 1e-3,
    ):
        super().__init__(in_channels, out_channels, kernel_size, group, ambient, lifting, basis)
        self.equivariant_decay, self.free_decay = equivariant_decay, free_decay
        scale = free_init * math.sqrt(2.0 / self.fan_in)
        self.free = nn.Parameter(torch.randn(self.filter_shape()) * scale)

    def build_filter(self) -> torch.Tensor:
        return self.equivariant_filter() + self.free

    def regularization_loss(self) -> torch.Tensor:
        return (
            self.equivariant_decay * self.weight.square().sum() + self.free_decay * self.free.square().sum()
        )


class RelaxedGroupConv(_ConstrainedBase):
    """Relaxed group conv with ``banks`` kernels and relaxed weights ``w [banks, |G|]``.

    ``w`` starts at ``1/banks`` (exactly equivariant); ``regularization_loss`` is
    ``alpha * sum_l sum_{g ~ g'} |w_l(g) - w_l(g')|`` over pairs in the same coset ``Hg``.
    """

    same_coset: torch.Tensor  # non-persistent buffer, registered in __init__

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        group: PlanarGroup | str,
        ambient: PlanarGroup | str | None = None,
        lifting: bool = False,
        basis: str | KernelBasis = "auto",
        banks: int = 2,
        alpha: float = 1e-4,
    ):
        if banks < 1:
            raise ValueError(f"banks must be >= 1, got {banks}")
        super().__init__(in_channels, out_channels, kernel_size, group, ambient, lifting, basis, banks=banks)
        self.banks, self.alpha = banks, alpha
        self.relaxed_weights = nn.Parameter(torch.full((banks, self.ambient.order), 1.0 / banks))
        coset = self.expansion.coset
        self.register_buffer("same_coset", (coset[:, None] == coset[None, :]).float(), persistent=False)

    def build_filter(self) -> torch.Tensor:
        filters = torch.stack([self.expansion(w) for w in self.weight])  # [L, C_out*|G|, ...]
        per_row = self.relaxed_weights.repeat(1, self.out_channels)  # row (d, g) -> w_l(g)
        return (per_row[..., None, None, None] * filters).sum(0)

    def regularization_loss(self) -> torch.Tensor:
        w = self.relaxed_weights
        diffs = (w[:, :, None] - w[:, None, :]).abs() * self.same_coset
        return self.alpha * diffs.sum()

    def equivariant_kernel(self) -> torch.Tensor:
        """Banks merged with each bank's mean relaxed weight: the nearest equivariant kernel."""
        mean = self.relaxed_weights.detach().mean(1)
        return (mean.view(-1, *[1] * (self.weight.dim() - 1)) * self.weight.detach()).sum(0)


def triangular_theta(epoch: int, num_epochs: int) -> float:
    """``theta`` for epoch ``epoch`` (0-based) of ``num_epochs``: 0 -> 1 -> 0, exactly 0 at the end.

    With ``e = epoch + 1``: ``2e/E`` for ``e <= E/2`` and ``2 - 2e/E`` after (Pertigkiozoglou et al.).
    """
    if num_epochs < 1 or not 0 <= epoch < num_epochs:
        raise ValueError(f"epoch {epoch} outside 0..{num_epochs - 1}")
    e = epoch + 1
    return 2 * e / num_epochs if 2 * e <= num_epochs else 2 - 2 * e / num_epochs


class ConstraintRelaxedConv(_ConstrainedBase):
    """``E_H(psi) + theta * W_free`` with ``W_free = 0`` at start and ``theta`` scheduled to 0.

    ``regularization_loss = weight * (|W_free| + sum_g |g.W_free - W_free|)`` over the
    generators ``g`` of ``H`` (the discrete Lie derivative in weight space).
    """

    theta: torch.Tensor  # buffer, registered in __init__

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        group: PlanarGroup | str,
        ambient: PlanarGroup | str | None = None,
        lifting: bool = False,
        basis: str | KernelBasis = "auto",
        penalty: float = 1e-2,
    ):
        super().__init__(in_channels, out_channels, kernel_size, group, ambient, lifting, basis)
        self.penalty = penalty
        self.free = nn.Parameter(torch.zeros(self.filter_shape()))
        self.register_buffer("theta", torch.tensor(1.0))
        self._generators = generators(self.ambient.embed(self.group))

    def set_training_progress(self, epoch: int, num_epochs: int) -> None:
        self.theta.fill_(triangular_theta(epoch, num_epochs))

    def build_filter(self) -> torch.Tensor:
        return self.equivariant_filter() + self.theta * self.free

    def lie_derivative(self) -> torch.Tensor:
        """``sum_g |g.W_free - W_free|`` over the generators of ``H``."""
        total = self.free.new_zeros(())
        for g in self._generators:
            total = total + (act_on_filters(self.free, g, self.ambient, self.lifting) - self.free).norm()
        return total

    def regularization_loss(self) -> torch.Tensor:
        return self.penalty * (self.free.norm() + self.lie_derivative())
