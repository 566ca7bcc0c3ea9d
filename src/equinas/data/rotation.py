"""Rotating a batch of images, each by its own angle (vectorised numpy).

Convention -- the same as ``equinas.groups.actions``: a positive angle rotates the image
content counter-clockwise about the grid centre ``((H-1)/2, (W-1)/2)``, with the y axis
pointing up (row index down). Output pixel ``p`` samples the input at ``R(-angle) p``;
samples outside the grid read zero. The sample coordinates come from
``equinas.groups.actions.rotation_sources`` (shared with the group actions).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from equinas.groups.actions import rotation_sources

CHUNK = 256  # images per vectorised block; small blocks stay in cache


def _padded_index(
    images: np.ndarray, rows: np.ndarray, cols: np.ndarray, pad: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Zero-pad ``images [B, H, W]`` by ``pad`` pixels and flatten the whole batch.

    Returns ``(flat, index, stride)`` with ``flat[index]`` the pixel at ``(rows, cols)``
    (``[B, P]``) and ``stride`` the padded row length, so ``index + 1`` and ``index + stride``
    are the right and lower neighbours. Coordinates are clipped to ``[-pad, H]`` and
    ``[-pad, W]``; clipping only moves positions that are off the grid together with their
    right/lower neighbour, so with ``pad = 2`` every bilinear tap off the grid reads zero,
    and with ``pad = 1`` every nearest-neighbour sample does.
    """
    batch, height, width = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    stride = width + 2 * pad
    rows = np.clip(rows, -pad, height) + pad
    cols = np.clip(cols, -pad, width) + pad
    offsets = (np.arange(batch) * padded[0].size)[:, None]
    index = (rows * stride + cols).astype(np.int64) + offsets
    return padded.reshape(-1), index, stride


def _rotate(
    images: np.ndarray,
    angles: np.ndarray,
    dtype: np.dtype,
    sample: Callable[[np.ndarray, tuple[np.ndarray, np.ndarray]], np.ndarray],
) -> np.ndarray:
    """``images [N, H, W]`` rotated by ``angles [N]`` (radians), chunk by chunk:
    ``sample(chunk, sources) -> [B, H*W]`` reads each chunk at its source coordinates."""
    angles = np.asarray(angles, dtype=np.float64)
    if images.ndim != 3 or angles.shape != (images.shape[0],):
        raise ValueError(f"expected images [N, H, W] and angles [N], got {images.shape} and {angles.shape}")
    n, height, width = images.shape
    out = np.empty((n, height * width), dtype=dtype)
    for start in range(0, n, CHUNK):
        part = slice(start, start + CHUNK)
        out[part] = sample(images[part], rotation_sources(height, width, angles[part]))
    return out.reshape(n, height, width)


def rotate_bilinear(images: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotate ``images [N, H, W]`` by ``angles [N]`` (radians, CCW), bilinear; float64 out."""

    def sample(chunk: np.ndarray, sources: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        src_r, src_c = sources
        r0, c0 = np.floor(src_r), np.floor(src_c)
        fr, fc = src_r - r0, src_c - c0
        flat, index, stride = _padded_index(chunk.astype(np.float64), r0, c0, pad=2)
        top = (1.0 - fc) * flat[index] + fc * flat[index + 1]
        bottom = (1.0 - fc) * flat[index + stride] + fc * flat[index + stride + 1]
        return (1.0 - fr) * top + fr * bottom

    return _rotate(images, angles, np.dtype(np.float64), sample)


def rotate_nearest(images: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotate ``images [N, H, W]`` by ``angles [N]`` (radians, CCW), nearest neighbour
    (round half up), zero fill; the dtype is kept."""

    def sample(chunk: np.ndarray, sources: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        src_r, src_c = sources
        flat, index, _ = _padded_index(chunk, np.floor(src_r + 0.5), np.floor(src_c + 0.5), pad=1)
        return flat[index]

    return _rotate(images, angles, images.dtype, sample)
