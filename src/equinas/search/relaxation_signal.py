"""The relaxation signal: does a layer's group constraint cost loss? A test on the training gradients.

A layer constrained to ``K`` (ambient ``G``) can express the filters fixed by ``K``. Written
in the coefficients of its fully relaxed (C1) form -- one kernel per pair of ambient planes,
``w[d, u, c, v]`` (``u, v`` in ``G``; lifting layers have no ``v``) -- an element ``g`` acts by

    (g . w)[d, u, c, v] = D(g) w[d, g^-1 u, c, g^-1 v]

(``D(g)`` the kernel basis' action, orthogonal for exact elements; for the 45-degree elements of
C8/D8 the pixel grid makes the measurement approximate), and the filters a ``H``-layer can
express are the fixed points of ``H``; the orthogonal projection onto them is the group average
``P_H w = |H|^-1 sum_h h . w``. Relaxing ``K -> H`` (``H`` a subgroup of ``K``) frees the
directions of the orthogonal projector ``Q = P_H - P_K``, and for two gradients ``w, v``

    <Q w, Q v> = <w, Q v> = |H|^-1 sum_{h in H} a(h) - |K|^-1 sum_{k in K} a(k),   a(g) = <w, g . v>,

so the ``|G|`` inner products ``a(g)`` of each pair give the freed part of every subgroup at once.

The first-order loss decrease a relaxation allows is ``||Q mu||^2`` for the expected gradient
``mu``. If the data distribution is symmetric under ``K`` (as far as the rest of the network is
equivariant to it), ``Q mu = 0``: the freed directions carry only noise. That is the null
hypothesis, and the training steps of the run are its sample (``GradientRecorder``: the gradients
the run computes anyway, so measuring costs no extra pass). The steps are summed into ``M``
consecutive blocks ``X_1..X_M`` (``n_m`` steps each; a block per step until there are more than
``max_blocks``), and ``x_m = Q X_m``:

    U = sum_{b != c} <x_b, x_c>                     (zero mean under the null)
    signal s = U / sum_{b != c} n_b n_c             (unbiased estimate of ||Q mu||^2 per step)
    noise  n = sum_m (||x_m||^2 - n_m^2 s) / sum_m n_m   (one step's noise energy in Q's span)

Under the null, flipping the sign of a block leaves the distribution of the blocks unchanged:
exactly for an index-2 subgroup (the elements of ``K`` outside ``H`` act as -1 on the freed
directions, and symmetric data gives a batch and its transformed copy the same chance), and to
a good approximation for mean-zero blocks otherwise -- whatever the dimension and the shape of
the noise, so a few noisy directions (the first layer of a network has few) do not pass for
signal. So every sign pattern ``eps`` in ``{-1, +1}^M`` gives a draw
``U(eps) = sum_{b != c} eps_b eps_c <x_b, x_c>`` of the null distribution. The candidates ``H``
of one layer are tested together (max-T): with ``t_H(eps) = U_H(eps) / sd_H`` (``sd_H^2 =
2 sum_{b != c} <x_b, x_c>^2``, the variance of ``U_H(eps)``), the p-value of ``H`` is the
fraction of patterns with ``max_H' t_H'(eps) >= t_H``, so ``p_H <= alpha`` for some ``H`` has
chance at most ``alpha`` when the layer's whole family is null, however strongly its
candidates' freed spaces overlap. It is exact over all ``2^(M-1)`` patterns for
``M <= EXACT_BLOCKS`` and a Monte Carlo estimate with ``DRAWS`` seeded draws above.

The steps sample the gradient of the training set, not of the data distribution: a set of
``N`` images drawn from a symmetric distribution has an asymmetry of its own, which gives its
mean gradient, in any freed direction, an expected ``batch / N`` of one step's noise energy (the
per-image noise averaged over ``N`` images instead of a batch), and training fits the network
to exactly that set. So the null hypothesis tested is ``||Q mu||^2 <= allowance * n``, with
``allowance = batch / N`` (``GradientRecorder``'s ``allowance``): ``t_H`` is computed from
``U_H - allowance * n_H * sum_{b != c} n_b n_c``.

``decide`` relaxes each layer to the subgroup, among those whose p-value is at most the given
level, with the largest signal-to-noise ratio ``s / n``: the relaxation whose freed directions
carry the most signal per direction of noise, so relaxing further than the signal asks is not
rewarded.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from equinas.data.task import TaskData
from equinas.groups import PlanarGroup, parse_group, subgroups
from equinas.models.network import SpecNetwork
from equinas.nn import RegularConv
from equinas.search.evaluate import ProbeRecorder
from equinas.search.run_directory import spec_network
from equinas.train import TrainConfig

MAX_BLOCKS = 32
EXACT_BLOCKS = 16
DRAWS = 1 << 15


def filter_grid(layer: RegularConv, filt: torch.Tensor) -> torch.Tensor:
    """An expanded filter (or its gradient) of ``layer``, ``[C_out*|G|, C_in*|G| (or C_in), k, k]``,
    in kernel-basis coefficients as ``[C_out, |G|, C_in, |G| (or 1), n]``: ``S^T`` of every
    kernel (the pixels themselves for the pixel basis), i.e. the gradient of the layer's fully
    relaxed (C1) weight. The group axes are in the ambient group's canonical order."""
    r = layer.ambient.order
    k2 = layer.kernel_size**2
    grid = filt.reshape(layer.out_channels, r, layer.in_channels, 1 if layer.lifting else r, k2)
    if layer.basis.name == "pixel":
        return grid
    return grid @ layer.basis.sampling.to(device=grid.device, dtype=grid.dtype)


