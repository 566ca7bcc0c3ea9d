"""MkDocs hook: the CLI reference, generated at build time from the parsers ``equinas.cli`` builds.

The parsers are themselves generated from the declared settings (``equinas.cli.options``), so
this page lists every command, every option, its default and its help as the installed code
declares them; nothing is copied by hand. ``docs/cli.md`` holds the marker ``{{ cli_reference }}``
that this hook replaces.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

MARKER = "{{ cli_reference }}"
_DEFAULT_SUFFIX = re.compile(r"\s*\(default: [^()]*(\([^()]*\)[^()]*)*\)$")


def on_config(config, **_):
    """Import ``equinas`` from this checkout's ``src`` (a fresh clone need not be installed)."""
    src = Path(config.config_file_path).parent / "src"
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    return config


def on_page_markdown(markdown: str, page, **_) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())


def escaped(text: str) -> str:
    """Plain text safe inside a markdown table cell."""
    for char in "\\`*_[]<>|":
        text = text.replace(char, "\\" + char)
    return " ".join(text.split())


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def option_rows(parser: argparse.ArgumentParser) -> list[str]:
    """One markdown table per argument group: option, default, help."""
    from equinas.cli.options import shown

    lines = []
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if not isinstance(a, argparse._SubParsersAction | argparse._HelpAction)
        ]
        if not actions:
            continue
        title = "arguments" if group.title in ("positional arguments", "options") else group.title
        lines += [f"**{escaped(title)}**", "", "| option | default | help |", "|---|---|---|"]
        for a in actions:
            names = ", ".join(a.option_strings) or a.dest
            if a.metavar and a.option_strings:
                names += f" {a.metavar}"
            elif a.choices and a.option_strings and not isinstance(a.choices, dict):
                names += " {" + ",".join(str(c) for c in a.choices) + "}"
            if a.required:
                default = "required"
            elif isinstance(a, argparse._StoreTrueAction):
                default = "off"
            else:
                default = shown(a.default)
            text = _DEFAULT_SUFFIX.sub("", (a.help or "").replace("%%", "%"))
            lines.append(f"| `{names}` | `{default}` | {escaped(text)} |")
        lines.append("")
    return lines


def command_section(words: list[str], parser: argparse.ArgumentParser, level: int) -> list[str]:
    anchor = "-".join(words[1:]) or "equinas"
    lines = [f"{'#' * level} `{' '.join(words)}` {{#{anchor}}}", ""]
    if parser.description:
        lines += [escaped(parser.description), ""]
    lines += option_rows(parser)
    for name, child in subcommands(parser).items():
        lines += command_section([*words, name], child, min(level + 1, 4))
    return lines


def cli_reference() -> str:
    from equinas.cli import build_parser

    return "\n".join(command_section(["equinas"], build_parser(), 2))
