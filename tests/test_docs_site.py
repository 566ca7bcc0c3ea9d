"""The documentation site's generated pages: the CLI reference holds every command and option
(issue 33), and the figures it serves exist where the benchmarks committed them."""

from __future__ import annotations

import argparse
import re
import runpy
from pathlib import Path

import pytest

from equinas.cli import build_parser
from equinas.search import METHODS

HOOKS = Path(__file__).resolve().parents[1] / "docs" / "hooks"


def parsers(parser: argparse.ArgumentParser, words: tuple[str, ...] = ("equinas",)):
    """``(words, parser)`` of every command and subcommand."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, (*words, name))


def test_cli_reference_lists_every_command_option_and_default() -> None:
    page = runpy.run_path(str(HOOKS / "cli_reference.py"))["cli_reference"]()
    for words, parser in parsers(build_parser()):
        if len(words) > 1:
            assert f"`{' '.join(words)}`" in page, words
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert re.search(rf"`[^`|]*{re.escape(option)}(?![\w-])", page), (words, option)
    section = page[page.index("`equinas search equinas_g`") :]
    section = section[: section.index("`equinas search", 10)]
    assert "`--decide-at V,V,...` | `0.1,0.2,0.3` |" in section and "--arch-lr" not in section
    assert "Cost: one network" in section
    assert all(f"{{#search-{name}}}" in page for name in METHODS)


def test_served_figures_exist() -> None:
    pytest.importorskip("mkdocs")
    figures = runpy.run_path(str(HOOKS / "figures.py"))["FIGURES"]
    root = HOOKS.parents[1]
    assert all((root / source).is_file() for source in figures.values())
