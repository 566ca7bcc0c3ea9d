"""The ``equinas`` command line: train | evaluate | search | report | data | demo.

The command line translates; the library decides. Options are generated from the declared
settings of the layers (``equinas.cli.options``), objects are built from them and handed to
the library, which validates them and resolves budgets; an error is printed as one line,
with the option that sets the field it names. Every option can also come from a TOML file
given with ``--config`` (``equinas.cli.config``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from equinas.cli.common import quiet_data, run_directory_lock
from equinas.cli.config import command_word, parse_with_config
from equinas.cli.results import add_data, add_demo, add_report
from equinas.cli.search import add_search
from equinas.cli.train import add_evaluate, add_train

EXAMPLES = """examples:
  equinas train --task rotmnist --arch D4 --epochs 2 --run-dir runs/d4
  equinas evaluate runs/d4/checkpoint.pt --task rotmnist
  equinas search equinas_e --task rotmnist --epochs 0.5 --generations 3 --run-dir runs/e
  equinas search equinas_d --task rotmnist --epochs 3 --run-dir runs/d
  equinas report runs/e runs/d --compare
  equinas data info rotmnist
"""
COMMANDS = {
    "train": add_train,
    "evaluate": add_evaluate,
    "search": add_search,
    "report": add_report,
    "data": add_data,
    "demo": add_demo,
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``equinas`` parser. With ``only``, the options of that command alone are built (the
    others are listed by name): ``equinas --help`` and ``equinas data list`` import no torch."""
    parser = argparse.ArgumentParser(
        prog="equinas",
        description="Equivariance-aware architecture optimization (EquiNAS) for image classifiers.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="TOML file with option values (command-line options win)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, add in COMMANDS.items():
        add(sub, only is None or only == name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=command_word(argv) or "")
    args = None
    try:
        args = parse_with_config(parser, argv)  # reads --config: its errors are one line too
        with run_directory_lock(args), quiet_data(args):
            return args.func(args)
    except KeyboardInterrupt:
        resumable = getattr(args, "resume", None) is not None
        hint = "; rerun the same command with --resume to continue" if resumable else ""
        print(f"interrupted{hint}", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, ImportError) as err:  # OSError: unwritable dirs, full disk
        message = " ".join(str(err).split()) or type(err).__name__  # one line
        names = getattr(args, "option_names", None)
        print(f"error: {names.annotate(message) if names else message}", file=sys.stderr)
        return 2


__all__ = ["build_parser", "main"]
