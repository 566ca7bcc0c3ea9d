"""What a search leaves behind: the run directory that stores its candidate records.

Layout of a run directory::

    search.json        method, task, data, settings, seed, status, elapsed time of every session
    candidates.jsonl   one JSON record per evaluated candidate, appended as each finishes
    candidates.jsonl.torn-<n>   the fragment of a torn last line, cut off before a resume appends
    candidates.jsonl.bad-<n>    lines that are no valid record, moved aside by a resume (warned)
    .lock              while a process works here: its pid (``equinas.run_lock``)
    candidates.csv     the same records as a flat table (written at the end)
    states/<id>.pt     weights of candidates that may become parents (torch.load(weights_only=True))
    result.json        the SearchResult: best candidate, extras (e.g. alpha trajectories)
    best_spec.json     the ArchSpec of the best candidate (``equinas train --arch`` retrains it)
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from equinas.atomic import append_text, atomic_write, atomic_write_text, remove_stale_temp_files_under
from equinas.models import build_model
from equinas.models.network import SpecNetwork
from equinas.run_lock import LOCK_NAME
from equinas.runlog import jsonable
from equinas.search.record import CandidateRecord
from equinas.train.config import SEARCH_RESUMABLE_CHANGES


def spec_network(model: nn.Module) -> SpecNetwork:
    """``model`` as the backbone's network (``SpecNetwork``: spec, layers, relaxations);
    ``TypeError`` for a network of another family."""
    if not isinstance(model, SpecNetwork):
        raise TypeError(f"expected a network of the backbone (SpecNetwork), got {type(model).__name__}")
    return model


class RecordWarning(UserWarning):
    """A line of ``candidates.jsonl`` is not a candidate record and was skipped or moved aside."""


RESUME_KEYS = ("method", "task", "data", "settings", "backbone", "train", "seed")


def _differences(old: Any, new: Any, prefix: str) -> list[str]:
    """``"key: old -> new"`` for every leaf where two JSON values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def _comparable(key: str, value: Any) -> Any:
    """A ``search.json`` entry without the training settings a resume may change."""
    if key == "train" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in SEARCH_RESUMABLE_CHANGES}
    if key == "backbone" and isinstance(value, dict):
        return {"backbone": "plain", **value}  # runs recorded before resnets were plain
    return value


def _left_by_a_start(entry: Path) -> bool:
    """Whether ``entry`` is what a search killed before its first ``search.json`` leaves."""
    if entry.name == LOCK_NAME:
        return True
    if entry.name == "states":
        return entry.is_dir() and not any(entry.iterdir())
    return entry.name.startswith(".search.json.") and entry.name.endswith(".tmp")


