"""Random state: seeding, derived generators, and capture/restore as plain tensors.

Captured states contain only tensors, ints, floats and ``None`` so that checkpoints load with
``torch.load(..., weights_only=True)``; nothing numpy or Python-specific is pickled.
"""

from __future__ import annotations

import hashlib
import random
import warnings
from typing import Any, cast

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and all CUDA devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def derived_generator(seed: int, stream: str, index: int) -> torch.Generator:
    """A CPU generator that depends only on ``(seed, stream, index)``, never on global state."""
    digest = hashlib.blake2b(f"{seed}:{stream}:{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


def capture_rng_state() -> dict[str, Any]:
    """The state of every global RNG that ``seed_everything`` seeds."""
    version, mt_state, gauss_next = random.getstate()
    # the global RandomState is an MT19937, whose legacy state is this tuple (others give a dict)
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    _, np_keys, np_pos, np_has_gauss, np_cached = legacy
    return {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": {
            "version": version,
            "state": torch.tensor(mt_state, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "numpy": {
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng_state``. CUDA states are restored when the device count matches
    (otherwise a warning: the resumed run is then not bit-identical on the GPU)."""
    torch.set_rng_state(state["torch_cpu"])
    cuda_states = state["torch_cuda"]
    if torch.cuda.is_available() and cuda_states:
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            warnings.warn(
                f"checkpoint has RNG states for {len(cuda_states)} CUDA device(s) but "
                f"{torch.cuda.device_count()} are visible; CUDA RNG states not restored",
                stacklevel=2,
            )
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
