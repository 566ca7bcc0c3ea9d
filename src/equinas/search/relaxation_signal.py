"""The relaxation signal: how much loss a layer's group constraint costs, measured by gradients.

A layer constrained to ``K`` (ambient ``G``) can express the filters fixed by ``K``. Written
in the coefficients of its fully relaxed (C1) form -- one kernel per pair of ambient planes,
``w[d, u, c, v]`` (``u, v`` in ``G``; lifting layers have no ``v``) -- an element ``g`` acts by

    (g . w)[d, u, c, v] = D(g) w[d, g^-1 u, c, g^-1 v]

(``D(g)`` the kernel basis' action, orthogonal for exact elements; for the 45-degree elements of
C8/D8 the pixel grid makes the measurement approximate), and the filters a
``H``-layer can express are the fixed points of ``H``; the orthogonal projection onto them is
the group average ``P_H w = |H|^-1 sum_h h . w``. So for a gradient ``w``

    ||P_H w||^2 = <w, P_H w> = |H|^-1 sum_{h in H} a(h),   a(g) = <w, g . w>,

and ``|G|`` inner products per layer give the energy in every subgroup's span at once.

Relaxing ``K -> H`` frees the directions ``P_H - P_K``. The first-order loss decrease it allows
is ``||(P_H - P_K) mu||^2`` for the expected gradient ``mu``. If the data distribution is
symmetric under the elements of ``K`` outside ``H`` (as far as the rest of the network is
equivariant to them), ``mu`` is invariant under them and that energy is exactly zero: only
noise is left. With the gradients ``w_b`` of ``B`` training steps (``GradientRecorder``: the
steps of the training run itself, so measuring costs nothing) and their mean ``w``, and
``e_b``, ``e`` the energies of ``w_b``, ``w`` in the freed directions (the weights move between
the steps: a gradient that keeps pushing into the freed directions is signal, its variation
from step to step, drift included, counts as noise),

    noise  n = (sum_b e_b - B e) / (B - 1)      (per-batch noise energy, unbiased)
    signal s = e - n / B                         (unbiased estimate of ||(P_H - P_K) mu||^2)
    gain     = s - price * n.

The price charges each freed direction the noise one training batch puts into it (the noise
energy grows with the number of freed parameters), so a relaxation is taken only where the
constraint visibly costs loss; C1 does not win by default. ``decide`` picks, per layer, the
subgroup of the current group (inside the search space) with the largest positive gain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from equinas.groups import PlanarGroup, parse_group
from equinas.nn import RegularConv


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
    grid: torch.Tensor, ambient: PlanarGroup, actions: torch.Tensor, lifting: bool
) -> torch.Tensor:
    """``a(g) = <w, g . w>`` for every ``g`` of ``ambient`` (canonical order), float64 ``[|G|]``.

    ``grid`` is a ``filter_grid``; ``actions`` the basis matrices ``D(g)`` ``[|G|, n, n]``.
    """
    # row i: the index of g_i^-1 u for every u (the plane that g_i moves onto u)
    sources = torch.from_numpy(ambient.cayley_table[ambient.inverse_indices]).to(grid.device)
    values = []
    for i, source in enumerate(sources):
        moved = grid[:, source] if lifting else grid[:, source][:, :, :, source]
        moved = moved @ actions[i].to(device=grid.device, dtype=grid.dtype).T
        values.append(torch.sum(grid.double() * moved.double()))
    return torch.stack(values)


class GradientRecorder:
    """Records the relaxation signal of ``model``'s layers during training (a context manager).

    While active, every backward pass through a regular convolution of layer ``i`` (every
    conv of its unit, e.g. a residual block's skip) adds that step's autocorrelation and
    accumulates the filter gradient; ``stats()`` gives ``{"groups": [K_i], "mean": [[a(g)] of
    the mean gradient, per layer], "batches": [[[a_t(g)] per layer] per step]}``. The
    training steps themselves are the samples: measuring costs no extra pass.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.units = [
            [m for name in model.layer_modules(i) if isinstance(m := model.get_submodule(name), RegularConv)]
            for i in range(model.num_layers)
        ]
        self.actions = {id(c): c.basis.action(c.ambient).float() for unit in self.units for c in unit}
        self.sums: dict[int, torch.Tensor] = {}
        self.steps: dict[int, list[torch.Tensor]] = {}

    def _hook(self, conv: RegularConv):
        def record(grad: torch.Tensor) -> None:
            grid = filter_grid(conv, grad.detach().float())
            key = id(conv)
            self.sums[key] = grid if key not in self.sums else self.sums[key] + grid
            a = autocorrelation(grid, conv.ambient, self.actions[key], conv.lifting)
            self.steps.setdefault(key, []).append(a)

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
        return min((len(v) for v in self.steps.values()), default=0)

    def stats(self) -> dict[str, Any]:
        count = self.num_steps
        ambient = self.model.ambient
        mean, batches = [], [[] for _ in range(count)]
        for unit in self.units:
            total = sum(
                autocorrelation(self.sums[id(c)] / count, ambient, self.actions[id(c)], c.lifting)
                for c in unit
            )
            mean.append(total.tolist())
            for t in range(count):
                batches[t].append(sum(self.steps[id(c)][t] for c in unit).tolist())
        groups = [self.model.spec.layer_group(i).name for i in range(self.model.num_layers)]
        return {"groups": groups, "mean": mean, "batches": batches}


def subgroup_energy(values: Sequence[float], ambient: PlanarGroup, group: PlanarGroup) -> float:
    """``||P_H w||^2`` from the autocorrelation ``values`` of ``w``."""
    members = [ambient.index(h) for h in ambient.embed(group).elements]
    return sum(values[i] for i in members) / len(members)


def relaxation_gains(
    stats: dict[str, Any], layer: int, ambient: PlanarGroup, candidates: Sequence[PlanarGroup], price: float
) -> dict[str, dict[str, float]]:
    """``{H: {"signal", "noise", "gain"}}`` of relaxing layer ``layer`` to each of ``candidates``."""
    current = parse_group(stats["groups"][layer], ambient=ambient)
    mean = stats["mean"][layer]
    rows = [row[layer] for row in stats["batches"]]
    count = len(rows)
    out = {}
    for group in candidates:
        freed = subgroup_energy(mean, ambient, group) - subgroup_energy(mean, ambient, current)
        per_batch = [subgroup_energy(r, ambient, group) - subgroup_energy(r, ambient, current) for r in rows]
        noise = max(0.0, (sum(per_batch) - count * freed) / (count - 1))
        signal = freed - noise / count
        out[group.name] = {"signal": signal, "noise": noise, "gain": signal - price * noise}
    return out


def decide(
    stats: dict[str, Any], ambient: PlanarGroup, space: Sequence[PlanarGroup], price: float
) -> list[dict[str, Any]]:
    """One entry per layer: ``{"layer", "from", "to", "gains"}``; ``to`` is the proper subgroup of
    the layer's group in ``space`` with the largest positive gain, or ``None`` (stay)."""
    decisions = []
    for layer, name in enumerate(stats["groups"]):
        current = parse_group(name, ambient=ambient)
        candidates = [h for h in space if h != current and h.is_subgroup_of(current)]
        gains = relaxation_gains(stats, layer, ambient, candidates, price)
        best = max(gains, key=lambda h: gains[h]["gain"], default=None)
        chosen = best if best is not None and gains[best]["gain"] > 0 else None
        decisions.append({"layer": layer, "from": current.name, "to": chosen, "gains": gains})
    return decisions
