"""EquiNAS_G and its relaxation signal: the projections, the null of symmetric data, the decisions,
one-run training in parts, and resumption."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from conftest import synthetic_task
from equinas.execution import LocalExecutor
from equinas.groups import act_on_filters, act_on_images, parse_group, subgroups
from equinas.metrics import invariance_group
from equinas.models import EquivariantCNN, backbone, build_model
from equinas.nn import GroupConv, LiftingConv
from equinas.search import BackboneSettings, EquiNASGSettings, SearchContext, make_method, run_search
from equinas.search.equinas_g import EquiNASG
from equinas.search.evaluate import CandidateJob, run_candidate
from equinas.search.records import RunDirectory
from equinas.search.relaxation_signal import (
    GradientRecorder,
    autocorrelation,
    decide,
    filter_grid,
    subgroup_energy,
)
from equinas.train import TrainConfig, train

D4 = parse_group("D4")


def _energies(layer, filt):
    grid = filter_grid(layer, filt)
    a = autocorrelation(grid, layer.ambient, layer.basis.action(layer.ambient), layer.lifting)
    return {h.name: subgroup_energy(a.tolist(), layer.ambient, h) for h in subgroups(layer.ambient)}


@pytest.mark.parametrize("lifting", [True, False])
@given(index=st.integers(0, len(subgroups(D4)) - 1))
def test_energies_are_the_norms_of_the_filter_space_projections(lifting, index):
    """``||P_H w||^2`` from the autocorrelation equals the norm of the group average of the
    expanded filter (``act_on_filters``, an independent implementation of the action)."""
    cls = LiftingConv if lifting else GroupConv
    layer = cls(2, 3, 3, "C1", ambient="D4").double()
    filt = torch.randn_like(layer.build_filter())
    energies = _energies(layer, filt)
    h = subgroups(D4)[index]
    average = sum(act_on_filters(filt, g, D4, lifting) for g in D4.embed(h).elements) / h.order
    assert energies[h.name] == pytest.approx(float(average.pow(2).sum()), rel=1e-10)


@pytest.mark.parametrize("basis", ["pixel", "harmonic"])
@given(index=st.integers(0, len(subgroups(D4)) - 1))
def test_the_filter_of_an_h_layer_lies_in_the_span_of_exactly_h(basis, index):
    h = subgroups(D4)[index]
    layer = GroupConv(2, 2, 5, h, ambient="D4", basis=basis).double()
    energies = _energies(layer, layer.build_filter().detach())
    total = energies["C1"]
    for k in subgroups(D4):
        if h.is_subgroup_of(k):  # projections onto the spans of larger groups lose energy
            assert (energies[k.name] < total * (1 - 1e-6)) == (k != h)
        elif k.is_subgroup_of(h):
            assert energies[k.name] == pytest.approx(total, rel=1e-10)


def _orbit_batch(images, labels, group):
    return (
        torch.cat([act_on_images(images, g, group) for g in group.elements]),
        labels.repeat(group.order),
    )


def test_symmetric_data_gives_no_signal_and_asymmetric_data_does():
    """The gradient of a D4 network on a batch closed under D4 is D4-invariant: no energy in any
    freed direction (to rounding); the same batch without its orbit has some."""
    data = synthetic_task()
    spec = backbone("D4", widths=(2, 2), pools_after=(0,), hidden=None, num_classes=3)
    model = EquivariantCNN(spec).double()
    images, labels = data.train.images[:6].double(), data.train.labels[:6]

    def freed_fraction(images: torch.Tensor, labels: torch.Tensor) -> float:
        with GradientRecorder(model) as recorder:
            F.cross_entropy(model.train()(images), labels).backward()
        a = recorder.stats()["batches"][0][1]
        return (subgroup_energy(a, D4, parse_group("C1", ambient=D4)) - subgroup_energy(a, D4, D4)) / a[0]

    assert abs(freed_fraction(*_orbit_batch(images, labels, D4))) < 1e-10
    assert freed_fraction(images, labels) > 1e-3


def _stats(groups, mean, batches):
    return {"groups": groups, "mean": mean, "batches": batches}


def _autocorrelation_with_signal_in(h, strength, noise_rows=4):
    """Synthetic autocorrelations: a mean gradient with ``strength`` energy outside D4 but inside
    the span of ``h``, and batch gradients that add isotropic noise (energy 1 per element)."""
    members = {D4.index(g) for g in D4.embed(h).elements}
    mean = [1.0 + (strength if i in members else 0.0) for i in range(D4.order)]
    noise = [[mean[i] + (8.0 if i == 0 else 0.0) for i in range(D4.order)]]
    return [mean], [noise] * noise_rows


def test_decide_relaxes_to_the_subgroup_that_carries_the_signal():
    mirror = parse_group("D1[axis=1]", ambient=D4)
    mean, rows = _autocorrelation_with_signal_in(mirror, strength=3.0)
    (decision,) = decide(_stats(["D4"], mean, rows), D4, list(subgroups(D4)), price=0.1)
    assert decision["to"] == mirror.name and decision["from"] == "D4"
    assert set(decision["gains"]) == {h.name for h in subgroups(D4) if h != D4}
    (stay,) = decide(_stats(["D4"], mean, rows), D4, list(subgroups(D4)), price=100.0)
    assert stay["to"] is None


def test_decide_never_leaves_the_lattice_below_the_current_group():
    mean, rows = _autocorrelation_with_signal_in(parse_group("C1", ambient=D4), strength=50.0)
    space = [parse_group(n, ambient=D4) for n in ("D4", "C4", "D1", "C2", "C1")]
    decisions = decide(_stats(["C4", "D1", "C1"], mean * 3, [r * 3 for r in rows]), D4, space, 0.1)
    assert set(decisions[0]["gains"]) == {"C2", "C1"}
    assert set(decisions[1]["gains"]) == {"C1"}
    assert decisions[2]["gains"] == {} and decisions[2]["to"] is None
    for d in decisions:
        if d["to"] is not None:
            assert parse_group(d["to"], ambient=D4).is_subgroup_of(parse_group(d["from"], ambient=D4))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"decide_at": (0.5, 0.2)}, "increasing"),
        ({"decide_at": (0.0, 0.5)}, "> 0 and < 1"),
        ({"decide_at": ()}, "at least one"),
        ({"decide_at": (0.5, 1.0)}, "> 0 and < 1"),
        ({"price": -1.0}, "price"),
        ({"price": float("nan")}, "price"),
    ],
)
def test_bad_settings_are_refused_before_training(settings, message):
    with pytest.raises(ValueError, match=message):
        EquiNASGSettings(**settings)


def _context(path):
    data = synthetic_task()
    backbone_settings = BackboneSettings(widths=(2, 2), pools_after=(0,), hidden=None, kernel_size=3)
    config = TrainConfig(epochs=1.0, batch_size=16, lr=0.01)
    return SearchContext(
        "synthetic", data, backbone_settings, config, LocalExecutor(), RunDirectory(path), progress=False
    )


SMALL = {"decide_at": (0.3, 0.6), "price": 0.0}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One small search (three parts of one epoch), shared by the tests that read it."""
    ctx = _context(tmp_path_factory.mktemp("equinas_g") / "run")
    result = run_search(make_method("equinas_g", **SMALL), ctx)
    moves = [m for d in result.extras["decisions"] for m in d["layers"] if m["to"] is not None]
    assert moves, "the fixture search should relax at least one layer (price 0)"
    return ctx, result


