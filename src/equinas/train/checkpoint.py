"""Checkpoint files: atomic saving, and loading with ``weights_only=True`` plus validation.

A checkpoint is a dict of tensors, state dicts and plain Python values (see ``REQUIRED_KEYS``):

- ``format_version`` (int), ``model`` (state_dict), ``optimizer`` (state_dict),
  ``arch_optimizer`` (state_dict or None), ``grad_scaler`` (state_dict; empty unless fp16 AMP),
- ``global_step`` (optimizer steps done), ``steps_per_epoch``, ``num_train`` (train examples),
  ``epochs_done`` (float), ``wall_time`` (training seconds so far),
- ``rng`` (``rng.capture_rng_state()``), ``history`` (epoch records), ``config``
  (``TrainConfig.to_dict()``), ``metadata`` (user dict or None),

and optionally ``data_fingerprint`` (``TaskData.fingerprint()`` of the data it was trained on).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from equinas.train.files import atomic_write

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1
REQUIRED_KEYS = (
    "format_version",
    "model",
    "optimizer",
    "arch_optimizer",
    "grad_scaler",
    "global_step",
    "steps_per_epoch",
    "num_train",
    "epochs_done",
    "wall_time",
    "rng",
    "history",
    "config",
    "metadata",
)


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, corrupt, or does not fit the run."""


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint`` to ``path`` atomically (temp file, fsync, ``os.replace``)."""
    atomic_write(path, lambda handle: torch.save(checkpoint, handle))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint onto the CPU with ``torch.load(weights_only=True)`` and check its keys.

    Raises ``CheckpointError`` naming ``path`` when the file is missing, truncated, corrupt,
    not a checkpoint, or of an unknown format version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"checkpoint file {path} is corrupt or truncated and cannot be loaded "
            f"({type(error).__name__}: {error}); delete it to start over"
        ) from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint file {path} holds a {type(checkpoint).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint file {path} lacks key(s): {', '.join(missing)}")
    if checkpoint["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint file {path} has format version {checkpoint['format_version']!r}; "
            f"this version of equinas reads version {FORMAT_VERSION}"
        )
    return checkpoint
