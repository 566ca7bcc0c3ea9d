"""The run directory's human/machine-readable records: ``log.jsonl`` and ``summary.json``."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from equinas.atomic import append_text, atomic_write_text, remove_stale_temp_files

LOG_NAME = "log.jsonl"
SUMMARY_NAME = "summary.json"


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: tuples -> lists, tensors/numpy -> ``tolist()``, and
    non-finite floats -> ``None`` (strict JSON has no NaN). Raises ``TypeError`` otherwise."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool):
                raise TypeError(f"dict key {key!r} of type {type(key).__name__} is not JSON-able")
            out[str(key)] = jsonable(item)
        return out
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON-able")


class RunLog:
    """Appends one JSON object per line to ``run_dir/log.jsonl``; writes ``summary.json``.

    Every event carries ``event`` (its kind), ``step`` (optimizer steps completed when it was
    written) and ``time`` (unix seconds). Lines are written whole and flushed immediately.
    """

    def __init__(self, run_dir: Path) -> None:
        self.log_path = run_dir / LOG_NAME
        self.summary_path = run_dir / SUMMARY_NAME
        remove_stale_temp_files(self.log_path)
        remove_stale_temp_files(self.summary_path)

    def start_fresh(self) -> None:
        """Empty the log (a new run) and remove the summary of a previous run."""
        atomic_write_text(self.log_path, "")
        self.summary_path.unlink(missing_ok=True)

    def truncate_after(self, step: int) -> None:
        """Keep only events with ``step <= step`` (those of the run up to its checkpoint).

        Events of a killed run past its last checkpoint, and a torn last line, are dropped, so
        the resumed run re-logs them exactly once.
        """
        kept = []
        if self.log_path.exists():
            for line in self.log_path.read_text(encoding="utf-8").splitlines():
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(event, dict) and event.get("step", math.inf) <= step:
                    kept.append(line + "\n")
        atomic_write_text(self.log_path, "".join(kept))

    def write(self, event: str, step: int, **fields: Any) -> None:
        """Append one event."""
        record = jsonable({"event": event, "step": step, "time": time.time(), **fields})
        append_text(self.log_path, json.dumps(record, allow_nan=False) + "\n")

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Atomically (re)write ``summary.json``."""
        text = json.dumps(jsonable(summary), indent=2, allow_nan=False) + "\n"
        atomic_write_text(self.summary_path, text)


def json_metadata(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """``metadata`` as plain JSON types (``ValueError`` when it is no JSON-able dict); None stays None."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        return jsonable(metadata)
    except TypeError as error:
        raise ValueError(f"metadata must be JSON-able: {error}") from error
