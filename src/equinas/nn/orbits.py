"""Weight tying by orbits, computed from the generators of a group only (AEN, Basu et al. 2021).

A finite group ``G`` acts on the entries of a weight tensor ``W`` of shape ``(d_0, ..., d_{k-1})``
through one permutation per axis: ``g . (i_0, ..., i_{k-1}) = (p_0[i_0], ..., p_{k-1}[i_{k-1}])``.
A layer is ``G``-equivariant exactly when ``W`` is constant on every orbit of this action, and by
the group decomposition theorem it suffices to check the generators: the set of ``g`` that leave
``W`` invariant is a subgroup, so it contains ``G`` once it contains the generators. The orbits
are therefore the connected components of the graph with an edge ``x -- g(x)`` for every entry
``x`` and generator ``g`` -- found here by a vectorised union-find (hooking of roots onto the
smaller root plus pointer jumping), ``O(N * #generators)`` work per round and a few rounds.

Conventions: a permutation ``perm`` of an axis moves index ``i`` to ``perm[i]`` (the same
convention as ``equinas.data.gmnist.grid_permutation``). A linear map ``y = W x`` with
``W [out, in]`` satisfies ``layer(P_in x) = P_out layer(x)`` for ``(P x)[perm[i]] = x[i]``
exactly when ``W[perm_out[j], perm_in[i]] = W[j, i]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from equinas.groups import Element, PlanarGroup, spatial_matrices
from equinas.nn.conv import check_kernel_size

AxisPermutations = Sequence[np.ndarray]  # one permutation per weight axis: one generator


def _check_generator(shape: tuple[int, ...], generator: AxisPermutations) -> list[np.ndarray]:
    if len(generator) != len(shape):
        raise ValueError(f"a generator needs one permutation per axis of {shape}, got {len(generator)}")
    perms = []
    for axis, (size, perm) in enumerate(zip(shape, generator, strict=True)):
        perm = np.asarray(perm, dtype=np.int64)
        if perm.shape != (size,) or not np.array_equal(np.sort(perm), np.arange(size)):
            raise ValueError(f"axis {axis}: expected a permutation of range({size}), got shape {perm.shape}")
        perms.append(perm)
    return perms


def flat_action(shape: Sequence[int], generator: AxisPermutations) -> np.ndarray:
    """The generator as a permutation of the flat (C-order) entries of a tensor of ``shape``."""
    shape = tuple(int(s) for s in shape)
    perms = _check_generator(shape, generator)
    strides = np.cumprod((1, *shape[:0:-1]))[::-1]
    flat = np.zeros(shape, dtype=np.int64)
    for axis, (perm, stride) in enumerate(zip(perms, strides, strict=True)):
        view = [1] * len(shape)
        view[axis] = shape[axis]
        flat = flat + (perm * stride).reshape(view)
    return flat.reshape(-1)


def _compress(parent: np.ndarray) -> np.ndarray:
    """Pointer jumping until every entry points at its root."""
    while True:
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            return parent
        parent = jumped


def components(size: int, maps: Sequence[np.ndarray]) -> np.ndarray:
    """Root (smallest member) of each element's component under the edges ``x -- m[x]``.

    ``maps`` are permutations of ``range(size)``. Invariant: ``parent[x] <= x``, so the forest
    has no cycles and each root is the minimum of its tree.
    """
    parent = np.arange(size, dtype=np.int64)
    while True:
        for m in maps:
            a, b = parent, parent[m]
            np.minimum.at(parent, np.maximum(a, b), np.minimum(a, b))
            parent = _compress(parent)
        if all(np.array_equal(parent, parent[m]) for m in maps):
            return parent


def orbit_ids(shape: Sequence[int], generators: Sequence[AxisPermutations]) -> np.ndarray:
    """Orbit label of every entry of a tensor of ``shape`` under the group the generators span.

    Returns an int64 array of ``shape`` with labels ``0..n_orbits-1`` numbered by first
    occurrence in C order (so ``orbit_ids(shape, [])`` is ``arange`` reshaped).
    """
    shape = tuple(int(s) for s in shape)
    maps = [flat_action(shape, g) for g in generators]
    roots = components(math.prod(shape), maps)
    _, labels = np.unique(roots, return_inverse=True)
    return labels.reshape(shape).astype(np.int64)


def _tied_parameter(n_orbits: int, bound: float) -> nn.Parameter:
    return nn.Parameter(torch.empty(n_orbits).uniform_(-bound, bound))


def expand(values: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``values[ids]`` via ``index_select`` (its backward, ``index_add``, is the fast one on CPU)."""
    return values.index_select(0, ids.reshape(-1)).reshape(ids.shape)


