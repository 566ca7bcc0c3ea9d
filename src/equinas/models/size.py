"""Bounds on a network's size, checked on its spec before anything is built.

A layer of ``c`` ambient channels over an ambient group of order ``|G|`` convolves with an
expanded filter of ``c_out |G| x c_in |G| x k x k`` entries (``c_in`` is the input image's
channels for the first layer, which lifts to the group) and, on an ``h x w`` input, outputs
``c |G| h w`` values per image. Training holds about ``TRAINING_COPIES`` float32 copies of
every filter (the weights, the expanded filter, their gradients and two optimizer moments)
and ``ACTIVATION_COPIES`` of every layer's output per image of a batch (conv, norm and ReLU
outputs, kept for the backward pass), and every layer, however narrow, at least ``LAYER_BYTES``
(its modules, tables and autograd records). A spec that needs more than the memory this process
may still use (``equinas.memory.memory_limit``: available memory, cgroup and rlimits) could
never train and is refused before anything is built; so the deepest spec accepted is
``memory_limit() // LAYER_BYTES`` layers.
"""

from __future__ import annotations

from typing import Any

from equinas.memory import gib, memory_limit
from equinas.models.errors import SpecError

LAYER_BYTES = 4 * 2**20  # a one-field C4 layer measured below 1 MiB built, run and backpropagated
TRAINING_COPIES = 6
ACTIVATION_COPIES = 3
FLOAT_BYTES = 4


def max_layers() -> int | None:
    """The most layers the memory this process may use holds (None where it cannot be told)."""
    limit = memory_limit()
    return None if limit is None else limit // LAYER_BYTES


def check_depth(layers: int) -> None:
    """``SpecError`` for more layers than ``max_layers()``."""
    most = max_layers()
    if most is not None and layers > most:
        raise SpecError(
            f"layers: {layers:,} layers; at most {most:,} fit in the memory this process may use "
            f"(at least {LAYER_BYTES // 2**20} MiB each)"
        )


def filter_entries(spec: Any, group_order: int) -> int:
    """Entries of every expanded filter and of the head's linear layers of ``spec`` (an
    ``ArchSpec``) whose ambient group has ``group_order`` elements."""
    total, previous = 0, spec.in_channels
    for index, layer in enumerate(spec.layers):
        fan_in = previous if index == 0 else previous * group_order
        total += layer.channels * group_order * fan_in * layer.kernel_size**2
        previous = layer.channels
    hidden = spec.head.hidden
    widths = [previous, hidden, spec.num_classes] if hidden is not None else [previous, spec.num_classes]
    return total + sum(a * b for a, b in zip(widths, widths[1:], strict=False))


def activation_entries(spec: Any, group_order: int, height: int, width: int) -> int:
    """Values the layers of ``spec`` output for one ``height x width`` image."""
    total = 0
    for layer in spec.layers:
        total += layer.channels * group_order * height * width
        if layer.pool:
            height, width = height // 2, width // 2
    return total


def check_network_size(
    spec: Any, group_order: int, image_size: tuple[int, int] | None = None, batch_size: int = 1
) -> None:
    """``SpecError`` when ``spec`` would not fit in memory while training: its filters, and
    with ``image_size`` the activations of a batch of ``batch_size`` such images (see the
    module docstring)."""
    limit = memory_limit()
    if limit is None:
        return
    needed = TRAINING_COPIES * FLOAT_BYTES * filter_entries(spec, group_order) + LAYER_BYTES * len(
        spec.layers
    )
    what = "its filters"
    if image_size is not None:
        activations = activation_entries(spec, group_order, *image_size)
        needed += ACTIVATION_COPIES * FLOAT_BYTES * batch_size * activations
        what = (
            f"its filters and activations for batches of {batch_size} {image_size[0]}x{image_size[1]} images"
        )
    if needed > limit:
        raise SpecError(
            f"layers: the network would need about {gib(needed)} to train ({what}), more than the "
            f"{gib(limit)} of memory this process may use now; use fewer or narrower layers"
        )
