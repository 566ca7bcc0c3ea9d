"""Export of an ``EquivariantCNN`` or ``ResidualCNN`` to plain PyTorch, TorchScript and ONNX.

``export_plain`` builds a module made only of standard ``torch.nn`` modules that computes the
network's eval-mode function: an ``nn.Sequential`` for a plain network, a ``torch.fx.GraphModule``
(the same modules plus the additions of the skips) for a resnet. Feature maps stay flattened,
``[B, C*|G|, H, W]`` (channel-major, as ``ConvBase.export`` lays them out):

    block l:  Conv2d (expanded filter, batch norm folded in) -> ReLU [-> MaxPool2d/AvgPool2d]
    head:     Unflatten(1, (C, |G|))                          [B, C, |G|, H, W]
              -> MaxPool3d/AvgPool3d((|G|, 1, 1))             group pool  [B, C, 1, H, W]
              -> AdaptiveMaxPool3d/AdaptiveAvgPool3d(1)       spatial pool [B, C, 1, 1, 1]
              -> Flatten(1) -> classifier (a copy of the head's Linear/BatchNorm1d/ELU stack)

    resnet:   stem as block 0; residual block j:
              y = Conv2d (conv2, norm2 folded)(ReLU(Conv2d (conv1, norm1 folded)(x)))
              x = ReLU(y + (x or Conv2d 1x1 (skip conv and norm folded)(x))) [-> pool]

Every conv layer (regular, mixed, ``rpp``, ``rgconv``, ``cr``) contributes its current expanded
filter, i.e. its function in eval mode. The filters keep the memory format the model's
convolutions compute in (``equinas.nn.layout``): ``channels_last`` filters make every conv
with more than one input channel return channels-last maps, the faster layout on CPU.
Batch norms use eval semantics (running statistics).
``torch.save`` of the result can be loaded (``torch.load(path, weights_only=False)``) where
equinas is not installed.
"""

from __future__ import annotations

import copy
import operator
from collections import OrderedDict
from pathlib import Path
from typing import cast

import torch
from torch import fx, nn

from equinas.models import EquivariantBlock, EquivariantCNN, ResidualBlock, ResidualCNN, SpecNetwork
from equinas.nn import GroupBatchNorm, InvariantHead, SpatialPool


def fold_batch_norm(conv: nn.Conv2d, norm: GroupBatchNorm) -> nn.Conv2d:
    """``conv`` followed by ``norm`` (eval mode) as one ``nn.Conv2d``.

    ``conv`` acts on flattened maps and has ``C*|G|`` output channels ordered ``(c, g)``; the
    norm computes ``(y - mean[c]) / sqrt(var[c] + eps) * scale[c, g] + shift[c, g]``, an affine
    map per conv channel that is folded into the filter and bias (computed in float64).
    """
    with torch.no_grad():
        gain, offset = norm.eval_affine(torch.float64)  # [C*|G|] each
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(gain)
    weight = conv.weight.detach().double() * gain[:, None, None, None]
    # a Conv2d's kernel size and padding are pairs (or a padding mode); torch types them as tuple[int, ...]
    kernel_size = cast(tuple[int, int], conv.kernel_size)
    padding = cast("str | tuple[int, int]", conv.padding)
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, kernel_size, padding=padding, bias=True).to(
        device=conv.weight.device, dtype=conv.weight.dtype
    )
    with torch.no_grad():
        folded.weight.copy_(weight)
        cast(torch.Tensor, folded.bias).copy_(gain * bias + offset)  # built with bias=True
    return folded


def _spatial_pool(pool: SpatialPool) -> nn.Module:
    """The plane-wise pooling of ``SpatialPool`` on flattened ``[B, C*|G|, H, W]`` maps."""
    cls = nn.MaxPool2d if pool.mode == "max" else nn.AvgPool2d
    return cls(pool.kernel)


def _block_modules(block: EquivariantBlock, index: int) -> list[tuple[str, nn.Module]]:
    """Named plain modules of one block: folded conv, ReLU and optional spatial pooling."""
    modules = [
        (f"block{index}_conv", fold_batch_norm(block.conv.export(), block.norm)),
        (f"block{index}_relu", nn.ReLU()),
    ]
    if block.pool is not None:
        modules.append((f"block{index}_pool", _spatial_pool(block.pool)))
    return modules


def _head_modules(head: InvariantHead, order: int) -> list[tuple[str, nn.Module]]:
    """Named plain modules of the head: ``[B, C*|G|, H, W]`` -> logits ``[B, num_classes]``."""
    group_pool = nn.MaxPool3d if head.group_pool.mode == "max" else nn.AvgPool3d
    spatial_pool = nn.AdaptiveMaxPool3d if head.spatial_pool == "max" else nn.AdaptiveAvgPool3d
    return [
        ("unflatten", nn.Unflatten(1, (head.channels, order))),
        ("group_pool", group_pool((order, 1, 1))),
        ("spatial_pool", spatial_pool(1)),
        ("flatten", nn.Flatten(1)),
        ("classifier", copy.deepcopy(head.classifier)),
    ]


