"""lps and symmetry_breaking: exact invariance, the permuting element logits, negative controls,
K=0 is the G-CNN, equivariance errors while training, costs and the command line."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from conftest import SMALL_NET_ARGS, needs_data, synthetic_task
from equinas.cli import main
from equinas.execution import LocalExecutor
from equinas.groups import act_on_images, parse_group
from equinas.metrics import equivariance_summary
from equinas.metrics.cost import macs_per_image
from equinas.models import EquivariantCNN, backbone, build_model
from equinas.models.lps import ElementLogits, LPSSpec, gumbel_draw
from equinas.models.symmetry_breaking import SymmetryBreakingSpec
from equinas.search import BackboneSettings, SearchContext, make_method, run_search
from equinas.search.run_directory import RunDirectory
from equinas.train import TrainConfig

SMALL = dict(widths=(2, 2), pools_after=(0,), kernel_size=3, hidden=None, num_classes=3)


def tiny_context(path, epochs: float) -> SearchContext:
    """A search on the synthetic task with a two-layer backbone."""
    return SearchContext(
        "synthetic",
        synthetic_task(),
        BackboneSettings(widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None),
        TrainConfig(epochs=epochs, batch_size=32, lr=3e-3, num_threads=1),
        LocalExecutor(),
        RunDirectory(path),
        progress=False,
    )


def lps_model(ambient: str, **options) -> torch.nn.Module:
    phi = backbone("C1", ambient=ambient, **SMALL).to_dict()
    return build_model(LPSSpec(backbone=phi, ambient=ambient, pnet_kernel=3, **options).to_dict())


def max_change(model: torch.nn.Module, x: torch.Tensor, group) -> float:
    """max over g of max |model(g.x) - model(x)|."""
    y = model(x)
    return max(float((model(act_on_images(x, g, group)) - y).abs().max()) for g in group.elements)


@pytest.mark.parametrize("ambient", ["D4", "C4"])
def test_lps_exact_mode_is_invariant_and_phi_alone_is_not(ambient) -> None:
    group = parse_group(ambient)
    model = lps_model(ambient).double().eval()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        probs = torch.softmax(model.pnet(x), dim=-1)
        assert float(probs.max() - probs.min()) > 1e-3  # p is not uniform: the sum is not a plain average
        assert max_change(model, x, group) <= 1e-12
        assert max_change(model.phi, x, group) > 1e-3  # negative control: the backbone is not invariant


@given(seed=st.integers(0, 2**16), ambient=st.sampled_from(["D4", "C4", "D2"]))
def test_element_logits_permute_with_the_input(seed, ambient) -> None:
    """``logits(h.x)[index(h g)] == logits(x)[index(g)]``, i.e. ``p(hg | h.x) = p(g | x)``."""
    torch.manual_seed(seed)
    group = parse_group(ambient)
    net = ElementLogits(1, 2, 3, group).double().eval()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        base = net(x)
        for h in group.elements:
            moved = net(act_on_images(x, h, group))
            perm = [group.index(group.compose(h, g)) for g in group.elements]
            assert torch.allclose(moved[:, perm], base, rtol=0, atol=1e-12)


def test_lps_is_not_invariant_with_logits_that_ignore_the_input() -> None:
    """Negative control: fixed (non-permuting) non-uniform logits break the invariance."""

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.linspace(-2, 2, 8, dtype=x.dtype).expand(x.shape[0], -1)

    model = lps_model("D4").double().eval()
    model.pnet = Fixed()
    group = parse_group("D4")
    with torch.no_grad():
        assert max_change(model, torch.randn(3, 1, 8, 8, dtype=torch.float64), group) > 1e-3


def test_gumbel_draws_follow_the_softmax_and_give_gradients() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0, 1.0]], requires_grad=True)
    chosen, q = gumbel_draw(logits, 20000, 1.0, torch.Generator().manual_seed(0))
    freq = torch.bincount(chosen[0], minlength=4).double() / 20000
    assert torch.allclose(freq, torch.softmax(logits.detach().double(), -1)[0], atol=0.015)
    q.sum().backward()
    assert logits.grad.abs().sum() > 0


def test_lps_training_and_sampled_evaluation() -> None:
    model = lps_model("D4", train_samples=3)
    x = torch.randn(5, 1, 8, 8)
    model.train()
    out = model(x)
    assert out.shape == (5, 3)
    F.cross_entropy(out, torch.tensor([0, 1, 2, 0, 1])).backward()
    assert model.pnet.lift.weight.grad.abs().sum() > 0
    assert model.phi.head.classifier[-1].weight.grad.abs().sum() > 0
    sampled = lps_model("D4", eval_mode="sample", eval_samples=1000).eval()
    sampled.load_state_dict(model.state_dict())
    exact = lps_model("D4").eval()
    exact.load_state_dict(model.state_dict())
    state = torch.get_rng_state()
    with torch.no_grad():
        a, b, reference = sampled(x), sampled(x), exact(x)
        spread = max(
            float((model.phi(act_on_images(x, g, exact.ambient)) - reference).abs().max())
            for g in exact.ambient.elements
        )
    assert torch.equal(torch.get_rng_state(), state)  # evaluation draws from its own generator
    assert torch.equal(a, b)
    assert float((a - reference).abs().max()) < 0.1 * spread  # the sample mean estimates the exact sum


def test_lps_cost_counts_every_backbone_pass() -> None:
    model = lps_model("D4", train_samples=2)
    x = torch.randn(1, 8, 8)
    phi, pnet = macs_per_image(model.phi, x), macs_per_image(model.pnet, x)
    assert macs_per_image(model, x, train_mode=False) == 8 * phi + pnet
    assert macs_per_image(model, x, train_mode=True) == 2 * phi + pnet


def test_settings_are_validated_with_the_option_named() -> None:
    for method, settings, match in [
        ("lps", {"train_samples": 0}, "train_samples"),
        ("lps", {"eval_mode": "mean"}, "eval_mode"),
        ("lps", {"temperature": -1.0}, "temperature"),
        ("lps", {"estimator": "reinforce"}, "estimator"),
        ("symmetry_breaking", {"breaking_inputs": -1}, "breaking_inputs"),
        ("symmetry_breaking", {"l2": float("nan")}, "l2"),
    ]:
        with pytest.raises(ValueError, match=match):
            make_method(method, **settings)


def sb_model(seed: int, **options) -> torch.nn.Module:
    torch.manual_seed(seed)
    spec = backbone("D4", **SMALL)
    return build_model(SymmetryBreakingSpec(network=spec.to_dict(), image_size=(8, 8), **options).to_dict())


def test_symmetry_breaking_with_k0_is_exactly_the_gcnn() -> None:
    torch.manual_seed(7)
    gcnn = EquivariantCNN(backbone("D4", **SMALL))
    model = sb_model(7, breaking_inputs=0, l2=0.1)
    ref, own = gcnn.state_dict(), model.state_dict()
    assert list(ref) == list(own) and all(torch.equal(ref[k], own[k]) for k in ref)
    x = torch.randn(6, 1, 8, 8)
    for mode in (True, False):
        gcnn.train(mode), model.train(mode)
        assert torch.equal(model(x), gcnn(x))
    assert float(model.regularization_loss()) == 0.0


@pytest.mark.parametrize("options", [{"breaking_inputs": 2}, {"breaking_inputs": 0, "layer_maps": True}])
def test_symmetry_breaking_departs_from_equivariance_when_trained(options) -> None:
    model = sb_model(0, l2=0.5, **options)
    x, labels = torch.randn(8, 1, 8, 8), torch.arange(8) % 3
    before = equivariance_summary(model, x)
    assert before["output"] < 1e-5 and max(before["layers"]) < 1e-5  # zero maps: exactly equivariant
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    loss = F.cross_entropy(model(x), labels) + model.regularization_loss()
    loss.backward()
    assert all(t.grad.abs().sum() > 0 for t in model.breaking_parameters())
    optimizer.step()
    maps = model.breaking_parameters()
    expected = 0.5 * sum(float(t.detach().square().sum()) for t in maps)
    assert float(model.regularization_loss().detach()) == pytest.approx(expected, rel=1e-6)
    model(x)  # a training pass: the summary measures on its images
    summary = model.architecture_summary()
    after = equivariance_summary(model, x)
    assert after["output"] > 1e-4 and summary["equivariance"]["output"] == pytest.approx(after["output"])
    assert summary["breaking_norm"] > 0


def test_symmetry_breaking_search_records_the_equivariance_error_of_every_epoch(tmp_path) -> None:
    ctx = tiny_context(tmp_path / "sb", epochs=3)
    result = run_search(make_method("symmetry_breaking", breaking_inputs=1), ctx)
    trajectory = result.extras["equivariance_trajectory"]
    assert [p["epoch"] for p in trajectory] == [1, 2, 3]
    assert all(p["output"] > 0 and len(p["layers"]) == 2 for p in trajectory)
    assert result.best.equivariance["output"] > 0 and result.best.groups == ["break1", "D4", "D4"]


@needs_data
@pytest.mark.parametrize("method", ["lps", "symmetry_breaking"])
def test_tiny_command_line_runs_and_reports(tmp_path, capsys, method) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["search", method, "--help"])
    assert exit_info.value.code == 0
    run = tmp_path / method
    argv = ["search", method, "--task", "mnist", "--train-size", "64", "--val-size", "32"]
    argv += ["--test-size", "32", "--epochs", "1", *SMALL_NET_ARGS, "--run-dir", str(run), "--quiet"]
    assert main(argv) == 0
    assert main(["report", str(run)]) == 0
    (record,) = [json.loads(line) for line in (run / "candidates.jsonl").read_text().splitlines()]
    assert 0 <= record["test_acc"] <= 1 and record["cost"]["total_flops"] > 0
    if method == "lps":
        assert record["equivariance"]["output"] < 1e-5  # exact mode: invariant in float32 too
    else:
        assert "equivariance" in record["extra"]["history"][0]["architecture"]
        assert "equivariance error per epoch" in (run / "report.md").read_text()
    assert "best" in (run / "report.md").read_text()


def test_plain_export_refuses_networks_it_cannot_reproduce() -> None:
    from equinas.export import export_plain

    for model in (sb_model(0, breaking_inputs=1), lps_model("D4")):
        with pytest.raises(TypeError, match="EquivariantCNN"):
            export_plain(model)


def test_score_function_estimator_trains_the_element_distribution(tmp_path) -> None:
    model = lps_model("D4", estimator="score_function", train_samples=2).train()
    x, labels = torch.randn(6, 1, 8, 8), torch.arange(6) % 3
    ce = F.cross_entropy(model(x), labels, reduction="none")
    ce.mean().backward(retain_graph=True)
    assert model.pnet.lift.weight.grad is None  # the output itself carries no gradient to p
    surrogate = model.score_function_loss(ce.detach())
    surrogate.backward()
    assert model.pnet.lift.weight.grad.abs().sum() > 0
    assert model.score_function_loss(ce.detach()) is None  # used once per training pass
    ctx = tiny_context(tmp_path / "lps", epochs=1)
    result = run_search(make_method("lps", estimator="score_function", pnet_kernel=3), ctx)
    assert result.best.ok and result.best.equivariance["output"] < 1e-5


def test_symmetry_breaking_refuses_a_resnet_before_creating_the_run_directory(tmp_path) -> None:
    resnet = BackboneSettings(
        widths=(1, 1, 2), pools_after=(1,), kernel_size=3, hidden=None, backbone="resnet"
    )
    ctx = SearchContext(
        "synthetic",
        synthetic_task(),
        resnet,
        TrainConfig(epochs=0.5, batch_size=32, num_threads=1),
        LocalExecutor(),
        RunDirectory(tmp_path / "run"),
        progress=False,
    )
    with pytest.raises(ValueError, match="builds on the plain backbone"):
        run_search(make_method("symmetry_breaking"), ctx)
    assert not (tmp_path / "run").exists()
