"""Declared settings: each option's type, default, allowed values and help, written once.

A settings class is a frozen dataclass deriving from ``Settings`` whose fields come from
``setting(default, help=..., ...)``. Constructing one checks every field against its
declaration -- the type from the annotation (``int``, ``float``, ``str``, ``bool``,
``tuple[T, ...]``, ``tuple[T, T]``, ``dict`` (its numbers finite), ``int | str`` (a number or a word
such as ``auto``; its ``check`` reads both), each optionally ``| None``), the bounds
(``at_least``, ``above``, ``at_most``, ``below``; for tuples, of every item), the ``choices``
and a custom ``check`` -- normalises it (``int -> float`` for float fields, lists to tuples),
then runs the class's ``check()`` for rules that join several fields. A bad value raises the
class's ``error`` type (``ValueError`` by default) as one line naming it::

    TrainConfig.lr: expected a finite number > 0, got nan

Floats must always be finite. The command line, TOML configs and benchmark scripts build
their options from these declarations (``equinas.cli.options``): a field's option is
``--<name with dashes>`` unless the declaration names another ``flag``.

This module imports nothing from equinas, so every layer may declare its settings here.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

_KEY = "equinas.setting"


@dataclass(frozen=True)
class Declaration:
    """What a field's declaration says besides its type and default (see the module docstring).

    ``check(value) -> value`` replaces the type check (it raises ``ValueError`` with what it
    expected and returns the normalised value). ``subgroups`` marks group names that must be
    subgroups of the ambient group (checked by ``equinas.search.validation`` once the
    backbone is known); ``within`` names the field whose group must contain them, and
    ``architectures`` lets them also be named architectures (``paper:rotmnist-1``). A method's
    setting with the option of a ``TrainConfig`` field, or naming it in ``replaces``, stands
    for that field: the method's command shows this option instead of that one. ``needs`` names
    what a search method must do for the field to mean anything (``"architecture steps"``): a
    method's command offers the field only when its settings class lists that in ``capabilities``.
    """

    help: str
    choices: tuple[Any, ...] | None = None
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    check: Callable[[Any], Any] | None = None
    flag: str | None = None
    metavar: str | None = None
    subgroups: bool = False
    within: str | None = None
    architectures: bool = False
    replaces: str | None = None
    needs: str | None = None

    def bounds_text(self) -> str:
        parts = [
            f"{op} {_number(bound)}"
            for op, bound in (
                (">=", self.at_least),
                (">", self.above),
                ("<=", self.at_most),
                ("<", self.below),
            )
            if bound is not None
        ]
        return " and ".join(parts)

    def in_bounds(self, value: float) -> bool:
        return (
            (self.at_least is None or value >= self.at_least)
            and (self.above is None or value > self.above)
            and (self.at_most is None or value <= self.at_most)
            and (self.below is None or value < self.below)
        )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    factory: Callable[[], Any] | None = None,
    **declared: Any,
) -> Any:
    """A dataclass field with its ``Declaration`` (``help`` and the keywords of ``Declaration``);
    ``factory`` makes mutable defaults (``dict``). Without a default the field is required."""
    metadata = {_KEY: Declaration(help=help, **declared)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def declaration(f: dataclasses.Field) -> Declaration | None:
    """The declaration of a dataclass field, or None for a field made without ``setting``."""
    return f.metadata.get(_KEY)


def default_of(f: dataclasses.Field) -> Any:
    """A field's default value (``MISSING`` for required fields)."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


@dataclass(frozen=True)
class ValueType:
    """A field's annotation, reduced to what checking and parsing need: ``base`` (bool, int,
    float, str, tuple, dict), ``optional`` (``| None``), the ``item`` type and fixed ``length``
    of tuples (``None``: any length)."""

    base: type
    optional: bool = False
    item: type | None = None
    length: int | None = None

    def describe(self, decl: Declaration) -> str:
        bounds = decl.bounds_text()
        choices = ", ".join(repr(c) for c in decl.choices or ())
        if decl.choices is not None and self.base is tuple:
            text = f"a list of names from {choices}"
        elif decl.choices is not None:
            text = f"one of {choices}"
        elif self.base is tuple:
            items = _describe_base(self.item or str, bounds, plural=True)
            text = f"{self.length} {items}" if self.length else f"a list of {items}"
        else:
            text = _describe_base(self.base, bounds, plural=False)
        return text + (" or None" if self.optional else "")


def _describe_base(base: type, bounds: str, plural: bool) -> str:
    names = {
        bool: ("true or false", "booleans"),
        int: ("an integer", "integers"),
        float: ("a finite number", "finite numbers"),
        str: ("a string", "strings"),
        dict: ("a mapping", "mappings"),
    }
    text = names[base][1 if plural else 0]
    return f"{text} {bounds}" if bounds else text


