"""TensorBoard logging of a training run (optional extra ``equinas[tensorboard]``).

``TensorBoardLogger`` is a trainer callback (``on_epoch_end``). At every epoch's last
optimizer step it writes the scalars ``loss/train``, ``accuracy/train``, ``loss/val``,
``accuracy/val`` (when validated), ``loss/arch`` (architecture steps), ``lr``, and for models
with mixed layers (EquiNAS_D) every mixing weight as ``alpha/layer<i>/<group>``; the text
``groups`` lists each layer's group (the spec's group, or the group with the largest alpha
of a mixed layer). ``write_final`` adds ``accuracy/test`` and ``loss/test``.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any, Protocol

from equinas.data.optional import require

SCALARS = {
    "train_loss": "loss/train",
    "train_acc": "accuracy/train",
    "val_loss": "loss/val",
    "val_acc": "accuracy/val",
    "arch_loss": "loss/arch",
    "lr": "lr",
}


class Writer(Protocol):
    """The part of ``torch.utils.tensorboard.SummaryWriter`` the logger uses."""

    def add_scalar(self, tag: str, value: float, global_step: int) -> None: ...

    def add_text(self, tag: str, text: str, global_step: int) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def tensorboard_module() -> ModuleType:
    """``torch.utils.tensorboard``; ``ImportError`` with the install hint when the package
    ``tensorboard`` is missing."""
    return require("torch.utils.tensorboard", "tensorboard", "--tensorboard")


def summary_writer(log_dir: str | os.PathLike[str]) -> Writer:
    """A ``SummaryWriter`` into ``log_dir``."""
    return tensorboard_module().SummaryWriter(log_dir=str(log_dir))


def layer_groups(model: Any, alphas: dict[str, dict[str, float]] | None) -> list[str]:
    """Each layer's group: a mixed layer's group of largest alpha, else the spec's group."""
    spec = getattr(model, "spec", None)
    groups = [str(g) for g in spec.groups_per_layer()] if spec is not None else []
    for name, weights in (alphas or {}).items():
        index = int(name.removeprefix("layer"))
        if index < len(groups) and weights:
            groups[index] = max(weights, key=weights.__getitem__)
    return groups


class TensorBoardLogger:
    """Trainer callback writing a run's curves to ``log_dir`` (see the module docstring).

    ``writer`` replaces the ``SummaryWriter`` (anything with ``add_scalar``, ``add_text``,
    ``flush`` and ``close``).
    """

    def __init__(self, log_dir: str | os.PathLike[str], writer: Writer | None = None):
        self.writer = writer if writer is not None else summary_writer(log_dir)
        self._last_groups: str | None = None

    def on_epoch_end(self, state: dict[str, Any]) -> None:
        step = int(state["step"])
        for key, tag in SCALARS.items():
            if state.get(key) is not None:
                self.writer.add_scalar(tag, float(state[key]), step)
        alphas = state.get("architecture")
        for layer, weights in (alphas or {}).items():
            for group, value in weights.items():
                self.writer.add_scalar(f"alpha/{layer}/{group}", float(value), step)
        groups = " ".join(layer_groups(state.get("model"), alphas))
        if groups and groups != self._last_groups:
            self.writer.add_text("groups", groups, step)
            self._last_groups = groups
        self.writer.flush()

    def write_final(self, metrics: dict[str, Any], step: int) -> None:
        """Test accuracy and loss (when measured) at ``step``; closes the writer."""
        for key, tag in (("test_acc", "accuracy/test"), ("test_loss", "loss/test")):
            if metrics.get(key) is not None:
                self.writer.add_scalar(tag, float(metrics[key]), step)
        self.writer.close()
