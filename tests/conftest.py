"""Shared test settings: deterministic seeds, a bounded hypothesis profile, and the dtype fixture."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, settings

from equinas.testing import AUTOCAST_DTYPES, TOLERANCES, tolerance

settings.register_profile(
    "equinas", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("equinas")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


STORAGE_DTYPES = [d for d in TOLERANCES if d not in AUTOCAST_DTYPES]


@pytest.fixture(params=STORAGE_DTYPES, ids=lambda dtype: str(dtype).removeprefix("torch."))
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    """The math tests (layers, mixed layers, morphisms) run once per storage dtype of ``TOLERANCES``
    (float32, float64; bf16 autocast has its own tests: ``test_mixed_precision.py``)."""
    return request.param


@pytest.fixture
def tol(dtype: torch.dtype) -> float:
    """Bound on relative errors that are zero in exact arithmetic: ``equinas.testing.tolerance``."""
    return tolerance(dtype)


def synthetic_task(n_train: int = 96, n_val: int = 48, n_test: int = 48, size: int = 12, classes: int = 3):
    """A tiny learnable task: each class is a bright square at its own place, plus noise."""
    from equinas.data.task import Split, TaskData

    gen = torch.Generator().manual_seed(1234)

    def split(n: int) -> Split:
        labels = torch.arange(n) % classes
        images = 0.3 * torch.randn(n, 1, size, size, generator=gen)
        for c in range(classes):
            images[labels == c, 0, 2 + 3 * c : 5 + 3 * c, 3:6] += 2.0
        return Split(images, labels)

    return TaskData("synthetic", classes, split(n_train), split(n_val), split(n_test))


def _have_data() -> bool:
    from equinas.data import DataNotFoundError, resolve_data_dir

    try:
        resolve_data_dir()
    except DataNotFoundError:
        return False
    return True


needs_data = pytest.mark.skipif(not _have_data(), reason="needs ../shared/data (MNIST)")
# a few MNIST images for command-line tests
TINY_MNIST_ARGS = ["--task", "mnist", "--train-size", "96", "--val-size", "48", "--test-size", "48"]
# a tiny network for command-line tests
SMALL_NET_ARGS = [
    "--widths",
    "1,2",
    "--pools-after",
    "0",
    "--kernel-size",
    "3",
    "--hidden",
    "none",
    "--batch-size",
    "32",
    "--threads",
    "1",
]


def synthetic_search_context(path, executor, seed: int = 0):
    """A search on ``synthetic_task()`` into run directory ``path``: a tiny network (fields 1, 2),
    half an epoch per candidate, one torch thread, no progress bars."""
    from equinas.search import BackboneSettings, SearchContext
    from equinas.search.run_directory import RunDirectory
    from equinas.train import TrainConfig

    return SearchContext(
        "synthetic",
        synthetic_task(),
        BackboneSettings(widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None),
        TrainConfig(epochs=0.5, batch_size=32, num_threads=1),
        executor,
        RunDirectory(path),
        seed=seed,
        progress=False,
    )


@pytest.fixture
def tiny_task():
    return synthetic_task()
