"""``FilterExpansion.forward``'s one-gather filters equal the reference expansion ``expand``."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from equinas.groups import parse_group, subgroups
from equinas.nn.expansion import FilterExpansion

PAIRS = [(ambient, str(group)) for ambient in ("D4", "C4", "D2") for group in subgroups(parse_group(ambient))]
LAYOUTS = [torch.contiguous_format, torch.channels_last]


@settings(max_examples=40, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    lifting=st.booleans(),
    kernel_size=st.sampled_from([1, 3, 5]),
    channels=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    layout=st.sampled_from(LAYOUTS),
    seed=st.integers(0, 2**16),
)
def test_gathered_filter_and_its_gradient_equal_the_reference(
    pair, lifting, kernel_size, channels, layout, seed
):
    ambient, group = pair
    expansion = FilterExpansion(
        parse_group(ambient), parse_group(group, ambient=ambient), kernel_size, lifting
    )
    assert expansion.permutes_pixels  # pixel kernels of exact groups: the gather applies
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(expansion.weight_shape(*channels), generator=generator, dtype=torch.float64)
    weight.requires_grad_()
    reference = expansion.expand(weight)
    upstream = torch.randn(reference.shape, generator=generator, dtype=torch.float64)
    (expected,) = torch.autograd.grad(reference, weight, upstream)
    for _ in range(2):  # the second call reuses the cached index
        filt = expansion(weight, layout)
        assert filt.is_contiguous(memory_format=layout)
        assert torch.equal(filt, reference)  # a permutation of the entries: exactly equal
        (grad,) = torch.autograd.grad(filt, weight, upstream)
        torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-12)


def test_harmonic_kernels_keep_the_reference_path() -> None:
    d8 = parse_group("D8")
    expansion = FilterExpansion(d8, parse_group("C4", ambient=d8), 5, lifting=False, basis="harmonic")
    assert not expansion.permutes_pixels
    weight = torch.randn(expansion.weight_shape(2, 2), dtype=torch.float64)
    filt = expansion(weight, torch.channels_last)
    assert filt.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(filt, expansion.expand(weight))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_one_gather_index_serves_every_dtype(layout) -> None:
    d4 = parse_group("D4")
    expansion = FilterExpansion(d4, parse_group("C2", ambient=d4), 3, lifting=False)
    weight = torch.randn(expansion.weight_shape(2, 3))
    assert torch.equal(expansion(weight, layout), expansion.expand(weight))
    assert torch.equal(expansion(weight.double(), layout), expansion.expand(weight.double()))
