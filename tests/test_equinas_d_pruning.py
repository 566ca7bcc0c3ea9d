"""EquiNAS_D's progressive discretisation: halving schedule, pruning, resume, settings."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import synthetic_task
from equinas.execution import LocalExecutor
from equinas.groups import parse_group
from equinas.metrics import relative_error
from equinas.models import backbone, build_model
from equinas.nn.mixed import HalvingSchedule, MixedGroupConv
from equinas.search import BackboneSettings, SearchContext, make_method, run_search
from equinas.search.methods.equinas_d import EquiNASDSettings
from equinas.search.run_directory import RunDirectory
from equinas.train import TrainConfig, train

D4 = parse_group("D4")


def test_halving_schedule_doubles_the_time_of_each_halving() -> None:
    schedule = HalvingSchedule(begin=2.0, end=17.0)
    # 10 candidates: 4 halvings after 1, 2, 4 and 8 units of 1 epoch; ceil(n / 2) survive each
    times = (0, 2.99, 3, 4.99, 5, 9, 16.99, 17, 100)
    assert [schedule.keep(10, t) for t in times] == [10, 10, 5, 5, 3, 2, 2, 1, 1]
    # 5 candidates: 3 halvings after 1, 2 and 4 sevenths of the window
    assert [schedule.keep(5, t) for t in (4.1, 4.2, 8.4, 8.5, 17)] == [5, 3, 3, 2, 1]
    assert schedule.keep(1, 100) == 1
    # a halving on a step boundary happens at that step despite float rounding
    assert HalvingSchedule(0.0, 0.3).keep(2, 0.1 + 0.2) == 1


@pytest.mark.parametrize(("begin", "end"), [(3.0, 3.0), (4.0, 2.0), (-1.0, 2.0), (0.0, math.inf)])
def test_halving_schedule_rejects_empty_windows(begin: float, end: float) -> None:
    with pytest.raises(ValueError, match="halving window"):
        HalvingSchedule(begin, end)


def test_pruning_keeps_the_largest_alpha_and_a_pruned_candidate_never_returns() -> None:
    layer = MixedGroupConv(2, 3, 3, D4, groups=["D4", "C4", "D1", "C2", "C1"])
    with torch.no_grad():
        layer.alpha.copy_(torch.tensor([0.5, 2.0, -1.0, 2.0, 0.0]))
    assert [str(g) for g in layer.prune_to(3)] == ["D1", "C1"]  # tie C4/C2: both stay (top 3)
    assert [str(g) for g in layer.active_groups()] == ["D4", "C4", "C2"]
    z = layer.mixing_weights().detach()
    assert z[2] == 0 and z[4] == 0 and float(z.sum()) == pytest.approx(1.0)
    with torch.no_grad():
        layer.alpha[4] = 10.0  # a pruned candidate's logit rising changes nothing
    assert layer.mixing_weights()[4] == 0 and str(layer.discretize().group) in {"C4", "C2"}
    assert layer.prune_to(3) == []  # idempotent
    assert [str(g) for g in layer.prune_to(2)] == ["D4"]
    assert [str(g) for g in layer.prune_to(1)] == ["C2"]  # equal alpha: the earlier one (C4) stays
    assert layer.num_active == 1 and str(layer.discretize().group) == "C4"
    with pytest.raises(ValueError, match="at least one"):
        layer.prune_to(0)


def test_a_pruned_layer_computes_its_active_mixture_and_gets_no_gradient_for_the_rest() -> None:
    layer = MixedGroupConv(2, 3, 3, D4, groups=["D4", "C4", "C2", "C1"])
    with torch.no_grad():
        layer.alpha.normal_()
    layer.prune_to(2)
    x = torch.randn(2, 2, 8, 9, 9)
    assert relative_error(layer(x), layer.forward_naive(x)) <= 1e-5
    layer(x).square().sum().backward()
    for on, kernel in zip(layer.active.tolist(), layer.kernels, strict=True):
        assert (kernel.grad is not None) == on


def test_a_layer_decided_by_pruning_is_its_discretized_layer() -> None:
    layer = MixedGroupConv(2, 3, 3, D4, lifting=True, groups=["D4", "C4", "C1"])
    layer.prune_to(1)
    x = torch.randn(2, 2, 9, 9)
    assert relative_error(layer(x), layer.discretize()(x)) <= 1e-5


def test_the_active_mask_is_state_and_older_states_load_with_every_candidate_active() -> None:
    layer = MixedGroupConv(2, 3, 3, D4, groups=["D4", "C4", "C1"])
    layer.prune_to(2)
    fresh = MixedGroupConv(2, 3, 3, D4, groups=["D4", "C4", "C1"])
    fresh.load_state_dict(layer.state_dict())
    assert torch.equal(fresh.active, layer.active)
    old = {k: v for k, v in layer.state_dict().items() if k != "active"}
    fresh.load_state_dict(old)
    assert fresh.num_active == 3


def _mixed_spec(halving: list[float] | None):
    options = {"halving": halving} if halving is not None else None
    spec = backbone(
        "C1",
        ambient="D4",
        widths=(1, 2),
        pools_after=(0,),
        kernel_size=3,
        hidden=None,
        num_classes=3,
        kind="mixed",
        options=options,
    )
    return spec.to_dict()


class KillAfter:
    """A callback that stops training (as a SIGKILL would) after ``epochs`` epochs."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, state: dict) -> None:
        if state["epoch"] >= self.epochs:
            raise KeyboardInterrupt


