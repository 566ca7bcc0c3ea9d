"""``python -m equinas.cli`` (and the ``equinas`` command): Ctrl-C while the command line is
still importing ends with one line and exit 130, as it does later."""

import sys


def run() -> int:
    try:
        from equinas.cli import main
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    raise SystemExit(run())
