"""``--config file.toml``: option values from a TOML file; options on the command line win.

Keys are the option names with dashes or underscores (``lr = 3e-3``, ``train-size = 2000``);
a key that names no option of the command is an error.
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


def parse_with_config(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; values from ``--config`` fill the options not given on the command line."""
    args = parser.parse_args(argv)
    if not args.config:
        return args
    values = read_config(args.config)
    known = vars(args)
    given = _given(argv)
    for key, value in values.items():
        dest = key.replace("-", "_")
        if dest not in known or dest in NOT_OPTIONS:
            parser.error(f"config {args.config}: unknown option {key!r} for `{args.command}`")
        if dest in given:
            continue
        current = known[dest]
        known[dest] = tuple(value) if isinstance(current, tuple) and isinstance(value, list) else value
    return argparse.Namespace(**known)
