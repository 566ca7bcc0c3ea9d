"""The documentation's code runs: the README's Python example and every tutorial at a tiny budget
(issue 33), so neither can rot."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"


@pytest.fixture
def one_thread():
    """Tutorial networks are tiny: one torch thread (many threads on a loaded machine spin)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tutorial(name: str) -> dict:
    """The globals of ``docs/tutorials/<name>.py``, run as a module (its ``__main__`` block skipped)."""
    return runpy.run_path(str(TUTORIALS / f"{name}.py"), run_name=f"tutorial_{name}")


def test_readme_is_short_and_its_python_example_runs(tmp_path, monkeypatch, capsys, one_thread) -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme) <= 12_000
    (example,) = re.findall(r"\[start:python-example\] -->\n```python\n(.*?)```", readme, flags=re.S)
    tutorial("folder_symmetry")["write_folder"](tmp_path / "my_images", per_class=120)  # 9 steps per part
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert len(printed) == 5 and 0 <= float(printed[-1]) <= 1  # four groups, then the test accuracy
    assert (tmp_path / "runs" / "mine" / "result.json").exists()


@pytest.mark.parametrize("name", ["folder_symmetry", "equal_compute"])
def test_search_tutorials_run_at_a_tiny_budget(name, tmp_path, capsys, one_thread) -> None:
    tutorial(name)["main"](True, tmp_path)
    assert "%" in capsys.readouterr().out


def test_own_module_tutorial_finds_c4_and_the_broken_module(capsys) -> None:
    tutorial("own_module")["main"](True)
    out = capsys.readouterr().out
    assert "under C4" in out and "worst mirror" in out and "the plain conv breaks it" in out


def test_relax_tutorial_keeps_the_function(one_thread, capsys) -> None:
    assert tutorial("relax_trained")["main"](True) < 1e-4
    out = capsys.readouterr().out
    assert "C4: equivariant" in out and "D4: broken" in out
