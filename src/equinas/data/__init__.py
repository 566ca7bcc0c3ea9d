"""Real data sets from local files, as ``TaskData`` (see ``load_task`` and ``list_tasks``).

Names are imported from their submodules on first use (``equinas.lazy``), so that
``equinas data list`` (``equinas.data.names``) does not import torch.
"""

from __future__ import annotations

from equinas.lazy import lazy_namespace

_SOURCES = {
    "from_arrays": "arrays",
    "DataError": "errors",
    "DataNotFoundError": "errors",
    "list_tasks": "names",
    "cache_dir": "paths",
    "resolve_data_dir": "paths",
    "describe_task": "registry",
    "load_task": "registry",
    "prepare_task": "registry",
    "DataSettings": "settings",
    "Split": "task",
    "TaskData": "task",
}
__all__ = sorted(_SOURCES)
__getattr__, __dir__ = lazy_namespace(__name__, _SOURCES, globals())
