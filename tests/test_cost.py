"""Compute accounting: multiply-adds per image, images counted by kind, costs in every record."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from conftest import synthetic_task
from equinas.execution import LocalExecutor
from equinas.metrics.cost import BACKWARD_FACTOR, ComputeMeter, Cost, macs_per_image
from equinas.models import backbone, build_model
from equinas.search import BackboneSettings, SearchContext, make_method, run_search
from equinas.search.run_directory import RunDirectory
from equinas.train import TrainConfig, train


def conv_macs(size: int, widths: tuple[int, ...], pools_after: tuple[int, ...], k: int, order: int) -> int:
    """Multiply-adds of a 'same'-padded conv stack over a group of ``order`` elements, by hand."""
    total, channels = 0, 1
    for i, width in enumerate(widths):
        out = width * order
        total += size * size * out * channels * k * k
        channels = out
        if i in pools_after:
            size //= 2
    return total


@pytest.mark.parametrize("group", ["C1", "C4", "D4"])
def test_macs_per_image_match_the_layer_shapes(group: str) -> None:
    spec = backbone(group, widths=(2, 3), pools_after=(0,), kernel_size=3, hidden=None, num_classes=5)
    model = build_model(spec.to_dict())
    head = 3 * 5  # the linear classifier on the group-pooled channels
    expected = conv_macs(12, (2, 3), (0,), 3, 8) + head
    assert macs_per_image(model, torch.zeros(1, 12, 12)) == expected
    assert macs_per_image(model, torch.zeros(4, 1, 12, 12), train_mode=True) == expected


def test_macs_exclude_per_batch_work_of_a_mixed_layer() -> None:
    plain = build_model(backbone("C1", widths=(2,), pools_after=(), kernel_size=3, hidden=None).to_dict())
    mixed_spec = backbone("C1", widths=(2,), pools_after=(), kernel_size=3, hidden=None, kind="mixed")
    mixed = build_model(mixed_spec.to_dict())
    image = torch.zeros(1, 12, 12)
    assert macs_per_image(mixed, image) == macs_per_image(plain, image)


def test_meter_counts_training_and_evaluation_passes() -> None:
    data = synthetic_task(n_train=96, n_val=48, n_test=40)
    model = build_model(
        backbone("C4", widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None, num_classes=3).to_dict()
    )
    config = TrainConfig(epochs=2, batch_size=32, bn_recalibration=1, num_threads=1)
    with ComputeMeter(model, data.train.images[0]) as meter:
        train(model, data, config, progress=False)
    cost = meter.cost()
    macs = meter.macs[True]
    # two epochs of 96 images; per epoch one recalibration batch (32) and the val split; then test
    assert cost.train_images == 2 * 96
    assert cost.eval_images == 2 * (32 + 48) + 40
    assert cost.train_flops == BACKWARD_FACTOR * macs * cost.train_images
    assert cost.total_flops == cost.train_flops + cost.eval_flops
    assert cost.train_seconds > 0


def test_meter_counts_architecture_steps_as_training() -> None:
    data = synthetic_task(n_train=64, n_val=32)
    spec = backbone(
        "C1", widths=(1,), pools_after=(), kernel_size=3, hidden=None, kind="mixed", num_classes=3
    )
    model = build_model(spec.to_dict())
    config = TrainConfig(epochs=1, batch_size=32, arch_lr=1e-2, arch_every=2, num_threads=1)
    with ComputeMeter(model, data.train.images[0]) as meter:
        train(model, data, config, progress=False)
    # two weight steps of 32 images, one architecture step (every second) of 32 search images
    assert meter.cost().train_images == 64 + 32


def test_meter_leaves_the_model_unhooked() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with ComputeMeter(model, torch.zeros(1, 2, 2)) as meter:
        model(torch.zeros(3, 1, 2, 2))
    model(torch.zeros(5, 1, 2, 2))
    assert meter.cost().train_images == 3
    assert meter.macs == {True: 8, False: 8}


def test_costs_add_and_round_trip() -> None:
    a = Cost(1, 2, 3, 4, 7, 0.5)
    b = Cost.from_dict({**a.to_dict(), "unknown": 1})
    assert a + b == Cost(2, 4, 6, 8, 14, 1.0)
    assert Cost.total([]) == Cost()


BACKBONE = BackboneSettings(widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None)


def _search(tmp_path, method: str, **settings):
    ctx = SearchContext(
        "synthetic",
        synthetic_task(),
        BACKBONE,
        TrainConfig(epochs=0.5, batch_size=32, num_threads=1),
        LocalExecutor(),
        RunDirectory(tmp_path / method),
        progress=False,
    )
    return ctx, run_search(make_method(method, **settings), ctx)


@pytest.mark.parametrize(("method", "settings"), [("grid", {}), ("equinas_d", {"arch_lr": 1e-2})])
def test_every_record_has_a_cost_and_the_result_sums_them(tmp_path, method: str, settings: dict) -> None:
    ctx, result = _search(tmp_path, method, **settings)
    stored = [json.loads(line) for line in (ctx.run.path / "candidates.jsonl").read_text().splitlines()]
    assert {r["candidate_id"] for r in stored} == {r.candidate_id for r in result.candidates}
    for r in stored:
        assert r["cost"]["total_flops"] > 0 and r["cost"]["eval_images"] > 0
    saved = json.loads((ctx.run.path / "result.json").read_text())
    for key in ("train_images", "train_flops", "total_flops"):
        assert saved["total_cost"][key] == sum(r["cost"][key] for r in stored)
    assert saved["wall_time"] > 0
