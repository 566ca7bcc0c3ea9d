"""Checkpoint files: atomic saving, and loading with ``weights_only=True`` plus validation.

A checkpoint is a dict of tensors, state dicts and plain Python values (see ``REQUIRED_KEYS``):

- ``format_version`` (int), ``model`` (state_dict), ``optimizer`` (state_dict),
  ``arch_optimizer`` (state_dict or None), ``grad_scaler`` (state_dict; empty unless fp16 AMP),
- ``global_step`` (optimizer steps done), ``steps_per_epoch``, ``num_train`` (train examples),
  ``epochs_done`` (float), ``wall_time`` (training seconds so far),
- ``rng`` (``rng.capture_rng_state()``), ``history`` (epoch records), ``config``
  (``TrainConfig.to_dict()``), ``metadata`` (user dict or None),

and optionally ``data_fingerprint`` (``TaskData.fingerprint()`` of the data it was trained on).
``load_checkpoint`` checks the type of every one (``KEY_TYPES``).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from equinas.atomic import atomic_write
from equinas.train.config import RESUMABLE_CHANGES, TrainConfig
from equinas.train.rng import capture_rng_state, restore_rng_state

if TYPE_CHECKING:
    from equinas.train.engine import Trainer

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


_COUNT = (int,)
_NUMBER = (int, float)
KEY_TYPES: dict[str, tuple[type, ...]] = {
    "format_version": _COUNT,
    "model": (dict,),
    "optimizer": (dict,),
    "arch_optimizer": (dict, type(None)),
    "grad_scaler": (dict,),
    "global_step": _COUNT,
    "steps_per_epoch": _COUNT,
    "num_train": _COUNT,
    "epochs_done": _NUMBER,
    "wall_time": _NUMBER,
    "rng": (dict,),
    "history": (list,),
    "config": (dict,),
    "metadata": (dict, type(None)),
    "data_fingerprint": (dict, type(None)),
}


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
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pass the checkpoint file (e.g. {path / 'checkpoint.pt'})")
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" not in str(error).lower():
            raise CheckpointError(f"checkpoint file {path} is corrupt or truncated ({error})") from None
        raise CheckpointError(
            f"checkpoint file {path} holds Python objects other than tensors and plain values (a "
            "pickle, which could run code when loaded); it is never loaded"
        ) from None
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
    for key, types in KEY_TYPES.items():
        value = checkpoint.get(key)
        if key in checkpoint and (isinstance(value, bool) or not isinstance(value, types)):
            raise CheckpointError(
                f"checkpoint file {path}: {key} is a {type(value).__name__}, expected "
                + " or ".join("None" if t is type(None) else t.__name__ for t in types)
            )
    if checkpoint["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint file {path} has format version {checkpoint['format_version']!r}; "
            f"this version of equinas reads version {FORMAT_VERSION}"
        )
    return checkpoint


def checkpoint_spec(checkpoint: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """The architecture spec stored in a checkpoint's ``metadata["spec"]`` (as ``equinas
    train`` writes it); ``CheckpointError`` naming ``path`` when it is missing or no object."""
    spec = (checkpoint.get("metadata") or {}).get("spec")
    if spec is None:
        raise CheckpointError(f"checkpoint file {path} has no architecture spec in its metadata")
    if not isinstance(spec, dict):
        raise CheckpointError(
            f"checkpoint file {path}: metadata.spec is a {type(spec).__name__}, expected an object"
        )
    return spec


def check_task_fits(checkpoint: dict[str, Any], path: str | os.PathLike, data: Any) -> None:
    """``CheckpointError`` naming ``path`` when task ``data`` (a ``TaskData``) has another
    class count or image channels than the checkpoint's network, or other image sizes than it
    was trained on (``metadata["image_size"]``, where ``equinas train`` recorded it)."""
    spec = checkpoint_spec(checkpoint, path)
    meta = checkpoint.get("metadata") or {}
    trained = meta.get("image_size")
    pairs = [
        ("classes", spec.get("num_classes"), data.num_classes),
        ("image channels", spec.get("in_channels"), data.in_channels),
        ("image size", "x".join(map(str, trained)) if trained else None, "x".join(map(str, data.image_size))),
    ]
    for what, saved, now in pairs:
        if saved is not None and saved != now:
            raise CheckpointError(
                f"checkpoint file {path} was trained for {what} {saved}, but this task has {what} {now}"
            )


def check_resumable(
    checkpoint: dict[str, Any],
    path: str | os.PathLike,
    config: TrainConfig,
    data_fingerprint: dict[str, str],
    num_train: int,
    steps_per_epoch: int,
    total_steps: int,
    has_arch_optimizer: bool,
) -> None:
    """Raise unless a run with ``config`` on this data can continue from ``checkpoint``.

    ``ValueError`` when the config changed outside ``RESUMABLE_CHANGES``, the data differ
    (``data_fingerprint``, per split), the train split or steps per epoch differ, or the
    checkpoint has done more than ``total_steps``; ``CheckpointError`` when it and the model
    disagree on having architecture parameters.
    """
    saved = checkpoint["config"]
    now = config.to_dict()
    changed = sorted(
        key
        for key in set(saved) | set(now)
        if key not in RESUMABLE_CHANGES and saved.get(key) != now.get(key)
    )
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise ValueError(f"cannot resume {path}: the config changed ({details})")
    saved_data = checkpoint.get("data_fingerprint")
    if saved_data is not None and saved_data != data_fingerprint:
        differ = [s for s, digest in data_fingerprint.items() if saved_data.get(s) != digest]
        raise ValueError(
            f"cannot resume {path}: it was trained on other data (the {', '.join(differ)} "
            "split(s) differ: other sizes, options or files)"
        )
    if (checkpoint["num_train"], checkpoint["steps_per_epoch"]) != (num_train, steps_per_epoch):
        raise ValueError(
            f"cannot resume {path}: it was trained on {checkpoint['num_train']} examples, "
            f"this train split has {num_train}"
        )
    if checkpoint["global_step"] > total_steps:
        raise ValueError(
            f"cannot resume {path}: it has done {checkpoint['epochs_done']:g} epochs, more "
            f"than config.epochs={config.epochs:g}"
        )
    if (checkpoint["arch_optimizer"] is None) == has_arch_optimizer:
        raise CheckpointError(f"checkpoint {path} and this model disagree on having architecture parameters")


def trainer_checkpoint(trainer: Trainer) -> dict[str, Any]:
    """The checkpoint of ``trainer`` now: everything ``restore_trainer`` needs to go on exactly."""
    arch_optimizer = trainer.arch_optimizer
    return {
        "format_version": FORMAT_VERSION,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "arch_optimizer": arch_optimizer.state_dict() if arch_optimizer is not None else None,
        "grad_scaler": trainer.scaler.state_dict(),
        "global_step": trainer.global_step,
        "steps_per_epoch": trainer.steps_per_epoch,
        "num_train": len(trainer.data.train),
        "data_fingerprint": trainer.data_fingerprint,
        "epochs_done": trainer.epochs_done,
        "wall_time": trainer.wall_time,
        "rng": capture_rng_state(),
        "history": trainer.history,
        "config": trainer.config.to_dict(),
        "metadata": trainer.metadata,
    }


def restore_trainer(trainer: Trainer, checkpoint: dict[str, Any], path: Path) -> None:
    """Load ``trainer``'s model, optimizers, counters, history and RNG states from ``checkpoint``."""
    check_resumable(
        checkpoint,
        path,
        trainer.config,
        trainer.data_fingerprint,
        num_train=len(trainer.data.train),
        steps_per_epoch=trainer.steps_per_epoch,
        total_steps=trainer.total_steps,
        has_arch_optimizer=trainer.arch_optimizer is not None,
    )
    try:
        trainer.model.load_state_dict(checkpoint["model"])
        trainer.optimizer.load_state_dict(checkpoint["optimizer"])
        if trainer.arch_optimizer is not None:
            trainer.arch_optimizer.load_state_dict(checkpoint["arch_optimizer"])
        if trainer.scaler.is_enabled() and checkpoint["grad_scaler"]:
            trainer.scaler.load_state_dict(checkpoint["grad_scaler"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise CheckpointError(f"checkpoint {path} does not fit this model: {error}") from error
    trainer.global_step = checkpoint["global_step"]
    trainer.history = list(checkpoint["history"])
    trainer.wall_time = checkpoint["wall_time"]
    restore_rng_state(checkpoint["rng"])
