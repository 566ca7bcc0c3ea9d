"""Kernel bases: exact actions, exact relaxation and 45-degree equivariance of harmonic kernels;
the inscribed-disc equivariance summary of run records."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from equinas.groups import act_on_features, act_on_images, parse_group, spatial_matrices, subgroups
from equinas.metrics import equivariance_summary, inscribed_disc, relative_error
from equinas.models import ArchSpec, EquivariantCNN, SpecError, backbone
from equinas.morphisms import InexactRelaxationWarning, relax, relax_network
from equinas.nn import BASES, GroupConv, HarmonicBasis, LiftingConv, PixelBasis, kernel_basis
from equinas.nn.mixed import MixedGroupConv


def harmonic_at(basis: HarmonicBasis, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unscaled basis functions at continuous points ``(x, y)`` (y up): ``[points, n]``, via atan2."""
    rho, phi = torch.sqrt(x * x + y * y), torch.atan2(y, x)
    outer = basis.kernel_size // 2
    columns = []
    for ring, m, part in basis.index:
        if ring == 0:
            columns.append((rho == 0).double())
            continue
        sigma = 0.4 if ring == outer else 0.6
        radial = torch.exp(-((rho - ring) ** 2) / (2 * sigma**2))
        angular = torch.cos(m * phi) if part == 0 else torch.sin(m * phi)
        columns.append(radial * torch.where(rho > 0, angular, torch.full_like(rho, float(m == 0))))
    return torch.stack(columns, dim=1)


