"""Bounds on a network's size, checked on its spec before anything is built.

A layer of ``c`` ambient channels over an ambient group of order ``|G|`` convolves with an
expanded filter of ``c_out |G| x c_in |G| x k x k`` entries (``c_in`` is the input image's
channels for the first layer, which lifts to the group) and, on an ``h x w`` input, outputs
``c |G| h w`` values per image. Training holds about ``TRAINING_COPIES`` float32 copies of
every filter (the weights, the expanded filter, their gradients and two optimizer moments)
and ``ACTIVATION_COPIES`` of every layer's output per image of a batch (conv, norm and ReLU
outputs, kept for the backward pass). A spec that needs more than the memory of this process
(``equinas.memory.memory_limit``) could never train and is refused; so is one deeper than
``MAX_LAYERS`` (building alone takes about 15 s per 1000 layers).
"""

from __future__ import annotations

from typing import Any

from equinas.memory import gib, memory_limit
from equinas.models.errors import SpecError

MAX_LAYERS = 1000
TRAINING_COPIES = 6
ACTIVATION_COPIES = 3
FLOAT_BYTES = 4


def check_depth(layers: int) -> None:
    """``SpecError`` for more than ``MAX_LAYERS`` layers."""
    if layers > MAX_LAYERS:
        raise SpecError(f"layers: {layers:,} layers; at most {MAX_LAYERS:,} are supported")


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
    needed = TRAINING_COPIES * FLOAT_BYTES * filter_entries(spec, group_order)
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
            f"{gib(limit)} of memory here; use fewer or narrower layers"
        )
