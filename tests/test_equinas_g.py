"""EquiNAS_G and its relaxation tests: the projections, the null of symmetric data, the sign-flip
test's calibration, the decisions, one-run training in parts, and resumption."""

from __future__ import annotations

import itertools
import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import synthetic_task
from equinas.execution import LocalExecutor
from equinas.groups import act_on_filters, act_on_images, parse_group, subgroups
from equinas.metrics import invariance_group
from equinas.models import EquivariantCNN, backbone, build_model
from equinas.nn import GroupConv, LiftingConv
from equinas.search import BackboneSettings, EquiNASGSettings, SearchContext, make_method, run_search
from equinas.search.evaluate import CandidateJob, run_candidate
from equinas.search.methods.equinas_g import EquiNASG, min_steps
from equinas.search.relaxation_signal import (
    EXACT_BLOCKS,
    GradientRecorder,
    _Blocks,
    autocorrelation,
    decide,
    filter_grid,
    freed_gram,
    sign_flip_tests,
)
from equinas.search.run_directory import RunDirectory
from equinas.train import TrainConfig, train

D4 = parse_group("D4")


def _cross(layer, filters):
    grids = torch.stack([filter_grid(layer, f) for f in filters])
    return autocorrelation(grids, layer.ambient, layer.basis.action(layer.ambient), layer.lifting)


def _projected(filt, group, lifting):
    return sum(act_on_filters(filt, g, D4, lifting) for g in D4.embed(group).elements) / group.order


