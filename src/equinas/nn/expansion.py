"""Expansion of reduced group-convolution weights into plain ``conv2d`` filters.

Feature maps of a network live in the *ambient layout* of a group ``G``: a tensor
``[B, C, |G|, H, W]`` whose plane ``(c, g)`` is the value of channel ``c`` at group
element ``g`` (flattened to ``C*|G|`` conv channels, ``c``-major). A layer that is only
constrained to a subgroup ``H <= G`` is the *relaxation* of paper Eqs. 3-4: with right
coset representatives ``R`` of ``H\\G`` (``|R| = |G:H|``) it has ``C*|R|`` channels over
``H``, and channel ``(c, t)`` at ``h`` is the ambient plane ``(c, h t)``.

Its reduced weight ``psi`` has shape ``[C_out*|R|, C_in*|R|, |H|, k, k]`` (group conv) or
``[C_out*|R|, C_in, k, k]`` (lifting conv), and the ambient filter is

    W[(d, h t), (c, h' s)] = T_h psi[(d, t), (c, s)](h^-1 h')     (group conv)
    W[(d, h t), c]         = T_h psi[(d, t), c]                    (lifting conv)

where ``T_h`` is the spatial action of ``h`` on ``k x k`` kernels. With ``H = G`` this is
the usual regular group convolution (Cohen & Welling 2016); with ``H = C1`` it is a plain
convolution of ``C*|G|`` channels.

Each kernel ``psi[...]`` is stored in a ``KernelBasis`` (``equinas.nn.basis``): its ``k x k``
pixels (trailing weight dims ``k, k``) or ``n`` coefficients of band-limited harmonics
(trailing dim ``n``), with ``T_h psi = S D(h) c``.
"""

from __future__ import annotations

import torch
from torch import nn

from equinas.groups import PlanarGroup
from equinas.nn.basis import KernelBasis, kernel_basis


