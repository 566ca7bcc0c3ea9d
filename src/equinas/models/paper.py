"""The architectures EquiNAS_E found in the paper, as named per-layer groups of its backbone.

The official code of Maile et al. (ICLR 2023) hard-codes five architectures per task, each
one group per layer of the 8-layer backbone (layer 1 first), written there as a reflection
flag and the log2 of the rotation order; here they are D4 subgroup names. ``paper:<name>``
(e.g. ``paper:rotmnist-1``) names one wherever an architecture is named: ``equinas train
--arch``, the ``fixed`` method's ``--groups``. The widths, pools and kernel are the backbone's,
so any width of the 8-layer backbone trains them.
"""

from __future__ import annotations

from equinas.models.errors import SpecError

PREFIX = "paper:"


def _repeat(*runs: tuple[str, int]) -> tuple[str, ...]:
    return tuple(group for group, count in runs for _ in range(count))


PAPER_ARCHITECTURES: dict[str, tuple[str, ...]] = {
    "rotmnist-1": _repeat(("C4", 3), ("C2", 4), ("C1", 1)),
    "rotmnist-2": _repeat(("D4", 7), ("C4", 1)),
    "rotmnist-3": _repeat(("D4", 8)),
    "rotmnist-4": _repeat(("D4", 7), ("C1", 1)),
    "rotmnist-5": _repeat(("D4", 2), ("C2", 4), ("C1", 2)),
    "galaxy10-1": _repeat(("C4", 4), ("C2", 1), ("C1", 3)),
    "galaxy10-2": _repeat(("C4", 2), ("C2", 6)),
    "galaxy10-3": _repeat(("C4", 3), ("C2", 3), ("C1", 2)),
    "galaxy10-4": _repeat(("C4", 2), ("C2", 5), ("C1", 1)),
    "galaxy10-5": _repeat(("C4", 3), ("C2", 4), ("C1", 1)),
    "isic-1": _repeat(("D4", 6), ("D1", 2)),
    "isic-2": _repeat(("D4", 7), ("C2", 1)),
    "isic-3": _repeat(("D4", 5), ("D1", 3)),
    "isic-4": _repeat(("D4", 6), ("C4", 2)),
    "isic-5": _repeat(("D4", 6), ("C1", 2)),
}
"""Name -> group of each of the 8 layers (ambient D4)."""

NAMES = tuple(PREFIX + name for name in PAPER_ARCHITECTURES)


def is_paper_name(arch: str) -> bool:
    return arch.startswith(PREFIX)


def paper_groups(arch: str) -> tuple[str, ...]:
    """The per-layer groups of ``paper:<name>``; ``SpecError`` listing the names otherwise."""
    groups = PAPER_ARCHITECTURES.get(arch.removeprefix(PREFIX)) if is_paper_name(arch) else None
    if groups is None:
        raise SpecError(f"unknown paper architecture {arch!r}; the names are {', '.join(NAMES)}")
    return groups
