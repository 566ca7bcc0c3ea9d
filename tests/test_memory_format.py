"""Channels-last group feature maps compute the same values and gradients as NCHW ones."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from equinas.export import export_plain
from equinas.models import EquivariantCNN, backbone, build_network
from equinas.nn import GroupBatchNorm, GroupConv, GroupPool, InvariantHead, LiftingConv, SpatialPool
from equinas.nn.layout import set_memory_format
from equinas.nn.mixed import MixedGroupConv
from equinas.nn.relaxed import ConstraintRelaxedConv, RelaxedGroupConv, ResidualPathwayConv
from equinas.train import TrainConfig, train
from equinas.train.runtime import memory_format

CL, NCHW = torch.channels_last, torch.contiguous_format


def channels_last_map(x: torch.Tensor) -> torch.Tensor:
    """The same values with the 4-D view (``[B, C*|G|, H, W]`` for group maps) channels-last."""
    if x.dim() == 4:
        return x.contiguous(memory_format=CL)
    b, c, g, h, w = x.shape
    return x.reshape(b, c * g, h, w).contiguous(memory_format=CL).reshape(b, c, g, h, w)


def is_channels_last_map(x: torch.Tensor) -> bool:
    b, c, g, h, w = x.shape
    return x.permute(0, 3, 4, 1, 2).is_contiguous()


LAYERS = [
    ("lifting", lambda: LiftingConv(3, 2, 3, "D4"), (4, 3, 8, 8)),
    ("lifting-1ch", lambda: LiftingConv(1, 2, 3, "C4", "D4", bias=True), (4, 1, 8, 8)),
    ("group", lambda: GroupConv(2, 3, 3, "D2", "D4", bias=True), (4, 2, 8, 6, 6)),
    ("mixed", lambda: MixedGroupConv(2, 2, 3, "D4"), (4, 2, 8, 6, 6)),
    ("mixed-lifting", lambda: MixedGroupConv(1, 2, 3, "D4", lifting=True), (4, 1, 6, 6)),
    ("rpp", lambda: ResidualPathwayConv(2, 2, 3, "C4", "D4"), (4, 2, 8, 6, 6)),
    ("rgconv", lambda: RelaxedGroupConv(2, 2, 3, "C2", "D4"), (4, 2, 8, 6, 6)),
    ("cr", lambda: ConstraintRelaxedConv(2, 2, 3, "D1", "D4"), (4, 2, 8, 6, 6)),
    ("norm-D4", lambda: GroupBatchNorm(3, "D4"), (4, 3, 8, 5, 5)),
    ("norm-C2", lambda: GroupBatchNorm(3, "C2", "D4"), (4, 3, 8, 5, 5)),
    ("spatial-max", lambda: SpatialPool(2), (4, 2, 8, 6, 6)),
    ("spatial-mean", lambda: SpatialPool(2, "mean"), (4, 2, 8, 6, 6)),
    ("group-max", lambda: GroupPool("max"), (4, 2, 8, 6, 6)),
    ("group-mean", lambda: GroupPool("mean"), (4, 2, 8, 6, 6)),
    ("head", lambda: InvariantHead(2, 5, hidden=4), (4, 2, 8, 6, 6)),
]


def perturbed(module: nn.Module) -> nn.Module:
    """Every parameter moved off its initial value (identity affines, zero free weights), and
    running statistics that are not the identity."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn_like(p))
        for name, buffer in module.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_()
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
    return module


def outputs_and_grads(module: nn.Module, x: torch.Tensor, upstream: torch.Tensor | None):
    x = x.detach().requires_grad_()
    out = module(x)
    grad = upstream if upstream is not None else torch.randn_like(out)
    out.backward(grad.to(out.dtype))
    params = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    return out.detach(), x.grad, params, grad


@pytest.mark.parametrize(("name", "build", "shape"), LAYERS, ids=[n for n, _, _ in LAYERS])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_layer_channels_last_matches_nchw(name, build, shape, training) -> None:
    base = perturbed(build()).train(training)
    nchw, cl = set_memory_format(copy.deepcopy(base), NCHW), set_memory_format(copy.deepcopy(base), CL)
    x = torch.randn(shape)
    out_n, gx_n, gp_n, upstream = outputs_and_grads(nchw, x, None)
    out_c, gx_c, gp_c, _ = outputs_and_grads(cl, channels_last_map(x), upstream)
    torch.testing.assert_close(out_c, out_n, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gx_c, gx_n, atol=1e-5, rtol=1e-5)
    assert gp_c.keys() == gp_n.keys()
    for key in gp_n:
        torch.testing.assert_close(gp_c[key], gp_n[key], atol=1e-4, rtol=1e-5)
    for key in ("running_mean", "running_var"):  # batch norms update the same statistics
        if hasattr(base, key):
            torch.testing.assert_close(getattr(cl, key), getattr(nchw, key), atol=1e-6, rtol=1e-5)
    if out_c.dim() == 5 and hasattr(cl, "memory_format"):  # convolutions return their layout
        assert is_channels_last_map(out_c) and out_n.is_contiguous()