def autocorrelation(
    grids: torch.Tensor, ambient: PlanarGroup, actions: torch.Tensor, lifting: bool
) -> torch.Tensor:
    """``a[b, c, i] = <w_b, g_i . w_c>`` for a stack of ``filter_grid``s ``[M, ...]`` and every
    ``g_i`` of ``ambient`` (canonical order), float64 ``[M, M, |G|]``.

    ``actions`` are the basis matrices ``D(g)`` ``[|G|, n, n]``.
    """
    # row i: the index of g_i^-1 u for every u (the plane that g_i moves onto u)
    sources = torch.from_numpy(ambient.cayley_table[ambient.inverse_indices]).to(grids.device)
    flat = grids.double().flatten(1)
    values = []
    for i, source in enumerate(sources):
        moved = grids[:, :, source] if lifting else grids[:, :, source][:, :, :, :, source]
        moved = moved @ actions[i].to(device=grids.device, dtype=grids.dtype).T
        values.append(flat @ moved.double().flatten(1).T)
    return torch.stack(values, dim=-1)


class _Blocks:
    """Gradients of consecutive steps summed into at most ``max_blocks`` blocks: one step per
    block until the limit, then neighbours merge pairwise and new blocks take twice the steps."""

    def __init__(self, max_blocks: int):
        self.max_blocks, self.length = max_blocks, 1
        self.sums: list[torch.Tensor] = []
        self.sizes: list[int] = []

    def add(self, grid: torch.Tensor) -> None:
        if self.sizes and self.sizes[-1] < self.length:
            self.sums[-1] += grid
            self.sizes[-1] += 1
            return
        self.sums.append(grid.clone())
        self.sizes.append(1)
        if len(self.sums) > self.max_blocks:
            pairs = range(0, len(self.sums) - 1, 2)
            merged = [self.sums[i] + self.sums[i + 1] for i in pairs]
            sizes = [self.sizes[i] + self.sizes[i + 1] for i in pairs]
            if len(self.sums) % 2:
                merged.append(self.sums[-1])
                sizes.append(self.sizes[-1])
            self.sums, self.sizes, self.length = merged, sizes, 2 * self.length


def _sign_patterns(count: int) -> tuple[torch.Tensor, int]:
    """Sign patterns ``[P, count]`` and how many copies of the observed (all +1) pattern to add:
    every pattern up to the global sign (which leaves ``U(eps)`` unchanged) for small ``count``,
    else ``DRAWS`` seeded draws plus the observed pattern itself."""
    if count <= EXACT_BLOCKS:
        patterns = [(1.0, *rest) for rest in itertools.product((1.0, -1.0), repeat=count - 1)]
        return torch.tensor(patterns, dtype=torch.float64), 0
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 2, (DRAWS, count), generator=generator).double() * 2 - 1, 1


def sign_flip_tests(
    grams: torch.Tensor, sizes: Sequence[int], allowance: float = 0.0
) -> list[dict[str, float]]:
    """``{"signal", "noise", "p"}`` per candidate from the Gram matrices ``grams[h, b, c] =
    <x_b, x_c>`` of the freed parts of ``M >= 2`` blocks of ``sizes`` steps (float64 ``[m, M, M]``);
    ``p`` is the max-T p-value over the ``m`` candidates of ``signal > allowance * noise`` (see
    the module docstring)."""
    count = grams.shape[-1]
    if count < 2:
        raise ValueError(f"a sign-flip test needs at least 2 blocks of steps, got {count}")
    n = torch.tensor(list(sizes), dtype=torch.float64)
    off = grams - torch.diag_embed(torch.diagonal(grams, dim1=-2, dim2=-1))
    observed = off.sum(dim=(-2, -1))
    scale = (2 * off.pow(2).sum(dim=(-2, -1))).sqrt().clamp_min(1e-300)
    signs, extra = _sign_patterns(count)
    flipped = torch.einsum("pb,hbc,pc->ph", signs, off, signs) / scale
    maximum = flipped.max(dim=1).values
    pairs = float(n.sum() ** 2 - (n**2).sum())
    signal = observed / pairs
    noise = (
        (torch.diagonal(grams, dim1=-2, dim2=-1) - n**2 * signal[:, None]).sum(dim=-1) / n.sum()
    ).clamp_min(0)
    t = (observed - pairs * allowance * noise) / scale
    hits = (maximum[:, None] >= t[None, :] - 1e-9 * t.abs()[None, :]).sum(dim=0)
    return [
        {"signal": float(s), "noise": float(z), "p": (int(k) + extra) / (len(signs) + extra)}
        for s, z, k in zip(signal, noise, hits, strict=True)
    ]


