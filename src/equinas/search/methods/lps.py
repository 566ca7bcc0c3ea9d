"""LPS (Kim et al. 2023): one network of the ``equinas.models.lps`` family."""

from __future__ import annotations

from dataclasses import dataclass

from equinas.models.lps import LPSSpec
from equinas.search.base import Evaluator, SearchContext, SearchMethod, SearchResult
from equinas.settings import Settings, same_as, setting


@dataclass(frozen=True)
class LPSSettings(Settings):
    """LPS: ``phi`` is the backbone with every layer constrained to ``group`` (default C1, a plain
    CNN); ``p`` a G-CNN over the ambient group with ``pnet_channels`` fields and
    ``pnet_kernel`` kernels; ``train_samples`` Gumbel draws per image in training
    (``temperature``; gradient ``estimator``: ``straight_through`` or ``score_function``);
    evaluation ``exact`` (the sum over the group, exactly invariant, |G| passes of phi) or
    ``sample`` (``eval_samples`` draws)."""

    group: str = setting("C1", subgroups=True, help="group of every layer of phi (C1: a plain CNN)")
    pnet_channels: int = same_as(LPSSpec, "pnet_channels")
    pnet_kernel: int = same_as(LPSSpec, "pnet_kernel")
    train_samples: int = same_as(LPSSpec, "train_samples")
    temperature: float = same_as(LPSSpec, "temperature")
    estimator: str = same_as(LPSSpec, "estimator")
    eval_mode: str = same_as(LPSSpec, "eval_mode")
    eval_samples: int = same_as(LPSSpec, "eval_samples")


class LPSSearch(SearchMethod[LPSSettings]):
    """LPS (Kim et al. 2023): a backbone symmetrized by a learned distribution over the ambient group.

    ``f(x) = sum_g p(g|x) phi(g^-1 x)``: exactly invariant, with a small G-CNN choosing the
    orientation. Cost: one network's training plus |G| backbone passes per evaluated image
    (1.3 networks measured on RotMNIST).
    """

    name = "lps"
    settings_class = LPSSettings

    def resolve(self, ctx: SearchContext) -> LPSSettings:
        return self.settings

    def run(self, ctx: SearchContext) -> SearchResult:
        s = self.settings
        ev = Evaluator(ctx, self.name)
        spec = LPSSpec(
            backbone=ctx.backbone.spec(ctx.data, s.group).to_dict(),
            ambient=ctx.backbone.ambient,
            in_channels=ctx.data.in_channels,
            pnet_channels=s.pnet_channels,
            pnet_kernel=s.pnet_kernel,
            train_samples=s.train_samples,
            temperature=s.temperature,
            estimator=s.estimator,
            eval_mode=s.eval_mode,
            eval_samples=s.eval_samples,
        )
        (record,) = ev.evaluate([ev.job(f"lps-{s.group}", spec.to_dict())], label=self.name)
        return SearchResult(self.name, record, [record])
