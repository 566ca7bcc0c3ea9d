"""Kernel bases: how a layer parametrises its ``k x k`` kernels and how a group acts on them.

A basis is a sampling matrix ``S`` of shape ``[k*k, n]`` -- a kernel is ``S @ c`` for ``n``
coefficients ``c`` -- and, for every element ``g`` of a planar group, a matrix ``D(g)``
``[n, n]`` with

    T_g (S c) = S D(g) c,

the spatial action ``T_g`` of ``equinas.groups.actions`` written on coefficients.

* ``PixelBasis`` -- the ``k*k`` pixel values (``S = I``, ``D = T``). Exact permutations for
  multiples of 90 degrees and mirrors; other rotations are bilinear resamplings, which are
  only approximately a group action.
* ``HarmonicBasis`` -- band-limited steerable functions (Weiler & Cesa, 2019): the centre
  pixel, and on rings of radius ``r = 1 .. k//2`` a Gaussian radial profile times the circular
  harmonics ``cos(m phi)``, ``sin(m phi)``, ``m <= max_frequency`` (and ``m <= 2r``). ``D(g)``
  is the exact O(2) representation on the harmonics -- a rotation by ``theta`` turns the pair
  of frequency ``m`` by ``m theta``, the mirror ``x -> -x`` multiplies it by
  ``(-1)^m diag(1, -1)`` -- so every rotation, 45 degrees included, is an exact homomorphism,
  and a rotated kernel is the rotated continuous kernel sampled on the grid. For ``k = 5`` and
  the default ``max_frequency = 2`` it has 11 functions instead of 25 pixels.

Both give float64 tensors; layers cast them to their own dtype. Layers default to ``"auto"``:
harmonic kernels when the ambient group has elements that are not multiples of 90 degrees
(C8, D8, ...), where pixel kernels can only be interpolated, and pixel kernels otherwise.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from equinas.groups import PlanarGroup, spatial_matrices
from equinas.nn.choices import BASES, BASIS_CHOICES  # noqa: F401  (re-exported)


class KernelBasis:
    """A parametrisation of ``k x k`` kernels by ``size`` coefficients (see the module doc)."""

    name: str

    def __init__(self, kernel_size: int, sampling: torch.Tensor, shape: tuple[int, ...]):
        self.kernel_size = kernel_size
        self.sampling = sampling  # [k*k, n] float64
        self.size = sampling.shape[1]
        self.shape = shape  # trailing dims of a reduced weight: (k, k) for pixels, (n,) otherwise

    def action(self, group: PlanarGroup) -> torch.Tensor:
        """``D(g)`` for every element of ``group`` (canonical order), ``[|G|, n, n]`` float64."""
        raise NotImplementedError

    def element_matrices(self, group: PlanarGroup) -> torch.Tensor:
        """``S D(g)``: coefficients -> pixels of the transformed kernel, ``[|G|, k*k, n]``."""
        return self.sampling @ self.action(group)

    def to_coefficients(self, kernels: torch.Tensor) -> torch.Tensor:
        """Kernels ``[..., k, k]`` -> coefficients ``[..., *shape]`` (exact on the span of ``S``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, size={self.size})"


class PixelBasis(KernelBasis):
    """Every pixel is a coefficient; the group acts by ``spatial_matrices``."""

    name = "pixel"

    def __init__(self, kernel_size: int):
        k = kernel_size
        super().__init__(k, torch.eye(k * k, dtype=torch.float64), (k, k))

    def action(self, group: PlanarGroup) -> torch.Tensor:
        return spatial_matrices(group, self.kernel_size)

    def to_coefficients(self, kernels: torch.Tensor) -> torch.Tensor:
        return kernels


