"""Package namespaces whose names are imported from their submodules on first use (PEP 562).

A package's ``__init__`` declares ``{name: submodule}`` and gets ``__getattr__``/``__dir__``,
so importing the package (e.g. for ``equinas.nn.choices`` or ``equinas.data.names``, which the
command line reads for ``--help`` and ``data list``) does not import torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_namespace(
    package: str, sources: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``name`` comes from
    ``package.<sources[name]>`` the first time it is asked for and is then kept in ``namespace``
    (the package's ``globals()``)."""

    def getattr_(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{sources[name]}"), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *sources})

    return getattr_, dir_
