"""Where and in which precision a run executes: device choice and mixed precision (autocast)."""

from __future__ import annotations

import ctypes
import functools
import sys
import warnings

import torch

from equinas.train.config import TrainConfig

# CPU features with native bfloat16 arithmetic (``torch.cpu.get_capabilities()``): x86 AVX-512
# BF16 and AMX, ARM's BF16 extension. Without them bf16 is emulated and slower than float32.
_CPU_BF16_FEATURES = ("avx512_bf16", "amx_bf16", "bf16")


class MixedPrecisionWarning(RuntimeWarning):
    """``amp`` was asked for where it cannot pay off; the run computes in float32."""


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (see ``_CPU_BF16_FEATURES``)."""
    capabilities = torch.cpu.get_capabilities()
    return any(bool(capabilities.get(feature)) for feature in _CPU_BF16_FEATURES)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast on ``device`` runs natively: a GPU that supports bf16, or a CPU with
    ``cpu_has_native_bf16()``."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def resolve_device(choice: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU raises ``ValueError``."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("TrainConfig.device is 'cuda' but torch.cuda.is_available() is False")
    return torch.device(choice)


def check_amp(config: TrainConfig, device: torch.device) -> None:
    """``ValueError`` for mixed precision the device cannot run: float16 autocast on a CPU
    (neither faster nor safe without a GradScaler). Depends on the settings only, so callers
    check it before loading any data."""
    if config.amp and device.type != "cuda" and config.amp_dtype == "float16":
        raise ValueError("amp_dtype 'float16' is for CUDA only; on CPU mixed precision is bfloat16 (auto)")


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the run, or ``None`` (float32: ``amp`` off, or no native bf16).

    CUDA: ``amp_dtype='auto'`` picks bfloat16 when the GPU supports it, else float16. CPU:
    bfloat16 where ``cpu_has_native_bf16()``, else a ``MixedPrecisionWarning`` and ``None``;
    ``amp_dtype='float16'`` raises ``ValueError`` (CPU float16 autocast is neither faster nor
    safe without a GradScaler).
    """
    check_amp(config, device)
    if not config.amp:
        return None
    if device.type == "cuda":
        if config.amp_dtype == "float16":
            return torch.float16
        if config.amp_dtype == "bfloat16" or torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16
    if not native_bf16(device):
        warnings.warn(
            f"amp: this {device.type.upper()} has no native bfloat16 arithmetic (AVX-512 BF16 or AMX); "
            "mixed precision would be slower than float32, so the run computes in float32",
            MixedPrecisionWarning,
            stacklevel=2,
        )
        return None
    return torch.bfloat16


def dtype_name(dtype: torch.dtype | None) -> str | None:
    """``'bfloat16'`` for ``torch.bfloat16`` (a name for records); ``None`` stays ``None``."""
    return None if dtype is None else str(dtype).removeprefix("torch.")


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
    """Autocast to ``dtype`` on ``device``'s type; a disabled context when ``dtype`` is None."""
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


# glibc ``mallopt`` parameters and the values ``keep_freed_memory`` sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_BYTES, _TRIM_THRESHOLD_BYTES = 1 << 28, 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed blocks of up to 256 MiB for reuse (once per process).

    By default large blocks come from ``mmap`` and go back to the OS when freed, so every training
    step pays page faults again for its feature maps (about 6,000 per float32 step of the demo
    network; without them a train step takes 0.67-0.82x the CPU time in float32, 0.62-0.89x in
    bf16: ``benchmarks/bench_step.py`` against ``--glibc-default``, alternating processes at load
    8-10). Returns whether it took effect (Linux with glibc); elsewhere nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES)
    )
