"""ArchSpec: the JSON description of an equivariant CNN that every search method returns.

Example (``ArchSpec.to_dict()``)::

    {"schema": 2, "backbone": "plain", "ambient": "D4", "in_channels": 1, "num_classes": 10,
     "layers": [{"kind": "regular", "group": "D4", "channels": 16, "kernel_size": 5,
                 "basis": "pixel", "pool": false}, ...],
     "head": {"group_pool": "max", "spatial_pool": "mean", "hidden": 64, "dropout": 0.0}}

Feature maps use the layout of the ``ambient`` group; a layer's ``channels`` counts ambient
channels (``channels * |ambient|`` conv channels), so every layer keeps its width whatever
subgroup it is constrained to. Layer kinds: ``regular`` (one ``group``), ``mixed`` (a
[G]-mixed layer over ``groups``) and the approximate-equivariance baselines registered in
``equinas.models.layers`` (their settings go in ``options``). A layer's ``basis`` says how
its kernels are parametrised (``equinas.nn.basis``): ``pixel`` or ``harmonic`` (band-limited,
for exact equivariance of the kernels to 45-degree rotations); a layer without it is a pixel
layer (the files of earlier versions). ``equinas.models.backbone`` picks it by the ambient group.

The ``backbone`` field says how the layers are wired. ``plain``: one block per layer, in a row.
``resnet``: layer 0 is the stem block; layers ``2j+1`` and ``2j+2`` are the two convolutions
of residual block ``j`` (``conv -> norm -> ReLU -> conv -> norm``, plus a skip, then ReLU);
the skip is the identity when the block keeps its width and otherwise a 1x1 group conv with
batch norm constrained like the block's second layer (see ``equinas.models.resnet``). Every
layer is one searchable unit with its own group. A ``pool`` is allowed on the stem and on the
second layer of a block (it pools the block's output), never inside a block.

``schema`` versions the JSON: 1 is the unversioned form of earlier files (always ``plain``),
2 adds ``schema`` and ``backbone``. ``from_dict`` reads both; ``to_dict`` writes the current one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from equinas.groups import PlanarGroup, parse_group
from equinas.models.errors import SpecError  # re-exported: ``from equinas.models.spec import SpecError``
from equinas.models.layers import LAYER_KINDS
from equinas.models.size import check_depth, check_network_size
from equinas.nn.basis import BASES
from equinas.nn.pooling import POOLS

SCHEMA_VERSION = 2
BACKBONES = ("plain", "resnet")


def _from_mapping(cls: type, data: Any, where: str) -> dict[str, Any]:
    """Keyword arguments for dataclass ``cls`` from ``data``, rejecting unknown/missing keys."""
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected an object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(known)}")
    return dict(data)


def family_body(cls: type, body: Any, family: str, nested: str, what: str) -> dict[str, Any]:
    """The fields of a model family's spec ``body`` (a dataclass ``cls``), checked: no unknown
    keys, and the required ``nested`` spec (``what``) an object; ``SpecError`` naming them."""
    values = _from_mapping(cls, body, family)
    if not isinstance(values.get(nested), dict):
        raise SpecError(f"{family}: '{nested}' ({what}, an object) is required")
    return values


def _require(data: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise SpecError(f"{where}: missing required field(s) {missing}")


@dataclass(frozen=True)
class LayerSpec:
    """One searchable layer: a conv and its group batch norm (``plain``: then ReLU and an optional
    2x2 max pool; ``resnet``: one of the two convs of a residual block, or the stem)."""

    channels: int
    kind: str = "regular"
    group: str | None = None
    groups: tuple[str, ...] | None = None
    kernel_size: int = 5
    basis: str = "pixel"
    pool: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["groups"] = None if self.groups is None else list(self.groups)
        return {k: v for k, v in out.items() if v is not None and v != {}}


@dataclass(frozen=True)
class HeadSpec:
    """Invariant head: group pooling, global spatial pooling, optional hidden layer, linear."""

    group_pool: str = "max"
    spatial_pool: str = "mean"
    hidden: int | None = 64
    dropout: float = 0.0


@dataclass(frozen=True)
class ArchSpec:
    """A whole network; see the module docstring for the JSON form.

    >>> from equinas.models.backbone import backbone
    >>> spec = backbone("D4", widths=(8, 16), pools_after=(0,), kernel_size=3)
    >>> [(layer.group, layer.channels, layer.pool) for layer in spec.layers]
    [('D4', 8, True), ('D4', 16, False)]
    >>> ArchSpec.from_json(spec.to_json()) == spec
    True
    >>> spec.with_layer(1, group="C4").groups_per_layer()
    ['D4', 'C4']
    """

    layers: tuple[LayerSpec, ...]
    ambient: str = "D4"
    in_channels: int = 1
    num_classes: int = 10
    head: HeadSpec = field(default_factory=HeadSpec)
    backbone: str = "plain"

    def __post_init__(self) -> None:
        self.validate()

    # -- validation ------------------------------------------------------------------------
    def ambient_group(self) -> PlanarGroup:
        try:
            return parse_group(self.ambient)
        except ValueError as err:
            raise SpecError(f"ambient: {err}") from None

    def layer_group(self, index: int) -> PlanarGroup:
        """The group of a regular layer (``SpecError`` for other kinds)."""
        layer = self.layers[index]
        if layer.group is None:
            raise SpecError(f"layers[{index}].group: a {layer.kind} layer has no single group")
        try:
            return parse_group(layer.group, ambient=self.ambient_group())
        except (ValueError, TypeError) as err:
            raise SpecError(f"layers[{index}].group: {err}") from None

    def validate(self) -> None:
        amb = self.ambient_group()
        if not self.layers:
            raise SpecError("layers: a network needs at least one layer")
        check_depth(len(self.layers))
        if self.backbone not in BACKBONES:
            raise SpecError(f"backbone: expected one of {BACKBONES}, got {self.backbone!r}")
        if self.backbone == "resnet":
            self._validate_residual()
        for name in ("in_channels", "num_classes"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise SpecError(f"{name}: expected a positive integer, got {getattr(self, name)!r}")
        for i, layer in enumerate(self.layers):
            where = f"layers[{i}]"
            if not isinstance(layer.kind, str) or layer.kind not in LAYER_KINDS:
                raise SpecError(f"{where}.kind: unknown kind {layer.kind!r}; known: {sorted(LAYER_KINDS)}")
            if not isinstance(layer.pool, bool):
                raise SpecError(f"{where}.pool: expected true or false, got {layer.pool!r}")
            if isinstance(layer.channels, bool) or not isinstance(layer.channels, int) or layer.channels < 1:
                raise SpecError(f"{where}.channels: expected a positive integer, got {layer.channels!r}")
            size = layer.kernel_size
            if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
                raise SpecError(
                    f"{where}.kernel_size: expected a positive odd integer, got {layer.kernel_size!r}"
                )
            if layer.basis not in BASES:
                raise SpecError(f"{where}.basis: expected one of {BASES}, got {layer.basis!r}")
            if layer.kind == "mixed":
                if layer.group is not None:
                    raise SpecError(f"{where}: a mixed layer takes 'groups', not 'group'")
                for name in layer.groups or ():
                    try:
                        parse_group(name, ambient=amb)
                    except (ValueError, TypeError) as err:
                        raise SpecError(f"{where}.groups: {err}") from None
            else:
                if layer.group is None or layer.groups is not None:
                    raise SpecError(f"{where}: a {layer.kind} layer takes one 'group'")
                self.layer_group(i)
            LAYER_KINDS[layer.kind].check_options(layer.options, where)
        head = self.head
        for name in ("group_pool", "spatial_pool"):
            if getattr(head, name) not in POOLS:
                raise SpecError(f"head.{name}: expected one of {POOLS}, got {getattr(head, name)!r}")
        if head.hidden is not None and (not _is_int(head.hidden) or head.hidden < 1):
            raise SpecError(f"head.hidden: expected a positive integer or null, got {head.hidden!r}")
        if not _is_number(head.dropout) or not 0.0 <= head.dropout < 1.0:
            raise SpecError(f"head.dropout: expected a value in [0, 1), got {head.dropout!r}")
        check_network_size(self, amb.order)

    def _validate_residual(self) -> None:
        count = len(self.layers)
        if count < 3 or count % 2 == 0:
            raise SpecError(
                f"layers: a resnet has a stem and two layers per residual block (an odd number >= 3), "
                f"got {count} layers"
            )
        for first, _ in self.residual_blocks():
            if self.layers[first].pool:
                raise SpecError(
                    f"layers[{first}].pool: the first layer of a residual block cannot pool (pool the "
                    f"block's output: set it on layers[{first + 1}])"
                )

    def residual_blocks(self) -> list[tuple[int, int]]:
        """``(first, second)`` layer indices of every residual block (``[]`` for ``plain``)."""
        if self.backbone != "resnet":
            return []
        return [(i, i + 1) for i in range(1, len(self.layers), 2)]

    def check_training_memory(self, height: int, width: int, batch_size: int) -> None:
        """``SpecError`` naming ``layers`` when training on batches of ``batch_size`` images of
        ``height x width`` would not fit in memory (``equinas.models.size``)."""
        check_network_size(self, self.ambient_group().order, (height, width), batch_size)

    def check_input_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size of the last block's maps for ``height x width`` inputs.

        ``SpecError`` naming ``pools_after`` when a 2x2 pool would get a map smaller than 2x2
        (the network would fail mid-run, or pool to nothing).
        """
        h, w = height, width
        for i, layer in enumerate(self.layers):
            if not layer.pool:
                continue
            if h < 2 or w < 2:
                pools = sum(1 for layer in self.layers if layer.pool)
                raise SpecError(
                    f"pools_after: the 2x2 pool after layer {i} gets a {h}x{w} map; {pools} pools are "
                    f"too many for {height}x{width} inputs (each halves the size)"
                )
            h, w = h // 2, w // 2
        return h, w

    # -- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "backbone": self.backbone,
            "ambient": self.ambient,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "layers": [layer.to_dict() for layer in self.layers],
            "head": asdict(self.head),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> ArchSpec:
        """Read any schema version (see the module docstring); unknown fields are a ``SpecError``."""
        if isinstance(data, dict) and "schema" in data:
            data = dict(data)
            version = data.pop("schema")
            if not _is_int(version) or not 1 <= version <= SCHEMA_VERSION:
                raise SpecError(
                    f"schema: unsupported version {version!r}; this equinas reads 1 to {SCHEMA_VERSION}"
                )
        else:
            version = 1
        if version == 1 and isinstance(data, dict) and "backbone" in data:
            raise SpecError("backbone: needs schema 2 or later (a version-1 spec is always plain)")
        top = _from_mapping(cls, data, "spec")
        _require(top, ("layers",), "spec")
        if not isinstance(top["layers"], list):
            raise SpecError("layers: expected a list of layer objects")
        layers = []
        for i, raw in enumerate(top["layers"]):
            kwargs = _from_mapping(LayerSpec, raw, f"layers[{i}]")
            _require(kwargs, ("channels",), f"layers[{i}]")
            if kwargs.get("groups") is not None:
                if not isinstance(kwargs["groups"], list | tuple):
                    raise SpecError(f"layers[{i}].groups: expected a list of group names")
                kwargs["groups"] = tuple(kwargs["groups"])
            layers.append(LayerSpec(**kwargs))
        top["layers"] = tuple(layers)
        if "head" in top:
            top["head"] = HeadSpec(**_from_mapping(HeadSpec, top["head"], "head"))
        return cls(**top)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"not valid JSON: {err}") from None
        except RecursionError:
            raise SpecError("not a spec: JSON nested too deeply to read") from None
        except ValueError as err:  # an integer of more than 4300 digits
            raise SpecError(f"not a spec: {' '.join(str(err).split(';')[0].split())}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> ArchSpec:
        path = Path(path)
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise SpecError(f"{path}: not UTF-8 text (byte {err.start})") from None
        except SpecError as err:
            raise SpecError(f"{path}: {err}") from None

    # -- edits ---------------------------------------------------------------------------------
    def with_layer(self, index: int, **changes: Any) -> ArchSpec:
        layers = list(self.layers)
        layers[index] = replace(layers[index], **changes)
        return replace(self, layers=tuple(layers))

    def with_kind(self, kind: str, of: str = "regular") -> ArchSpec:
        """Every layer of kind ``of`` turned into ``kind`` (e.g. ``"cr"``: constraint relaxation)."""
        layers = tuple(replace(layer, kind=kind) if layer.kind == of else layer for layer in self.layers)
        return replace(self, layers=layers)

    def groups_per_layer(self) -> list[str]:
        """Group name per layer (``mixed`` for mixed layers): a compact architecture label."""
        return [layer.group if layer.group is not None else "mixed" for layer in self.layers]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
