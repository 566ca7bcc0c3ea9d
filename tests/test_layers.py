"""Lifting conv, group conv, norm, pooling and head: equivariance, shapes, counts, caching."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from equinas.groups import act_on_features, parse_group, subgroups
from equinas.metrics import relative_error
from equinas.morphisms import relax
from equinas.nn import (
    BASES,
    GroupBatchNorm,
    GroupConv,
    GroupPool,
    InvariantHead,
    LiftingConv,
    SpatialPool,
    kernel_basis,
)
from equinas.nn.mixed import MixedGroupConv
from equinas.nn.relaxed import ResidualPathwayConv
from equinas.testing import InexactEquivarianceWarning, assert_equivariant, equivariance_report
from helpers import Stack, print_table

LATTICES = ["D4", "D8", "C8"]


@pytest.mark.parametrize("ambient_name", LATTICES)
def test_stacks_are_equivariant_for_every_subgroup(ambient_name: str, dtype: torch.dtype) -> None:
    ambient = parse_group(ambient_name)
    rows = []
    for group in subgroups(ambient):
        stack = Stack(group, ambient)
        # interpolated elements are measured, and only held to "no worse than noise" here
        features = assert_equivariant(stack, dtype=dtype, interpolated_atol=1.0)
        invariant = assert_equivariant(nn.Sequential(stack, GroupPool()), dtype=dtype, interpolated_atol=1.0)
        assert features.group == group.name
        assert len(features.exact) + len(features.interpolated) == group.order - 1
        rows.append((features, invariant))
    print_table(rows)


def test_interpolated_elements_are_only_approximately_equivariant() -> None:
    lift = equivariance_report(LiftingConv(1, 4, 5, "C8"), dtype=torch.float32, size=29)
    # unconstrained filters of the same width, tested against the same group
    plain = equivariance_report(LiftingConv(1, 32, 5, "C1", "C8"), group="C8", dtype=torch.float32, size=29)
    assert sorted(lift.interpolated) == ["R(135)", "R(225)", "R(315)", "R(45)"]
    for name, err in lift.interpolated.items():
        assert 1e-4 < err < 0.5 * plain.interpolated[name], name
    assert max(lift.exact.values()) <= lift.tolerance < min(plain.exact.values())


def test_assert_equivariant_catches_broken_layers() -> None:
    class PerturbedConv(GroupConv):
        """A D4 group conv whose expanded filter is perturbed after the expansion."""

        def build_filter(self) -> torch.Tensor:
            filt = super().build_filter()
            return filt + 1e-3 * torch.ones_like(filt).tril(diagonal=-1)

    broken = PerturbedConv(2, 2, 3, "D4")
    with pytest.raises(AssertionError, match=r"not D4-equivariant .* element R\(\d+\)F? has relative error"):
        assert_equivariant(broken)
    report = equivariance_report(broken)
    worst, err, _ = report.failures()[0]
    assert err == max(report.exact.values()) and report.exact[worst] == err
    # a plain (C1) conv is not C4-equivariant; the same layer passes for its own group
    with pytest.raises(AssertionError, match="not C4-equivariant"):
        assert_equivariant(LiftingConv(1, 3, 3, "C1", "C4"), group="C4")
    assert_equivariant(LiftingConv(1, 3, 3, "C1", "C4"))
    # a residual pathway (RPP) layer is only approximately equivariant: its projection is exact
    rpp = ResidualPathwayConv(2, 2, 3, "C4", "D4", free_init=1.0)
    with pytest.raises(AssertionError, match="not C4-equivariant"):
        assert_equivariant(rpp)
    assert_equivariant(rpp.project())


def test_reports_read_the_layout_of_blocks_and_networks(dtype: torch.dtype) -> None:
    from equinas.models import EquivariantCNN, backbone

    model = EquivariantCNN(backbone("D4", widths=(2, 3), pools_after=(0,), kernel_size=3))
    model.equivariant_blocks[1].conv = relax(model.equivariant_blocks[1].conv, "C2")
    report = assert_equivariant(model, dtype=dtype)
    assert report.group == "C2" and report.layout == "image [2, 1, 12, 12] -> invariant [2, 10]"
    block = assert_equivariant(model.equivariant_blocks[0], dtype=dtype)
    assert block.group == "D4" and block.layout == "image [2, 1, 12, 12] -> features [2, 2, 8, 6, 6]"
    mixed = MixedGroupConv(2, 2, 3, "D4", groups=["D4", "D2"])
    assert assert_equivariant(mixed, dtype=dtype).group == "D2"
    assert model.training and model.equivariant_blocks[0].conv.weight.dtype != torch.float64
    with pytest.warns(InexactEquivarianceWarning, match="4 interpolated element"):
        assert_equivariant(GroupConv(1, 1, 3, "C8"), dtype=dtype)
    with pytest.raises(TypeError, match="no equinas layer"):
        equivariance_report(torch.nn.Conv2d(1, 1, 3))


@pytest.mark.parametrize("ambient_name", ["D4", "D8"])
@pytest.mark.parametrize("basis", BASES)
def test_parameter_counts_follow_the_closed_form(ambient_name: str, basis: str) -> None:
    ambient = parse_group(ambient_name)
    c_in, c_out, k = 3, 5, 3
    n = kernel_basis(basis, k).size  # coefficients per kernel: 9 pixels or 6 harmonics
    for group in subgroups(ambient):
        index = ambient.order // group.order
        lift = LiftingConv(c_in, c_out, k, group, ambient, bias=True, basis=basis)
        conv = GroupConv(c_in, c_out, k, group, ambient, basis=basis)
        assert sum(p.numel() for p in lift.parameters()) == c_out * index * (c_in * n + 1)
        assert conv.weight.numel() == c_out * c_in * ambient.order**2 // group.order * n
        assert lift.build_filter().shape == (c_out * ambient.order, c_in, k, k)
        assert conv.build_filter().shape == (c_out * ambient.order, c_in * ambient.order, k, k)


def test_gradients_flow_to_all_weights() -> None:
    d4 = parse_group("D4")
    lift, conv = LiftingConv(1, 2, 3, d4, bias=True), GroupConv(2, 3, 3, "C2", d4)
    norm, head = GroupBatchNorm(3, "C2", d4), InvariantHead(3, 4, hidden=5)
    loss = head(norm(conv(torch.relu(lift(torch.randn(4, 1, 8, 8)))))).logsumexp(1).sum()
    loss.backward()
    for module in (lift, conv, norm, head):
        for name, p in module.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_group_conv_with_trivial_group_is_a_plain_conv() -> None:
    c1 = parse_group("C1")
    conv = GroupConv(3, 4, 5, c1)
    x = torch.randn(2, 3, 1, 9, 9)
    ref = torch.nn.functional.conv2d(x[:, :, 0], conv.weight[:, :, 0], padding=2)
    torch.testing.assert_close(conv(x)[:, :, 0], ref)


def test_eval_cache_is_reused_and_invalidated() -> None:
    conv = GroupConv(2, 2, 3, "D4").eval()
    with torch.no_grad():
        first = conv.filter()
        assert conv.filter() is first and not first.requires_grad
        conv.weight.add_(1.0)
        second = conv.filter()
    assert second is not first
    torch.testing.assert_close(second, conv.build_filter().detach())
    assert set(conv.state_dict()) == {"weight"}
    conv.train()
    assert conv.filter().requires_grad  # training never uses the cache
    opt = torch.optim.SGD(conv.parameters(), lr=0.1)
    conv.filter().sum().backward()
    opt.step()
    conv.eval()
    with torch.no_grad():
        torch.testing.assert_close(conv.filter(), conv.build_filter())


def test_cache_follows_dtype_changes() -> None:
    conv = LiftingConv(1, 2, 3, "C4").eval()
    with torch.no_grad():
        conv.filter()
        conv.double()
        assert conv.filter().dtype == torch.float64
        assert conv(torch.randn(1, 1, 5, 5, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize(
    ("layer", "x", "expected"),
    [
        (LiftingConv(3, 2, 3, "D4"), torch.zeros(1, 2, 8, 8), r"\[B, 3, H, W\]"),
        (LiftingConv(3, 2, 3, "D4"), torch.zeros(1, 3, 8, 8, 8), r"\[B, 3, H, W\]"),
        (GroupConv(3, 2, 3, "C2", "D4"), torch.zeros(1, 3, 4, 8, 8), r"\[B, 3, 8, H, W\]"),
        (GroupConv(3, 2, 3, "C4"), torch.zeros(1, 3, 8, 8), r"\[B, 3, 4, H, W\]"),
        (GroupBatchNorm(3, "C4"), torch.zeros(1, 3, 2, 8, 8), r"\[B, 3, 4, H, W\]"),
        (InvariantHead(3, 2), torch.zeros(1, 4, 4, 2, 2), r"\[B, 3, \|G\|, H, W\]"),
        (GroupPool(), torch.zeros(1, 4, 2, 2), r"\[B, C, \|G\|, H, W\]"),
    ],
)
def test_shape_mismatches_name_the_expected_shape(
    layer: torch.nn.Module, x: torch.Tensor, expected: str
) -> None:
    with pytest.raises(ValueError, match=expected):
        layer(x)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="odd"):
        GroupConv(1, 1, 4, "C4")
    with pytest.raises(ValueError, match=">= 1"):
        LiftingConv(0, 1, 3, "C4")
    with pytest.raises(ValueError, match="not a subgroup"):
        GroupConv(1, 1, 3, "C8", "D4")
    with pytest.raises(ValueError, match="unknown group name"):
        GroupConv(1, 1, 3, "Q8")
    with pytest.raises(ValueError, match="pooling mode"):
        GroupPool("median")


def test_batch_norm_is_equivariant_in_train_and_eval_mode(dtype: torch.dtype, tol: float) -> None:
    d4 = parse_group("D4")
    norm = GroupBatchNorm(3, "C2", d4).to(dtype)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(4, 3, 8, 6, 6, dtype=dtype) * 3 + 1
    for mode in (True, False):  # the report runs eval mode only: train-mode statistics are checked here
        norm.train(mode)
        for g in parse_group("C2", ambient=d4).elements:
            err = relative_error(norm(act_on_features(x, g, d4)), act_on_features(norm(x), g, d4))
            assert err <= tol
    assert norm.running_mean.shape == (3,) and int(norm.num_batches_tracked) == 4


def test_spatial_pool_and_export() -> None:
    d4 = parse_group("D4")
    conv = GroupConv(2, 3, 3, "D2", d4, bias=True)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 2, 8, 6, 6)
    plain = conv.export()
    torch.testing.assert_close(plain(x.reshape(2, 16, 6, 6)).reshape(2, 3, 8, 6, 6), conv(x))
    pooled = SpatialPool(2, "mean")(x)
    assert pooled.shape == (2, 2, 8, 3, 3)


def test_empty_batches_give_empty_outputs_of_the_right_shape() -> None:
    from equinas.models import EquivariantCNN, backbone
    from equinas.nn.mixed import MixedGroupConv

    assert LiftingConv(1, 3, 3, "D4")(torch.zeros(0, 1, 7, 7)).shape == (0, 3, 8, 7, 7)
    assert GroupConv(2, 3, 3, "C4")(torch.zeros(0, 2, 4, 5, 5)).shape == (0, 3, 4, 5, 5)
    mixed = MixedGroupConv(2, 3, 3, "D4", groups=("C1", "D4"))
    assert mixed(torch.zeros(0, 2, 8, 5, 5)).shape == (0, 3, 8, 5, 5)
    model = EquivariantCNN(backbone("D4", widths=(2, 2), pools_after=(0,), kernel_size=3, hidden=4))
    with torch.no_grad():
        assert model.eval()(torch.zeros(0, 1, 8, 8)).shape == (0, 10)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"kernel_size": 5.0}, TypeError, "kernel_size must be a positive odd integer, got float"),
        ({"kernel_size": True}, TypeError, "kernel_size must be a positive odd integer, got bool"),
        ({"kernel_size": "5"}, TypeError, "kernel_size must be a positive odd integer, got str"),
        ({"kernel_size": 4}, ValueError, "positive odd"),
        ({"in_channels": 1.5}, TypeError, "in_channels must be an integer, got float"),
        ({"out_channels": 0}, ValueError, "out_channels must be >= 1"),
    ],
)
def test_layer_arguments_are_type_checked(kwargs, error, message) -> None:
    import re

    from equinas.nn.mixed import MixedGroupConv

    args = {"in_channels": 1, "out_channels": 2, "kernel_size": 3, **kwargs}
    for build in (
        lambda: LiftingConv(group="C4", **args),
        lambda: MixedGroupConv(ambient="C4", lifting=True, **args),
    ):
        with pytest.raises(error, match=re.escape(message)):
            build()
    with pytest.raises(TypeError, match="channels must be an integer"):
        GroupBatchNorm(1.5, "C4")
    with pytest.raises(TypeError, match="num_classes must be an integer"):
        InvariantHead(2, 2.0)


def test_reprs_show_the_layout_and_parameter_count() -> None:
    lift = LiftingConv(1, 4, 3, "C4", "D4", bias=True)
    assert "[B, 1, H, W] -> [B, 4, 8, H, W], params=80" in repr(lift)  # 4*2*9 + 4*2
    mixed = MixedGroupConv(2, 3, 3, "D4", groups=["D4", "C4"])
    params = sum(p.numel() for p in mixed.parameters())
    assert f"[B, 2, 8, H, W] -> [B, 3, 8, H, W], params={params}" in repr(mixed)
    assert "[B, 3, 8, H, W], params=24" in repr(GroupBatchNorm(3, "C2", "D4"))  # 3 * |D4:C2| * 2
    rpp = ResidualPathwayConv(2, 2, 3, "C4", "D4")
    assert f"params={rpp.weight.numel() + rpp.free.numel()}" in repr(rpp)


def test_networks_check_block_wiring_at_build_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from equinas.models import EquivariantCNN, SpecError, backbone
    from equinas.models.layers import LAYER_KINDS, LayerKind

    def wider_input(ctx):
        return GroupConv(ctx.in_channels + 1, ctx.out_channels, ctx.kernel_size, ctx.group, ctx.ambient)

    def wider_output(ctx):
        return GroupConv(ctx.in_channels, ctx.out_channels + 1, ctx.kernel_size, ctx.group, ctx.ambient)

    own_group = LAYER_KINDS["regular"].norm_group
    monkeypatch.setitem(LAYER_KINDS, "wider_input", LayerKind(build=wider_input, norm_group=own_group))
    monkeypatch.setitem(LAYER_KINDS, "wider_output", LayerKind(build=wider_output, norm_group=own_group))
    spec = backbone("D4", widths=(2, 3), pools_after=(0,), kernel_size=3)
    message = r"layers\[1\] \(wider_input\): layer 1 expects \[B, 3, 8, H, W\], but layer 0 gives \[B, 2, 8"
    with pytest.raises(SpecError, match=message):
        EquivariantCNN(spec.with_layer(1, kind="wider_input"))
    with pytest.raises(SpecError, match=r"layers\[1\] \(wider_output\): GroupConv gives \[B, 4, 8, H, W\]"):
        EquivariantCNN(spec.with_layer(1, kind="wider_output"))
    EquivariantCNN(spec)  # the regular layers fit
