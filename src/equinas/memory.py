"""How much memory this process may still use: the budget that input checks measure sizes against.

``memory_limit()`` is the least of

* the memory the system has available (``MemAvailable`` of ``/proc/meminfo``: free memory plus
  the caches it can drop), or the machine's RAM where that is not reported;
* what the memory limit of this process's cgroup leaves (v2 ``memory.max - memory.current`` of
  its cgroup and each ancestor, v1 ``memory.limit_in_bytes - memory.usage_in_bytes``);
* what its resource limits leave: ``RLIMIT_AS`` over the address space it maps now
  (``VmSize``), ``RLIMIT_DATA`` over its data segments now (``VmData``).

It is read afresh on every call (the budget changes as the process and the machine run), before
anything large is allocated, so an input that would not fit is refused in one line instead of
ending in an out-of-memory kill or an allocation traceback. Standard library only, so every
layer may import it.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

PROC = Path("/proc")
CGROUP_ROOT = Path("/sys/fs/cgroup")
KIB = 1024


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _kib_field(text: str | None, name: str) -> int | None:
    """Bytes of field ``name`` (``"MemAvailable:   123 kB"``) in a ``/proc`` status text."""
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        if key == name and value.split() and value.split()[0].isdigit():
            return int(value.split()[0]) * KIB
    return None


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def available_memory(proc: Path = PROC) -> int | None:
    """Bytes the system can give without swapping (``MemAvailable``), else its RAM."""
    return _kib_field(_read(proc / "meminfo"), "MemAvailable") or _physical_memory()


def _number(path: Path) -> int | None:
    text = (_read(path) or "").strip()
    return int(text) if text.isdigit() else None


def cgroup_headroom(proc: Path = PROC, root: Path = CGROUP_ROOT) -> int | None:
    """Bytes the memory limits of this process's cgroup (and its ancestors) still leave, or
    None where no limit is set. ``proc``/``root`` stand for ``/proc`` and ``/sys/fs/cgroup``."""
    headroom: list[int] = []
    for line in (_read(proc / "self" / "cgroup") or "").splitlines():
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        relative = path.strip().lstrip("/")
        if not path:
            continue
        if controllers == "":  # cgroup v2: the limit of every ancestor applies
            folder = root / relative
            while True:
                limit, used = _number(folder / "memory.max"), _number(folder / "memory.current")
                if limit is not None:
                    headroom.append(limit - (used or 0))
                if folder == root or root not in folder.parents:
                    break
                folder = folder.parent
        elif "memory" in controllers.split(","):  # cgroup v1
            for folder in (root / "memory" / relative, root / "memory"):
                limit = _number(folder / "memory.limit_in_bytes")
                if limit is not None:
                    used = _number(folder / "memory.usage_in_bytes") or 0
                    headroom.append(limit - used)
                    break
    return max(0, min(headroom)) if headroom else None


def rlimit_headroom(proc: Path = PROC) -> int | None:
    """Bytes the soft ``RLIMIT_AS`` and ``RLIMIT_DATA`` leave over what this process maps now
    (``VmSize``, ``VmData``), or None where neither is set."""
    if resource is None:  # pragma: no cover - Windows
        return None
    status = _read(proc / "self" / "status")
    headroom = []
    for limit, field in ((resource.RLIMIT_AS, "VmSize"), (resource.RLIMIT_DATA, "VmData")):
        soft = resource.getrlimit(limit)[0]
        if soft != resource.RLIM_INFINITY:
            headroom.append(max(0, soft - (_kib_field(status, field) or 0)))
    return min(headroom) if headroom else None


def memory_limit() -> int | None:
    """Bytes of memory this process may still allocate (see the module docstring); None where
    nothing can be told."""
    bounds = [
        bound for bound in (available_memory(), cgroup_headroom(), rlimit_headroom()) if bound is not None
    ]
    return min(bounds) if bounds else None


def gib(count: int | float) -> str:
    """``count`` bytes in GiB, for messages (``"2.5 GiB"``)."""
    return f"{count / 2**30:.3g} GiB"
