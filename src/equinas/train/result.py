"""What a training run gives back: ``TrainResult``, or ``TrainingDiverged`` with its one advice."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from equinas.runlog import jsonable

# the one advice for a loss that became NaN or infinite, in every message that reports one
DIVERGENCE_ADVICE = "try a lower learning rate (--lr), gradient clipping (--grad-clip) or --no-amp"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite at 0-based ``epoch``, 1-based global ``step``; training
    stopped before applying that step. Picklable (e.g. across worker processes)."""

    def __init__(self, message: str, epoch: int, step: int, loss: float) -> None:
        super().__init__(message)
        self.epoch, self.step, self.loss = epoch, step, loss

    def __reduce__(self) -> tuple[type, tuple[str, int, int, float]]:
        return type(self), (str(self), self.epoch, self.step, self.loss)


@dataclass
class TrainResult:
    """Outcome of a run. ``metrics`` holds the final ``train_loss``, ``train_acc``, ``val_loss``,
    ``val_acc``, ``test_loss`` and ``test_acc`` (``None`` for an empty split); ``history`` one
    record per (possibly partial) epoch; epochs are fractional counts of epochs done;
    ``autocast`` names the dtype the forward passes ran in under autocast (``"bfloat16"``), or
    is ``None`` (no mixed precision)."""

    metrics: dict[str, float | None]
    history: list[dict[str, Any]]
    best_val_acc: float | None
    best_val_epoch: float | None
    epochs_done: float
    wall_time: float
    device: str
    num_params: int
    autocast: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        return jsonable(asdict(self))
