"""Command-line options generated from declared settings (``equinas.settings``), and back.

Every field of a settings class becomes one option: ``--<flag or name, with dashes>``, its
default and choices those of the declaration, its help the declaration's help plus the default.
Values are parsed by type: numbers, strings, ``none`` for optional fields, comma-separated lists
for tuples (``--widths 8,8,16``), ``--x/--no-x`` for booleans, repeatable ``KEY=VALUE`` for
mappings. ``settings_from`` builds the settings object back from the parsed namespace, and
``OptionNames`` turns the field names of a library error into the options that set them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Iterable
from typing import Any

from equinas.settings import Declaration, ValueType, declared_fields, default_of

NONE_WORDS = ("none", "null")


def option_name(f: dataclasses.Field, decl: Declaration) -> str:
    """``--grad-clip`` for field ``grad_clip`` (or the declared ``flag``)."""
    return "--" + (decl.flag or f.name).replace("_", "-")


def destination(f: dataclasses.Field, decl: Declaration) -> str:
    """The namespace attribute (and TOML key) of a field's option: ``threads`` for ``--threads``."""
    return (decl.flag or f.name).replace("-", "_")


def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with the value read as JSON when it is JSON (``image_size=64`` -> 64)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _scalar_parser(base: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return base(text)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(base, base.__name__)
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None

    return parse


def value_parser(vtype: ValueType) -> Callable[[str], Any]:
    """Text -> value for options of type ``vtype`` (lists comma-separated; ``none`` for None)."""
    item = _scalar_parser(vtype.item or str) if vtype.base is tuple else _scalar_parser(vtype.base)

    def parse(text: str) -> Any:
        if vtype.optional and text.strip().lower() in NONE_WORDS:
            return None
        if vtype.base is tuple:
            return tuple(item(v.strip()) for v in text.split(",") if v.strip())
        return item(text)

    return parse


def shown(value: Any) -> str:
    """A default as the user types it: ``none``, ``8,8,16``, ``0.001``."""
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "''"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


def add_settings(
    parser: argparse.ArgumentParser, cls: type, title: str, skip: Iterable[str] = ()
) -> argparse._ArgumentGroup:
    """One option per declared field of ``cls`` (fields in ``skip`` left out), in a group."""
    group = parser.add_argument_group(title)
    skipped = set(skip)
    for f, vtype, decl in declared_fields(cls):
        if decl is None or f.name in skipped:
            continue
        default = default_of(f)
        kwargs: dict[str, Any] = {"dest": destination(f, decl)}
        if default is dataclasses.MISSING:
            kwargs["required"] = True
        explained = default is dataclasses.MISSING or "default" in decl.help
        kwargs["help"] = (decl.help if explained else f"{decl.help} (default: {shown(default)})").replace(
            "%", "%%"
        )
        if vtype.base is bool:
            kwargs.update(action=argparse.BooleanOptionalAction, default=default)
        elif vtype.base is dict:
            kwargs.update(type=key_value, action="append", default=None, metavar=decl.metavar or "KEY=VALUE")
        else:
            if default is not dataclasses.MISSING:
                kwargs["default"] = default
            kwargs["type"] = value_parser(vtype)
            if decl.choices is not None and vtype.base is str:
                kwargs["choices"] = decl.choices
            if decl.metavar or vtype.base is tuple:
                kwargs["metavar"] = decl.metavar or "V,V,..."
        group.add_argument(option_name(f, decl), **kwargs)
    return group


def settings_from(args: argparse.Namespace, cls: type, skip: Iterable[str] = ()) -> Any:
    """``cls`` built from the options ``add_settings`` added (fields in ``skip`` keep their
    defaults); repeated ``KEY=VALUE`` options become a dict."""
    skipped = set(skip)
    values = {}
    for f, vtype, decl in declared_fields(cls):
        if decl is None or f.name in skipped:
            continue
        value = getattr(args, destination(f, decl))
        if vtype.base is dict:
            value = default_of(f) if value is None else dict(value)
        values[f.name] = value
    return cls(**values)


class OptionNames:
    """Field names of settings classes -> their options, to name options in error messages."""

    def __init__(self) -> None:
        self.labels: dict[str, str] = {}
        self._bare: dict[str, set[str]] = {}

    def add(self, cls: type, skip: Iterable[str] = ()) -> None:
        owner = getattr(cls, "owner_label", None) or cls.__name__
        skipped = set(skip)
        for f, _, decl in declared_fields(cls):
            if decl is None or f.name in skipped:
                continue
            self.labels[f"{owner}.{f.name}"] = option_name(f, decl)
            self._bare.setdefault(f.name, set()).add(option_name(f, decl))

    def annotate(self, message: str) -> str:
        """``"TrainConfig.lr: expected ..."`` -> ``"TrainConfig.lr (--lr): expected ..."``; also a
        bare field name (``"pools_after: ..."``) when only one option has that field."""
        name, sep, rest = message.partition(": ")
        option = self.labels.get(name)
        bare = self._bare.get(name, set())
        if option is None and len(bare) == 1:
            (option,) = bare
        return f"{name} ({option}): {rest}" if sep and option else message


def stood_for(settings_cls: type, other_cls: type) -> set[str]:
    """Fields of ``other_cls`` (e.g. ``TrainConfig``) that a method's ``settings_cls`` sets itself:
    those whose option it also has (EquiNAS_D's ``--arch-lr``) and those its declarations name
    in ``replaces``; the method's command shows its own option instead."""
    own = {option_name(f, decl) for f, _, decl in declared_fields(settings_cls) if decl is not None}
    replaced = {
        decl.replaces for _, _, decl in declared_fields(settings_cls) if decl is not None and decl.replaces
    }
    return {
        f.name
        for f, _, decl in declared_fields(other_cls)
        if decl is not None and (option_name(f, decl) in own or f.name in replaced)
    }


def not_needed(settings_cls: type, other_cls: type) -> set[str]:
    """Fields of ``other_cls`` (e.g. ``TrainConfig``'s ``arch_*``) whose declaration ``needs`` a
    capability the method of ``settings_cls`` lacks (``Settings.capabilities``): its command
    does not offer them, as the method never reads them."""
    capabilities: frozenset[str] = getattr(settings_cls, "capabilities", frozenset())
    return {
        f.name
        for f, _, decl in declared_fields(other_cls)
        if decl is not None and decl.needs is not None and decl.needs not in capabilities
    }


def not_offered(args: argparse.Namespace, cls: type) -> set[str]:
    """Declared fields of ``cls`` that have no option in the parsed ``args``."""
    return {
        f.name
        for f, _, decl in declared_fields(cls)
        if decl is not None and not hasattr(args, destination(f, decl))
    }