class RunDirectory:
    """Files of one search run; every write is atomic (temp file + rename) or an fsynced append.

    Wall time is kept per session: ``create`` starts a session clock, every appended record
    and ``finish_session`` store the session's elapsed time in ``search.json``, so a resumed
    search's ``elapsed()`` counts all its sessions (a killed one up to its last record).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.states = self.path / "states"
        self._previous_sessions = 0.0
        self._session_start: float | None = None

    @property
    def jsonl(self) -> Path:
        return self.path / "candidates.jsonl"

    def create(
        self, meta: dict[str, Any], resume: bool, settings_of: Callable[[Any], Any] | None = None
    ) -> None:
        """Start a run (``FileExistsError`` if one exists and ``resume`` is False).

        A resume must describe the same search: any difference in ``RESUME_KEYS`` (method,
        task, data -- sizes, folder, options and a fingerprint of the loaded splits --,
        settings, backbone, training, seed) is refused with a ``ValueError`` naming it.
        ``settings_of`` turns the recorded settings into what ``meta`` holds for the same search
        (``search.base.recorded_settings``: resolved, for runs of older versions).
        """
        meta = json.loads(json.dumps(meta))  # compare in JSON types (tuples become lists)
        existing = self.path / "search.json"
        sessions: list[float] = []
        if existing.exists() and not resume:
            raise FileExistsError(
                f"{self.path} already holds a search; pass resume=True (--resume) to continue it "
                "or choose another run directory"
            )
        if not existing.exists():
            self._refuse_foreign_files()
        if resume and existing.exists():
            old = self.read_json("search.json")
            if settings_of is not None and "settings" in old:
                old = {**old, "settings": json.loads(json.dumps(settings_of(old["settings"])))}
            changed = [
                d
                for key in RESUME_KEYS
                for d in _differences(_comparable(key, old.get(key)), _comparable(key, meta.get(key)), key)
            ]
            if changed:
                changed.sort(key=lambda d: d.startswith("data.fingerprint."))  # the setting, then digests
                raise ValueError(
                    f"cannot resume {self.path}: the search differs from the original run in "
                    + "; ".join(changed)
                )
            sessions = list(old.get("sessions", []))
        self.path.mkdir(parents=True, exist_ok=True)
        self.states.mkdir(exist_ok=True)
        remove_stale_temp_files_under(self.path)  # left by a killed atomic write
        self.repair()
        self._previous_sessions = sum(sessions)
        self._session_start = time.perf_counter()
        self.write_json("search.json", {**meta, "status": "running", "sessions": [*sessions, 0.0]})

    def _refuse_foreign_files(self) -> None:
        """``ValueError`` when the folder holds files but no search: a training run or
        anything else would be mixed with this search's files. What a search killed before
        writing ``search.json`` leaves (its lock, an empty ``states/``, a temp file) is fine."""
        if not self.path.is_dir():
            return
        found = sorted(entry.name for entry in self.path.iterdir() if not _left_by_a_start(entry))
        if not found:
            return
        if "checkpoint.pt" in found:
            what = "a training run (checkpoint.pt)"
        else:
            what = "other files (" + ", ".join(found[:3]) + (", ..." if len(found) > 3 else "") + ")"
        raise ValueError(
            f"{self.path} holds {what} but no search (search.json); search into a new or empty folder"
        )

    def elapsed(self) -> float:
        """Wall seconds of every session of this run so far (this one up to now)."""
        now = 0.0 if self._session_start is None else time.perf_counter() - self._session_start
        return self._previous_sessions + now

    def _save_session_time(self, status: str | None = None) -> None:
        if self._session_start is None:
            return
        meta = self.read_json("search.json")
        meta["sessions"][-1] = time.perf_counter() - self._session_start
        if status is not None:
            meta["status"] = status
        self.write_json("search.json", meta)

    def write_json(self, name: str, payload: Any) -> Path:
        """Write ``payload`` as ``name`` (atomically; NaN and infinite numbers as null)."""
        target = self.path / name
        atomic_write_text(target, json.dumps(jsonable(payload), indent=2, allow_nan=False) + "\n")
        return target

    def read_json(self, name: str) -> Any:
        """The JSON file ``name`` (NaN and infinite numbers, from older runs, read as None)."""
        path = self.path / name
        try:
            return jsonable(json.loads(path.read_text()))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON (truncated or corrupt?): {err}") from None

    def mark(self, status: str) -> None:
        """Set the run's status (and store this session's time)."""
        if self._session_start is None:
            meta = self.read_json("search.json")
            self.write_json("search.json", {**meta, "status": status})
        else:
            self._save_session_time(status)

    # -- candidates --------------------------------------------------------------------------
    def repair_tail(self) -> None:
        """Cut a torn last line (a killed or full-disk write) off ``candidates.jsonl``.

        The fragment is kept in ``candidates.jsonl.torn-<n>``; the file then ends with a
        complete line, so the next append starts a line of its own.
        """
        if not self.jsonl.exists():
            return
        data = self.jsonl.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        index = len(list(self.path.glob("candidates.jsonl.torn-*")))
        fragment = data[cut:]

        def write_fragment(handle: BinaryIO) -> None:
            handle.write(fragment)

        atomic_write(self.path / f"candidates.jsonl.torn-{index}", write_fragment)
        with open(self.jsonl, "r+b") as handle:
            handle.truncate(cut)
            handle.flush()
            os.fsync(handle.fileno())

    def append(self, record: CandidateRecord) -> None:
        """Append ``record`` as one fsynced line (after repairing a torn tail), unless a record
        of its id is there already (a resume that redid it)."""
        self.repair_tail()
        if any(old.candidate_id == record.candidate_id for _, old in self._read_lines()[0]):
            return
        append_text(self.jsonl, json.dumps(record.to_dict(), allow_nan=False) + "\n", sync=True)
        self._save_session_time()

    def _read_lines(self) -> tuple[list[tuple[str, CandidateRecord]], list[tuple[int, str, str]]]:
        """``(good, bad)``: ``(line, record)`` of every complete line that is a valid record,
        and ``(line number, line, why)`` of the others (a torn last line is neither)."""
        if not self.jsonl.exists():
            return [], []
        lines = self.jsonl.read_text(encoding="utf-8", errors="replace").split("\n")[:-1]
        good, bad = [], []
        for number, line in enumerate(lines, start=1):
            try:
                good.append((line, CandidateRecord.from_dict(json.loads(line))))
            except json.JSONDecodeError:
                bad.append((number, line, "not valid JSON"))
            except ValueError as err:
                bad.append((number, line, str(err)))
        return good, bad

    def records(self) -> list[CandidateRecord]:
        """Every valid record, the first of each id; a torn last line (a killed run) is ignored,
        and every other bad line is skipped with a ``RecordWarning`` (``repair``, run by a
        resume, moves it aside)."""
        good, bad = self._read_lines()
        for number, _, why in bad:
            warnings.warn(
                f"{self.jsonl} line {number} is not a candidate record ({why}); skipped",
                RecordWarning,
                stacklevel=2,
            )
        first: dict[str, CandidateRecord] = {}
        for _, record in good:
            first.setdefault(record.candidate_id, record)
        return list(first.values())

    def repair(self) -> None:
        """Cut a torn last line off (``repair_tail``) and move every line that is not a valid
        record into ``candidates.jsonl.bad-<n>`` (one file per repair), with a ``RecordWarning``
        naming the lines; ``candidates.jsonl`` keeps the valid lines, unchanged and in order."""
        self.repair_tail()
        good, bad = self._read_lines()
        if not bad:
            return
        aside = self.path / f"candidates.jsonl.bad-{len(list(self.path.glob('candidates.jsonl.bad-*')))}"
        atomic_write_text(aside, "".join(line + "\n" for _, line, _ in bad))
        atomic_write_text(self.jsonl, "".join(line + "\n" for line, _ in good))
        for number, _, why in bad:
            warnings.warn(
                f"{self.jsonl} line {number} is not a candidate record ({why}); moved into {aside.name}",
                RecordWarning,
                stacklevel=2,
            )

    def write_csv(self, records: list[CandidateRecord]) -> Path:
        rows = [r.flat() for r in records]
        buffer = io.StringIO()
        if rows:
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        target = self.path / "candidates.csv"
        atomic_write_text(target, buffer.getvalue())
        return target

    # -- weights -------------------------------------------------------------------------------
    def save_state(self, candidate_id: str, state: dict[str, torch.Tensor]) -> None:
        atomic_write(self.states / f"{candidate_id}.pt", functools.partial(torch.save, state))

    def load_state(self, candidate_id: str) -> dict[str, torch.Tensor]:
        path = self.states / f"{candidate_id}.pt"
        try:
            return torch.load(path, weights_only=True, map_location="cpu")
        except FileNotFoundError:
            raise
        except Exception as err:
            raise ValueError(f"cannot read the weights {path} (truncated or corrupt?): {err}") from None

    def trained_model(self, record: CandidateRecord) -> SpecNetwork:
        """The network of ``record`` (its ``spec``: a CNN or ResNet of the backbone) with its
        stored weights, on the CPU."""
        model = spec_network(build_model(record.spec))
        model.load_state_dict(self.load_state(record.candidate_id))
        return model

    def has_state(self, candidate_id: str) -> bool:
        return (self.states / f"{candidate_id}.pt").exists()

    def drop_states(self, keep: set[str]) -> None:
        """Delete stored weights of candidates not in ``keep``."""
        for path in self.states.glob("*.pt"):
            if path.stem not in keep:
                path.unlink()
