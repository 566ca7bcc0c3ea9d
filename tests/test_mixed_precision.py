"""Mixed precision on CPU: bf16 autocast through every layer, memory format, backbone and
search; float32 state; the fallback, the refusal and resumes that switch it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import SMALL_NET_ARGS, synthetic_task
from equinas.cli import main
from equinas.execution import LocalExecutor
from equinas.models import backbone, build_model
from equinas.morphisms import relax_network
from equinas.nn import GroupBatchNorm, GroupConv, LiftingConv, MixedGroupConv
from equinas.nn.layout import set_memory_format
from equinas.nn.relaxed import ConstraintRelaxedConv, RelaxedGroupConv, ResidualPathwayConv
from equinas.search import BackboneSettings, SearchContext, make_method, run_search
from equinas.search.run_directory import RunDirectory
from equinas.testing import TOLERANCES, assert_equivariant, equivariance_report
from equinas.train import TrainConfig, Trainer, load_checkpoint, runtime, train
from equinas.train.runtime import MixedPrecisionWarning

LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
BF16 = TOLERANCES[torch.bfloat16]


@pytest.fixture
def native_bf16(monkeypatch):
    """Treat this CPU as one with native bf16 (bf16 autocast also runs, emulated, elsewhere)."""
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm())


def small_spec(group: str = "C4", **options) -> dict:
    options = {"widths": (2, 2, 4), "pools_after": (0,), "kernel_size": 3, "hidden": 8, **options}
    return backbone(group, num_classes=3, **options).to_dict()


def cpu_config(**overrides) -> TrainConfig:
    values = dict(epochs=1, batch_size=32, lr=3e-3, device="cpu", num_threads=1, bn_recalibration=2)
    return TrainConfig(**{**values, **overrides})


LAYERS = {
    "lifting": lambda: LiftingConv(1, 3, 3, "C4", "D4"),
    "group": lambda: GroupConv(3, 3, 3, "D1", "D4"),
    "mixed": lambda: MixedGroupConv(3, 3, 3, "D4", groups=["D4", "C4", "C2"]),
    "rpp": lambda: ResidualPathwayConv(3, 3, 3, "C4", "D4"),
    "rgconv": lambda: RelaxedGroupConv(3, 3, 3, "C4", "D4"),
    "cr": lambda: ConstraintRelaxedConv(3, 3, 3, "C4", "D4"),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", LAYERS)
def test_every_layer_runs_in_bf16_with_float32_gradients(kind, layout) -> None:
    torch.manual_seed(0)
    layer = set_memory_format(LAYERS[kind](), LAYOUTS[layout])
    shape = (4, 1, 12, 12) if layer.lifting else (4, 3, 8, 12, 12)
    x = torch.randn(shape)
    reference = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    assert relative(y, reference) < BF16
    y.float().square().mean().backward()
    grads = [p.grad for p in layer.parameters() if p.requires_grad]
    assert grads and all(g is not None and g.dtype == torch.float32 for g in grads)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("group", ["D4", "C2"])
def test_group_batch_norm_in_bf16_matches_float64_and_keeps_float32_statistics(group, layout) -> None:
    torch.manual_seed(0)
    reference = GroupBatchNorm(4, group, "D4").double()
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-1.0, 1.0)
    norm = GroupBatchNorm(4, group, "D4")
    norm.load_state_dict(reference.state_dict())  # copied into its float32 tensors
    x = 3 * torch.randn(8, 4, 8, 6, 6, dtype=torch.float64) + 2
    grad = torch.randn_like(x)
    x_ref = x.clone().requires_grad_()
    y_ref = reference(x_ref)
    y_ref.backward(grad)
    flat = x.reshape(8, 32, 6, 6).to(torch.bfloat16).contiguous(memory_format=LAYOUTS[layout])
    x_low = flat.reshape(8, 4, 8, 6, 6).detach().requires_grad_()
    y = norm(x_low)
    y.backward(grad.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16 and x_low.grad.dtype == torch.bfloat16
    assert relative(y, y_ref) < BF16
    assert relative(x_low.grad, x_ref.grad) < BF16
    assert relative(norm.weight.grad, reference.weight.grad) < BF16
    for name in ("running_mean", "running_var"):
        assert getattr(norm, name).dtype == torch.float32
        assert relative(getattr(norm, name), getattr(reference, name)) < 1e-2
    norm.eval()
    reference.eval()
    with torch.no_grad():
        assert relative(norm(x_low), reference(x)) < BF16


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("spec", ["C4", "D1", "resnet", "mixed"])
def test_networks_are_equivariant_under_bf16_autocast(spec, layout) -> None:
    torch.manual_seed(0)
    if spec == "resnet":
        arch = small_spec("C4", backbone="resnet", widths=(2, 2, 4), pools_after=(1,))
    elif spec == "mixed":
        arch = small_spec("C1", kind="mixed")
        for layer in arch["layers"]:
            layer["groups"] = ["D4", "C4", "D2"]
    else:
        arch = small_spec(spec)
    model = set_memory_format(build_model(arch), LAYOUTS[layout])
    report = assert_equivariant(model, dtype=torch.bfloat16)
    assert report.dtype == torch.bfloat16 and report.exact


def test_bf16_equivariance_check_still_catches_a_broken_network() -> None:
    unconstrained = LiftingConv(1, 4, 3, "C1", "C4")
    report = equivariance_report(unconstrained, group="C4", dtype=torch.bfloat16)
    assert not report.passed and report.failures()[0][1] > 10 * BF16


def test_relaxation_morphism_keeps_the_function_under_bf16() -> None:
    torch.manual_seed(0)
    model = build_model(small_spec("D4")).eval()
    child = relax_network(model, layer_index=1, subgroup="C2").eval()
    x = torch.randn(4, 1, 12, 12)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert relative(child(x).float(), model(x).float()) < BF16


@pytest.mark.parametrize("layout", ["channels_last", "contiguous"])
def test_cpu_amp_trains_in_bf16_and_stores_float32(tmp_path, native_bf16, layout) -> None:
    torch.manual_seed(0)
    model = build_model(small_spec("C4"))
    config = cpu_config(amp=True, memory_format=layout, epochs=2)
    result = train(model, synthetic_task(), config, run_dir=tmp_path, progress=False)
    assert result.autocast == "bfloat16"
    assert result.metrics["val_acc"] is not None and result.metrics["train_loss"] < 1.1
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    floats = [t for t in checkpoint["model"].values() if t.is_floating_point()]
    floats += [
        t
        for state in checkpoint["optimizer"]["state"].values()
        for t in state.values()
        if t.is_floating_point()
    ]
    assert floats and {t.dtype for t in floats} == {torch.float32}


def test_amp_without_native_bf16_warns_and_trains_in_float32(monkeypatch) -> None:
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(MixedPrecisionWarning, match="no native bfloat16"):
        trainer = Trainer(
            build_model(small_spec("C4")), synthetic_task(), cpu_config(amp=True), progress=False
        )
    assert trainer.amp_dtype is None
    assert trainer.run().autocast is None


def test_float16_amp_on_cpu_is_refused_in_one_line(capsys) -> None:
    with pytest.raises(ValueError, match="float16' is for CUDA only"):
        Trainer(build_model(small_spec("C4")), synthetic_task(), cpu_config(amp=True, amp_dtype="float16"))
    argv = ["train", "--task", "mnist", "--arch", "C4", *SMALL_NET_ARGS, "--device", "cpu", "--amp"]
    assert main([*argv, "--amp-dtype", "float16", "--run-dir", "never-written"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: amp_dtype 'float16' is for CUDA only") and "\n" not in err


def test_a_resume_may_switch_amp_on_and_off(tmp_path, native_bf16) -> None:
    data = synthetic_task()
    torch.manual_seed(0)
    model = build_model(small_spec("C4"))
    train(model, data, cpu_config(epochs=1), run_dir=tmp_path, progress=False)
    resumed = train(
        model, data, cpu_config(epochs=2, amp=True), run_dir=tmp_path, resume=True, progress=False
    )
    assert resumed.autocast == "bfloat16" and resumed.epochs_done == 2
    back = train(model, data, cpu_config(epochs=3), run_dir=tmp_path, resume=True, progress=False)
    assert back.autocast is None and back.epochs_done == 3


def search_context(path, **train) -> SearchContext:
    return SearchContext(
        "synthetic",
        synthetic_task(),
        BackboneSettings(widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None),
        cpu_config(amp=True, epochs=0.5, **train),
        LocalExecutor(),
        RunDirectory(path),
        progress=False,
    )


SEARCHES = {
    "equinas_d": {"groups": ("paper",), "search_epochs": 0.5},
    "equinas_e": {"generations": 1, "population": 1, "children_per_parent": 1, "epochs_per_generation": 0.5},
    "lps": {},
    "symmetry_breaking": {"breaking_inputs": 1, "layer_maps": True},
    "clone": {"group": "C4"},
    "rpp": {},
}


@pytest.mark.parametrize("method", SEARCHES)
def test_every_search_trains_its_candidates_in_bf16(tmp_path, native_bf16, method) -> None:
    result = run_search(make_method(method, **SEARCHES[method]), search_context(tmp_path))
    trained = [r for r in result.candidates if r.extra.get("history")]
    assert trained and all(r.ok and r.extra.get("autocast") == "bfloat16" for r in trained)
    assert result.best.val_acc is not None


def test_architecture_steps_move_the_alphas_under_bf16(native_bf16) -> None:
    spec = small_spec("C1", kind="mixed")
    model = build_model(spec)
    before = [p.detach().clone() for p in model.architecture_parameters()]
    config = cpu_config(amp=True, arch_lr=0.05)
    train(model, synthetic_task(), config, progress=False)
    after = list(model.architecture_parameters())
    assert all(a.dtype == torch.float32 for a in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


def test_bf16_logits_feed_a_float32_loss() -> None:
    model = build_model(small_spec("C4"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.randn(4, 1, 12, 12))
    loss = F.cross_entropy(logits.float(), torch.tensor([0, 1, 2, 0]))
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
