"""Checks of a search's settings that need the backbone or the data, run by ``run_search``.

Types, ranges and choices of every setting are checked when its settings object is built
(``equinas.settings``). What needs more is checked here, before a run starts: the group-name
fields (declared ``subgroups=True``) must name distinct subgroups of the backbone's ambient
group (and of the group of the field named by ``within``), and the backbone's pools must fit
the task's image size. A field declared ``architectures=True`` may also name paper
architectures (``paper:rotmnist-1``), whose every group must be a subgroup of the ambient
group. Errors are ``ValueError``s naming the field (``FixedSettings.groups: ...``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from equinas.groups import PlanarGroup, parse_group
from equinas.models.paper import is_paper_name, paper_groups
from equinas.settings import declared_fields, label_of


def _group_names(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def validate_method_settings(settings: Any, ambient: str | PlanarGroup) -> None:
    """Check the group-name fields of ``settings`` (a method's settings dataclass) against the
    ``ambient`` group: ``ValueError`` naming the field for unknown names, groups that are not
    subgroups of ``ambient`` (or of the ``within`` field's group), repeats and empty lists."""
    try:
        amb = parse_group(ambient)
    except ValueError as err:
        raise ValueError(f"ambient: {err}") from None
    if settings is None or not dataclasses.is_dataclass(settings):
        return
    owner = label_of(settings)
    parsed: dict[str, list[PlanarGroup]] = {}
    within: dict[str, str] = {}
    settings_type: type = type(settings)
    for f, _, decl in declared_fields(settings_type):
        value = getattr(settings, f.name)
        if decl is None or not decl.subgroups or value is None:
            continue
        names = _group_names(value)
        if not names:
            raise ValueError(f"{owner}.{f.name}: expected at least one group name")
        groups = []
        for name in names:
            try:
                if decl.architectures and is_paper_name(name):
                    for layer_group in paper_groups(name):
                        parse_group(layer_group, ambient=amb)
                else:
                    groups.append(parse_group(name, ambient=amb))
            except ValueError as err:
                raise ValueError(f"{owner}.{f.name}: {err}") from None
        repeated = sorted(
            {str(g) for g in groups if groups.count(g) > 1} | {n for n in names if names.count(n) > 1}
        )
        if repeated:
            raise ValueError(f"{owner}.{f.name}: {', '.join(repeated)} listed more than once")
        parsed[f.name] = groups
        if decl.within:
            within[f.name] = decl.within
    for name, outer in within.items():
        if len(parsed.get(outer, ())) == 1:
            (container,) = parsed[outer]
            for group in parsed[name]:
                if not group.is_subgroup_of(container):
                    raise ValueError(f"{owner}.{name}: {group} is not a subgroup of the {outer} {container}")


def validate_search_settings(settings: Any, backbone: Any, data: Any = None, batch_size: int = 1) -> None:
    """``validate_method_settings`` against ``backbone.ambient``; with ``data``, also the
    backbone's pools against the task's image size (``SpecError`` naming ``pools_after``) and
    the memory of training it on batches of ``batch_size`` (``SpecError`` naming ``layers``)."""
    validate_method_settings(settings, backbone.ambient)
    if data is not None:
        spec = backbone.spec(data, str(parse_group(backbone.ambient)))
        spec.check_input_size(*data.image_size)
        spec.check_training_memory(*data.image_size, batch_size)