def test_search_trains_one_network_in_parts_and_records_every_decision(searched):
    ctx, result = searched
    parts = result.candidates
    assert [p.candidate_id for p in parts] == ["p00", "p01", "p02"]
    assert result.best is parts[-1]
    assert sum(p.epochs for p in parts) == pytest.approx(ctx.train.epochs)
    steps = [p.extra["history"][-1]["step"] for p in parts]
    assert steps == sorted(steps) and steps[-1] == 6 * 1  # 96 images / 16 per batch, one epoch
    decisions = json.loads((ctx.run.path / "decisions.json").read_text())
    assert decisions == result.extras["decisions"] and len(decisions) == 2
    for before, after, trace in zip(parts[:-1], parts[1:], decisions, strict=True):
        for layer, (old, new) in enumerate(zip(before.groups, after.groups, strict=True)):
            decision = trace["layers"][layer]
            assert decision["from"] == old and (decision["to"] or old) == new
            assert parse_group(new, ambient=D4).is_subgroup_of(parse_group(old, ambient=D4))
    # the signal of a part comes from its own steps: no pass beyond them
    assert [p.cost["train_images"] for p in parts] == [32, 32, 32]
    assert len(parts[0].extra["signal"]["batches"]) == 2 and "signal" not in parts[-1].extra
    # only the found network is scored: the other parts cost their training alone
    assert [p.scored for p in parts] == [False, False, True]
    assert [p.cost["eval_images"] for p in parts[:-1]] == [0, 0] and parts[-1].cost["eval_images"] > 0
    assert [p["groups"] for p in result.extras["groups_over_training"]][-1] == parts[-1].groups


def test_decisions_are_announced_as_they_are_taken(tmp_path, capsys):
    ctx = _context(tmp_path / "run")
    ctx.progress = True
    result = run_search(make_method("equinas_g", **SMALL), ctx)
    news = [line for line in capsys.readouterr().err.splitlines() if line.startswith("relaxations at")]
    assert len(news) == len(result.extras["decisions"]) == 2
    for line, trace in zip(news, result.extras["decisions"], strict=True):
        moves = [f"layer{d['layer']}:{d['from']}->{d['to']}" for d in trace["layers"] if d["to"]]
        assert line == f"relaxations at epoch {trace['epoch']:g}: {','.join(moves) or 'none'}"