def grid_points(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    c = k // 2
    return (cols - c).flatten().double(), (c - rows).flatten().double()


@pytest.mark.parametrize("k", [3, 5, 7])
def test_harmonic_basis_sizes_and_scale(k: int) -> None:
    basis = kernel_basis("harmonic", k)
    assert basis.size == {3: 6, 5: 11, 7: 16}[k]  # k = 5: as escnn's default band limit
    assert torch.linalg.matrix_rank(basis.sampling) == basis.size
    # i.i.d. coefficients of variance v give kernels of mean pixel variance v
    assert basis.sampling.square().sum().item() == pytest.approx(k * k)
    # to_coefficients is a left inverse of sampling: kernels in the span give their coefficients
    coefficients = torch.randn(3, 2, basis.size, dtype=torch.float64)
    kernels = (coefficients @ basis.sampling.T).reshape(3, 2, k, k)
    torch.testing.assert_close(basis.to_coefficients(kernels), coefficients, atol=1e-12, rtol=0)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_exact_elements_permute_sampled_harmonics_exactly(k: int) -> None:
    d4 = parse_group("D4")
    basis = kernel_basis("harmonic", k)
    pixel_action = spatial_matrices(d4, k)
    for i in range(d4.order):
        assert torch.equal(basis.sampling @ basis.action(d4)[i], pixel_action[i] @ basis.sampling)


@given(
    n=st.integers(1, 12),
    flip=st.integers(0, 1),
    rot=st.integers(0, 11),
    coefficients=st.lists(st.floats(-2, 2), min_size=11, max_size=11),
)
def test_harmonic_action_is_the_rotated_continuous_kernel(n, flip, rot, coefficients) -> None:
    """``S D(g) c`` equals sampling ``f(g^-1 p)`` for every angle: no interpolation involved."""
    group = parse_group(f"D{n}")
    g = group.elements[group.index((flip, rot % n))]
    basis = kernel_basis("harmonic", 5)
    c = torch.tensor(coefficients, dtype=torch.float64)
    x, y = grid_points(5)
    scale = basis.sampling.abs().amax(0) / harmonic_at(basis, x, y).abs().amax(0)
    angle = 2 * math.pi * g.rot / n
    # g^-1 p = F^flip R(-angle) p: rotate back, then undo the mirror x -> -x
    xr = math.cos(angle) * x + math.sin(angle) * y
    yr = -math.sin(angle) * x + math.cos(angle) * y
    expected = harmonic_at(basis, -xr if g.flip else xr, yr) @ (scale * c)
    got = basis.sampling @ basis.action(group)[group.index(g)] @ c
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ["D8", "C8", "D16"])
def test_harmonic_action_is_an_orthogonal_representation(name: str) -> None:
    group = parse_group(name)
    action = kernel_basis("harmonic", 5).action(group)
    eye = torch.eye(action.shape[-1], dtype=torch.float64)
    for a in group.elements:
        da = action[group.index(a)]
        torch.testing.assert_close(da @ da.T, eye, atol=1e-14, rtol=0)
        for b in group.elements:
            product = action[group.index(group.compose(a, b))]
            torch.testing.assert_close(da @ action[group.index(b)], product, atol=1e-14, rtol=0)
    # the bilinear pixel action is not a homomorphism at 45 degrees
    pixel = spatial_matrices(group, 5)
    r = group.index((0, group.n // 8))
    assert (pixel[r] @ pixel[r] - pixel[group.index((0, group.n // 4))]).abs().max() > 0.1


@pytest.mark.parametrize(("ambient", "group", "expected"), [("D4", "C4", "pixel"), ("D8", "D4", "harmonic")])
def test_auto_basis_follows_the_ambient_group(ambient: str, group: str, expected: str) -> None:
    """Pixel kernels where every element permutes pixels, harmonic ones where 45 degrees occur."""
    assert GroupConv(2, 2, 3, group, ambient).basis.name == expected
    assert MixedGroupConv(2, 2, 3, ambient, [group], lifting=True).basis.name == expected
    spec = backbone(group, ambient=ambient, widths=(2,), pools_after=())
    assert spec.layers[0].basis == expected
    assert backbone(group, ambient=ambient, widths=(2,), basis="pixel").layers[0].basis == "pixel"
    with pytest.raises(SpecError, match="basis: expected one of"):
        backbone(group, ambient=ambient, widths=(2,), basis="fourier")


def test_layers_store_coefficients_and_count_parameters() -> None:
    layer = GroupConv(3, 4, 5, "D8", basis="harmonic")
    assert layer.weight.shape == (4, 3, 16, 11)
    assert layer.build_filter().shape == (4 * 16, 3 * 16, 5, 5)
    pixel = GroupConv(3, 4, 5, "D8", basis="pixel")
    assert pixel.weight.numel() * 11 == layer.weight.numel() * 25
    assert "basis=harmonic" in repr(layer)
    lifting = LiftingConv(2, 3, 5, "C4", "D8", basis="harmonic")
    assert lifting.weight.shape == (3 * 4, 2, 11)
    assert isinstance(kernel_basis("pixel", 5), PixelBasis)
    with pytest.raises(ValueError, match="unknown kernel basis 'fourier'"):
        GroupConv(3, 4, 5, "D4", basis="fourier")
    with pytest.raises(ValueError, match="'auto' needs the ambient group"):
        kernel_basis("auto", 5)
    with pytest.raises(ValueError, match="does not fit kernel_size 3"):
        GroupConv(3, 4, 3, "D4", basis=kernel_basis("harmonic", 5))


@pytest.mark.parametrize("name", ["D4", "D8"])
def test_harmonic_layers_are_exactly_equivariant_to_quarter_turns_and_mirrors(name: str) -> None:
    group = parse_group(name)
    lifting = LiftingConv(1, 3, 5, group, basis="harmonic").double()
    conv = GroupConv(3, 2, 5, group, basis="harmonic").double()
    x = torch.randn(2, 1, 12, 12, dtype=torch.float64)
    y = conv(F.relu(lifting(x)))
    for g in group.elements:
        if group.is_exact_element(g):
            y_g = conv(F.relu(lifting(act_on_images(x, g, group))))
            assert relative_error(y_g, act_on_features(y, g, group)) < 1e-13, g


def _rot45_error(basis: str) -> float:
    """Relative error of a lifting + group conv stack at 45 degrees on a smooth image (inside a disc)."""
    c8 = parse_group("C8")
    torch.manual_seed(0)
    model = torch.nn.Sequential(LiftingConv(1, 4, 5, c8, basis=basis), GroupConv(4, 4, 5, c8, basis=basis))
    coarse = torch.randn(4, 1, 8, 8)
    x = F.interpolate(coarse, size=(33, 33), mode="bicubic", align_corners=True)
    coords = torch.arange(33) - 16.0
    disc = ((coords[:, None] ** 2 + coords[None, :] ** 2) <= 14.0**2).float()
    g = c8.elements[c8.index((0, 1))]
    with torch.no_grad():
        rotated_out = model(act_on_images(x * disc, g, c8))
        out_rotated = act_on_features(model(x * disc), g, c8)
    inner = ((coords[:, None] ** 2 + coords[None, :] ** 2) <= 10.0**2).float()
    return relative_error(rotated_out * inner, out_rotated * inner)


def test_harmonic_kernels_are_far_more_equivariant_at_45_degrees() -> None:
    pixel, harmonic = _rot45_error("pixel"), _rot45_error("harmonic")
    assert harmonic < 0.5 * pixel, (harmonic, pixel)


def test_relaxation_with_harmonic_kernels_is_exact_for_every_subgroup_of_d8() -> None:
    """Pixel kernels only approximate D8 -> D4[axis=1]; harmonic kernels keep the function."""
    d8 = parse_group("D8")
    layer = GroupConv(2, 2, 5, d8, bias=True, basis="harmonic").double()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    x = torch.randn(2, 2, d8.order, 9, 9, dtype=torch.float64)
    for target in subgroups(d8):
        with warnings.catch_warnings():
            warnings.simplefilter("error", InexactRelaxationWarning)
            relaxed = relax(layer, target)
        assert relaxed.basis is layer.basis
        assert relative_error(relaxed(x), layer(x)) < 1e-12, target.name
    with pytest.warns(InexactRelaxationWarning):
        relax(GroupConv(2, 2, 5, d8, basis="pixel"), "D4[axis=1]")


def test_mixed_harmonic_layer_is_one_convolution_and_discretizes() -> None:
    layer = MixedGroupConv(2, 3, 5, "D8", ["D8", "C8", "D4[axis=1]", "D2"], basis="harmonic")
    with torch.no_grad():
        layer.alpha.normal_()
    x = torch.randn(2, 2, 16, 10, 10)
    torch.testing.assert_close(layer(x), layer.forward_naive(x), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(layer.to_common_layer()(x), layer(x), atol=1e-5, rtol=1e-4)
    assert layer.discretize("C8").basis.name == "harmonic"


def test_specs_carry_the_basis_through_json_and_relaxation() -> None:
    spec = backbone("D8", ambient="D8", widths=(2, 2), pools_after=(), basis="harmonic", hidden=None)
    assert ArchSpec.from_json(spec.to_json()) == spec
    model = EquivariantCNN(spec)
    assert all(block.conv.basis.name == "harmonic" for block in model.equivariant_blocks)
    child = relax_network(model, 1, "C8")
    assert child.spec.layers[1].basis == "harmonic" and child.spec.layers[1].group == "C8"
    x = torch.randn(2, 1, 12, 12)
    model.eval(), child.eval()
    torch.testing.assert_close(child(x), model(x), atol=1e-5, rtol=1e-4)
    bad = spec.to_dict()
    bad["layers"][0]["basis"] = "wavelet"
    with pytest.raises(SpecError, match=r"layers\[0\]\.basis: expected one of"):
        ArchSpec.from_dict(bad)


def test_inscribed_disc() -> None:
    disc = inscribed_disc(torch.zeros(3, 7, 7))
    assert disc.shape == (7, 7) and disc[3, 3] == 1 and disc[0, 0] == 0 and disc[3, 0] == 1
    assert torch.equal(disc, disc.rot90(1, (0, 1))) and int(disc.sum()) == 29


def _smooth_images(n: int, size: int) -> torch.Tensor:
    coarse = torch.randn(n, 1, size // 4, size // 4)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)


def test_equivariance_summary_reports_45_degrees_inside_the_disc() -> None:
    x = _smooth_images(4, 29)
    d4_net = EquivariantCNN(backbone("D4", ambient="D4", widths=(2, 2), pools_after=(), hidden=None))
    assert "interpolated" not in equivariance_summary(d4_net, x)
    errors = {}
    for basis in BASES:
        torch.manual_seed(0)
        spec = backbone("C8", ambient="C8", widths=(3, 3), pools_after=(), hidden=None, basis=basis)
        summary = equivariance_summary(EquivariantCNN(spec), x)
        assert summary["group"] == "C8" and max(summary["layers"]) < 1e-5  # quarter turns: exact
        errors[basis] = summary["interpolated"]["layers"]
    assert errors["harmonic"][-1] < 0.5 * errors["pixel"][-1], errors
