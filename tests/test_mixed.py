"""The [G]-mixed equivariant layer: one convolution equals the naive K-convolution sum."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from equinas.groups import parse_group, subgroups
from equinas.metrics import relative_error
from equinas.nn import GroupConv, LiftingConv
from equinas.nn.mixed import MixedGroupConv, prior_logits
from equinas.testing import assert_equivariant
from helpers import EXAMPLES

D4 = parse_group("D4")
LATTICE = subgroups(D4)


def _input(lifting: bool, dtype: torch.dtype = torch.float32, ambient=D4) -> torch.Tensor:
    shape = (2, 3, 10, 10) if lifting else (2, 3, ambient.order, 10, 10)
    return torch.randn(shape, dtype=dtype)


@pytest.mark.parametrize("lifting", [True, False])
def test_one_convolution_equals_the_naive_sum(lifting: bool, dtype: torch.dtype, tol: float) -> None:
    @settings(max_examples=EXAMPLES[dtype])
    @given(alpha=st.lists(st.floats(-3, 3), min_size=len(LATTICE), max_size=len(LATTICE)))
    def check(alpha: list[float]) -> None:
        layer = MixedGroupConv(3, 2, 3, D4, lifting=lifting, alpha_init=alpha).to(dtype)
        x = _input(lifting, dtype)
        assert relative_error(layer(x), layer.forward_naive(x)) <= tol

    check()


@pytest.mark.parametrize("names", [["D4", "C4", "C2", "C1"], ["D4", "D2"], ["D2", "D2[axis=1]"], ["C4"]])
def test_user_given_group_sets_use_their_common_subgroup(
    names: list[str], dtype: torch.dtype, tol: float
) -> None:
    layer = MixedGroupConv(3, 2, 3, D4, groups=names).to(dtype)
    common = layer.common
    assert all(common.is_subgroup_of(parse_group(n, ambient=D4)) for n in names)
    x = _input(False, dtype)
    with torch.no_grad():
        layer.alpha.normal_()
    assert relative_error(layer(x), layer.forward_naive(x)) <= tol
    # the layer is equivariant to the common subgroup (and only promised that)
    assert assert_equivariant(layer, dtype=dtype).group == common.name
    assert layer.common_weight().shape == layer.common_expansion.weight_shape(2, 3)


@pytest.mark.parametrize("lifting", [True, False])
def test_one_hot_mixture_equals_the_pure_layer(lifting: bool, dtype: torch.dtype, tol: float) -> None:
    for pick, group in enumerate(LATTICE):
        alpha = [-1e4] * len(LATTICE)
        alpha[pick] = 0.0
        layer = MixedGroupConv(3, 2, 3, D4, lifting=lifting, alpha_init=alpha).to(dtype)
        assert layer.mixing_weights()[pick] == 1.0
        pure = (LiftingConv if lifting else GroupConv)(3, 2, 3, group, D4).to(dtype)
        with torch.no_grad():
            pure.weight.copy_(layer.kernels[pick])
        x = _input(lifting, dtype)
        assert relative_error(layer(x), pure(x)) <= tol
        discrete = layer.discretize()
        assert discrete.group == group
        torch.testing.assert_close(discrete(x), pure(x))


def test_common_layer_export_and_gradients(dtype: torch.dtype, tol: float) -> None:
    layer = MixedGroupConv(3, 2, 3, D4, groups=["D4", "C4", "C2"]).to(dtype)
    with torch.no_grad():
        layer.alpha.normal_()
    x = _input(False, dtype)
    common = layer.to_common_layer()
    assert common.group.name == "C2" and common.weight.dtype == dtype
    assert relative_error(common(x), layer(x)) <= tol
    layer(x).square().sum().backward()
    assert layer.alpha.grad is not None and layer.alpha.grad.abs().sum() > 0
    assert all(k.grad is not None and k.grad.abs().sum() > 0 for k in layer.kernels)
    assert layer.architecture_parameters() == [layer.alpha]


def test_parameter_counts_scale_with_the_index() -> None:
    layer = MixedGroupConv(2, 3, 3, D4)
    for group, kernel in zip(layer.groups, layer.kernels, strict=True):
        assert kernel.numel() == 3 * 2 * D4.order**2 // group.order * 9


def test_prior_logits_and_bad_arguments() -> None:
    logits = prior_logits(LATTICE, D4, 2.0)
    assert logits[-1] == 0.0 and set(logits[:-1]) == {-2.0}
    with pytest.raises(ValueError, match="not among"):
        prior_logits(LATTICE[:3], D4, 2.0)
    with pytest.raises(ValueError, match="duplicate"):
        MixedGroupConv(1, 1, 3, D4, groups=["C4", "C4"])
    with pytest.raises(ValueError, match="alpha_init has 2 values"):
        MixedGroupConv(1, 1, 3, D4, groups=["C4"], alpha_init=[0.0, 1.0])
    with pytest.raises(ValueError, match="not a subgroup"):
        MixedGroupConv(1, 1, 3, D4, groups=["C8"])
    with pytest.raises(ValueError, match="not a candidate"):
        MixedGroupConv(1, 1, 3, D4, groups=["C4"]).discretize("D4")
