"""Real data sets from local files, as ``TaskData`` (see ``load_task`` and ``list_tasks``)."""

from equinas.data.arrays import from_arrays
from equinas.data.errors import DataError, DataNotFoundError
from equinas.data.paths import cache_dir, resolve_data_dir
from equinas.data.registry import describe_task, list_tasks, load_task, prepare_task
from equinas.data.task import Split, TaskData

__all__ = [
    "DataError",
    "DataNotFoundError",
    "Split",
    "TaskData",
    "cache_dir",
    "describe_task",
    "from_arrays",
    "list_tasks",
    "load_task",
    "prepare_task",
    "resolve_data_dir",
]
