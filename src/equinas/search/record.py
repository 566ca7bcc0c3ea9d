"""The candidate record: one evaluated architecture, as a line of ``candidates.jsonl``.

``CandidateRecord`` is the format; ``record_problem`` says why parsed JSON is not one (a resume
moves such lines aside, ``search.run_directory``).
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from equinas.metrics.cost import Cost
from equinas.runlog import jsonable

STATUS_OK = "ok"
STATUS_DIVERGED = "diverged"


@dataclass
class CandidateRecord:
    """One evaluated architecture.

    ``equivariance`` holds the per-block relative equivariance errors under the ambient group
    (max over its exact elements), the output invariance error and, for groups with 45-degree
    rotations, the same errors of those (``"interpolated"``, see
    ``equinas.metrics.equivariance_summary``); ``epochs`` is what this evaluation
    trained, ``lineage_epochs`` the total along its ancestry (EquiNAS_E inherits weights).
    ``cost`` is a ``equinas.metrics.cost.Cost`` as a dict (images, multiply-adds, seconds of
    this evaluation only). ``status`` is ``"ok"``, or ``"diverged"`` for a candidate whose
    loss became NaN/inf (``extra["divergence"]`` says where); such records carry no
    accuracies and are never selected.
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
    cost: dict[str, Any] = field(default_factory=dict)
    status: str = STATUS_OK

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def scored(self) -> bool:
        """Trained without diverging and has a validation accuracy: the records selections and
        reports rank (an accuracy written as NaN by an older run reads as None)."""
        return self.ok and self.val_acc is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; NaN and infinite numbers become None (strict JSON has no NaN)."""
        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: Any) -> CandidateRecord:
        """The record of a ``to_dict`` (NaN and infinite numbers read as None; unknown keys
        are ignored); ``ValueError`` naming the first field that is missing or mistyped."""
        problem = record_problem(data)
        if problem:
            raise ValueError(problem)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in jsonable(data).items() if k in known})

    def flat(self) -> dict[str, Any]:
        """A CSV row: scalars, groups joined by '-', per-layer errors joined by ';'."""
        layers = self.equivariance.get("layers", [])
        cost = Cost.from_dict(self.cost)
        return {
            "candidate_id": self.candidate_id,
            "method": self.method,
            "status": self.status,
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
            "equivariance_layers": ";".join("" if e is None else f"{e:.3g}" for e in layers),
            "equivariance_interpolated_output": self.equivariance.get("interpolated", {}).get("output"),
            "time_s": round(self.time_s, 3),
            "train_images": cost.train_images,
            "train_flops": cost.train_flops,
            "total_flops": cost.total_flops,
            "seed": self.seed,
        }


_NUMBER = (int, float)
_OPTIONAL_NUMBER = (int, float, type(None))
_OPTIONAL_TEXT = (str, type(None))
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "candidate_id": (str,),
    "method": (str,),
    "spec": (dict,),
    "groups": (list,),
    "params": (int,),
    "val_acc": _OPTIONAL_NUMBER,
    "test_acc": _OPTIONAL_NUMBER,
    "val_loss": _OPTIONAL_NUMBER,
    "test_loss": _OPTIONAL_NUMBER,
    "train_loss": _OPTIONAL_NUMBER,
    "epochs": _NUMBER,
    "lineage_epochs": _NUMBER,
    "generation": (int,),
    "parent_id": _OPTIONAL_TEXT,
    "mutation": _OPTIONAL_TEXT,
    "seed": (int,),
    "time_s": _NUMBER,
    "equivariance": (dict,),
    "extra": (dict,),
    "cost": (dict,),
    "status": (str,),
}
REQUIRED_FIELDS = tuple(
    f.name for f in fields(CandidateRecord) if f.default is MISSING and f.default_factory is MISSING
)
STATUSES = (STATUS_OK, STATUS_DIVERGED)


def record_problem(data: Any) -> str | None:
    """Why ``data`` (one parsed line of ``candidates.jsonl``) is not a candidate record, or None."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    missing = [name for name in REQUIRED_FIELDS if name not in data]
    if missing:
        return f"missing field(s) {missing}"
    for name, types in FIELD_TYPES.items():
        value = data.get(name)
        if name in data and (isinstance(value, bool) or not isinstance(value, types)):
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            return f"field {name!r} is a {type(value).__name__}, expected {expected}"
    if not data["candidate_id"] or not all(isinstance(g, str) for g in data["groups"]):
        return "an empty candidate_id or a group name that is not a string"
    costs = data.get("cost", {}).values()
    if any(isinstance(v, bool) or not isinstance(v, _OPTIONAL_NUMBER) for v in costs):
        return "a cost entry that is not a number"
    if data.get("status", STATUS_OK) not in STATUSES or data["params"] < 0:
        return f"status {data.get('status')!r} or params {data['params']!r} out of range"
    return None