class FilterExpansion(nn.Module):
    """Index tables that turn reduced weights of an H-layer (ambient G) into a conv filter.

    Args:
        ambient: the group ``G`` whose layout the feature maps use.
        group: the subgroup ``H`` the layer is constrained to.
        kernel_size: odd spatial size ``k``.
        lifting: ``True`` when the input is an image (no group axis).
        basis: how kernels are parametrised (a name of ``equinas.nn.basis.BASES`` or a basis).
    """

    # non-persistent buffers, registered in __init__ (``source`` or ``matrices``, not both)
    gather: torch.Tensor
    coset: torch.Tensor
    rep_rows: torch.Tensor
    rep_cols: torch.Tensor
    source: torch.Tensor
    matrices: torch.Tensor

    def __init__(
        self,
        ambient: PlanarGroup,
        group: PlanarGroup,
        kernel_size: int,
        lifting: bool,
        basis: str | KernelBasis = "pixel",
    ):
        super().__init__()
        group = ambient.embed(group)
        self.ambient, self.group = ambient, group
        self.kernel_size, self.lifting = kernel_size, lifting
        self.basis = kernel_basis(basis, kernel_size)
        reps = ambient.coset_representatives(group)
        rep_pos = {t: i for i, t in enumerate(reps)}
        self.index = len(reps)
        decompositions = ambient.decompositions(group)
        decomposed = [decompositions[g] for g in ambient.elements]
        out_h = [group.index(h) for h, _ in decomposed]
        out_t = [rep_pos[t] for _, t in decomposed]
        if lifting:
            # kernel has no input group axis: J[g, 0] = t(g)
            gather = torch.tensor(out_t).view(-1, 1)
        else:
            r, order = self.index, group.order
            rows = []
            for h1, t in decomposed:
                h1_inv = group.inverse(h1)
                rows.append(
                    [
                        (rep_pos[t] * r + rep_pos[s]) * order + group.index(group.compose(h1_inv, h2))
                        for h2, s in decomposed
                    ]
                )
            gather = torch.tensor(rows)
        self.register_buffer("gather", gather, persistent=False)
        self.register_buffer("coset", torch.tensor(out_t), persistent=False)
        # read-off tables for ``restrict``: rows t in R, columns h s (h in H, s in R)
        self.register_buffer("rep_rows", torch.tensor([ambient.index(t) for t in reps]), persistent=False)
        cols = [[ambient.index(ambient.compose(h, s)) for h in group.elements] for s in reps]
        self.register_buffer("rep_cols", torch.tensor(cols), persistent=False)
        mats = self.basis.element_matrices(group)[out_h]  # [|G|, k*k, n]
        self.permutes_pixels = bool(((mats == 0) | (mats == 1)).all() and (mats.sum(-1) == 1).all())
        if self.permutes_pixels:
            # pixel basis, exact groups: one index_select does both the group and the pixel gather
            source = gather[:, :, None] * kernel_size**2 + mats.argmax(-1)[:, None, :]
            self.register_buffer("source", source.reshape(-1), persistent=False)
        else:  # float64 so that a float64 layer keeps full precision; cast per forward
            self.register_buffer("matrices", mats, persistent=False)
        # forward's gather indices by (weight shape, layout, device); derived, never state
        self._gather_index: dict[tuple, torch.Tensor] = {}

    def weight_shape(self, out_channels: int, in_channels: int) -> tuple[int, ...]:
        """Shape of the reduced weight for ``out_channels``/``in_channels`` ambient channels."""
        r, kernel = self.index, self.basis.shape
        if self.lifting:
            return (out_channels * r, in_channels, *kernel)
        return (out_channels * r, in_channels * r, self.group.order, *kernel)

    def forward(
        self, weight: torch.Tensor, memory_format: torch.memory_format = torch.contiguous_format
    ) -> torch.Tensor:
        """Reduced weight -> conv filter ``[C_out*|G|, C_in*|G| (or C_in), k, k]``, laid out in
        ``memory_format``; the values of ``expand(weight)``.

        When the expansion only permutes pixels (pixel kernels, exact groups) every filter entry
        is one entry of the weight: the filter is ONE gather of the flattened weight, in the
        layout's order (its backward one scatter-add), instead of ``expand``'s reshapes, gather
        and layout copy (2x faster forward and backward for the demo network's layers). Its
        index, per weight shape, layout and device, is ``expand`` applied to the positions of
        the weight's entries."""
        if not self.permutes_pixels:
            return self.expand(weight).contiguous(memory_format=memory_format)
        key = (tuple(weight.shape), memory_format, weight.device)
        index = self._gather_index.get(key)
        if index is None:
            entries = torch.arange(weight.numel(), dtype=torch.int32, device=weight.device)
            positions = self.expand(entries.view(weight.shape))
            if memory_format == torch.channels_last:
                positions = positions.permute(0, 2, 3, 1)
            index = self._gather_index[key] = positions.reshape(-1)
        out_planes, k = weight.shape[0] // self.index * self.ambient.order, self.kernel_size
        filt = weight.reshape(-1).index_select(0, index)
        if memory_format == torch.channels_last:
            return filt.view(out_planes, k, k, -1).permute(0, 3, 1, 2)
        return filt.view(out_planes, -1, k, k)

    def expand(self, weight: torch.Tensor) -> torch.Tensor:
        """Reduced weight -> conv filter ``[C_out*|G|, C_in*|G| (or C_in), k, k]`` (NCHW), by the
        formula of the module docstring (the reference for ``forward``)."""
        k, r, size = self.kernel_size, self.index, self.basis.size
        out_channels = weight.shape[0] // r
        if self.lifting:
            in_channels, r_in, n_kernel = weight.shape[1], 1, 1
        else:
            in_channels, r_in, n_kernel = weight.shape[1] // r, r, self.group.order
        flat = (
            weight.reshape(out_channels, r, in_channels, r_in, n_kernel, size)
            .permute(0, 2, 1, 3, 4, 5)
            .reshape(out_channels, in_channels, r * r_in * n_kernel, size)
        )
        order, order_in = self.gather.shape
        if self.permutes_pixels:
            picked = flat.reshape(out_channels, in_channels, -1).index_select(2, self.source)
            filt = picked.reshape(out_channels, in_channels, order, order_in, k * k).transpose(1, 2)
        else:
            picked = flat.index_select(2, self.gather.reshape(-1))
            picked = picked.reshape(out_channels, in_channels, order, order_in, size)
            matrices = self.matrices.to(dtype=weight.dtype)
            filt = torch.einsum("gpq,oigjq->ogijp", matrices, picked)
        return filt.reshape(out_channels * self.ambient.order, -1, k, k)

    def restrict(self, filt: torch.Tensor) -> torch.Tensor:
        """Reduced weight whose expansion is ``filt``: the left inverse of ``forward``.

        ``filt`` must be equivariant to this expansion's group (for instance the filter of a
        layer constrained to a supergroup). The weight is read off the filter rows of the
        coset representatives: ``psi[(d, t), (c, s)](h) = W[(d, t), (c, h s)]`` -- the
        relaxation morphism of paper Eq. 4 written on expanded filters -- then expressed in
        this expansion's basis (exact when every kernel lies in its span).
        """
        k, order, kernel = self.kernel_size, self.ambient.order, self.basis.shape
        out_channels = filt.shape[0] // order
        if self.lifting:
            picked = filt.reshape(out_channels, order, -1, k, k)[:, self.rep_rows]
            coefficients = self.basis.to_coefficients(picked)
            return coefficients.reshape(out_channels * self.index, -1, *kernel)
        grid = filt.reshape(out_channels, order, -1, order, k, k)
        picked = grid[:, self.rep_rows][:, :, :, self.rep_cols]  # [C_out, r, C_in, r, |H|, k, k]
        coefficients = self.basis.to_coefficients(picked)
        return coefficients.reshape(out_channels * self.index, -1, self.group.order, *kernel)

    def vector(self, values: torch.Tensor) -> torch.Tensor:
        """Per-channel values ``[C*|R|]`` (bias, norm affine) -> ambient ``[C, |G|]``."""
        if self.index == 1:  # one value per channel (also avoids an inductor bug with [:, zeros])
            return values[:, None].expand(-1, self.ambient.order)
        return values.reshape(-1, self.index)[:, self.coset]

    def restrict_vector(self, values: torch.Tensor) -> torch.Tensor:
        """Ambient per-plane values ``[C, |G|]`` constant on cosets -> ``[C*|R|]``."""
        return values[:, self.rep_rows].reshape(-1)
