"""The equivariance relaxation morphism: exact function preservation on layers and networks."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from equinas.groups import parse_group, subgroups
from equinas.metrics import equivariance_error, relative_error
from equinas.models import EquivariantCNN, backbone
from equinas.morphisms import InexactRelaxationWarning, relax, relax_network
from equinas.nn import BASES, GroupBatchNorm, GroupConv, LiftingConv
from equinas.testing import assert_equivariant, equivariance_report, tolerance


def lattice_pairs(name: str) -> list[tuple]:
    ambient = parse_group(name)
    lattice = subgroups(ambient)
    return [(ambient, h, k) for h, k in itertools.product(lattice, lattice) if k.is_subgroup_of(h)]


def _randomise(layer: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    return layer


@pytest.mark.parametrize("ambient_name", ["D4", "C8"])
@pytest.mark.parametrize("basis", BASES)
def test_relaxed_layers_compute_the_same_function(
    ambient_name: str, basis: str, dtype: torch.dtype, tol: float
) -> None:
    for ambient, h, k in lattice_pairs(ambient_name):
        for cls, x in (
            (LiftingConv, torch.randn(2, 2, 9, 9, dtype=dtype)),
            (GroupConv, torch.randn(2, 2, ambient.order, 9, 9, dtype=dtype)),
        ):
            layer = _randomise(cls(2, 3, 3, h, ambient, bias=True, basis=basis).to(dtype))
            with warnings.catch_warnings():
                warnings.simplefilter("error", InexactRelaxationWarning)
                relaxed = relax(layer, k)
            assert relaxed.group == k and relaxed.weight.dtype == dtype
            assert relative_error(relaxed(x), layer(x)) <= tol, (h.name, k.name, cls.__name__)
            assert relaxed.weight.numel() == layer.weight.numel() * (h.order // k.order)


@pytest.mark.parametrize("ambient_name", ["D4", "C8"])
@pytest.mark.parametrize("basis", BASES)
def test_relaxation_composes(ambient_name: str, basis: str, dtype: torch.dtype, tol: float) -> None:
    ambient = parse_group(ambient_name)
    for _, h, k in lattice_pairs(ambient_name):
        layer = _randomise(GroupConv(2, 2, 3, ambient, basis=basis).to(dtype))
        via = relax(relax(layer, h), k)
        direct = relax(layer, k)
        # bit-identical for pixel kernels on exact groups; otherwise by summation order only
        bound = 0.0 if ambient.is_exact and basis == "pixel" else tol
        assert relative_error(via.weight, direct.weight) <= bound, (h.name, k.name)


def test_batch_norm_relaxation_keeps_function_and_statistics() -> None:
    d4 = parse_group("D4")
    norm = _randomise(GroupBatchNorm(3, d4))
    x = torch.randn(4, 3, 8, 5, 5)
    for k in subgroups(d4):
        relaxed = relax(norm, k)
        for mode in (True, False):
            norm.train(mode)
            relaxed.train(mode)
            torch.testing.assert_close(relaxed(x), norm(x))
        assert relaxed.weight.numel() == 3 * (8 // k.order)
        torch.testing.assert_close(relaxed.running_mean, norm.running_mean)


def test_relaxed_layer_keeps_subgroup_equivariance(dtype: torch.dtype) -> None:
    layer = relax(_randomise(GroupConv(2, 2, 3, "D4")), "C2")
    with torch.no_grad():
        layer.weight.normal_()  # any weight of the relaxed layer is C2-equivariant
    assert assert_equivariant(layer, dtype=dtype).group == "C2"
    released = equivariance_report(layer, group="D4", dtype=dtype)
    assert released.exact["R(180)"] <= released.tolerance and released.exact["R(90)"] > 0.1


SMALL = dict(widths=(2, 3, 3), pools_after=(0,), kernel_size=3)


@pytest.mark.parametrize("layer_index", [0, 1, 2])
def test_relaxed_networks_compute_the_same_function(layer_index: int, dtype: torch.dtype, tol: float) -> None:
    d4 = parse_group("D4")
    x = torch.randn(6, 1, 12, 12, dtype=dtype)
    for k in subgroups(d4):
        model = EquivariantCNN(backbone("D4", **SMALL)).to(dtype)
        model.train()
        model(x)  # move the running statistics away from their defaults
        child = relax_network(model, layer_index, k)
        assert child.spec.layers[layer_index].group == k.name
        assert model.spec.layers[layer_index].group == "D4"  # parent untouched
        for mode in (True, False):
            model.train(mode)
            child.train(mode)
            with torch.no_grad():
                assert relative_error(child(x), model(x)) <= tol, (k.name, mode)
        grew = child.num_parameters() - model.num_parameters()
        conv = model.equivariant_blocks[layer_index].conv
        norm = model.equivariant_blocks[layer_index].norm
        index = d4.order // k.order
        assert grew == (conv.weight.numel() + norm.weight.numel() * 2) * (index - 1)


def test_training_after_relaxation_breaks_only_the_released_symmetry() -> None:
    d4 = parse_group("D4")
    model = EquivariantCNN(backbone("D4", **SMALL))
    child = relax_network(model, 1, "C4")
    x, y = torch.randn(16, 1, 12, 12), torch.randint(0, 10, (16,))
    opt = torch.optim.SGD(child.parameters(), lr=0.5)
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(child(x), y).backward()
        opt.step()
    c4 = parse_group("C4", ambient=d4)
    bound = tolerance(torch.float32)
    assert max(equivariance_error(child, c4, x)["layers"]) < bound
    err = equivariance_error(child, d4, x, elements=[(1, 0)])  # the mirror was released
    assert err["layers"][0] < bound and err["layers"][1] > 1e-3


def test_relax_rejects_non_subgroups_and_bad_indices() -> None:
    conv = GroupConv(1, 1, 3, "C4", "D4")
    with pytest.raises(ValueError, match="D1 is not a subgroup of C4"):
        relax(conv, "D1")
    with pytest.raises(ValueError, match="unknown group name"):
        relax(conv, "X2")
    with pytest.raises(TypeError, match="relax\\(\\) supports"):
        relax(torch.nn.Linear(2, 2), "C1")
    model = EquivariantCNN(backbone("D4", **SMALL))
    with pytest.raises(IndexError, match="out of range"):
        relax_network(model, 3, "C4")


def test_inexact_relaxations_warn() -> None:
    d8 = parse_group("D8")
    layer = GroupConv(1, 1, 3, d8, basis="pixel")
    with pytest.warns(InexactRelaxationWarning, match="approximately"):
        relax(layer, parse_group("D4[axis=1]", ambient=d8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", InexactRelaxationWarning)
        relaxed = relax(layer, parse_group("D4", ambient=d8))  # exact target: no warning
    x = torch.randn(1, 1, 16, 7, 7)
    assert relative_error(relaxed(x), layer(x)) < tolerance(torch.float32)


def test_relaxed_network_is_still_invariant_to_the_subgroup(dtype: torch.dtype) -> None:
    child = relax_network(EquivariantCNN(backbone("D4", **SMALL)), 0, "D2")
    assert assert_equivariant(child, dtype=dtype).group == "D2"
