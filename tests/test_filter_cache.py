"""The eval-mode filter cache never serves a filter built from old parameter values."""

from __future__ import annotations

import pytest
import torch

from equinas.nn import GroupConv, LiftingConv
from equinas.nn.mixed import MixedGroupConv
from equinas.nn.relaxed import ConstraintRelaxedConv, ResidualPathwayConv


def _fresh(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's output with its filter rebuilt from the current parameters."""
    return layer.conv_with(x, layer.build_filter().detach(), layer.expanded_bias())


def test_data_edits_do_not_bump_the_version_counter() -> None:
    """Why versions alone cannot key the cache: ``.data`` edits bypass the counter."""
    layer = LiftingConv(1, 2, 3, "C4")
    before = layer.weight._version
    layer.weight.data.mul_(2)
    assert layer.weight._version == before


@pytest.mark.parametrize("edit", ["data", "no_grad", "copy"])
def test_in_place_weight_edits_refresh_the_filter(edit: str) -> None:
    layer = GroupConv(2, 2, 3, "D4", bias=True).eval()
    x = torch.randn(2, 2, 8, 6, 6)
    with torch.no_grad():
        old = layer(x)
        assert layer.filter() is layer.filter()  # still cached while nothing changes
        if edit == "data":
            layer.weight.data.mul_(2)
        elif edit == "no_grad":
            layer.weight.mul_(2)
        else:
            layer.weight.copy_(torch.randn_like(layer.weight))
        new = layer(x)
    assert not torch.allclose(new, old)
    torch.testing.assert_close(new, _fresh(layer, x))


def test_mixed_layer_alpha_and_kernel_edits_refresh_the_filter() -> None:
    layer = MixedGroupConv(2, 2, 3, "D4", groups=("C1", "C4", "D4")).eval()
    x = torch.randn(2, 2, 8, 6, 6)
    with torch.no_grad():
        first = layer(x)
        layer.alpha.data[0] = 10.0
        second = layer(x)
        assert not torch.allclose(second, first)
        torch.testing.assert_close(second, _fresh(layer, x))
        layer.kernels[0].data.zero_()  # a parameter of a submodule (ParameterList)
        third = layer(x)
        assert not torch.allclose(third, second)
        torch.testing.assert_close(third, _fresh(layer, x))
        layer.kernels[1].mul_(3)  # bumps the version of a submodule's parameter
        torch.testing.assert_close(layer(x), _fresh(layer, x))


def test_relaxed_layers_follow_buffers_and_free_parts() -> None:
    x = torch.randn(1, 1, 6, 6)
    cr = ConstraintRelaxedConv(1, 2, 3, "C4", lifting=True).eval()
    rpp = ResidualPathwayConv(1, 2, 3, "C4", lifting=True).eval()
    with torch.no_grad():
        cr.free.data.normal_()
        before = cr(x)
        cr.theta.data.fill_(0.0)  # a buffer edited behind the version counter
        after = cr(x)
        assert not torch.allclose(after, before)
        torch.testing.assert_close(after, _fresh(cr, x))
        rpp(x)
        rpp.free.data.add_(1.0)
        torch.testing.assert_close(rpp(x), _fresh(rpp, x))


def test_load_state_dict_and_replaced_parameters_refresh_the_filter() -> None:
    layer = LiftingConv(1, 2, 3, "D4").eval()
    other = LiftingConv(1, 2, 3, "D4").eval()
    x = torch.randn(1, 1, 6, 6)
    with torch.no_grad():
        layer(x)
        layer.load_state_dict(other.state_dict())
        torch.testing.assert_close(layer(x), other(x))
        layer.weight = torch.nn.Parameter(torch.randn_like(layer.weight))
        torch.testing.assert_close(layer(x), _fresh(layer, x))
    assert set(layer.state_dict()) == {"weight"}  # the snapshot is no state
