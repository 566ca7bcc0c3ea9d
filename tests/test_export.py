"""Export to plain torch / TorchScript / ONNX, and torch.compile of the training model."""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from equinas.export import export_onnx, export_plain, export_torchscript
from equinas.models import ArchSpec, EquivariantCNN, HeadSpec, LayerSpec, backbone

# (kind, group, ambient, basis): exact and interpolated expansions, both kernel bases,
# mixed and relaxed layers
NETWORKS = [
    ("regular", "D4", "D4", "pixel"),
    ("regular", "C8", "C8", "pixel"),
    ("regular", "D8", "D8", "harmonic"),
    ("regular", "C2", "D4", "pixel"),
    ("mixed", "D4", "D4", "pixel"),
    ("mixed", "D4", "D4", "harmonic"),
    ("rpp", "C4", "D4", "pixel"),
    ("rgconv", "D2", "D4", "pixel"),
    ("cr", "D1", "D4", "pixel"),
]


def small_spec(
    kind: str, group: str, ambient: str, basis: str = "pixel", head: HeadSpec | None = None
) -> ArchSpec:
    """Three blocks (widths 2, 3, 3, kernel 3, a 2x2 pool after the first) on 12x12 images."""
    spec = backbone(
        group,
        ambient=ambient,
        widths=(2, 3, 3),
        pools_after=(0,),
        kernel_size=3,
        basis=basis,
        hidden=8,
        kind=kind,
    )
    return spec if head is None else replace(spec, head=head)


def trained_like(spec: ArchSpec) -> EquivariantCNN:
    """An eval-mode network with perturbed parameters and non-trivial running statistics.

    Every parameter gets noise (batch-norm affines, mixing logits, free and relaxed weights),
    ``cr`` layers get ``theta = 0.5``, and three train-mode passes move the running statistics.
    """
    model = EquivariantCNN(spec)
    model.set_training_progress(0, 4)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
        for _ in range(3):
            model(torch.randn(8, spec.in_channels, 12, 12))
    return model.eval()


@pytest.mark.parametrize(("kind", "group", "ambient", "basis"), NETWORKS)
def test_plain_export_matches_eval_model(kind: str, group: str, ambient: str, basis: str) -> None:
    model = trained_like(small_spec(kind, group, ambient, basis))
    plain = export_plain(model)
    x = torch.randn(5, 1, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), atol=1e-5, rtol=0)
    assert not plain.training


@pytest.mark.parametrize(("group_pool", "spatial_pool"), [("mean", "max"), ("max", "max")])
def test_plain_export_head_pools(group_pool: str, spatial_pool: str) -> None:
    head = HeadSpec(group_pool=group_pool, spatial_pool=spatial_pool, hidden=None)
    model = trained_like(small_spec("regular", "D4", "D4", head=head))
    x = torch.randn(5, 1, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(export_plain(model)(x), model(x), atol=1e-5, rtol=0)


def test_plain_export_is_standard_torch_and_independent() -> None:
    model = trained_like(small_spec("mixed", "D4", "D4")).train()
    before = copy.deepcopy(model.state_dict())
    plain = export_plain(model)
    assert model.training
    assert all(type(m).__module__.startswith("torch.nn.") for m in plain.modules())
    with torch.no_grad():
        for p in plain.parameters():
            p.zero_()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], atol=0, rtol=0)


LOAD_WITHOUT_EQUINAS = """
import sys
sys.modules["equinas"] = None  # any import of equinas now fails
import torch
model = torch.load(sys.argv[1], weights_only=False)
with torch.no_grad():
    torch.save(model(torch.load(sys.argv[2])), sys.argv[3])
"""


def test_saved_plain_export_loads_without_equinas(tmp_path) -> None:
    model = trained_like(small_spec("rgconv", "D2", "D4"))
    x = torch.randn(4, 1, 12, 12)
    torch.save(export_plain(model), tmp_path / "model.pt")
    torch.save(x, tmp_path / "x.pt")
    files = [str(tmp_path / name) for name in ("model.pt", "x.pt", "y.pt")]
    run = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_EQUINAS, *files], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    with torch.no_grad():
        torch.testing.assert_close(torch.load(files[2]), model(x), atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_export_round_trip(tmp_path) -> None:
    model = trained_like(small_spec("cr", "D1", "D4"))
    export_torchscript(model, tmp_path / "model.ts", torch.randn(2, 1, 12, 12))
    loaded = torch.jit.load(str(tmp_path / "model.ts"))
    x = torch.randn(7, 1, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-4, rtol=0)


def test_onnx_export_round_trip(tmp_path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    model = trained_like(small_spec("mixed", "D4", "D4"))
    path = export_onnx(model, tmp_path / "model.onnx", torch.randn(2, 1, 12, 12))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 1, 12, 12)
    (logits,) = session.run(["logits"], {"images": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), model(x), atol=1e-4, rtol=0)


def assert_compiled_step_matches_eager(spec: ArchSpec, backend: str) -> None:
    """Train-mode forward+backward of ``torch.compile(fullgraph=True)`` equals eager: outputs,
    every gradient (relative to its largest entry) and every buffer."""
    eager = EquivariantCNN(spec)
    model = copy.deepcopy(eager)
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    x = torch.randn(4, 1, 8, 8)
    outs = []
    for net in (compiled, eager):
        out = net(x)
        out.square().sum().backward()
        outs.append(out)
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-4)
    for (name, p), q in zip(model.named_parameters(), eager.parameters(), strict=True):
        scale = float(q.grad.abs().max()) or 1.0
        torch.testing.assert_close(p.grad / scale, q.grad / scale, atol=1e-5, rtol=0, msg=name)
    for b, c in zip(model.buffers(), eager.buffers(), strict=True):
        torch.testing.assert_close(b, c)
    torch._dynamo.reset()


@pytest.mark.parametrize("kind", ["regular", "mixed"])
def test_compiled_training_step_matches_eager(kind: str) -> None:
    """Dynamo + AOTAutograd trace forward and backward as one graph (``aot_eager``: fast)."""
    spec = backbone("D4", ambient="D4", widths=(2, 3), pools_after=(0,), kernel_size=3, kind=kind)
    assert_compiled_step_matches_eager(spec, "aot_eager")


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_inductor_compiles_the_training_step() -> None:
    """The default backend (inductor's CPU code generation, about 30 s here) on one network with a
    mixed lifting layer (index_select expansion), a relaxed D2 layer with harmonic kernels (einsum
    expansion, per-coset batch-norm affine) and a pool."""
    spec = ArchSpec(
        layers=(
            LayerSpec(channels=2, kind="mixed", groups=("D4", "C4", "D1"), kernel_size=3, pool=True),
            LayerSpec(channels=3, group="D2", kernel_size=3, basis="harmonic"),
        ),
        ambient="D4",
        head=HeadSpec(hidden=None),
    )
    assert_compiled_step_matches_eager(spec, "inductor")