@pytest.mark.parametrize("lifting", [True, False])
@settings(max_examples=25, deadline=None)
@given(index=st.integers(0, len(subgroups(D4)) - 1), inner=st.integers(0, len(subgroups(D4)) - 1))
def test_freed_gram_is_the_inner_product_of_the_freed_projections(lifting, index, inner):
    """``<Q w, Q v>`` from the autocorrelation equals the inner product of the group averages of
    the expanded filters (``act_on_filters``, an independent implementation of the action), for
    ``Q = P_H - P_K`` with ``H`` a subgroup of ``K``."""
    cls = LiftingConv if lifting else GroupConv
    layer = cls(2, 3, 3, "C1", ambient="D4").double()
    w, v = torch.randn_like(layer.build_filter()), torch.randn_like(layer.build_filter())
    k = subgroups(D4)[index]
    h = next((g for g in subgroups(D4)[inner:] if g.is_subgroup_of(k)), k)
    gram = freed_gram(_cross(layer, [w, v]), D4, h, k)

    def freed(f):
        return _projected(f, h, lifting) - _projected(f, k, lifting)

    assert gram[0, 1] == pytest.approx(float((freed(w) * freed(v)).sum()), rel=1e-9, abs=1e-9)
    assert gram[1, 1] == pytest.approx(float(freed(v).pow(2).sum()), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("basis", ["pixel", "harmonic"])
@given(index=st.integers(0, len(subgroups(D4)) - 1))
def test_the_filter_of_an_h_layer_lies_in_the_span_of_exactly_h(basis, index):
    """Nothing of an ``H``-layer's filter is freed by relaxing ``H`` itself further, and relaxing a
    larger group to ``H`` frees part of it."""
    h = subgroups(D4)[index]
    layer = GroupConv(2, 2, 5, h, ambient="D4", basis=basis).double()
    cross = _cross(layer, [layer.build_filter().detach()])
    total = float(cross[0, 0, 0])  # a(identity) = ||w||^2
    for k in subgroups(D4):
        if k.is_subgroup_of(h) and k != h:
            assert abs(float(freed_gram(cross, D4, k, h)[0, 0])) < 1e-10 * total
        elif h.is_subgroup_of(k) and k != h:
            assert float(freed_gram(cross, D4, h, k)[0, 0]) > 1e-6 * total


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
    conv = model.get_submodule(model.layer_modules(1)[0])
    images, labels = data.train.images[:6].double(), data.train.labels[:6]

    def freed_fraction(images: torch.Tensor, labels: torch.Tensor) -> float:
        grads = []
        conv.filter_grad_hook = grads.append
        model.zero_grad()
        F.cross_entropy(model.train()(images), labels).backward()
        conv.filter_grad_hook = None
        cross = _cross(conv, grads)
        return float(freed_gram(cross, D4, parse_group("C1", ambient=D4), D4)[0, 0] / cross[0, 0, 0])

    assert abs(freed_fraction(*_orbit_batch(images, labels, D4))) < 1e-10
    assert freed_fraction(images, labels) > 1e-3


def test_the_recorder_tests_every_subgroup_of_each_layer_from_the_training_steps():
    data = synthetic_task()
    spec = backbone(["D4", "C4"], widths=(2, 2), pools_after=(0,), hidden=None, num_classes=3)
    model = EquivariantCNN(spec)
    with GradientRecorder(model) as recorder:
        train(model, data, TrainConfig(epochs=1.0, batch_size=16), progress=False)
    stats = recorder.stats()
    assert stats["groups"] == ["D4", "C4"] and stats["steps"] == 6 and stats["blocks"] == [1] * 6
    assert set(stats["tests"][0]) == {h.name for h in subgroups(D4) if h != D4}
    assert set(stats["tests"][1]) == {"C2", "C1"}
    for tests in stats["tests"]:
        for test in tests.values():
            assert 0 < test["p"] <= 1 and test["noise"] >= 0


def test_blocks_merge_pairwise_and_keep_the_sum():
    blocks = _Blocks(max_blocks=4)
    steps = [torch.full((2,), float(i)) for i in range(11)]
    for step in steps:
        blocks.add(step)
    assert len(blocks.sizes) <= 4 and sum(blocks.sizes) == 11
    assert blocks.sizes[:-1] == sorted(blocks.sizes[:-1], reverse=True)
    torch.testing.assert_close(sum(blocks.sums), sum(steps))
    assert steps[0].tolist() == [0.0, 0.0]  # the recorded tensors are not changed in place


def _gram(samples):
    return samples @ samples.T


def sign_flip_test(gram, sizes, allowance=0.0):
    (test,) = sign_flip_tests(gram[None], sizes, allowance)
    return test


@pytest.mark.parametrize("dim", [1, 3, 50])
def test_the_sign_flip_test_holds_its_level_under_the_null_whatever_the_dimension(dim):
    """Mean-zero blocks with noise in ``dim`` directions (heavy-tailed: Student t with 3 degrees of
    freedom): the test rejects at most ``alpha`` of the time (exact for symmetric noise)."""
    gen = torch.Generator().manual_seed(dim)
    alpha, trials, blocks = 0.1, 400, 10
    rejections = 0
    for _ in range(trials):
        normal = torch.randn(blocks, dim, generator=gen, dtype=torch.float64)
        chi = torch.randn(blocks, 3, generator=gen, dtype=torch.float64).pow(2).sum(1, keepdim=True)
        rejections += sign_flip_test(_gram(normal / (chi / 3).sqrt()), [1] * blocks)["p"] <= alpha
    assert rejections <= alpha * trials + 3 * (alpha * (1 - alpha) * trials) ** 0.5


def test_the_sign_flip_test_finds_a_mean_and_estimates_it_without_bias():
    gen = torch.Generator().manual_seed(0)
    mean = torch.zeros(20, dtype=torch.float64)
    mean[:4] = 0.5  # ||mu||^2 = 1 per step, noise energy 20 per step
    tests = [
        sign_flip_test(_gram(mean + torch.randn(12, 20, generator=gen, dtype=torch.float64)), [1] * 12)
        for _ in range(200)
    ]
    assert sum(t["signal"] for t in tests) / len(tests) == pytest.approx(1.0, abs=0.3)
    assert sum(t["noise"] for t in tests) / len(tests) == pytest.approx(20.0, rel=0.05)
    strong = mean * 3 + torch.randn(12, 20, generator=gen, dtype=torch.float64)
    assert sign_flip_test(_gram(strong), [1] * 12)["p"] < 1e-3


def test_a_mean_within_the_allowance_is_not_signal_and_one_well_above_it_is():
    """Blocks that share a mean of energy ``allowance * noise`` (what a training set's own asymmetry
    gives) pass for signal without the allowance and not with it; four times more passes with it."""
    gen = torch.Generator().manual_seed(3)
    allowance, dim, blocks = 0.1, 10, 24
    direction = torch.randn(dim, generator=gen, dtype=torch.float64)
    direction /= direction.norm()
    p = {}
    for label, energy in (("within", allowance * dim), ("above", 4 * allowance * dim)):
        for used in (0.0, allowance):
            tests = []
            for _ in range(20):
                steps = energy**0.5 * direction + torch.randn(blocks, dim, generator=gen, dtype=torch.float64)
                tests.append(sign_flip_test(_gram(steps), [1] * blocks, used)["p"])
            p[label, used] = sorted(tests)[len(tests) // 2]  # the median p-value
    assert p["within", 0.0] < 0.01 and p["within", allowance] > 0.2
    assert p["above", allowance] < 0.01


def test_blocks_of_several_steps_estimate_the_same_signal_per_step():
    gen = torch.Generator().manual_seed(1)
    mean = torch.full((5,), 1.0, dtype=torch.float64)  # ||mu||^2 = 5 per step
    sizes = [4, 4, 2, 1, 1]
    estimates = []
    for _ in range(300):
        blocks = torch.stack(
            [n * mean + n**0.5 * torch.randn(5, generator=gen, dtype=torch.float64) for n in sizes]
        )
        estimates.append(sign_flip_test(_gram(blocks), sizes))
    assert sum(e["signal"] for e in estimates) / 300 == pytest.approx(5.0, rel=0.05)
    assert sum(e["noise"] for e in estimates) / 300 == pytest.approx(5.0, rel=0.1)


def test_the_joint_test_holds_its_level_over_overlapping_candidates():
    """Candidates whose freed spaces overlap (the first 2, 6 and all 30 noise directions): under the
    null the smallest of their max-T p-values is at most ``alpha`` at most ``alpha`` of the time,
    and a single candidate's max-T p-value is never below its own sign-flip p-value."""
    gen = torch.Generator().manual_seed(5)
    alpha, trials, blocks = 0.1, 300, 9
    rejections = 0
    for _ in range(trials):
        steps = torch.randn(blocks, 30, generator=gen, dtype=torch.float64) * torch.linspace(3, 0.2, 30)
        grams = torch.stack([_gram(steps[:, :d]) for d in (2, 6, 30)])
        tests = sign_flip_tests(grams, [1] * blocks)
        rejections += min(t["p"] for t in tests) <= alpha
        for gram, test in zip(grams, tests, strict=True):
            assert test["p"] >= sign_flip_test(gram, [1] * blocks)["p"] - 1e-12
    assert rejections <= alpha * trials + 3 * (alpha * (1 - alpha) * trials) ** 0.5


def test_monte_carlo_p_values_match_the_exact_enumeration():
    count = EXACT_BLOCKS + 1
    gen = torch.Generator().manual_seed(2)
    samples = 0.3 + torch.randn(count, 4, generator=gen, dtype=torch.float64)
    gram = _gram(samples)
    off = gram - torch.diag(torch.diagonal(gram))
    u = float(off.sum())
    signs = torch.tensor(list(itertools.product((1.0, -1.0), repeat=count)), dtype=torch.float64)
    exact = float((((signs @ off) * signs).sum(1) >= u - 1e-9 * abs(u)).double().mean())
    assert sign_flip_test(gram, [1] * count)["p"] == pytest.approx(exact, abs=0.01)


def _tests(**p_and_sn):
    return {h: {"signal": sn, "noise": 1.0, "p": p} for h, (p, sn) in p_and_sn.items()}


def test_decide_relaxes_to_the_significant_subgroup_with_the_most_signal_per_noise():
    others = {h.name: (0.5, 0.0) for h in subgroups(D4) if h != D4}
    tests = _tests(**{**others, "C4": (1e-4, 0.3), "C1": (1e-5, 0.2), "D1": (0.2, 5.0)})
    (decision,) = decide({"groups": ["D4"], "tests": [tests]}, D4, list(subgroups(D4)), level=0.01)
    assert decision["to"] == "C4" and decision["from"] == "D4"
    assert set(decision["tests"]) == {h.name for h in subgroups(D4) if h != D4}
    (stay,) = decide({"groups": ["D4"], "tests": [tests]}, D4, list(subgroups(D4)), level=1e-6)
    assert stay["to"] is None
    space = [parse_group(n, ambient=D4) for n in ("D4", "C1")]
    (alone,) = decide({"groups": ["D4"], "tests": [tests]}, D4, space, level=0.01)
    assert alone["to"] == "C1" and set(alone["tests"]) == {"C1"}


def test_decide_never_leaves_the_lattice_below_the_current_group():
    space = [parse_group(n, ambient=D4) for n in ("D4", "C4", "D1", "C2", "C1")]
    every = _tests(**{h.name: (0.0, 1.0) for h in subgroups(D4)})
    below = {
        name: {
            h: t
            for h, t in every.items()
            if parse_group(h, ambient=D4).is_subgroup_of(parse_group(name, ambient=D4)) and h != name
        }
        for name in ("C4", "D1", "C1")
    }
    decisions = decide({"groups": ["C4", "D1", "C1"], "tests": list(below.values())}, D4, space, 0.05)
    assert set(decisions[0]["tests"]) == {"C2", "C1"}
    assert set(decisions[1]["tests"]) == {"C1"}
    assert decisions[2]["tests"] == {} and decisions[2]["to"] is None
    for d in decisions:
        if d["to"] is not None:
            assert parse_group(d["to"], ambient=D4).is_subgroup_of(parse_group(d["from"], ambient=D4))


def test_parts_too_short_for_a_test_to_reject_are_refused_before_training(tmp_path):
    # 96 images in batches of 16 over 1 epoch: parts of 2 steps; alpha 0.05 over 2 layers and 2
    # decisions is a level of 0.0125 per test, which needs 8 steps (2^-7 <= 0.0125 < 2^-6)
    assert min_steps(0.0125) == 8 and min_steps(0.5) == 2 and min_steps(0.9) == 2
    with pytest.raises(ValueError, match="at least 8"):
        run_search(make_method("equinas_g", decide_at=(0.3, 0.6)), _context(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"decide_at": (0.5, 0.2)}, "increasing"),
        ({"decide_at": (0.0, 0.5)}, "> 0 and < 1"),
        ({"decide_at": ()}, "at least one"),
        ({"decide_at": (0.5, 1.0)}, "> 0 and < 1"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
    ],
)
def test_bad_settings_are_refused_before_training(settings, message):
    with pytest.raises(ValueError, match=message):
        EquiNASGSettings(**settings)


def _context(path, epochs=1.0):
    data = synthetic_task()
    backbone_settings = BackboneSettings(widths=(2, 2), pools_after=(0,), hidden=None, kernel_size=3)
    config = TrainConfig(epochs=epochs, batch_size=16, lr=0.01)
    return SearchContext(
        "synthetic", data, backbone_settings, config, LocalExecutor(), RunDirectory(path), progress=False
    )


# three epochs of 6 steps: parts of 6, 5 and 7 steps; alpha 0.5 over 2 layers and 2 decisions is
# a level of 0.125 per test, which needs 4 steps per part
SMALL = {"decide_at": (0.3, 0.6), "alpha": 0.5, "space": ("D4", "C4", "D1", "C2", "C1")}
EPOCHS = 3.0


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One small search (three parts of one epoch), shared by the tests that read it."""
    ctx = _context(tmp_path_factory.mktemp("equinas_g") / "run", EPOCHS)
    result = run_search(make_method("equinas_g", **SMALL), ctx)
    moves = [m for d in result.extras["decisions"] for m in d["layers"] if m["to"] is not None]
    assert moves, "the fixture search should relax at least one layer (its squares are not symmetric)"
    return ctx, result


def test_search_trains_one_network_in_parts_and_records_every_decision(searched):
    ctx, result = searched
    parts = result.candidates
    assert [p.candidate_id for p in parts] == ["p00", "p01", "p02"]
    assert result.best is parts[-1]
    assert sum(p.epochs for p in parts) == pytest.approx(ctx.train.epochs)
    steps = [p.extra["history"][-1]["step"] for p in parts]
    assert steps == [6, 11, 18]  # 96 images / 16 per batch, three epochs
    decisions = json.loads((ctx.run.path / "decisions.json").read_text())
    assert decisions == result.extras["decisions"] and len(decisions) == 2
    for before, after, trace in zip(parts[:-1], parts[1:], decisions, strict=True):
        for layer, (old, new) in enumerate(zip(before.groups, after.groups, strict=True)):
            decision = trace["layers"][layer]
            assert decision["from"] == old and (decision["to"] or old) == new
            assert parse_group(new, ambient=D4).is_subgroup_of(parse_group(old, ambient=D4))
    # the signal of a part comes from its own steps: no pass beyond them
    assert [p.cost["train_images"] for p in parts] == [96, 80, 112]
    assert parts[0].extra["signal"]["steps"] == 6 and "signal" not in parts[-1].extra
    # only the found network is scored: the other parts cost their training alone
    assert [p.scored for p in parts] == [False, False, True]
    assert [p.cost["eval_images"] for p in parts[:-1]] == [0, 0] and parts[-1].cost["eval_images"] > 0
    assert [p["groups"] for p in result.extras["groups_over_training"]][-1] == parts[-1].groups


def test_decisions_are_announced_as_they_are_taken(tmp_path, capsys):
    ctx = _context(tmp_path / "run", EPOCHS)
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
    ctx = _context(tmp_path / "killed", EPOCHS)
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


def test_the_report_lists_each_relaxation_with_its_signal_to_noise_and_p_value(searched):
    from equinas.report import write_report

    ctx, result = searched
    report = write_report(ctx.run.path)["report"].read_text()
    moves = [(d, m) for d in result.extras["decisions"] for m in d["layers"] if m["to"] is not None]
    for decision, move in moves:
        test = move["tests"][move["to"]]
        line = (
            f"- epoch {decision['epoch']:.3g}: layer {move['layer']} {move['from']} -> {move['to']} "
            f"({test['signal'] / test['noise']:.3g}, p {test['p']:.2g})"
        )
        assert line in report
