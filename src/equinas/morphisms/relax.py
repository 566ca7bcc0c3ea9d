"""The equivariance relaxation morphism (paper Section 3.1, Eqs. 3-9).

A layer constrained to ``H`` is reparameterised as a layer constrained to a subgroup
``K <= H`` with exactly the same function: the new reduced kernel is read off the old
expanded filter (``FilterExpansion.restrict``), i.e.

    psi~[(d, t), (c, s)](k) = psi[d, c](t^-1 k s)        (Eq. 4, t, s in R = K\\H reps)

which holds for every K-equivariant filter. The new layer reproduces the old one exactly
whenever the kernel action is a homomorphism on the products ``k t`` (k in K, t in R):
always for groups of multiples of 90 degrees, for the rotation subgroups of C_N/D_N, and
for every subgroup with the harmonic kernel basis (``equinas.nn.basis``). For pixel kernels
and targets inside D_N (N > 4) that contain interpolated mirrors, composing two
interpolations blurs the kernel and the function is only approximately kept; ``relax``
then emits an ``InexactRelaxationWarning`` with the measured deviation. Feature maps keep their ambient layout
``[B, C, |G|, H, W]`` (the relaxed map ``f~[(c, s)](k) = f[c](k s)`` of Eq. 3 is only a
re-indexing of the same planes), so no other layer needs rewiring and relaxing
``G -> H -> K`` gives the same layer as ``G -> K``.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from equinas.groups import PlanarGroup, parse_group
from equinas.nn import GroupBatchNorm, RegularConv
from equinas.nn.basis import KernelBasis


class InexactRelaxationWarning(UserWarning):
    """The spatial action is not exactly homomorphic on the relaxed layer's cosets."""


def _homomorphism_defect(
    ambient: PlanarGroup, group: PlanarGroup, target: PlanarGroup, basis: KernelBasis
) -> float:
    """``max |D(k t) - D(k) D(t)|`` over ``k`` in ``target`` and representatives ``t`` of it in ``group``."""
    elements = list(ambient.elements)
    mats = basis.action(ambient)
    worst = 0.0
    for t in group.coset_representatives(target):
        for h in ambient.embed(target).elements:
            prod = mats[elements.index(h)] @ mats[elements.index(t)]
            worst = max(worst, float((mats[elements.index(ambient.compose(h, t))] - prod).abs().max()))
    return worst


def _target(current: PlanarGroup, ambient: PlanarGroup, subgroup: PlanarGroup | str) -> PlanarGroup:
    target = parse_group(subgroup, ambient=ambient)
    if not target.is_subgroup_of(current):
        raise ValueError(
            f"cannot relax a {current}-equivariant layer to {target}: {target} is not a subgroup of {current}"
        )
    return target


def relax_conv(layer: RegularConv, subgroup: PlanarGroup | str) -> RegularConv:
    """A new lifting/group conv constrained to ``subgroup`` with the same function as ``layer``.

    Its weight has ``|H:K|`` times more channels on each side (group conv) or on the output
    (lifting conv) and ``|K|`` kernel planes, so its parameter count grows by ``|H:K|``.
    """
    target = _target(layer.group, layer.ambient, subgroup)
    defect = _homomorphism_defect(layer.ambient, layer.ambient.embed(layer.group), target, layer.basis)
    if defect > 1e-9:
        warnings.warn(
            f"relaxing {layer.group} to {target} composes interpolated rotations; the "
            f"function is kept only approximately (kernel action defect {defect:.2g})",
            InexactRelaxationWarning,
            stacklevel=2,
        )
    relaxed = type(layer)(
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        target,
        layer.ambient,
        bias=layer.bias is not None,
        basis=layer.basis,
    ).to(device=layer.weight.device, dtype=layer.weight.dtype)
    relaxed.train(layer.training)
    with torch.no_grad():
        relaxed.weight.copy_(relaxed.expansion.restrict(layer.build_filter()))
        if layer.bias is not None:
            ambient_bias = layer.expansion.vector(layer.bias)
            relaxed.bias.copy_(relaxed.expansion.restrict_vector(ambient_bias))
    return relaxed


def relax_norm(norm: GroupBatchNorm, subgroup: PlanarGroup | str) -> GroupBatchNorm:
    """The batch norm with affine parameters per ``subgroup``-channel; same function."""
    target = _target(norm.group, norm.ambient, subgroup)
    relaxed = GroupBatchNorm(norm.channels, target, norm.ambient, norm.eps, norm.momentum)
    relaxed.to(device=norm.weight.device, dtype=norm.weight.dtype)
    relaxed.train(norm.training)
    with torch.no_grad():
        for name in ("weight", "bias"):
            ambient_values = norm.expansion.vector(getattr(norm, name))
            getattr(relaxed, name).copy_(relaxed.expansion.restrict_vector(ambient_values))
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            getattr(relaxed, name).copy_(getattr(norm, name))
    return relaxed


def relax(module: nn.Module, subgroup: PlanarGroup | str) -> nn.Module:
    """Relax a lifting/group conv or a group batch norm to ``subgroup`` (see module doc).

    The relaxed layer computes the same function with ``|H:K|`` times more parameters, and
    only promises equivariance to ``K``:

    >>> from equinas.nn import GroupConv
    >>> conv = GroupConv(2, 2, 3, "D4")
    >>> relaxed = relax(conv, "C4")
    >>> x = torch.randn(1, 2, 8, 7, 7)
    >>> torch.allclose(relaxed(x), conv(x), atol=1e-5), relaxed.weight.numel() // conv.weight.numel()
    (True, 2)

    Notes: with pixel kernels, relaxing a D8 layer to a subgroup with interpolated mirrors
    composes two interpolations, so the function is kept only approximately, and ``relax``
    says so:

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = relax(GroupConv(1, 1, 3, "D8", basis="pixel"), "D4[axis=1]")
    >>> caught[0].category.__name__
    'InexactRelaxationWarning'
    """
    if isinstance(module, RegularConv):
        return relax_conv(module, subgroup)
    if isinstance(module, GroupBatchNorm):
        return relax_norm(module, subgroup)
    raise TypeError(
        f"relax() supports LiftingConv, GroupConv and GroupBatchNorm, got {type(module).__name__}"
    )
