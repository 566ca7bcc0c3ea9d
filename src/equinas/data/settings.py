"""``DataSettings``: which task a command loads and how (declared once, recorded with a run)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from equinas.settings import Settings, setting

if TYPE_CHECKING:
    from equinas.data.task import TaskData


@dataclass(frozen=True)
class DataSettings(Settings):
    """A task name, the data folder and the split sizes; ``load()`` gives its ``TaskData`` and
    ``record()`` what a run stores about the choice (a resume must choose the same)."""

    task: str = setting(
        help="task name, e.g. rotmnist, mnist-c2, gmnist[rot], folder:PATH (one folder of images per "
        "class), npz:PATH (see `equinas data list`)",
    )
    data_dir: str | None = setting(None, help="data folder (default: $EQUINAS_DATA, then ../shared/data)")
    train_size: int | None = setting(None, at_least=1, help="use a class-balanced subset of the train split")
    val_size: int | None = setting(None, at_least=1, help="subset of the validation split")
    test_size: int | None = setting(None, at_least=1, help="subset of the test split")
    task_options: dict[str, Any] = setting(
        factory=dict,
        flag="task-option",
        metavar="KEY=VALUE",
        help="task-specific option, e.g. image_size=64 (repeatable)",
    )

    def load(self) -> TaskData:
        """The task's ``TaskData`` (``equinas.data.load_task``)."""
        from equinas.data.registry import load_task

        return load_task(
            self.task,
            self.data_dir,
            train_size=self.train_size,
            val_size=self.val_size,
            test_size=self.test_size,
            **self.task_options,
        )

    def record(self) -> dict[str, Any]:
        """How the data was chosen, as a run records it (the folder as an absolute path)."""
        return {
            "data_dir": str(Path(self.data_dir).resolve()) if self.data_dir else None,
            "train_size": self.train_size,
            "val_size": self.val_size,
            "test_size": self.test_size,
            "task_options": dict(self.task_options),
        }