def value_type(hint: Any) -> ValueType:
    """``ValueType`` of an annotation such as ``tuple[int, ...] | None``."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = tuple(a for a in typing.get_args(hint) if a is not type(None))
        optional = len(args) < len(typing.get_args(hint))
        if set(args) == {int, str}:  # a number or a word ("auto"): text, read by the declared check
            return ValueType(str, optional)
        (hint,) = args
    origin = typing.get_origin(hint) or hint
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return ValueType(tuple, optional, args[0])
        return ValueType(tuple, optional, args[0], len(args))
    if origin not in (bool, int, float, str, dict):
        raise TypeError(f"settings cannot hold values of type {hint!r}")
    return ValueType(origin, optional)


@functools.cache
def declared_fields(cls: type) -> tuple[tuple[dataclasses.Field, ValueType, Declaration | None], ...]:
    """``(field, value type, declaration)`` of every field of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return tuple((f, value_type(hints[f.name]), declaration(f)) for f in dataclasses.fields(cls))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar(value: Any, base: type, decl: Declaration) -> tuple[bool, Any]:
    """``(ok, normalised value)`` of one value of type ``base``."""
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = _is_int(value) and decl.in_bounds(value)
    elif base is float:
        ok = _is_real(value) and math.isfinite(value) and decl.in_bounds(value)
        value = float(value) if ok else value
    elif base is str:
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, dict)
    if ok and decl.choices is not None:
        ok = value in decl.choices
    return ok, value


def checked_value(vtype: ValueType, decl: Declaration, value: Any) -> Any:
    """``value`` checked against its type and declaration and normalised; ``ValueError`` with
    the expectation (``"expected ..., got ..."``) otherwise."""
    if value is None and vtype.optional:
        return None
    if decl.check is not None:
        return decl.check(value)
    expected = f"expected {vtype.describe(decl)}, got {value!r}"
    if vtype.base is tuple:
        if not isinstance(value, tuple | list) or (vtype.length is not None and len(value) != vtype.length):
            raise ValueError(expected)
        items = [_scalar(v, vtype.item or str, decl) for v in value]
        if not all(ok for ok, _ in items):
            raise ValueError(expected)
        return tuple(v for _, v in items)
    ok, value = _scalar(value, vtype.base, decl)
    if not ok:
        raise ValueError(expected)
    if vtype.base is dict:
        for key, item in value.items():
            if _is_real(item) and not math.isfinite(item):
                raise ValueError(f"{key}={item!r} is not a finite number")
    return value


def check_fields(settings: Any, error: type[ValueError] = ValueError) -> None:
    """Check and normalise every declared field of the frozen dataclass ``settings`` in place;
    ``error`` naming ``<label>.<field>`` (``label_of``) for the first bad one."""
    owner = label_of(settings)
    cls: type = type(settings)
    for f, vtype, decl in declared_fields(cls):
        if decl is None:
            continue
        try:
            value = checked_value(vtype, decl, getattr(settings, f.name))
        except ValueError as err:
            raise error(f"{owner}.{f.name}: {err}") from None
        object.__setattr__(settings, f.name, value)


@dataclass(frozen=True)
class Settings:
    """Base of every settings class: construction checks the declared fields (``check_fields``)
    and then ``check()``. ``error`` is the exception type raised; ``label`` prefixes field
    names in messages (default: the class name). ``capabilities``: what the method these settings
    configure does, for the declarations that ``need`` it (``"architecture steps"``)."""

    error_type: ClassVar[type[ValueError]] = ValueError
    owner_label: ClassVar[str | None] = None
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        check_fields(self, self.error_type)
        self.check()

    def check(self) -> None:
        """Rules that join several fields (override; raise ``self.fail(...)``)."""

    def fail(self, name: str, message: str) -> ValueError:
        """The error for field ``name``: ``<label>.<name>: <message>``."""
        return self.error_type(f"{label_of(self)}.{name}: {message}")


def odd_size(value: Any) -> int:
    """A positive odd integer (a kernel size); the ``check`` of such fields."""
    if not _is_int(value) or value < 1 or value % 2 == 0:
        raise ValueError(f"expected a positive odd integer, got {value!r}")
    return value


def same_as(cls: type, name: str, default: Any = dataclasses.MISSING, **changes: Any) -> Any:
    """A new field declared like field ``name`` of settings class ``cls``: its default (or
    ``default``) and its declaration with ``changes``, so one declaration serves two classes."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    decl = declaration(f)
    if decl is None:
        raise TypeError(f"{cls.__name__}.{name} is not a declared setting")
    values = {k.name: getattr(decl, k.name) for k in dataclasses.fields(decl)}
    if default is not dataclasses.MISSING:
        return setting(default, **{**values, **changes})
    factory = f.default_factory if callable(f.default_factory) else None  # not the MISSING sentinel
    return setting(f.default, factory=factory, **{**values, **changes})


def label_of(settings: Any) -> str:
    """The name that prefixes a settings object's fields in messages (``TrainConfig``, ``lps``)."""
    return getattr(settings, "owner_label", None) or type(settings).__name__