def test_a_decision_keeps_the_function(searched):
    ctx, result = searched
    k = next(i for i, d in enumerate(result.extras["decisions"]) if any(m["to"] for m in d["layers"]))
    part = result.candidates[k]
    before = build_model(part.spec)
    before.load_state_dict(ctx.run.load_state(part.candidate_id))
    spec, state = EquiNASG._relaxed(ctx, part, result.extras["decisions"][k]["layers"])
    assert spec.groups_per_layer() == result.candidates[k + 1].groups != part.groups
    after = build_model(spec.to_dict())
    after.load_state_dict(state)
    x = ctx.data.val.images[:8]
    torch.testing.assert_close(after.eval()(x), before.eval()(x), rtol=1e-4, atol=1e-5)


def test_resume_after_a_kill_between_parts_neither_repeats_nor_loses_a_decision(searched, tmp_path):
    whole_ctx, whole = searched
    # a kill after part p00 finished, in the middle of the first decision: p00 and its weights are
    # stored, nothing after it (no decisions.json, no later part, no result)
    shutil.copytree(whole_ctx.run.path, tmp_path / "killed")
    ctx = _context(tmp_path / "killed")
    lines = (ctx.run.path / "candidates.jsonl").read_text().splitlines()
    (ctx.run.path / "candidates.jsonl").write_text(lines[0] + "\n")
    for name in ("decisions.json", "result.json", "states/p01.pt", "states/p02.pt"):
        (ctx.run.path / name).unlink()
    resumed = run_search(make_method("equinas_g", **SMALL), ctx, resume=True)
    assert resumed.extras["decisions"] == whole.extras["decisions"]
    assert [r.candidate_id for r in ctx.run.records()] == ["p00", "p01", "p02"]
    assert [r.groups for r in resumed.candidates] == [r.groups for r in whole.candidates]
    assert resumed.best.test_acc == whole.best.test_acc


def test_a_part_of_a_run_continues_its_schedule_and_batch_order():
    """With plain SGD (no optimizer state) training [0, 0.5) and then [0.5, 1) of a cosine run
    gives exactly the weights of the whole run."""
    data = synthetic_task()
    spec = backbone("C4", widths=(2, 2), pools_after=(0,), hidden=None, num_classes=3)
    base = {"epochs": 1.0, "batch_size": 16, "optimizer": "sgd", "momentum": 0.0, "scheduler": "cosine"}
    torch.manual_seed(0)
    whole, split = EquivariantCNN(spec), EquivariantCNN(spec)
    split.load_state_dict(whole.state_dict())
    train(whole, data, TrainConfig(**base), progress=False)
    for span in ((0.0, 0.5), (0.5, 1.0)):
        train(split, data, TrainConfig(**base, span=span), progress=False)
    for (name, a), b in zip(whole.state_dict().items(), split.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_an_unscored_part_trains_exactly_like_a_scored_one():
    """``score=False`` drops the batch-norm recalibration, validation and test, not a bit of
    the training: the weights match (the norms' running statistics are the scoring's)."""
    data = synthetic_task()
    spec = backbone("D4", widths=(2, 2), pools_after=(0,), hidden=None, num_classes=3).to_dict()
    train_dict = TrainConfig(epochs=1.0, batch_size=16, span=(0.0, 0.5)).to_dict()
    scored, unscored = (
        run_candidate(CandidateJob("p", "test", spec, train_dict, seed=3, return_state=True, score=s), data)
        for s in (True, False)
    )
    assert scored.record.val_acc is not None and scored.record.test_acc is not None
    assert unscored.record.val_acc is None and unscored.record.test_acc is None
    assert unscored.record.equivariance == {} and unscored.record.cost["eval_images"] == 0
    for name, value in scored.state.items():
        if "running" not in name and "num_batches" not in name:
            torch.testing.assert_close(unscored.state[name], value, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("span", [(0.5, 0.5), (-0.1, 1.0), (0.0, 3.0), (0.0,), "ab", (0.0, float("nan"))])
def test_bad_spans_are_refused(span):
    with pytest.raises(ValueError, match="span"):
        TrainConfig(epochs=2.0, span=span)


@pytest.mark.parametrize("h", subgroups(D4), ids=str)
def test_the_invariance_group_of_a_fixed_network_is_its_group(h):
    model = EquivariantCNN(backbone(h.name, widths=(2, 2), pools_after=(0,), hidden=None, num_classes=3))
    assert invariance_group(model, torch.randn(4, 1, 12, 12), D4) == h


def test_the_invariance_group_of_mixed_layers_is_the_intersection():
    spec = backbone(["D4", "C4", "D2"], widths=(2, 2, 2), pools_after=(0,), hidden=None, num_classes=3)
    assert invariance_group(EquivariantCNN(spec), torch.randn(4, 1, 12, 12), D4) == parse_group(
        "C2", ambient=D4
    )
