"""One training engine for every model and search method.

``train(model, data, config)`` runs shuffled mini-batch training with optional bilevel
architecture updates, validation, test evaluation, atomic checkpoints, exact resumption and
JSON logs; see ``Trainer`` for the protocol and ``hooks`` for the optional model hooks.
"""

from equinas.train.checkpoint import CheckpointError, load_checkpoint
from equinas.train.config import TrainConfig
from equinas.train.engine import Trainer, train
from equinas.train.evaluate import evaluate
from equinas.train.result import TrainingDiverged, TrainResult

__all__ = [
    "CheckpointError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "evaluate",
    "load_checkpoint",
    "train",
]
