"""``--config file.toml``: option values from a TOML file; options on the command line win.

Keys are the option names with dashes or underscores (``lr = 3e-3``, ``train-size = 2000``);
a key that names no option of the command is an error. Values go through the options' own
parsing: switches (``resume``, ``quiet``) take ``true``/``false`` only, text is parsed as on the
command line (``widths = "8,16"``), ``task-option`` takes a table or ``"KEY=VALUE"`` strings,
and choices are checked; every error is one line naming the file and the key.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

NOT_OPTIONS = ("command", "method", "func", "config", "option_names")


def command_word(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is no option or ``--config`` value)."""
    words = iter(argv)
    for word in words:
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _given(argv: Sequence[str]) -> set[str]:
    """Destinations of the options written on the command line (``--no-x`` gives ``x``)."""
    names = {a.split("=")[0].lstrip("-").replace("-", "_") for a in argv if a.startswith("--")}
    return names | {n.removeprefix("no_") for n in names}


def read_config(path: str) -> dict[str, Any]:
    """The table of TOML file ``path``; ``ValueError`` in one line naming it when it cannot be
    read, is not UTF-8 or not TOML, or nests too deeply to parse."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"config {path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except RecursionError:
        raise ValueError(f"config {path}: nested too deeply to read") from None
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"cannot read config {path}: {err}") from None


def _actions(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, argparse.Action]:
    """The actions of the (sub)command ``args`` chose, by destination."""
    found: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None)
            if chosen in action.choices:
                found.update(_actions(action.choices[chosen], args))
        else:
            found.setdefault(action.dest, action)
    return found


def _parsed(action: argparse.Action, text: str, where: str) -> Any:
    parse = action.type
    if not callable(parse):
        return text
    try:
        return parse(text)
    except (argparse.ArgumentTypeError, ValueError, TypeError) as err:
        raise ValueError(f"{where}: {err}") from None


def _typed(action: argparse.Action, value: Any, where: str) -> Any:
    """The TOML ``value`` of ``action``'s option, as its flag would give it."""
    if action.nargs == 0:  # a switch: --resume, --quiet, --x/--no-x
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value if action.const is not False else not value
    if isinstance(action, argparse._AppendAction) and action.type is not None:  # KEY=VALUE
        if isinstance(value, dict):
            return list(value.items())
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, str) for item in items):
            raise ValueError(f'{where}: expected a table (key = value) or "KEY=VALUE" texts, got {value!r}')
        return [_parsed(action, item, where) for item in items]
    if isinstance(value, str) and action.type is not None:
        value = _parsed(action, value, where)
    elif action.type is None and not isinstance(value, str):
        listed = action.nargs in ("+", "*") and isinstance(value, list)
        if not (listed and all(isinstance(item, str) for item in value)):
            raise ValueError(f"{where}: expected text, got {value!r}")
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{where}: expected one of {', '.join(map(str, action.choices))}, got {value!r}")
    return value


def parse_with_config(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; values from ``--config`` fill the options not given on the command line."""
    args = parser.parse_args(argv)
    if not args.config:
        return args
    values = read_config(args.config)
    known = vars(args)
    given = _given(argv)
    actions = _actions(parser, args)
    for key, value in values.items():
        dest = key.replace("-", "_")
        if dest not in known or dest in NOT_OPTIONS:
            parser.error(f"config {args.config}: unknown option {key!r} for `{args.command}`")
        if dest in given:
            continue
        value = _typed(actions[dest], value, f"config {args.config}: {key}") if dest in actions else value
        current = known[dest]
        known[dest] = tuple(value) if isinstance(current, tuple) and isinstance(value, list) else value
    return argparse.Namespace(**known)
