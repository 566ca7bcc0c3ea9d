"""The backbone every search builds on: its settings (declared once) and the ArchSpec they make.

``BackboneSettings`` holds the network family -- ambient group, widths, pools, kernel size and
basis, head, width rule, wiring (``plain`` or ``resnet``) -- with the paper's MNIST backbone as
its defaults; ``BackboneSettings.build`` (and the function ``backbone``) turns it and a group per
layer into an ``ArchSpec``. The command line's network options are these fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from equinas.groups import parse_group, subgroups
from equinas.models.errors import SpecError
from equinas.models.paper import is_paper_name, paper_groups
from equinas.models.spec import BACKBONES, ArchSpec, HeadSpec, LayerSpec
from equinas.nn.basis import resolve_basis_name
from equinas.nn.choices import BASIS_CHOICES
from equinas.settings import Settings, odd_size, setting

PAPER_POOLS = (2, 4)
WIDTH_RULES = ("channels", "params")


class TaskShape(Protocol):
    """What a backbone needs to know of a task (``equinas.data.TaskData`` has it)."""

    @property
    def in_channels(self) -> int: ...

    @property
    def num_classes(self) -> int: ...


def _group_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a group name, got {value!r}")
    parse_group(value)
    return value


def _widths(value: Any) -> tuple[int, ...]:
    """Positive integers, one per block."""
    if not isinstance(value, tuple | list):
        raise ValueError(f"expected a list of positive integers, got {value!r}")
    if not value:
        raise ValueError("a network needs at least one layer")
    for i, width in enumerate(value):
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(
                f"expected positive integers (ambient channels per layer), got {width!r} for layer {i}"
            )
    return tuple(value)


@dataclass(frozen=True)
class BackboneSettings(Settings):
    """The network family searched over (defaults: the paper's MNIST backbone, D4 ambient).

    ``widths`` has one entry per block. ``backbone='plain'``: a block is one layer.
    ``backbone='resnet'``: entry 0 is the stem (one layer), every other entry a residual block
    of two layers of that width (identity skip when the width is kept, a 1x1 projection
    otherwise), so there are ``2 * len(widths) - 1`` layers. 2x2 max pools follow the blocks
    listed in ``pools_after`` (28 -> 14 -> 7 keeps rotations exact: pooling even sizes
    commutes with every element of D4, strided convolutions do not); ``None`` is the paper's
    ``(2, 4)``, less the blocks a shorter network lacks (stored resolved). ``width_rule`` keeps
    widths comparable across groups: ``'channels'`` keeps ``channels*|ambient|`` conv channels
    (the paper's rule; parameters grow as |ambient|/|H|), ``'params'`` scales each layer's
    ambient channels by ``sqrt(|H|/|ambient|)`` so parameter counts stay about equal. ``basis``
    parametrises every kernel (``pixel``, ``harmonic`` or ``auto``: harmonic for ambient groups
    with 45-degree-like elements, see ``equinas.nn.basis``). Bad values raise ``SpecError``;
    ``ArchSpec.check_input_size`` checks the pools against an image size.
    """

    error_type = SpecError

    ambient: str = setting("D4", check=_group_name, help="ambient group of the feature layout")
    widths: tuple[int, ...] = setting(
        (16, 16, 16, 16, 32, 32, 32, 32),
        check=_widths,
        help="ambient channels per block (plain: per layer; resnet: stem, then per residual block)",
    )
    pools_after: tuple[int, ...] | None = setting(
        None,
        help="blocks followed by a 2x2 max pool (default: 2,4, less the blocks a shorter network lacks)",
    )
    kernel_size: int = setting(5, check=odd_size, help="kernel size of every conv (odd)")
    basis: str = setting(
        "auto",
        choices=BASIS_CHOICES,
        flag="kernel-basis",
        help="kernel parametrisation: pixels, band-limited harmonics (exact 45-degree kernel rotations), "
        "or auto: harmonic when the ambient group has 45-degree elements",
    )
    hidden: int | None = setting(64, at_least=1, help="hidden width of the head ('none': linear head)")
    width_rule: str = setting(
        "channels",
        choices=WIDTH_RULES,
        help="keep conv channels (paper) or parameter counts comparable across groups",
    )
    backbone: str = setting(
        "plain",
        choices=BACKBONES,
        help="plain: one conv block per --widths entry; resnet: a stem conv for the first entry, then "
        "a residual block of two convs (identity or 1x1 projection skip) per further entry, "
        "every conv its own searchable layer",
    )

    def check(self) -> None:
        pools = self.pools_after
        if pools is None:
            pools = tuple(i for i in PAPER_POOLS if i < len(self.widths))
            object.__setattr__(self, "pools_after", pools)
        last = len(self.widths) - 1
        for index in pools:
            if not 0 <= index <= last:
                raise self.fail(
                    "pools_after",
                    f"layer {index!r} does not exist; the {len(self.widths)} layers are 0..{last}",
                )
        if len(set(pools)) != len(pools):
            raise self.fail("pools_after", f"a layer is listed twice in {pools}")
        if self.backbone == "resnet" and len(self.widths) < 2:
            raise self.fail(
                "widths", "a resnet needs a stem and at least one residual block (two widths or more)"
            )

    def layer_blocks(self) -> list[int]:
        """The entry of ``widths`` (and of ``pools_after``) each layer belongs to: one layer per
        entry for ``plain``; for ``resnet`` one (the stem) for entry 0 and two for every other."""
        if self.backbone == "plain":
            return list(range(len(self.widths)))
        return [0] + [b for b in range(1, len(self.widths)) for _ in range(2)]

    def build(
        self,
        group: str | list[str],
        *,
        in_channels: int = 1,
        num_classes: int = 10,
        kind: str = "regular",
        options: dict[str, Any] | None = None,
    ) -> ArchSpec:
        """The spec with ``group`` (one name for every layer, or one per layer) and layer ``kind``;
        ``kind='mixed'`` builds a [G]-mixed network over the whole lattice of ``ambient``."""
        amb = parse_group(self.ambient)
        try:
            basis = resolve_basis_name(self.basis, amb)
        except ValueError as err:
            raise SpecError(f"basis: {err}") from None
        block_of = self.layer_blocks()
        per_layer = [group] * len(block_of) if isinstance(group, str) else list(group)
        if len(per_layer) != len(block_of):
            raise SpecError(f"{len(per_layer)} groups for {len(block_of)} layers")
        pools = cast(tuple[int, ...], self.pools_after)  # check() replaced None by the paper's pools
        layers = []
        for i, (name, block) in enumerate(zip(per_layer, block_of, strict=True)):
            if kind == "mixed":
                g_kwargs: dict[str, Any] = {"groups": tuple(str(h) for h in subgroups(amb))}
                scale = 1.0
            else:
                g_kwargs = {"group": name}
                order = parse_group(name, ambient=amb).order
                scale = math.sqrt(order / amb.order) if self.width_rule == "params" else 1.0
            last_of_block = i + 1 == len(block_of) or block_of[i + 1] != block
            layers.append(
                LayerSpec(
                    channels=max(1, round(self.widths[block] * scale)),
                    kind=kind,
                    kernel_size=self.kernel_size,
                    basis=basis,
                    pool=last_of_block and block in pools,
                    options=dict(options or {}),
                    **g_kwargs,
                )
            )
        return ArchSpec(
            layers=tuple(layers),
            ambient=self.ambient,
            in_channels=in_channels,
            num_classes=num_classes,
            head=HeadSpec(hidden=self.hidden),
            backbone=self.backbone,
        )

    def spec(
        self, data: TaskShape, group: str | list[str] | tuple[str, ...], kind: str = "regular", **options: Any
    ) -> ArchSpec:
        """The backbone for ``data`` (its channels and classes) with ``group`` and layer ``kind``."""
        return self.build(
            group if isinstance(group, str) else list(group),
            in_channels=data.in_channels,
            num_classes=data.num_classes,
            kind=kind,
            options=options or None,
        )


BUILD_OPTIONS = ("in_channels", "num_classes", "kind", "options")


def backbone(group: str | list[str], **options: Any) -> ArchSpec:
    """The paper's MNIST backbone (8 blocks of 16,16,16,16,32,32,32,32 D4 fields, kernel 5), or
    its residual counterpart: ``BackboneSettings(**layout).build(group, **build)``.

    ``options`` are the fields of ``BackboneSettings`` (``ambient``, ``widths``, ``pools_after``,
    ``kernel_size``, ``basis``, ``hidden``, ``width_rule``, ``backbone``) and the keywords of
    ``BackboneSettings.build`` (``in_channels``, ``num_classes``, ``kind``, ``options``), with
    their defaults and checks.
    """
    build = {key: options.pop(key) for key in BUILD_OPTIONS if key in options}
    return BackboneSettings(**options).build(group, **build)


def named_spec(arch: str, settings: BackboneSettings, data: TaskShape) -> ArchSpec:
    """The network ``arch`` names: a spec JSON file, ``"mixed"`` (the backbone of [G]-mixed layers
    over the ambient lattice), a paper architecture (``paper:rotmnist-1``, see
    ``equinas.models.paper``) or a group name for every layer of the backbone."""
    if arch.endswith(".json") or Path(arch).is_file():
        return ArchSpec.load(arch)
    if is_paper_name(arch):
        groups = paper_groups(arch)
        layers = len(settings.layer_blocks())
        if layers != len(groups):
            raise SpecError(f"{arch} has {len(groups)} layers; this backbone has {layers} (--widths)")
        try:
            return settings.spec(data, groups)
        except ValueError as err:
            raise SpecError(f"{arch}: {err}") from None
    return settings.spec(data, "C1", kind="mixed") if arch == "mixed" else settings.spec(data, arch)
