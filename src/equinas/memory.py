"""How much memory this process may use: the bound that input checks measure sizes against.

Standard library only, so every layer may import it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def _cgroup_limit() -> int | None:
    """The memory limit of this process's container (cgroup v2 or v1), if one is set."""
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


@functools.cache
def memory_limit() -> int | None:
    """Bytes of memory this process can have at most: the machine's RAM, or its container's
    limit when lower; None where neither can be told (read once per process)."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        physical = None
    limits = [limit for limit in (physical, _cgroup_limit()) if limit and limit > 0]
    return min(limits) if limits else None


def gib(count: int | float) -> str:
    """``count`` bytes in GiB, for messages (``"2.5 GiB"``)."""
    return f"{count / 2**30:.3g} GiB"
