"""The recovery benchmark's ground truth (``benchmarks/recovery.py``): each task's true group is
the group of the transforms its data generator applies, as the network sees them; and its
tables count hits per method and task."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from equinas.data.gmnist import apply_grid_permutation, grid_permutation
from equinas.groups import act_on_images

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
recovery = pytest.importorskip("recovery")


@pytest.mark.parametrize("task, transform", [("gmnist[hflip]", "hflip"), ("gmnist[vflip]", "vflip")])
def test_a_mirror_task_is_true_to_the_mirror_its_data_applies(task, transform):
    truth = recovery.TRUTH[task]
    x = torch.randn(1, 1, 8, 8)
    mirrored = apply_grid_permutation(x, grid_permutation(transform, 8))
    (g,) = [g for g in truth.elements if not torch.equal(act_on_images(x, g, recovery.AMBIENT), x)]
    torch.testing.assert_close(act_on_images(x, g, recovery.AMBIENT), mirrored, rtol=0, atol=0)


def test_the_truths_are_the_groups_of_the_tasks():
    names = {task: group.name for task, group in recovery.TRUTH.items()}
    assert names == {
        "mnist": "C1",
        "gmnist[hflip]": "D1",
        "gmnist[vflip]": "D1[axis=2]",
        "gmnist[rot]": "C4",
        "gmnist[rot,hflip]": "D4",
        "mnist-turns": "C1",
        "gfmnist[hflip]": "D1",
        "gfmnist[rot]": "C4",
        "gfmnist[rot,hflip]": "D4",
    }
    assert set(recovery.TRUTH) == set(recovery.TASKS + recovery.EXTRA_TASKS)


def test_the_tables_count_hits_per_run_and_per_task():
    def row(task, method, seed, found):
        truth = recovery.TRUTH[task].name
        return {"task": task, "truth": truth, "method": method, "seed": seed, "found": found,
                "test_acc": 0.5, "total_flops": 1e12, "weights": "trained"}  # fmt: skip

    rows = [row("mnist", "a", s, f) for s, f in enumerate(["C1", "C1", "C2"])]
    rows += [row("gmnist[rot]", "a", s, f) for s, f in enumerate(["C4", "D4", "D4"])]
    rows += [row("mnist", "b", 0, "C1")]
    table = recovery.markdown(rows)
    assert "| a | 3/6 | 1/2 | 1.00 |" in table
    assert "| b | 1/1 | - (no task with 3 seeds yet) | 1.00 |" in table
    assert "C1✓ C1✓ C2✗ (50.0 %)" in table
