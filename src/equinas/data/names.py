"""The task names ``load_task`` accepts, readable without importing torch (``equinas data list``)."""

from __future__ import annotations

# Tasks with a fixed name, in the order ``equinas data list`` shows them; the registry builds
# exactly these (a test checks that the two agree).
FIXED_TASKS: tuple[str, ...] = (
    "mnist",
    "fashion-mnist",
    "rotmnist",
    *(f"mnist-{g}" for g in ("c2", "c4", "d4")),
    *(f"mnist-mixed-{g}" for g in ("c2", "c4", "d4")),
    "mnist-turns",
    "galaxy10",
    "isic",
)
# Name patterns: a comma-separated transform set, or a path.
PATTERN_TASKS: tuple[str, ...] = ("gmnist[...]", "gfmnist[...]", "folder:PATH", "npz:PATH")


def list_tasks() -> list[str]:
    """Task names; ``gmnist[...]`` / ``gfmnist[...]`` take a comma-separated transform set,
    ``folder:PATH`` / ``npz:PATH`` a path to the user's own data."""
    return [*FIXED_TASKS, *PATTERN_TASKS]
