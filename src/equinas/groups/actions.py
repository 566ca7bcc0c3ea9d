"""Actions of planar groups on images, kernels and group feature maps.

An element ``g = R(a) F**f`` acts on a function ``x`` on the pixel grid by
``(g . x)(p) = x(g^-1 p)``: first the mirror (``x.flip(-1)``), then the rotation.
A rotation by ``a`` is split into ``q`` quarter turns and a remainder ``rho`` in
[0, 90) degrees: ``R(a) = R(90)^q R(rho)``. Quarter turns use ``torch.rot90`` and are
exact on square grids; the remainder is a bilinear resampling (zero outside the grid)
and is only approximate -- it is needed by groups such as C8 and D8 only. Because the
split always puts the exact part outside, the action is an exact homomorphism on every
pair ``(u, g)`` where ``u`` is a multiple of 90 degrees (with or without the mirror),
which is what the equivariance of the exact subgroups rests on.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np
import torch

from equinas.groups.group import Element, PlanarGroup


def _split_rotation(e: Element, n: int) -> tuple[int, Fraction]:
    """``(q, rho)`` with angle(e) = q/4 + rho turns, ``q`` in 0..3 and ``0 <= rho < 1/4``."""
    turns = Fraction(e.rot, n)
    q = math.floor(turns * 4)
    return q, turns - Fraction(q, 4)


def rotation_sources(height: int, width: int, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Input ``(row, col)`` sampled by each output pixel of a CCW rotation, each ``[N, H*W]``.

    For every angle (radians) output pixel ``p`` reads the input at ``R(-angle) p``, with
    coordinates about the grid centre and y pointing up. ``cos``/``sin`` come from ``math``
    (the platform libm, not numpy's SIMD kernels) so generated data sets are reproducible.
    """
    cos = np.array([math.cos(a) for a in angles])[:, None]
    sin = np.array([math.sin(a) for a in angles])[:, None]
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    x, y = (cols - cx).reshape(1, -1), (cy - rows).reshape(1, -1)
    xs, ys = cos * x + sin * y, -sin * x + cos * y
    return cy - ys, xs + cx


@lru_cache(maxsize=256)
def _bilinear_rotation_taps(height: int, width: int, rho: Fraction) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear resampling of an ``height x width`` grid rotated by ``rho`` turns (CCW).

    Returns ``(index, weight)`` of shape ``[height*width, 4]``: output pixel ``p`` equals
    ``sum_k weight[p, k] * input.flatten()[index[p, k]]``; taps that fall outside the grid
    have weight 0.

    Cached (``lru_cache``): every caller gets the SAME two tensors, so they are read-only --
    index with them or copy them (``.to`` with a new device/dtype copies), never write into them.
    """
    src_r, src_c = (a[0] for a in rotation_sources(height, width, np.array([2.0 * math.pi * float(rho)])))
    r0, c0 = np.floor(src_r), np.floor(src_c)
    fr, fc = src_r - r0, src_c - c0
    index = np.zeros((height * width, 4), dtype=np.int64)
    weight = np.zeros((height * width, 4), dtype=np.float64)
    for k, (dr, dc) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        rr, cc = r0 + dr, c0 + dc
        wk = (fr if dr else 1.0 - fr) * (fc if dc else 1.0 - fc)
        inside = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
        index[:, k] = np.where(inside, rr * width + cc, 0)
        weight[:, k] = np.where(inside, wk, 0.0)
    return torch.from_numpy(index), torch.from_numpy(weight)


def _rotate_fraction(x: torch.Tensor, rho: Fraction) -> torch.Tensor:
    """Rotate the last two axes of ``x`` by ``rho`` turns (0 <= rho < 1/4), bilinear."""
    if rho == 0:
        return x
    height, width = x.shape[-2:]
    index, weight = _bilinear_rotation_taps(height, width, rho)
    flat = x.reshape(*x.shape[:-2], height * width)
    taps = flat[..., index.to(x.device)]  # [..., P, 4]
    out = (taps * weight.to(device=x.device, dtype=x.dtype)).sum(-1)
    return out.reshape(x.shape)


def transform_grid(x: torch.Tensor, g: Element, n: int) -> torch.Tensor:
    """Apply the spatial part of ``g`` (at resolution ``n``) to the last two axes of ``x``."""
    q, rho = _split_rotation(g, n)
    if (q % 2 or rho) and x.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"rotating by {float(Fraction(g.rot, n)) * 360:g} degrees needs square images, "
            f"got {tuple(x.shape[-2:])}"
        )
    if g.flip:
        x = x.flip(-1)
    x = _rotate_fraction(x, rho)
    return torch.rot90(x, q, dims=(-2, -1)) if q else x


def act_on_images(x: torch.Tensor, g: Element, group: PlanarGroup) -> torch.Tensor:
    """``g . x`` for images ``x`` of shape ``[..., H, W]``; exact for multiples of 90 degrees."""
    g = Element(*g)
    group.index(g)
    return transform_grid(x, g, group.n)


def act_on_features(x: torch.Tensor, g: Element, group: PlanarGroup) -> torch.Tensor:
    """``g . f`` for group feature maps ``f`` of shape ``[B, C, |G|, H, W]``.

    ``(g . f)(h, p) = f(g^-1 h, g^-1 p)``: every plane is transformed spatially and the group
    axis is permuted so that plane ``h`` receives the old plane ``g^-1 h``.
    """
    if x.dim() != 5 or x.shape[2] != group.order:
        raise ValueError(
            f"expected a group feature map [B, C, {group.order}, H, W] for {group.name}, "
            f"got shape {tuple(x.shape)}"
        )
    g = Element(*g)
    inv = group.inverse(g)
    source = [group.index(group.compose(inv, h)) for h in group.elements]
    return transform_grid(x[:, :, source], g, group.n)


def spatial_matrices(group: PlanarGroup, kernel_size: int) -> torch.Tensor:
    """Matrices of the spatial action on ``k x k`` kernels, shape ``[|G|, k*k, k*k]``.

    ``M[i] @ psi.flatten() == transform_grid(psi, g_i).flatten()`` (float64). For exact
    elements ``M[i]`` is a permutation matrix.
    """
    k = kernel_size
    basis = torch.eye(k * k, dtype=torch.float64).reshape(k * k, k, k)
    mats = [transform_grid(basis, g, group.n).reshape(k * k, k * k).T for g in group.elements]
    return torch.stack(mats)


def act_on_filters(filt: torch.Tensor, g: Element, group: PlanarGroup, lifting: bool) -> torch.Tensor:
    """``g . W`` for conv filters in the ambient layout of ``group``.

    ``filt`` is ``[C_out*|G|, C_in*|G|, k, k]`` (``lifting=False``) or ``[C_out*|G|, C_in, k, k]``;
    ``(g . W)[(d, h), (c, h')] = T_g W[(d, g^-1 h), (c, g^-1 h')]`` (no input permutation when
    lifting). A filter gives a g-equivariant convolution exactly when ``g . W == W``.
    """
    g = Element(*g)
    order = group.order
    inv = group.inverse(g)
    source = [group.index(group.compose(inv, h)) for h in group.elements]
    k = filt.shape[-1]
    grid = filt.reshape(-1, order, filt.shape[1], k, k)[:, source]
    if not lifting:
        grid = grid.reshape(grid.shape[0], order, -1, order, k, k)[:, :, :, source]
    return transform_grid(grid, g, group.n).reshape(filt.shape)
