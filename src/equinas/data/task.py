"""The unit every model, trainer and search consumes: a labelled image task with three splits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

FINGERPRINT_CHUNK = 4096  # images normalised at a time while fingerprinting a uint8 split


class Split:
    """Labelled images: ``labels`` int64 ``[N]`` and images ``[N, C, H, W]`` stored either

    * as float32, already normalised (``levels`` is None), or
    * as uint8 (raw pixel levels 0..255) with ``levels`` float32 ``[C, 256]``: the normalised
      value of each level in each channel. ``batch`` turns only the requested images into
      floats, ``out[n, c, y, x] = levels[c, stored[n, c, y, x]]``, so a data set stays 4x
      smaller in memory until a batch is made.

    ``images`` is the whole split as normalised float32 (materialised on every access; loops
    should call ``batch``).
    """

    __slots__ = ("labels", "levels", "stored")

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, levels: torch.Tensor | None = None):
        if images.dim() != 4:
            raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
        if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but labels of shape {tuple(labels.shape)}")
        if levels is not None:
            if images.dtype != torch.uint8:
                raise ValueError(f"levels need uint8 images, got {images.dtype}")
            if tuple(levels.shape) != (images.shape[1], 256) or levels.dtype != torch.float32:
                raise ValueError(f"levels must be float32 [{images.shape[1]}, 256], got {levels.shape}")
        elif not images.is_floating_point():
            raise ValueError(f"{images.dtype} images need levels (the normalised value of each level)")
        self.stored, self.labels, self.levels = images, labels, levels

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, C, H, W)``."""
        count, channels, height, width = self.stored.shape
        return count, channels, height, width

    @property
    def images(self) -> torch.Tensor:
        return self.batch(slice(None))

    @property
    def background(self) -> torch.Tensor:
        """float32 ``[C]``: the normalised value of a blank pixel (level 0) in each channel; 0 for
        splits stored as floats, whose blank value is not known."""
        if self.levels is None:
            return torch.zeros(self.stored.shape[1])
        return self.levels[:, 0].clone()

    def batch(self, index: torch.Tensor | slice | int) -> torch.Tensor:
        """Normalised float32 images ``stored[index]`` (``[B, C, H, W]``, or ``[C, H, W]`` for
        an int), on the split's device."""
        picked = self.stored[index]
        if self.levels is None:
            return picked
        channels = self.levels.shape[0]
        offsets = torch.arange(channels, device=picked.device).view(channels, 1, 1) * 256
        return self.levels.view(-1)[picked.long() + offsets]

    def to(self, device: torch.device | str) -> Split:
        """The split with its tensors on ``device``."""
        levels = None if self.levels is None else self.levels.to(device)
        return Split(self.stored.to(device), self.labels.to(device), levels)

    def fingerprint(self) -> str:
        """A SHA-256 digest of the shapes, dtypes and values of the normalised images and the
        labels (equal for equal data, however it is stored)."""
        digest = hashlib.sha256()
        count, *rest = self.shape
        digest.update(f"float32{(count, *rest)}".encode())
        for start in range(0, count, FINGERPRINT_CHUNK):
            chunk = self.batch(slice(start, start + FINGERPRINT_CHUNK)).detach().cpu().float()
            digest.update(chunk.contiguous().numpy().data.cast("B"))
        labels = self.labels.detach().cpu().contiguous().numpy()
        digest.update(f"{labels.dtype}{labels.shape}".encode())
        digest.update(labels.data.cast("B"))
        return digest.hexdigest()

    def subset(self, count: int | None) -> Split:
        """The first ``count`` examples (all when ``count`` is None)."""
        if count is None:
            return self
        return Split(self.stored[:count], self.labels[:count], self.levels)


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
        return int(self.train.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        height, width = self.train.shape[-2:]
        return height, width
