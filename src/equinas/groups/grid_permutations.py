"""The 12 "small group" transforms of G-MNIST (Basu et al. 2021, AEN) as pixel permutations.

Names, in their fixed application order: ``rot`` (the counter-clockwise quarter turn, group C4),
``hflip``, ``vflip`` (mirrors), ``htrans``, ``vtrans`` (cyclic shifts by a step: 1 pixel in the
data, ``NETWORK_STEP = 4`` on AEN's hidden grids), ``scramble1`` .. ``scramble7`` (aliases
``sc1`` .. ``sc7``; block permutations of an even grid, see ``equinas.data.gmnist``). Both the
data set (``equinas.data.gmnist``) and the orbit-tied networks (``equinas.models.aen``) act
with these permutations, which is why they live with the groups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

TRANSFORMS: tuple[str, ...] = (
    "rot",
    "hflip",
    "vflip",
    "htrans",
    "vtrans",
    *(f"scramble{k}" for k in range(1, 8)),
)
ALIASES = {f"sc{k}": f"scramble{k}" for k in range(1, 8)}
DATA_SHIFT = 1
NETWORK_STEP = 4

Coords = tuple[np.ndarray, np.ndarray]


def _quadrant_cycle(a: np.ndarray, b: np.ndarray, h: int) -> Coords:
    top, left = a < h, b < h
    rows = np.where(top & ~left, a + h, np.where(~top & left, a - h, a))
    cols = np.where(top & left, b + h, np.where(~top & ~left, b - h, b))
    return rows, cols


# name -> (row, col, n, step) -> image position (row', col'); the scrambles need even n
_MAPS: dict[str, Callable[[np.ndarray, np.ndarray, int, int], Coords]] = {
    "rot": lambda a, b, n, s: (n - 1 - b, a),
    "hflip": lambda a, b, n, s: (a, n - 1 - b),
    "vflip": lambda a, b, n, s: (n - 1 - a, b),
    "htrans": lambda a, b, n, s: (a, (b + s) % n),
    "vtrans": lambda a, b, n, s: ((a + s) % n, b),
    "scramble1": lambda a, b, n, s: _quadrant_cycle(a, b, n // 2),
    "scramble2": lambda a, b, n, s: (a, (b + n // 2) % n),
    "scramble3": lambda a, b, n, s: ((a + n // 2) % n, b),
    "scramble4": lambda a, b, n, s: (np.where(b < n // 2, (a + n // 2) % n, a), b),
    "scramble5": lambda a, b, n, s: (np.where(b >= n // 2, (a + n // 2) % n, a), b),
    "scramble6": lambda a, b, n, s: (a, np.where(a < n // 2, (b + n // 2) % n, b)),
    "scramble7": lambda a, b, n, s: (a, np.where(a >= n // 2, (b + n // 2) % n, b)),
}


def canonical_transforms(names: Iterable[str]) -> tuple[str, ...]:
    """Validated names (aliases resolved, duplicates dropped) in the fixed application order."""
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise ValueError(f"expected a list of G-MNIST transform names, got {names!r}")
    chosen = set()
    for raw in names:
        name = ALIASES.get(raw.strip(), raw.strip()) if isinstance(raw, str) else raw
        if name not in TRANSFORMS:
            raise ValueError(
                f"unknown G-MNIST transform {raw!r}; expected names from {', '.join(TRANSFORMS)} "
                f"(aliases {', '.join(ALIASES)})"
            )
        chosen.add(name)
    return tuple(name for name in TRANSFORMS if name in chosen)


def grid_permutation(name: str, n: int, step: int = NETWORK_STEP) -> np.ndarray:
    """The transform ``name`` as a permutation of the flat positions of an ``n x n`` grid.

    Returns ``perm`` (int64 ``[n*n]``) with ``perm[p]`` the position that the pixel at flat
    index ``p = row * n + col`` moves to. ``rot`` is the counter-clockwise quarter turn
    (``torch.rot90(x, 1)``, the C4 generator of ``equinas.groups``), ``hflip`` is
    ``x.flip(-1)``, ``vflip`` is ``x.flip(-2)``, ``htrans`` / ``vtrans`` move content right /
    down by ``step`` (cyclically), the scrambles are described in the module docstring.
    """
    (name,) = canonical_transforms([name])
    if n < 1:
        raise ValueError(f"grid size must be positive, got {n}")
    if name.startswith("scramble") and n % 2:
        raise ValueError(f"{name} needs an even grid size, got {n}")
    rows, cols = np.divmod(np.arange(n * n, dtype=np.int64), n)
    new_rows, new_cols = _MAPS[name](rows, cols, n, step)
    return (new_rows * n + new_cols).astype(np.int64)


def inverse_permutation(perm: np.ndarray) -> np.ndarray:
    """``inv`` with ``inv[perm[p]] = p``."""
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size, dtype=perm.dtype)
    return inv