class _OrbitTied(nn.Module):
    """Shared parameters of the tied layers: weight orbits and an optional tied bias.

    ``shape`` is the weight's shape, ``generators`` its per-axis permutations and
    ``out_perms`` the output permutation of each generator (the bias axis); both parameters are
    drawn from ``U(-bound, bound)``.
    """

    orbit_ids: torch.Tensor  # non-persistent buffers, registered in _tie (bias_ids with a bias)
    bias_ids: torch.Tensor

    def _tie(
        self,
        shape: tuple[int, ...],
        generators: Sequence[AxisPermutations],
        out_perms: Sequence[np.ndarray],
        bias: bool,
        bound: float,
    ) -> None:
        ids = orbit_ids(shape, generators)
        self.register_buffer("orbit_ids", torch.from_numpy(ids), persistent=False)
        self.n_orbits = int(ids.max()) + 1
        self.weight_orbits = _tied_parameter(self.n_orbits, bound)
        self.bias_orbits: nn.Parameter | None = None
        if bias:
            bias_ids = orbit_ids((shape[0],), [(p,) for p in out_perms])
            self.register_buffer("bias_ids", torch.from_numpy(bias_ids), persistent=False)
            self.bias_orbits = _tied_parameter(int(bias_ids.max()) + 1, bound)

    @property
    def bias(self) -> torch.Tensor | None:
        return None if self.bias_orbits is None else expand(self.bias_orbits, self.bias_ids)


class OrbitTiedLinear(_OrbitTied):
    """``y = W x + b`` on ``[..., in_features]`` with ``W [out, in]`` constant on orbits.

    Args:
        in_features, out_features: sizes of ``x`` and ``y``.
        generators: pairs ``(perm_in, perm_out)``, one per generator; the layer satisfies
            ``layer(P_in x) = P_out layer(x)`` for each (and so for the group they generate).
        bias: a bias constant on the orbits of the output permutations (the most general
            equivariant bias).

    Parameters: ``weight_orbits [n_orbits]`` and ``bias_orbits [n_bias_orbits]``, both drawn
    from ``U(-1/sqrt(in_features), 1/sqrt(in_features))`` like ``nn.Linear``; the full matrix is
    ``weight_orbits[orbit_ids]``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        generators: Sequence[tuple[np.ndarray, np.ndarray]],
        bias: bool = True,
    ):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._tie(
            (out_features, in_features),
            [(p_out, p_in) for p_in, p_out in generators],
            [p_out for _, p_out in generators],
            bias,
            1.0 / math.sqrt(in_features),
        )

    @property
    def weight(self) -> torch.Tensor:
        """The tied matrix ``[out_features, in_features]``."""
        return expand(self.weight_orbits, self.orbit_ids)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected input [..., {self.in_features}], got {tuple(x.shape)}")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, orbits={self.n_orbits}, "
            f"bias={self.bias_orbits is not None}"
        )


class OrbitTiedConv2d(_OrbitTied):
    """``conv2d`` (stride 1, padding ``k // 2``) with a filter constant on orbits.

    Args:
        in_channels, out_channels, kernel_size: as ``nn.Conv2d`` (odd ``kernel_size``).
        generators: triples ``(perm_out, perm_in, perm_pixel)`` of the out-channels,
            in-channels and flat ``k*k`` kernel pixels; the filter ``W [out, in, k*k]`` satisfies
            ``W[perm_out[o], perm_in[i], perm_pixel[p]] = W[o, i, p]``.
        bias: a bias constant on the orbits of ``perm_out``.

    Input ``[B, in_channels, H, W]``, output ``[B, out_channels, H, W]``. Initialisation
    ``U(+-1/sqrt(in_channels * k * k))`` like ``nn.Conv2d``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        generators: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
        bias: bool = True,
    ):
        super().__init__()
        check_kernel_size(kernel_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self._tie(
            (out_channels, in_channels, kernel_size**2),
            generators,
            [p_out for p_out, _, _ in generators],
            bias,
            1.0 / math.sqrt(in_channels * kernel_size**2),
        )

    @property
    def weight(self) -> torch.Tensor:
        """The tied filter ``[out_channels, in_channels, k, k]``."""
        k = self.kernel_size
        return expand(self.weight_orbits, self.orbit_ids).reshape(self.out_channels, self.in_channels, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.kernel_size // 2)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"orbits={self.n_orbits}, bias={self.bias_orbits is not None}"
        )


def regular_conv_generators(
    group: PlanarGroup,
    elements: Sequence[Element | tuple[int, int]],
    in_channels: int,
    out_channels: int,
    kernel_size: int,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Generators for ``OrbitTiedConv2d`` on regular feature maps of ``group``.

    Channels are laid out ``c * |G| + h`` (the ambient layout of ``equinas.nn``); ``g`` moves
    channel ``(c, h)`` to ``(c, g h)`` (the Cayley table) and kernel pixel ``p`` to ``g p``.
    The resulting layer maps ``[B, in_channels * |G|, H, W]`` to ``[B, out_channels * |G|, H, W]``
    and is equivariant to the group generated by ``elements`` (exact elements only: multiples
    of 90 degrees, with or without the mirror).
    """
    order = group.order
    matrices = spatial_matrices(group, kernel_size).numpy()
    result = []
    for g in elements:
        i = group.index(Element(*g))
        if not group.is_exact_element(group.elements[i]):
            raise ValueError(f"{tuple(g)} is not a multiple of 90 degrees: it does not permute pixels")
        moved = group.cayley_table[i]

        def channels(count: int, moved: np.ndarray = moved) -> np.ndarray:
            return (np.arange(count)[:, None] * order + moved[None, :]).reshape(-1)

        pixels = matrices[i].argmax(0)  # M[q, p] = 1 where q = g p
        result.append((channels(out_channels), channels(in_channels), pixels))
    return result
