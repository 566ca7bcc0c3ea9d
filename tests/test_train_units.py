"""Building blocks of the engine: lr schedule, atomic files, JSON records, RNG state, evaluate."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from equinas.atomic import atomic_write, atomic_write_text, remove_stale_temp_files
from equinas.data.task import Split
from equinas.runlog import jsonable
from equinas.train import CheckpointError, TrainConfig, evaluate, load_checkpoint
from equinas.train.optim import LRSchedule
from equinas.train.rng import capture_rng_state, derived_generator, restore_rng_state


def schedule(steps_per_epoch: int = 10, total_steps: int = 100, **config) -> LRSchedule:
    return LRSchedule(TrainConfig(lr=1.0, **config), steps_per_epoch, total_steps)


def test_constant_schedule():
    assert [schedule().factor(s) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]


def test_cosine_anneals_from_one_to_zero():
    cosine = schedule(scheduler="cosine")
    factors = [cosine.factor(s) for s in range(101)]
    assert factors[0] == 1.0 and factors[100] == 0.0
    assert factors[99] < 1e-3
    assert math.isclose(factors[50], 0.5)
    assert all(a >= b for a, b in zip(factors, factors[1:], strict=False))


def test_warmup_ramps_linearly_then_cosine_starts():
    warm = schedule(scheduler="cosine", warmup_epochs=0.5)  # 5 warmup steps
    assert [warm.factor(s) for s in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert warm.factor(5) == 1.0 and warm.factor(100) == 0.0


def test_step_decay_every_step_size_epochs():
    step = schedule(scheduler="step", step_size=2, gamma=0.5)
    assert [step.factor(s) for s in (0, 19, 20, 39, 40)] == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_apply_sets_every_param_group():
    optimizer = torch.optim.SGD(
        [{"params": [nn.Parameter(torch.zeros(1))]}, {"params": [nn.Parameter(torch.zeros(1))]}]
    )
    lr = schedule(scheduler="cosine").apply(optimizer, 50)
    assert [group["lr"] for group in optimizer.param_groups] == [lr, lr]


def test_atomic_write_replaces_content(tmp_path):
    target = tmp_path / "file.txt"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_failed_atomic_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "file.txt"
    atomic_write_text(target, "old")

    def explode(handle):
        handle.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, explode)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_remove_stale_temp_files_only_touches_its_own(tmp_path):
    target = tmp_path / "checkpoint.pt"
    (tmp_path / ".checkpoint.pt.abc123.tmp").write_text("killed mid-write")
    (tmp_path / "other.tmp").write_text("not ours")
    remove_stale_temp_files(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.tmp"]


def test_jsonable_converts_tensors_tuples_and_non_finite():
    value = {"w": torch.tensor([0.25, 0.75]), "t": (1, np.float32(2.5)), 3: float("nan")}
    assert jsonable(value) == {"w": [0.25, 0.75], "t": [1, 2.5], "3": None}
    with pytest.raises(TypeError, match="object"):
        jsonable({"x": object()})


def test_derived_generator_depends_only_on_its_arguments():
    torch.manual_seed(1)
    a = torch.randperm(50, generator=derived_generator(3, "train", 7))
    torch.manual_seed(2)
    b = torch.randperm(50, generator=derived_generator(3, "train", 7))
    c = torch.randperm(50, generator=derived_generator(3, "train", 8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rng_state_round_trip_is_weights_only_safe(tmp_path):
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    random.gauss(0, 1), np.random.standard_normal()  # leave cached gaussians behind
    torch.save(capture_rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), random.gauss(0, 1), np.random.standard_normal(), torch.rand(3))
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (random.random(), random.gauss(0, 1), np.random.standard_normal(), torch.rand(3))
    assert expected[:3] == again[:3] and torch.equal(expected[3], again[3])


def test_evaluate_matches_manual_computation_and_restores_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, 3))
    split = Split(torch.randn(10, 1, 4, 4), torch.randint(0, 3, (10,)))
    model.train()
    metrics = evaluate(model, split, batch_size=3)
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(split.images)
    assert metrics["count"] == 10
    assert math.isclose(metrics["loss"], F.cross_entropy(logits, split.labels).item(), rel_tol=1e-5)
    assert metrics["acc"] == (logits.argmax(1) == split.labels).sum().item() / 10


def test_evaluate_runs_without_grad_in_eval_mode():
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 2)

        def forward(self, x):
            seen.append((self.training, torch.is_grad_enabled()))
            return self.linear(x.flatten(1))

    evaluate(Spy(), Split(torch.randn(4, 1, 2, 2), torch.zeros(4, dtype=torch.int64)))
    assert seen == [(False, False)]


def test_evaluate_rejects_empty_split():
    with pytest.raises(ValueError, match="empty split"):
        evaluate(nn.Linear(1, 1), Split(torch.zeros(0, 1, 1, 1), torch.zeros(0, dtype=torch.int64)))


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
def test_load_checkpoint_names_corrupt_file(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_load_checkpoint_rejects_foreign_and_missing_files(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="lacks key"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_batch_norm_recalibration_gives_plain_batch_averages() -> None:
    from equinas.nn import GroupBatchNorm
    from equinas.train.norm_stats import recalibrate_batch_norm

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = GroupBatchNorm(2, "C2")
            self.plain = torch.nn.BatchNorm1d(3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.plain(x.mean(dim=(-2, -1))[:, :3])
            return self.norm(x.reshape(-1, 2, 2, 4, 4))

    images = torch.randn(64, 4, 4, 4) * 3 + 2
    net = Net().eval()
    net.norm.running_mean.fill_(7.0)
    recalibrate_batch_norm(
        net, Split(images, torch.zeros(64, dtype=torch.long)), 4, 16, torch.Generator().manual_seed(0)
    )
    grouped = images.reshape(64, 2, 2, 4, 4)
    torch.testing.assert_close(net.norm.running_mean, grouped.mean(dim=(0, 2, 3, 4)))
    # the average of the four per-batch unbiased variances (as torch's cumulative average gives)
    assert net.norm.momentum == 0.1 and net.plain.momentum == 0.1 and not net.training
    assert int(net.norm.num_batches_tracked) == 4
    torch.testing.assert_close(net.plain.running_mean, images.mean(dim=(-2, -1))[:, :3].mean(0))
