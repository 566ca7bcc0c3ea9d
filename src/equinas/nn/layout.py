"""Memory layout of group feature maps: NCHW (``contiguous``) or ``channels_last``.

A group feature map ``[B, C, |G|, H, W]`` is convolved through its 4-D view
``[B, C*|G|, H, W]``. In ``channels_last`` that view has strides ``(H*W*C*|G|, 1, W*C*|G|,
C*|G|)``: the ``C*|G|`` values of a pixel are adjacent, so the 5-D map has strides
``(H*W*C*|G|, |G|, 1, W*C*|G|, C*|G|)`` and both reshapes between the two views stay views.
Only the convolutions choose a layout (``ConvBase.memory_format``: their filter and output);
batch norm, pooling and the head keep the layout of their input. Values never depend on the
layout, only the speed does (``benchmarks/results/memory_format_ops_cpu.md``).
"""

from __future__ import annotations

import torch
from torch import nn


def set_memory_format(model: nn.Module, memory_format: torch.memory_format) -> nn.Module:
    """Make every convolution of ``model`` (modules with a ``memory_format`` attribute) compute in
    ``memory_format``; returns ``model``. Parameters and outputs' values are unchanged."""
    if memory_format not in (torch.channels_last, torch.contiguous_format):
        raise ValueError(
            f"memory_format must be torch.channels_last or torch.contiguous_format, got {memory_format}"
        )
    for module in model.modules():
        if isinstance(getattr(module, "memory_format", None), torch.memory_format):
            # torch types attribute access on Module as Tensor | Module; this attribute is plain
            module.memory_format = memory_format  # type: ignore[assignment]
    return model
