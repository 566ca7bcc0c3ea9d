"""The ``>>>`` examples in the docstrings of the main public objects run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch

DOCUMENTED = [
    "equinas.nn.conv",
    "equinas.nn.mixed",
    "equinas.morphisms.relax",
    "equinas.models.spec",
    "equinas.testing",
]


@pytest.mark.parametrize("name", DOCUMENTED)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    torch.manual_seed(0)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(module):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0, f"{name} lost its examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see above)"
