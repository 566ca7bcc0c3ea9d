"""Learned probabilistic symmetrization (LPS, Kim et al. 2023) of any backbone, family ``"lps"``.

``f(x) = sum_g p(g | x) phi(g^-1 . x)`` over the elements ``g`` of a finite ambient group ``G``:
``phi`` is any network built from a spec (default: the C1 network of the backbone, which is not
invariant), ``p(. | x)`` the softmax of the ``|G|`` logits of a small G-CNN (``ElementLogits``)
whose group axis *is* the logit vector. As its logits permute with the input,
``p(hg | h.x) = p(g | x)``, and substituting ``g = h g'`` shows ``f(h.x) = f(x)`` for every ``h``
of ``G`` acting exactly on the pixel grid (multiples of 90 degrees, mirrors).

- Evaluation (eval mode), ``eval_mode="exact"`` (default): the sum over all ``|G|`` elements,
  ``|G|`` passes of ``phi``; exactly invariant. ``eval_mode="sample"``: the mean of ``phi`` over
  ``eval_samples`` elements drawn from ``p`` (a fixed noise generator, so evaluations are
  repeatable and draw nothing from the global random state); invariant in distribution.
- Training (train mode): ``train_samples`` elements per image drawn with the Gumbel-max trick
  from ``softmax(logits / temperature)``; the output is the mean of ``w_s phi(g_s^-1 . x)``.
  ``estimator="straight_through"`` (default): ``w_s = 1 + q_s - stop_grad(q_s)``, ``q_s`` the
  relaxed (Gumbel-softmax) probability of the drawn element: the value is the plain sample mean
  and the gradient reaches ``p`` through ``q_s``. ``estimator="score_function"``: ``w_s = 1``
  and ``score_function_loss`` (a training-engine hook) adds the REINFORCE surrogate
  ``mean_i (L_i - mean_j L_j) sum_s log p(g_is | x_i)`` of the per-example losses ``L_i`` (the
  batch mean as baseline). Costs ``train_samples`` passes of ``phi``.

Spec (``backbone`` required; it is any model spec, e.g. ``ArchSpec.to_dict()``)::

    {"family": "lps", "backbone": {...}, "ambient": "D4", "in_channels": 1,
     "pnet_channels": 4, "pnet_kernel": 5, "train_samples": 1, "temperature": 1.0,
     "estimator": "straight_through", "eval_mode": "exact", "eval_samples": 8, "noise_seed": 0}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from equinas.groups import PlanarGroup, act_on_images, parse_group
from equinas.models.registry import build_model, describe_layers, register_family
from equinas.models.spec import SpecError, family_body
from equinas.nn import GroupBatchNorm, GroupConv, LiftingConv, SpatialPool
from equinas.settings import Settings, odd_size, setting

FAMILY = "lps"
EVAL_MODES = ("exact", "sample")
ESTIMATORS = ("straight_through", "score_function")


class ElementLogits(nn.Module):
    """``p``'s logits: ``lift -> group BN -> ReLU -> 2x2 pool -> group conv to 1 field -> spatial mean``.

    Images ``[B, C, H, W]`` -> logits ``[B, |G|]``, one per element of ``ambient`` (in its
    element order). Being a G-CNN whose last map has one field, its group axis permutes like
    the group: ``logits(h.x)[index(h g)] = logits(x)[index(g)]`` for exact elements ``h``
    (with even ``H``, ``W``: the pool is then exact).
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int, ambient: PlanarGroup):
        super().__init__()
        self.lift = LiftingConv(in_channels, channels, kernel_size, ambient, ambient)
        self.norm = GroupBatchNorm(channels, ambient, ambient)
        self.pool = SpatialPool(2)
        self.out = GroupConv(channels, 1, kernel_size, ambient, ambient)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(F.relu(self.norm(self.lift(x))))
        return self.out(y).mean(dim=(-2, -1))[:, 0]


def transform_each(x: torch.Tensor, indices: torch.Tensor, group: PlanarGroup) -> torch.Tensor:
    """``g_i^-1 . x_i`` for images ``x [N, C, H, W]`` and element indices ``indices [N]`` of ``group``."""
    out = torch.empty_like(x)
    for i, g in enumerate(group.elements):
        chosen = indices == i
        if bool(chosen.any()):
            out[chosen] = act_on_images(x[chosen], group.inverse(g), group)
    return out


