"""Up-front checks of a search's settings, so that bad values fail before a run starts.

``validate_method_settings`` checks a method's settings dataclass against the ambient group
of the backbone: every group-name field (``groups``, ``start_group``, ``group``, ``targets``,
``prior``, ``space``) must name subgroups of the ambient group, and every number must be
finite (NaN passes most range checks unnoticed), positive or non-negative where the field
is a rate, a count or a budget. ``validate_search_settings`` adds the backbone itself (widths,
pools) against the task's image size. Both raise ``ValueError`` naming the field and its
command-line option.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

from equinas.groups import PlanarGroup, parse_group

GROUP_FIELDS = ("groups", "start_group", "group", "targets", "prior", "space")
# group-name fields that hold other kinds of names: AEN's state bits are G-MNIST transforms
NON_GROUP_FIELDS = {"AENSettings": frozenset({"groups"})}
POSITIVE = frozenset(
    {
        "arch_lr",
        "q_lr",
        "epochs_per_generation",
        "initial_epochs",
        "samples",
        "population",
        "epsilon_scale",
        "hidden_grid",
        "translation_step",
        "max_models",
        "max_episodes",
        "episode_length",
        "q_batch_size",
        "q_learning_starts",
        "replay_capacity",
        "target_sync_every",
        "top_k",
    }
)
NON_NEGATIVE = frozenset(
    {"generations", "children_per_parent", "arch_weight_decay", "finetune_epochs", "prior", "gamma"}
)
BACKBONE_FIELDS = frozenset(
    {"ambient", "widths", "pools_after", "kernel_size", "basis", "width_rule", "backbone"}
)
# fields whose group names must be subgroups of another field's group
WITHIN = {"targets": "prior"}


def _label(name: str) -> str:
    return f"{name} (--{name.replace('_', '-')})"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_number(name: str, value: Any) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{_label(name)}: expected a finite number, got {value!r}")
    if name in POSITIVE and not value > 0:
        raise ValueError(f"{_label(name)}: expected a number > 0, got {value!r}")
    if name in NON_NEGATIVE and not value >= 0:
        raise ValueError(f"{_label(name)}: expected a number >= 0, got {value!r}")


def _group_names(name: str, value: Any) -> list[str] | None:
    """The group names held by a group-name field, or None when it holds something else."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, dict):
        names = list(value)
        if all(isinstance(v, str | PlanarGroup) for v in names):
            if not names:
                raise ValueError(f"{_label(name)}: expected at least one group name")
            return [str(v) for v in names]
    return None


def validate_method_settings(settings: Any, ambient: str | PlanarGroup) -> None:
    """Check ``settings`` (a method's settings dataclass) against the ``ambient`` group.

    ``ValueError`` naming the field: unknown group names, groups that are not subgroups of
    ``ambient`` (or, for ``targets``, of ``prior``), repeated groups, and numbers that are NaN,
    infinite or out of range (see ``POSITIVE`` and ``NON_NEGATIVE``); numbers inside dict
    fields (layer ``options``) must be finite too.
    """
    try:
        amb = parse_group(ambient)
    except ValueError as err:
        raise ValueError(f"ambient (--ambient): {err}") from None
    if settings is None or not dataclasses.is_dataclass(settings):
        return
    skip = NON_GROUP_FIELDS.get(type(settings).__name__, frozenset())
    parsed: dict[str, list[PlanarGroup]] = {}
    for f in dataclasses.fields(settings):
        name, value = f.name, getattr(settings, f.name)
        if value is None:
            continue
        if _is_number(value):
            _check_number(name, value)
            continue
        if isinstance(value, dict):
            for key, item in value.items():
                if _is_number(item) and not math.isfinite(item):
                    raise ValueError(f"{_label(name)}: {key}={item!r} is not a finite number")
            continue
        if name not in GROUP_FIELDS or name in skip:
            continue
        names = _group_names(name, value)
        if names is None:
            continue
        groups = []
        for group_name in names:
            try:
                groups.append(parse_group(group_name, ambient=amb))
            except ValueError as err:
                raise ValueError(f"{_label(name)}: {err}") from None
        repeated = sorted({str(g) for g in groups if groups.count(g) > 1})
        if repeated:
            raise ValueError(f"{_label(name)}: {', '.join(repeated)} listed more than once")
        parsed[name] = groups
    for name, outer in WITHIN.items():
        if name in parsed and len(parsed.get(outer, ())) == 1:
            (container,) = parsed[outer]
            for group in parsed[name]:
                if not group.is_subgroup_of(container):
                    raise ValueError(f"{_label(name)}: {group} is not a subgroup of the {outer} {container}")


def validate_search_settings(settings: Any, backbone: Any, data: Any = None) -> None:
    """``validate_method_settings`` against ``backbone.ambient``, then the backbone itself:
    ``widths`` and ``pools_after`` (``SpecError`` naming them) and, with ``data``, its pools
    against the task's image size."""
    validate_method_settings(settings, backbone.ambient)
    if data is None:
        return
    try:
        spec = backbone.spec(data, str(parse_group(backbone.ambient)))
        spec.check_input_size(*data.image_size)
    except ValueError as err:
        raise ValueError(option_error(err)) from None


def option_error(err: Exception) -> str:
    """``"pools_after: ..."`` -> ``"pools_after (--pools-after): ..."`` for backbone fields."""
    text = str(err)
    name, sep, rest = text.partition(": ")
    return f"{_label(name)}: {rest}" if sep and name in BACKBONE_FIELDS else text