def _residual_modules(block: ResidualBlock, index: int) -> dict[str, nn.Module]:
    """Plain modules of a residual block: folded convs, ReLUs, the folded skip, optional pool."""
    modules = {
        f"block{index}_conv1": fold_batch_norm(block.conv1.export(), block.norm1),
        f"block{index}_relu1": nn.ReLU(),
        f"block{index}_conv2": fold_batch_norm(block.conv2.export(), block.norm2),
        f"block{index}_relu2": nn.ReLU(),
    }
    if block.skip is not None:
        modules[f"block{index}_skip"] = fold_batch_norm(block.skip.conv.export(), block.skip.norm)
    if block.pool is not None:
        modules[f"block{index}_pool"] = _spatial_pool(block.pool)
    return modules


def _export_residual(model: ResidualCNN) -> fx.GraphModule:
    """The eval-mode function of a resnet as a graph of standard modules and additions."""
    root = nn.Module()
    graph = fx.Graph()
    x = graph.placeholder("images")

    def chain(named: list[tuple[str, nn.Module]], node: fx.Node) -> fx.Node:
        for name, module in named:
            root.add_module(name, module)
            node = graph.call_module(name, (node,))
        return node

    x = chain(_block_modules(model.stem, 0), x)
    for j, module in enumerate(model.residual_blocks, start=1):
        block = cast(ResidualBlock, module)  # what ResidualCNN builds its residual_blocks of
        mods = _residual_modules(block, j)
        y = chain([(n, mods[n]) for n in (f"block{j}_conv1", f"block{j}_relu1", f"block{j}_conv2")], x)
        skip = chain([(f"block{j}_skip", mods[f"block{j}_skip"])], x) if block.skip is not None else x
        x = graph.call_function(operator.add, (y, skip))
        x = chain([(n, mods[n]) for n in (f"block{j}_relu2", f"block{j}_pool") if n in mods], x)
    graph.output(chain(_head_modules(model.head, model.ambient.order), x))
    return fx.GraphModule(root, graph, class_name="ResidualNetwork")


def export_plain(model: SpecNetwork) -> nn.Module:
    """The eval-mode function of ``model`` in standard torch modules (see the module docstring).

    Input images ``[B, in_channels, H, W]``, output logits ``[B, num_classes]``. The result is in
    eval mode, on the model's device and dtype, in the memory format of the model's convolutions,
    and shares no tensors with ``model``; the model itself is left unchanged. Other networks
    (``SymmetryBreakingCNN``, whose learned maps have no standard module, LPS networks) raise
    ``TypeError``: trace the model itself instead.
    """
    formats = (getattr(m, "memory_format", None) for m in model.modules())
    layout = next((f for f in formats if isinstance(f, torch.memory_format)), torch.contiguous_format)
    # Module.to(memory_format=...) is documented, but torch's overloads of Module.to omit it
    if isinstance(model, ResidualCNN):
        with torch.no_grad():
            return _export_residual(model).eval().to(memory_format=layout)  # type: ignore[call-overload]
    if type(model) is not EquivariantCNN:
        raise TypeError(
            f"export_plain takes an EquivariantCNN or a ResidualCNN, got {type(model).__name__}; "
            "use torch.jit.trace or torch.onnx.export on the model itself"
        )
    with torch.no_grad():
        blocks = cast(list[EquivariantBlock], list(model.equivariant_blocks))  # what EquivariantCNN builds
        named = [item for i, block in enumerate(blocks) for item in _block_modules(block, i)]
        named += _head_modules(model.head, model.ambient.order)
    return nn.Sequential(OrderedDict(named)).eval().to(memory_format=layout)  # type: ignore[call-overload]


def export_torchscript(model: SpecNetwork, path: str | Path, example: torch.Tensor) -> torch.jit.ScriptModule:
    """Trace ``export_plain(model)`` on ``example`` ``[B, C, H, W]`` and save it to ``path``.

    Every module of the plain export is shape-polymorphic, so the traced module accepts other
    batch and image sizes. Load with ``torch.jit.load(path)``. (TorchScript is deprecated
    upstream; it is kept for deployment targets that still need it.)
    """
    traced = torch.jit.trace(export_plain(model), example)
    torch.jit.save(traced, str(path))
    return traced


def export_onnx(model: SpecNetwork, path: str | Path, example: torch.Tensor) -> Path:
    """Export ``export_plain(model)`` to the single ONNX file ``path`` (input ``images``, output
    ``logits``) with a dynamic batch axis; ``example`` ``[B, C, H, W]`` fixes the other sizes.

    Needs the ``export`` extra (``onnx``, ``onnxscript``; ``onnxruntime`` to run the file).
    """
    torch.onnx.export(
        export_plain(model),
        (example,),
        str(path),
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        external_data=False,
        verbose=False,
    )
    return Path(path)
