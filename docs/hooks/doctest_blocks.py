"""Griffe extension for the API reference: ``>>>`` examples in docstrings render as code.

The docstrings keep their examples as plain doctest lines (``tests/test_docs.py`` runs them);
without a fence, markdown would read their output (``[('D4', 8, True)]``) as link syntax. This
wraps every run of doctest lines and their output in a ``pycon`` code fence.
"""

from __future__ import annotations

import griffe


def fenced(text: str) -> str:
    """``text`` with each block of ``>>>`` lines (with the output lines up to a blank line) fenced."""
    out: list[str] = []
    in_block = False
    for line in text.split("\n"):
        starts = line.lstrip().startswith(">>>")
        if starts and not in_block:
            out.append("```pycon")
            in_block = True
        elif in_block and not line.strip():
            out.append("```")
            in_block = False
        out.append(line)
    if in_block:
        out.append("```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **_: object) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fenced(obj.docstring.value)
