"""The equivariance relaxation morphism: exact function preservation on layers and networks."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from equinas.groups import act_on_features, act_on_images, parse_group, subgroups
from equinas.metrics import equivariance_error, relative_error
from equinas.models import EquivariantCNN, backbone
from equinas.morphisms import InexactRelaxationWarning, relax, relax_network
from equinas.nn import BASES, GroupBatchNorm, GroupConv, LiftingConv


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
def test_relaxed_layers_compute_the_same_function(ambient_name: str, basis: str) -> None:
    for ambient, h, k in lattice_pairs(ambient_name):
        for cls, x in (
            (LiftingConv, torch.randn(2, 2, 9, 9)),
            (GroupConv, torch.randn(2, 2, ambient.order, 9, 9)),
        ):
            layer = _randomise(cls(2, 3, 3, h, ambient, bias=True, basis=basis))
            with warnings.catch_warnings():
                warnings.simplefilter("error", InexactRelaxationWarning)
                relaxed = relax(layer, k)
            assert relaxed.group == k
            assert relative_error(relaxed(x), layer(x)) <= 1e-5, (h.name, k.name, cls.__name__)
            assert relaxed.weight.numel() == layer.weight.numel() * (h.order // k.order)


@pytest.mark.parametrize("ambient_name", ["D4", "C8"])
@pytest.mark.parametrize("basis", BASES)
def test_relaxation_composes(ambient_name: str, basis: str) -> None:
    ambient = parse_group(ambient_name)
    for _, h, k in lattice_pairs(ambient_name):
        layer = _randomise(GroupConv(2, 2, 3, ambient, basis=basis))
        via = relax(relax(layer, h), k)
        direct = relax(layer, k)
        # bit-identical for pixel kernels on exact groups; otherwise by summation order only
        tol = 0.0 if ambient.is_exact and basis == "pixel" else 1e-6
        torch.testing.assert_close(via.weight, direct.weight, rtol=tol, atol=tol)


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


def test_relaxed_layer_keeps_subgroup_equivariance() -> None:
    d4 = parse_group("D4")
    c2 = parse_group("C2", ambient=d4)
    layer = relax(_randomise(GroupConv(2, 2, 3, d4)), c2)
    with torch.no_grad():
        layer.weight.normal_()  # any weight of the relaxed layer is C2-equivariant
    x = torch.randn(2, 2, 8, 7, 7)
    for g in c2.elements:
        assert relative_error(layer(act_on_features(x, g, d4)), act_on_features(layer(x), g, d4)) < 1e-5
    r90 = (0, 1)
    assert relative_error(layer(act_on_features(x, r90, d4)), act_on_features(layer(x), r90, d4)) > 0.1


SMALL = dict(widths=(2, 3, 3), pools_after=(0,), kernel_size=3)


@pytest.mark.parametrize("layer_index", [0, 1, 2])
def test_relaxed_networks_compute_the_same_function(layer_index: int) -> None:
    d4 = parse_group("D4")
    x = torch.randn(6, 1, 12, 12)
    for k in subgroups(d4):
        model = EquivariantCNN(backbone("D4", **SMALL))
        model.train()
        model(x)  # move the running statistics away from their defaults
        child = relax_network(model, layer_index, k)
        assert child.spec.layers[layer_index].group == k.name
        assert model.spec.layers[layer_index].group == "D4"  # parent untouched
        for mode in (True, False):
            model.train(mode)
            child.train(mode)
            with torch.no_grad():
                assert relative_error(child(x), model(x)) <= 1e-5, (k.name, mode)
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
    assert max(equivariance_error(child, c4, x)["layers"]) < 1e-5
    err = equivariance_error(child, d4, x, elements=[(1, 0)])  # the mirror was released
    assert err["layers"][0] < 1e-5 and err["layers"][1] > 1e-3


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
    assert relative_error(relaxed(x), layer(x)) < 1e-5


def test_relaxed_network_is_still_invariant_to_the_subgroup() -> None:
    d4 = parse_group("D4")
    child = relax_network(EquivariantCNN(backbone("D4", **SMALL)), 0, "D2")
    x = torch.randn(2, 1, 12, 12)
    child.eval()
    with torch.no_grad():
        for g in parse_group("D2", ambient=d4).elements:
            assert relative_error(child(act_on_images(x, g, d4)), child(x)) < 1e-5