class LPSNetwork(nn.Module):
    """``f(x) = sum_g p(g|x) phi(g^-1 x)``; see the module docstring for training and evaluation.

    Input ``[B, in_channels, H, W]``, output ``[B, num_classes]`` (those of ``phi``).
    ``ambient`` and ``features`` (no per-layer maps: an empty list) let run records measure
    the output's invariance error under the ambient group.
    """

    def __init__(self, spec: LPSSpec):
        super().__init__()
        self.spec = spec
        self.group = parse_group(spec.ambient)
        self.pnet = ElementLogits(spec.in_channels, spec.pnet_channels, spec.pnet_kernel, self.group)
        self.phi = build_model(spec.backbone)
        self._log_prob: torch.Tensor | None = None

    @property
    def ambient(self) -> PlanarGroup:
        return self.group

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return []

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.spec.in_channels:
            raise ValueError(
                f"LPSNetwork expects images [B, {self.spec.in_channels}, H, W], got {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        logits = self.pnet(x)
        if self.training:
            return self._sampled(x, logits, self.spec.train_samples, None, self.spec.estimator)
        if self.spec.eval_mode == "sample":
            generator = torch.Generator(x.device).manual_seed(self.spec.noise_seed)
            return self._sampled(x, logits, self.spec.eval_samples, generator, "none")
        probs = torch.softmax(logits / self.spec.temperature, dim=-1)
        terms = (
            probs[:, i, None] * self.phi(act_on_images(x, self.group.inverse(g), self.group))
            for i, g in enumerate(self.group.elements)
        )
        return cast(torch.Tensor, sum(terms))  # a group has >= 1 element: a tensor, never sum()'s 0

    def _sampled(
        self,
        x: torch.Tensor,
        logits: torch.Tensor,
        samples: int,
        generator: torch.Generator | None,
        estimator: str,
    ) -> torch.Tensor:
        """Mean of ``w_s phi(g_s^-1 x)`` over ``samples`` Gumbel-max draws per image; ``estimator``
        ``straight_through``, ``score_function`` (keeps the draws' log-probabilities) or ``none``."""
        batch = logits.shape[0]
        chosen, q = gumbel_draw(logits, samples, self.spec.temperature, generator)
        weight = 1.0 + q - q.detach() if estimator == "straight_through" else torch.ones_like(q)
        if estimator == "score_function":
            log_p = torch.log_softmax(logits / self.spec.temperature, dim=-1)
            self._log_prob = log_p.gather(-1, chosen).sum(dim=-1)
        inputs = transform_each(x.repeat_interleave(samples, dim=0), chosen.reshape(-1), self.group)
        out = self.phi(inputs)
        return (weight[..., None] * out.reshape(batch, samples, -1)).mean(dim=1)

    def score_function_loss(self, losses: torch.Tensor) -> torch.Tensor | None:
        """``mean_i (L_i - mean_j L_j) log p(draws_i | x_i)`` for the last training pass (score
        function estimator), ``None`` with the straight-through estimator."""
        log_prob, self._log_prob = self._log_prob, None
        if log_prob is None:
            return None
        return ((losses - losses.mean()) * log_prob).mean()


def gumbel_draw(
    logits: torch.Tensor, samples: int, temperature: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``samples`` draws per row from ``softmax(logits / temperature)`` by the Gumbel-max trick.

    ``logits [B, |G|]`` -> ``(chosen [B, samples]`` element indices, ``q [B, samples]`` the
    Gumbel-softmax (relaxed) probability of each drawn element, differentiable in ``logits``).
    """
    batch, order = logits.shape
    uniform = torch.rand(batch, samples, order, generator=generator, device=logits.device, dtype=logits.dtype)
    gumbel = -torch.log(-torch.log(uniform.clamp_min(torch.finfo(logits.dtype).tiny)))
    relaxed = torch.softmax((logits[:, None, :] + gumbel) / temperature, dim=-1)
    chosen = relaxed.argmax(dim=-1)
    return chosen, relaxed.gather(-1, chosen[..., None])[..., 0]


def _group_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a group name, got {value!r}")
    parse_group(value)
    return value


@dataclass(frozen=True)
class LPSSpec(Settings):
    """The validated body of an ``"lps"`` spec (everything but ``"family"``); bad values raise
    ``SpecError`` naming ``lps.<field>``."""

    error_type = SpecError
    owner_label = FAMILY

    backbone: dict[str, Any] = setting(factory=dict, help="the spec of the network phi")
    ambient: str = setting("D4", check=_group_name, help="the group G symmetrized over")
    in_channels: int = setting(1, at_least=1, help="image channels")
    pnet_channels: int = setting(4, at_least=1, help="fields of the G-CNN p")
    pnet_kernel: int = setting(5, check=odd_size, help="kernel size of the G-CNN p (odd)")
    train_samples: int = setting(1, at_least=1, help="Gumbel draws per image in training")
    temperature: float = setting(1.0, above=0, help="temperature of p's softmax")
    estimator: str = setting("straight_through", choices=ESTIMATORS, help="gradient estimator for p")
    eval_mode: str = setting(
        "exact", choices=EVAL_MODES, help="exact: the sum over the group; sample: a mean over draws"
    )
    eval_samples: int = setting(8, at_least=1, help="draws per image with --eval-mode sample")
    noise_seed: int = setting(0, at_least=0, help="seed of the evaluation draws")

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> LPSSpec:
        return cls(**family_body(cls, body, FAMILY, "backbone", "the spec of the network phi"))

    def to_dict(self) -> dict[str, Any]:
        return {"family": FAMILY, **asdict(self)}

    def describe(self) -> list[str]:
        return [f"lps[{self.ambient}]", *describe_layers(self.backbone)]


register_family(
    FAMILY,
    build=lambda body: LPSNetwork(LPSSpec.from_dict(body)),
    describe=lambda body: LPSSpec.from_dict(body).describe(),
)
