"""The unit every model, trainer and search consumes: a labelled image task with three splits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Split:
    """Images ``[N, C, H, W]`` (float32, normalised) and labels ``[N]`` (int64)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dim() != 4:
            raise ValueError(f"images must be [N, C, H, W], got shape {tuple(self.images.shape)}")
        if self.labels.dim() != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise ValueError(f"{self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def fingerprint(self) -> str:
        """A SHA-256 digest of the shapes, dtypes and values of images and labels."""
        digest = hashlib.sha256()
        for tensor in (self.images, self.labels):
            array = tensor.detach().cpu().contiguous().numpy()
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(memoryview(array).cast("B"))
        return digest.hexdigest()

    def subset(self, count: int | None) -> Split:
        """The first ``count`` examples (all when ``count`` is None)."""
        if count is None:
            return self
        return Split(self.images[:count], self.labels[:count])


@dataclass(frozen=True)
class TaskData:
    """A classification task: ``train`` for weights, ``val`` for selection, ``test`` for reporting."""

    name: str
    num_classes: int
    train: Split
    val: Split
    test: Split
    info: dict = field(default_factory=dict)

    def fingerprint(self) -> dict[str, str]:
        """``{split: Split.fingerprint()}``: identifies exactly the examples a run used."""
        return {name: getattr(self, name).fingerprint() for name in ("train", "val", "test")}

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train.images.shape[-2:])  # type: ignore[return-value]