def test_layers_keep_channels_last() -> None:
    """Norm and pooling return channels-last maps for channels-last input (no silent copies)."""
    x = channels_last_map(torch.randn(2, 3, 8, 6, 6))
    for module in (GroupBatchNorm(3, "D4"), GroupBatchNorm(3, "C4", "D4"), SpatialPool(2)):
        for training in (True, False):
            assert is_channels_last_map(module.train(training)(x))


NETWORKS = [
    backbone("D4", widths=(2, 3, 3), pools_after=(0,), kernel_size=3, hidden=6),
    backbone("C1", widths=(2, 3), pools_after=(0,), kernel_size=3, hidden=None, kind="mixed"),
    backbone(["C4", "D2"], widths=(2, 2), pools_after=(1,), kernel_size=3, hidden=None, kind="rpp"),
    backbone("D1", widths=(2, 2), pools_after=(0,), kernel_size=3, hidden=None, kind="cr"),
    backbone("C4", widths=(2, 2, 3), pools_after=(1,), kernel_size=3, hidden=None, backbone="resnet"),
]


@pytest.mark.parametrize("spec", NETWORKS, ids=["regular", "mixed", "rpp", "cr", "resnet"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_network_channels_last_matches_nchw(spec, training) -> None:
    base = perturbed(build_network(spec)).train(training)
    nchw, cl = set_memory_format(copy.deepcopy(base), NCHW), set_memory_format(copy.deepcopy(base), CL)
    x = torch.randn(6, 1, 12, 12)
    out_n, gx_n, gp_n, upstream = outputs_and_grads(nchw, x, None)
    out_c, gx_c, gp_c, _ = outputs_and_grads(cl, x, upstream)
    torch.testing.assert_close(out_c, out_n, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gx_c, gx_n, atol=1e-5, rtol=1e-5)
    for key in gp_n:
        torch.testing.assert_close(gp_c[key], gp_n[key], atol=1e-4, rtol=1e-4)
    with torch.inference_mode():  # the eval path of evaluate(): cached filters, no autograd
        torch.testing.assert_close(cl.eval()(x), nchw.eval()(x), atol=1e-5, rtol=1e-5)


def test_export_keeps_layout_and_function() -> None:
    model = set_memory_format(perturbed(EquivariantCNN(NETWORKS[0])).eval(), CL)
    plain = export_plain(model)
    convs = [m for m in plain if isinstance(m, nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=CL) for c in convs[1:])
    x = torch.randn(3, 1, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), atol=1e-5, rtol=0)


def test_training_in_either_layout_gives_the_same_run(tiny_task) -> None:
    spec = backbone("D4", widths=(2, 2), pools_after=(0,), kernel_size=3, hidden=None, num_classes=3)
    results = {}
    for layout in ("contiguous", "channels_last"):
        torch.manual_seed(0)
        config = TrainConfig(epochs=2, batch_size=32, memory_format=layout, bn_recalibration=2)
        results[layout] = train(EquivariantCNN(spec), tiny_task, config, progress=False)
    a, b = results["contiguous"], results["channels_last"]
    for key, value in a.metrics.items():
        assert b.metrics[key] == pytest.approx(value, abs=1e-4)
    assert [r["val_acc"] for r in a.history] == [r["val_acc"] for r in b.history]


def test_auto_memory_format_per_device() -> None:
    assert memory_format(TrainConfig(), torch.device("cpu")) == CL
    assert memory_format(TrainConfig(), torch.device("cuda")) == NCHW  # not measured on GPUs yet
    assert memory_format(TrainConfig(memory_format="channels_last"), torch.device("cuda")) == CL
    assert memory_format(TrainConfig(memory_format="contiguous"), torch.device("cpu")) == NCHW
    with pytest.raises(ValueError, match="memory_format"):
        TrainConfig(memory_format="nhwc")
    with pytest.raises(ValueError, match="memory_format"):
        set_memory_format(nn.Linear(1, 1), torch.preserve_format)


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("argv", [["--help"], ["data", "list"]])
def test_cli_import_help_and_task_list_need_no_torch(argv: list[str]) -> None:
    code = (
        "import sys, contextlib, io, equinas.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    equinas.cli.main({argv!r})\n"
        "print(sorted(m for m in ('torch', 'torch._dynamo') if m in sys.modules))"
    )
    assert run_python(code) == "[]"


def test_cli_memory_format_option() -> None:
    from equinas.cli import build_parser
    from equinas.cli.common import train_config

    args = build_parser(only="train").parse_args(["train", "--task", "t", "--memory-format", "contiguous"])
    assert train_config(args).memory_format == "contiguous"
    default = build_parser(only="train").parse_args(["train", "--task", "t"])
    assert train_config(default).memory_format == "auto"
    search = build_parser().parse_args(["search", "fixed", "--task", "t", "--memory-format", "channels_last"])
    assert train_config(search).memory_format == "channels_last"


def test_training_imports_no_dynamo_and_optimizers_match_torch() -> None:
    """Training (every optimizer, clipping, recalibration, checkpoints) never imports
    ``torch._dynamo``; on that path the optimizers give torch's updates and state dicts."""
    code = """
import sys, tempfile, torch
from equinas.data.task import Split, TaskData
from equinas.models import EquivariantCNN, backbone
from equinas.train import TrainConfig, train
from equinas.train import optim
split = lambda n: Split(torch.randn(n, 1, 8, 8), torch.arange(n) % 2)
data = TaskData("t", 2, split(16), split(8), split(8))
model = EquivariantCNN(backbone("C4", widths=(1,), pools_after=(), kernel_size=3, num_classes=2, hidden=None))
for name in ("adam", "sgd", "adamw"):
    config = TrainConfig(epochs=1, batch_size=8, optimizer=name, grad_clip=1.0, bn_recalibration=1)
    with tempfile.TemporaryDirectory() as run_dir:
        train(model, data, config, run_dir=run_dir, progress=False)
options = {"Adam": {"weight_decay": 0.01}, "AdamW": {"weight_decay": 0.01}, "SGD": {"momentum": 0.9}}
grads = torch.randn(4, 3, 2)
runs = {}
for name, kwargs in options.items():
    param = torch.nn.Parameter(torch.ones(3, 2))
    opt = getattr(optim, name)([param], lr=0.1, **kwargs)
    for grad in grads:
        param.grad = grad.clone()
        opt.step()
    runs[name] = (param.detach().clone(), opt.state_dict())
    opt.load_state_dict(runs[name][1])
    opt.zero_grad()
print("torch._dynamo" in sys.modules)
for name, kwargs in options.items():  # torch's own optimizers (these import torch._dynamo)
    param = torch.nn.Parameter(torch.ones(3, 2))
    opt = getattr(torch.optim, name)([param], lr=0.1, **kwargs)
    for grad in grads:
        param.grad = grad.clone()
        opt.step()
    mine, state = runs[name]
    ref = opt.state_dict()
    same = torch.equal(param, mine) and state["param_groups"] == ref["param_groups"]
    same = same and all(torch.equal(state["state"][0][k], v) for k, v in ref["state"][0].items())
    opt.load_state_dict(state)
    print(name, same)
"""
    assert run_python(code).split("\n") == ["False", "Adam True", "AdamW True", "SGD True"]


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 3),
    channels=st.integers(1, 3),
    group=st.sampled_from(["D4", "C2", "C1"]),
    size=st.integers(1, 5),
    offset=st.floats(-4.0, 4.0),
    constant_channel=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_channels_last_train_batch_norm_matches_the_nchw_reference(
    batch, channels, group, size, offset, constant_channel, seed
) -> None:
    """The channels-last training path (torch's channels-last kernels, per-plane statistics
    combined per channel) against ``F.batch_norm`` on NCHW maps, in float64: outputs, every
    gradient and the running statistics, also for maps far from zero mean and a constant channel."""
    if batch * size * size == 1 and group == "C1":
        return  # one value per channel: torch refuses it on both paths
    torch.manual_seed(seed)
    base = perturbed(GroupBatchNorm(channels, group, "D4")).double().train()
    x = torch.randn(batch, channels, 8, size, size, dtype=torch.float64) * 2 + offset
    if constant_channel:
        x[:, 0] = offset
    nchw, cl = set_memory_format(copy.deepcopy(base), NCHW), set_memory_format(copy.deepcopy(base), CL)
    out_n, gx_n, gp_n, upstream = outputs_and_grads(nchw, x, None)
    out_c, gx_c, gp_c, _ = outputs_and_grads(cl, channels_last_map(x), upstream)
    assert is_channels_last_map(out_c)
    torch.testing.assert_close(out_c, out_n, atol=1e-10, rtol=1e-10)
    # a constant channel has rstd 1/sqrt(eps): its rounding noise in x - mean grows 316-fold
    torch.testing.assert_close(gx_c, gx_n, atol=1e-8, rtol=1e-8)
    for key in gp_n:
        torch.testing.assert_close(gp_c[key], gp_n[key], atol=1e-8, rtol=1e-8)
    for key in ("running_mean", "running_var"):
        torch.testing.assert_close(getattr(cl, key), getattr(nchw, key), atol=1e-12, rtol=1e-12)
