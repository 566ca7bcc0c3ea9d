"""Registry of layer kinds an ArchSpec can name, and how each is built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from equinas.groups import PlanarGroup, parse_group, subgroups
from equinas.models.errors import SpecError
from equinas.nn import GroupConv, LiftingConv
from equinas.nn.conv import ConvBase
from equinas.nn.mixed import HalvingSchedule, MixedGroupConv, prior_logits
from equinas.nn.relaxed import (
    ConstraintRelaxedConv,
    RelaxedGroupConv,
    ResidualPathwayConv,
    _ConstrainedBase,
)


@dataclass(frozen=True)
class LayerContext:
    """What a layer builder needs: widths, kernel, ambient group, lifting flag and spec fields."""

    in_channels: int
    out_channels: int
    kernel_size: int
    basis: str
    ambient: PlanarGroup
    lifting: bool
    group: PlanarGroup | None
    groups: tuple[PlanarGroup, ...] | None
    options: dict[str, Any]


@dataclass(frozen=True)
class LayerKind:
    """A layer kind: its builder, the group its batch norm shares, and its allowed options."""

    build: Callable[[LayerContext], ConvBase]
    norm_group: Callable[[LayerContext], PlanarGroup]
    defaults: dict[str, Any] = field(default_factory=dict)

    def check_options(self, options: dict[str, Any], where: str) -> None:
        if not isinstance(options, dict):
            raise SpecError(f"{where}.options: expected an object, got {type(options).__name__}")
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise SpecError(f"{where}.options: unknown option(s) {unknown}; allowed: {sorted(self.defaults)}")

    def settings(self, options: dict[str, Any]) -> dict[str, Any]:
        return {**self.defaults, **options}


def _build_regular(ctx: LayerContext) -> ConvBase:
    cls = LiftingConv if ctx.lifting else GroupConv
    return cls(ctx.in_channels, ctx.out_channels, ctx.kernel_size, ctx.group, ctx.ambient, basis=ctx.basis)


def _build_mixed(ctx: LayerContext) -> ConvBase:
    opts = LAYER_KINDS["mixed"].settings(ctx.options)
    groups = ctx.groups or subgroups(ctx.ambient)
    alpha = None
    if opts["prior"]:
        favoured = parse_group(opts["prior_group"] or ctx.ambient, ambient=ctx.ambient)
        alpha = prior_logits(groups, favoured, float(opts["prior"]))
    halving = None
    if opts["halving"] is not None:
        halving = HalvingSchedule(*opts["halving"])
    return MixedGroupConv(
        ctx.in_channels,
        ctx.out_channels,
        ctx.kernel_size,
        ctx.ambient,
        groups,
        lifting=ctx.lifting,
        alpha_init=alpha,
        basis=ctx.basis,
        halving=halving,
        normalize=bool(opts["normalize"]),
    )


def _constrained(cls: type[_ConstrainedBase], kind: str) -> Callable[[LayerContext], ConvBase]:
    """Builder for the approximate-equivariance layers of ``equinas.nn.relaxed``."""

    def build(ctx: LayerContext) -> ConvBase:
        opts = LAYER_KINDS[kind].settings(ctx.options)
        return cls(
            ctx.in_channels,
            ctx.out_channels,
            ctx.kernel_size,
            _own_group(ctx),
            ctx.ambient,
            lifting=ctx.lifting,
            basis=ctx.basis,
            **opts,
        )

    return build


def _own_group(ctx: LayerContext) -> PlanarGroup:
    if ctx.group is None:  # ArchSpec.validate gives every kind but "mixed" its group first
        raise SpecError("this layer kind needs a 'group'")
    return ctx.group


LAYER_KINDS: dict[str, LayerKind] = {
    "regular": LayerKind(build=_build_regular, norm_group=_own_group),
    "mixed": LayerKind(
        build=_build_mixed,
        norm_group=lambda ctx: ctx.ambient,
        defaults={"prior": 0.0, "prior_group": None, "halving": None, "normalize": False},
    ),
    "rpp": LayerKind(
        build=_constrained(ResidualPathwayConv, "rpp"),
        norm_group=_own_group,
        defaults={"equivariant_decay": 1e-4, "free_decay": 1e-2, "free_init": 1e-3},
    ),
    "rgconv": LayerKind(
        build=_constrained(RelaxedGroupConv, "rgconv"),
        norm_group=_own_group,
        defaults={"banks": 2, "alpha": 1e-4},
    ),
    "cr": LayerKind(
        build=_constrained(ConstraintRelaxedConv, "cr"),
        norm_group=_own_group,
        defaults={"penalty": 1e-2},
    ),
}