class GradientRecorder(ProbeRecorder):
    """Records the relaxation tests of ``model``'s layers during training (a context manager).

    While active, every backward pass through a regular convolution of layer ``i`` (every
    conv of its unit, e.g. a residual block's skip) adds that step's filter gradient to the
    conv's blocks (``max_blocks`` at most, so memory stays bounded on long parts). ``stats()``
    gives ``{"groups": [K_i], "steps": B, "blocks": [n_m], "tests": [{H: {"signal", "noise",
    "p"}} for every proper subgroup H of K_i, per layer]}`` (``sign_flip_tests``). The training
    steps themselves are the samples: measuring costs no extra pass.
    """

    def __init__(self, model: SpecNetwork, allowance: float = 0.0, max_blocks: int = MAX_BLOCKS):
        self.model, self.allowance = model, allowance
        self.units = [
            [m for name in model.layer_modules(i) if isinstance(m := model.get_submodule(name), RegularConv)]
            for i in range(model.num_layers)
        ]
        self.actions = {id(c): c.basis.action(c.ambient).float() for unit in self.units for c in unit}
        self.blocks = {id(c): _Blocks(max_blocks) for unit in self.units for c in unit}

    def _hook(self, conv: RegularConv):
        def record(grad: torch.Tensor) -> None:
            self.blocks[id(conv)].add(filter_grid(conv, grad.detach().float()).cpu())

        return record

    def __enter__(self) -> GradientRecorder:
        for unit in self.units:
            for conv in unit:
                conv.filter_grad_hook = self._hook(conv)
        return self

    def __exit__(self, *exc: object) -> None:
        for unit in self.units:
            for conv in unit:
                conv.filter_grad_hook = None

    @property
    def num_steps(self) -> int:
        return min((sum(b.sizes) for b in self.blocks.values()), default=0)

    def stats(self) -> dict[str, Any]:
        ambient = self.model.ambient
        groups = [self.model.spec.layer_group(i) for i in range(self.model.num_layers)]
        sizes = self.blocks[id(self.units[0][0])].sizes
        tests: list[dict[str, dict[str, float]]] = []
        for unit, current in zip(self.units, groups, strict=True):
            cross = functools.reduce(
                operator.add,
                [
                    autocorrelation(
                        torch.stack(self.blocks[id(c)].sums), ambient, self.actions[id(c)], c.lifting
                    )
                    for c in unit
                ],
            )
            candidates = [h for h in subgroups(ambient) if h != current and h.is_subgroup_of(current)]
            if not candidates:
                tests.append({})
                continue
            grams = torch.stack([freed_gram(cross, ambient, h, current) for h in candidates])
            results = sign_flip_tests(grams, sizes, self.allowance)
            tests.append({h.name: result for h, result in zip(candidates, results, strict=True)})
        return {"groups": [g.name for g in groups], "steps": self.num_steps, "blocks": sizes, "tests": tests}


def _average(cross: torch.Tensor, ambient: PlanarGroup, group: PlanarGroup) -> torch.Tensor:
    members = [ambient.index(h) for h in ambient.embed(group).elements]
    return cross[..., members].mean(dim=-1)


def freed_gram(
    cross: torch.Tensor, ambient: PlanarGroup, group: PlanarGroup, current: PlanarGroup
) -> torch.Tensor:
    """``<Q w_b, Q w_c>`` for ``Q = P_group - P_current`` from the ``autocorrelation`` ``cross``."""
    return _average(cross, ambient, group) - _average(cross, ambient, current)


def decide(
    stats: dict[str, Any], ambient: PlanarGroup, space: Sequence[PlanarGroup], level: float
) -> list[dict[str, Any]]:
    """One entry per layer: ``{"layer", "from", "to", "tests"}``; ``to`` is the proper subgroup of
    the layer's group in ``space`` with p-value at most ``level`` and the largest
    ``signal / noise``, or ``None`` (stay)."""
    decisions = []
    for layer, name in enumerate(stats["groups"]):
        current = parse_group(name, ambient=ambient)
        candidates = [h.name for h in space if h != current and h.is_subgroup_of(current)]
        tests = {h: stats["tests"][layer][h] for h in candidates}
        passed = [h for h in candidates if tests[h]["p"] <= level]
        chosen = max(passed, key=lambda h: tests[h]["signal"] / max(tests[h]["noise"], 1e-300), default=None)
        decisions.append({"layer": layer, "from": current.name, "to": chosen, "tests": tests})
    return decisions


@dataclass(frozen=True)
class RelaxationSignal:
    """The ``TrainingProbe`` of EquiNAS_G: a ``GradientRecorder`` over the candidate's training
    steps, its ``stats()`` in ``record.extra["signal"]``. The allowance is the training set's own
    asymmetry: a symmetric population's ``N`` images give their mean gradient ``batch / N`` of
    one batch's noise energy in any freed direction."""

    key: ClassVar[str] = "signal"

    def recorder(self, model: nn.Module, config: TrainConfig, data: TaskData) -> GradientRecorder:
        return GradientRecorder(spec_network(model), config.batch_size / len(data.train))
