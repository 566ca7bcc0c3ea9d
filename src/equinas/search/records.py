"""What a search leaves behind: candidate records and the run directory that stores them.

Layout of a run directory::

    search.json        method, task, settings, seed, status
    candidates.jsonl   one JSON record per evaluated candidate, appended as each finishes
    candidates.csv     the same records as a flat table (written at the end)
    states/<id>.pt     weights of candidates that may become parents (torch.load(weights_only=True))
    result.json        the SearchResult: best candidate, extras (e.g. alpha trajectories)
    best_spec.json     the ArchSpec of the best candidate (``equinas train --arch`` retrains it)
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from equinas.train.files import atomic_write, atomic_write_text


@dataclass
class CandidateRecord:
    """One evaluated architecture.

    ``equivariance`` holds the per-block relative equivariance errors under the ambient group
    (max over its exact elements), the output invariance error and, for groups with 45-degree
    rotations, the same errors of those (``"interpolated"``, see
    ``equinas.metrics.equivariance_summary``); ``epochs`` is what this evaluation
    trained, ``lineage_epochs`` the total along its ancestry (EquiNAS_E inherits weights).
    """

    candidate_id: str
    method: str
    spec: dict[str, Any]
    groups: list[str]
    params: int
    val_acc: float | None
    test_acc: float | None
    val_loss: float | None = None
    test_loss: float | None = None
    train_loss: float | None = None
    epochs: float = 0.0
    lineage_epochs: float = 0.0
    generation: int = 0
    parent_id: str | None = None
    mutation: str | None = None
    seed: int = 0
    time_s: float = 0.0
    equivariance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CandidateRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def flat(self) -> dict[str, Any]:
        """A CSV row: scalars, groups joined by '-', per-layer errors joined by ';'."""
        layers = self.equivariance.get("layers", [])
        return {
            "candidate_id": self.candidate_id,
            "method": self.method,
            "generation": self.generation,
            "parent_id": self.parent_id or "",
            "mutation": self.mutation or "",
            "groups": "-".join(self.groups),
            "params": self.params,
            "val_acc": self.val_acc,
            "test_acc": self.test_acc,
            "val_loss": self.val_loss,
            "test_loss": self.test_loss,
            "epochs": self.epochs,
            "lineage_epochs": self.lineage_epochs,
            "equivariance_output": self.equivariance.get("output"),
            "equivariance_layers": ";".join(f"{e:.3g}" for e in layers),
            "equivariance_interpolated_output": self.equivariance.get("interpolated", {}).get("output"),
            "time_s": round(self.time_s, 3),
            "seed": self.seed,
        }


class RunDirectory:
    """Files of one search run; every write is atomic (temp file + rename) or an fsynced append."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.states = self.path / "states"

    def create(self, meta: dict[str, Any], resume: bool) -> None:
        """Start a run (``FileExistsError`` if one exists and ``resume`` is False)."""
        meta = json.loads(json.dumps(meta))  # compare in JSON types (tuples become lists)
        existing = self.path / "search.json"
        if existing.exists() and not resume:
            raise FileExistsError(
                f"{self.path} already holds a search; pass resume=True (--resume) to continue it "
                "or choose another run directory"
            )
        if resume and existing.exists():
            old = json.loads(existing.read_text())
            changed = {
                k
                for k in ("method", "task", "settings", "backbone", "train", "seed")
                if old.get(k) != meta.get(k)
            }
            if changed:
                raise ValueError(f"cannot resume {self.path}: {sorted(changed)} differ from the original run")
        self.path.mkdir(parents=True, exist_ok=True)
        self.states.mkdir(exist_ok=True)
        self.write_json("search.json", {**meta, "status": "running"})

    def write_json(self, name: str, payload: Any) -> Path:
        target = self.path / name
        atomic_write_text(target, json.dumps(payload, indent=2) + "\n")
        return target

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text())

    def mark(self, status: str) -> None:
        meta = self.read_json("search.json")
        self.write_json("search.json", {**meta, "status": status})

    # -- candidates --------------------------------------------------------------------------
    def append(self, record: CandidateRecord) -> None:
        line = json.dumps(record.to_dict()) + "\n"
        with open(self.path / "candidates.jsonl", "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> list[CandidateRecord]:
        """Every complete record (a torn last line from a killed run is ignored)."""
        path = self.path / "candidates.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(CandidateRecord.from_dict(json.loads(line)))
            except json.JSONDecodeError:
                continue
        return out

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
        atomic_write(self.states / f"{candidate_id}.pt", lambda handle: torch.save(state, handle))

    def load_state(self, candidate_id: str) -> dict[str, torch.Tensor]:
        return torch.load(self.states / f"{candidate_id}.pt", weights_only=True, map_location="cpu")

    def has_state(self, candidate_id: str) -> bool:
        return (self.states / f"{candidate_id}.pt").exists()

    def drop_states(self, keep: set[str]) -> None:
        """Delete stored weights of candidates not in ``keep``."""
        for path in self.states.glob("*.pt"):
            if path.stem not in keep:
                path.unlink()
