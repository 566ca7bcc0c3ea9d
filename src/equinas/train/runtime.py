"""Where and in which precision a run executes: device choice and CUDA mixed precision."""

from __future__ import annotations

import torch

from equinas.train.config import TrainConfig


def resolve_device(choice: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU raises ``ValueError``."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("TrainConfig.device is 'cuda' but torch.cuda.is_available() is False")
    return torch.device(choice)


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the run, or ``None`` (full precision: ``amp`` off or not on CUDA).

    ``amp_dtype='auto'`` picks bfloat16 when the GPU supports it, else float16.
    """
    if not config.amp or device.type != "cuda":
        return None
    if config.amp_dtype == "float16":
        return torch.float16
    if config.amp_dtype == "bfloat16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def memory_format(config: TrainConfig, device: torch.device) -> torch.memory_format:
    """Layout of the run's group feature maps (``equinas.nn.layout``): ``channels_last``,
    ``contiguous`` (NCHW), or for ``auto`` the faster one on ``device``: channels-last on CPU
    (``benchmarks/results/step_cpu.json``), NCHW elsewhere (not measured on GPUs yet)."""
    if config.memory_format == "contiguous":
        return torch.contiguous_format
    if config.memory_format == "channels_last" or device.type == "cpu":
        return torch.channels_last
    return torch.contiguous_format


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast to ``dtype`` on CUDA; a disabled context when ``dtype`` is None or on CPU."""
    enabled = dtype is not None and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)