def _train(run_dir, callbacks=(), resume: bool = False):
    torch.manual_seed(0)
    model = build_model(_mixed_spec([0.5, 2.5]))
    config = TrainConfig(
        epochs=3,
        batch_size=32,
        lr=3e-3,
        num_threads=1,
        arch_lr=0.05,
        arch_warmup_epochs=0.5,
        arch_epochs=2.0,
        device="cpu",
    )
    result = train(
        model, synthetic_task(), config, run_dir, progress=False, callbacks=callbacks, resume=resume
    )
    return model, result


def test_training_prunes_on_schedule_and_a_resumed_run_decides_the_same(tmp_path) -> None:
    reference, expected = _train(tmp_path / "reference")
    # 10 candidates, 4 halvings at 0.5 + 2/15 * (1, 3, 7, 15) epochs, checked after each of the
    # 3 steps per epoch (at 1/3, 2/3, 1, ...): 3 left after epoch 1, 2 after 2, 1 after 3
    left = [
        [sum(z > 0 for z in layer.values()) for layer in r["architecture"].values()] for r in expected.history
    ]
    assert left == [[3, 3], [2, 2], [1, 1]]
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "killed", callbacks=[KillAfter(2)])  # between two halvings
    resumed, result = _train(tmp_path / "killed", resume=True)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert [r["architecture"] for r in result.history] == [r["architecture"] for r in expected.history]
    assert result.metrics == expected.metrics


def test_architecture_steps_stop_at_the_end_of_their_window() -> None:
    def alpha_after(epochs: float) -> torch.Tensor:
        torch.manual_seed(0)
        model = build_model(_mixed_spec(None))
        config = TrainConfig(
            epochs=epochs, batch_size=32, lr=3e-3, num_threads=1, arch_lr=0.05, arch_epochs=0.5, device="cpu"
        )
        train(model, synthetic_task(), config, progress=False)
        return torch.cat(model.architecture_parameters()).detach()

    start = torch.cat(build_model(_mixed_spec(None)).architecture_parameters()).detach()
    assert not torch.equal(alpha_after(0.5), start)
    assert torch.equal(alpha_after(1.0), alpha_after(0.5))


BACKBONE = BackboneSettings(widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None)


def _context(path, epochs: float = 1.0) -> SearchContext:
    config = TrainConfig(epochs=epochs, batch_size=32, lr=3e-3, num_threads=1, device="cpu")
    return SearchContext(
        "synthetic",
        synthetic_task(),
        BACKBONE,
        config,
        LocalExecutor(),
        RunDirectory(path),
        seed=3,
        progress=False,
    )


def test_the_default_search_decides_every_layer_and_reports_that_network(tmp_path) -> None:
    result = run_search(make_method("equinas_d"), _context(tmp_path / "a"))
    assert [r.candidate_id for r in result.candidates] == ["mixed", "discrete"]
    assert result.best.candidate_id == "discrete"
    last = result.extras["alpha"][-1]["layers"]
    assert all(sum(z > 0 for z in layer.values()) == 1 for layer in last.values())
    assert result.extras["discrete_groups"] == [max(layer, key=layer.get) for layer in last.values()]
    mixed, discrete = result.candidates
    assert discrete.val_acc == pytest.approx(mixed.val_acc, abs=0.05)
    again = run_search(make_method("equinas_d"), _context(tmp_path / "b"))
    assert again.extras["alpha"] == result.extras["alpha"]  # deterministic per seed


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"decide_at": 1.0}, "decide_at"),
        ({"decide_at": -0.1}, "decide_at"),
        ({"decide_at": math.nan}, "decide_at"),
        ({"warmup_epochs": -1.0}, "warmup_epochs"),
    ],
)
def test_bad_settings_are_rejected(settings: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EquiNASDSettings(**settings)


def test_a_warmup_past_the_decision_fails_before_any_training(tmp_path) -> None:
    ctx = _context(tmp_path / "run")
    # a search of 4/3 epochs decides at 5/8 of it
    with pytest.raises(ValueError, match=r"warmup_epochs \(0.9\) must end before the decision at 0.8333"):
        run_search(make_method("equinas_d", warmup_epochs=0.9), ctx)
    assert not ctx.run.path.exists()  # refused before the run directory was created


def test_staggered_windows_decide_one_layer_after_the_other() -> None:
    settings = EquiNASDSettings(decide_at=0.5, stagger=True)  # search of 12 epochs: window [2, 6]
    windows = [(h.begin, h.end) for h in settings.halving(12.0, 4)]
    assert windows == [(2.0, 3.0), (3.0, 4.0), (4.0, 5.0), (5.0, 6.0)]
    together = EquiNASDSettings(decide_at=0.5, stagger=False, warmup_epochs=1.0).halving(12.0, 2)
    assert [(h.begin, h.end) for h in together] == [(1.0, 6.0), (1.0, 6.0)]
    assert EquiNASDSettings(decide_at=0.0).halving(12.0, 4) is None


def test_normalized_candidates_mix_by_z_alone() -> None:
    layer = MixedGroupConv(2, 3, 3, D4, groups=["D4", "C4", "C1"], normalize=True)
    x = torch.randn(2, 2, 8, 9, 9)
    before = layer(x)
    with torch.no_grad():
        layer.kernels[2].mul_(10.0)  # a candidate whose filter grew gains no extra share
    assert relative_error(layer(x), before) <= 1e-5
    assert relative_error(layer(x), layer.forward_naive(x)) <= 1e-5
    layer.prune_to(1)
    assert relative_error(layer.discretize()(x), layer(x)) <= 1e-5
