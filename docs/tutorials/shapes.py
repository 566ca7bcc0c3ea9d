"""A small image data set whose symmetry is known: for the tutorials.

Three classes of 20 x 20 grayscale images: an L, an S and a T made of 4-pixel-wide bars, each
image turned by a random quarter turn and shifted by a few pixels, with noise. Quarter turns
leave every class unchanged, so the data is C4-symmetric; a mirror turns the L and the S into
shapes no class has (the T is mirror-symmetric), so it is not D4-symmetric.
"""

from __future__ import annotations

import numpy as np

SIZE = 20
CLASSES = ("L", "S", "T")


def _shape(name: str) -> np.ndarray:
    """The upright shape on a 12 x 12 canvas (1 inside, 0 outside)."""
    canvas = np.zeros((12, 12), np.float32)
    if name == "L":
        canvas[0:12, 0:4] = 1
        canvas[8:12, 0:9] = 1
    elif name == "S":
        canvas[0:4, 4:12] = 1
        canvas[4:8, 4:8] = 1
        canvas[8:12, 0:8] = 1
    else:  # T
        canvas[0:4, 0:12] = 1
        canvas[4:12, 4:8] = 1
    return canvas


def make_shapes(per_class: int, seed: int = 0, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: ``[N, 20, 20]`` uint8 images and ``[N]`` labels 0..2, shuffled;
    ``noise`` is the standard deviation of the pixel noise (the shapes are 0.8 brighter)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, name in enumerate(CLASSES):
        shape = _shape(name)
        for _ in range(per_class):
            turned = np.rot90(shape, k=int(rng.integers(4)))
            image = rng.normal(0.1, noise, (SIZE, SIZE)).astype(np.float32)
            top, left = rng.integers(0, SIZE - 12 + 1, size=2)
            image[top : top + 12, left : left + 12] += 0.8 * turned
            images.append(np.clip(255 * image, 0, 255).astype(np.uint8))
            labels.append(label)
    order = rng.permutation(len(images))
    return np.stack(images)[order], np.array(labels)[order]