def _harmonic_index(kernel_size: int, max_frequency: int) -> list[tuple[int, int, int]]:
    """``(ring, m, part)`` of every basis function; ``part`` 0 = cos, 1 = sin."""
    index = [(0, 0, 0)]
    for ring in range(1, kernel_size // 2 + 1):
        for m in range(min(max_frequency, 2 * ring) + 1):
            index += [(ring, m, 0)] if m == 0 else [(ring, m, 0), (ring, m, 1)]
    return index


def _sample_harmonics(kernel_size: int, index: list[tuple[int, int, int]]) -> torch.Tensor:
    """``S`` for ``index``: the columns of each ``(ring, m)`` have squared norm ``k*k / n`` on average.

    ``cos(m phi)`` and ``sin(m phi)`` are ``Re``/``Im`` of ``(x + iy)^m / rho^m``, computed from
    exact integer powers, so the samples are exactly symmetric under the pixel permutations of
    quarter turns and mirrors.
    """
    k, centre = kernel_size, kernel_size // 2
    columns = []
    for ring, m, part in index:
        values = []
        for row in range(k):
            for col in range(k):
                x, y = col - centre, centre - row
                rho_sq = x * x + y * y
                if ring == 0:
                    values.append(1.0 if rho_sq == 0 else 0.0)
                    continue
                re, im = 1, 0  # (x + iy)^m in integers
                for _ in range(m):
                    re, im = re * x - im * y, re * y + im * x
                angular = 1.0 if m == 0 else 0.0 if rho_sq == 0 else (re, im)[part] / rho_sq ** (m / 2)
                sigma = 0.4 if ring == centre else 0.6
                values.append(math.exp(-((math.sqrt(rho_sq) - ring) ** 2) / (2 * sigma**2)) * angular)
        columns.append(values)
    sampling = torch.tensor(columns, dtype=torch.float64).T
    # one scale per (ring, m): scaling cos and sin apart would break the rotation of the pair
    blocks = torch.tensor([ring * (k + 1) + m for ring, m, _ in index])
    scale = torch.ones(len(index), dtype=torch.float64)
    for block in blocks.unique():
        cols = blocks == block
        scale[cols] = math.sqrt(k * k / len(index) * int(cols.sum())) / sampling[:, cols].norm()
    return sampling * scale


def _snap(x: float) -> float:
    """Round values within 1e-12 of -1, 0 or 1 (exact quarter-turn entries)."""
    nearest = round(x)
    return float(nearest) if abs(nearest) <= 1 and abs(x - nearest) < 1e-12 else x


class HarmonicBasis(KernelBasis):
    """Gaussian rings times circular harmonics up to ``max_frequency`` (see the module doc)."""

    name = "harmonic"

    def __init__(self, kernel_size: int, max_frequency: int = 2):
        if max_frequency < 0:
            raise ValueError(f"max_frequency must be >= 0, got {max_frequency}")
        self.index = _harmonic_index(kernel_size, max_frequency)
        self.max_frequency = max_frequency
        sampling = _sample_harmonics(kernel_size, self.index)
        super().__init__(kernel_size, sampling, (sampling.shape[1],))
        self._pinv = torch.linalg.pinv(sampling)

    def action(self, group: PlanarGroup) -> torch.Tensor:
        return torch.stack([self._element_action(g.flip, g.rot / group.n) for g in group.elements])

    def _element_action(self, flip: int, turns: float) -> torch.Tensor:
        """``D(R(2 pi turns) F^flip)``, block diagonal: the mirror first, then the rotation."""
        blocks = []
        for _, m, part in self.index:
            if part == 1:
                continue  # the sin of frequency m shares the 2x2 block of its cos
            if m == 0:
                blocks.append(torch.ones(1, 1, dtype=torch.float64))
                continue
            angle = 2 * math.pi * turns * m
            c, s = _snap(math.cos(angle)), _snap(math.sin(angle))
            rotation = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
            mirror = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64) * (-1) ** m
            blocks.append(rotation @ mirror if flip else rotation)
        return torch.block_diag(*blocks)

    def to_coefficients(self, kernels: torch.Tensor) -> torch.Tensor:
        pinv = self._pinv.to(device=kernels.device, dtype=kernels.dtype)
        return kernels.flatten(-2) @ pinv.T

    def __repr__(self) -> str:
        return (
            f"HarmonicBasis(kernel_size={self.kernel_size}, max_frequency={self.max_frequency}, "
            f"size={self.size})"
        )


@lru_cache(maxsize=64)
def _make(name: str, kernel_size: int) -> KernelBasis:
    """The shared basis instance per ``(name, kernel_size)``: every layer built with it holds the
    SAME object, so the object and its tensors (``sampling``, the harmonic pseudo-inverse) are
    read-only; ``action``/``element_matrices`` return fresh tensors."""
    return PixelBasis(kernel_size) if name == "pixel" else HarmonicBasis(kernel_size)


def resolve_basis_name(basis: str, ambient: PlanarGroup | None) -> str:
    """``basis`` itself, or for ``"auto"``: ``"harmonic"`` unless every element of ``ambient``
    acts exactly on the pixel grid (then ``"pixel"``)."""
    if basis not in BASIS_CHOICES:
        raise ValueError(f"unknown kernel basis {basis!r}; known: {BASIS_CHOICES}")
    if basis != "auto":
        return basis
    if ambient is None:
        raise ValueError("kernel basis 'auto' needs the ambient group")
    return "pixel" if ambient.is_exact else "harmonic"


def kernel_basis(
    basis: str | KernelBasis, kernel_size: int, ambient: PlanarGroup | None = None
) -> KernelBasis:
    """The basis named ``basis`` (one of ``BASIS_CHOICES``; ``"auto"`` needs ``ambient``) for
    ``kernel_size``, or ``basis`` itself. Named bases are shared instances (read-only, see ``_make``)."""
    if isinstance(basis, KernelBasis):
        if basis.kernel_size != kernel_size:
            raise ValueError(f"{basis} does not fit kernel_size {kernel_size}")
        return basis
    return _make(resolve_basis_name(basis, ambient), kernel_size)
