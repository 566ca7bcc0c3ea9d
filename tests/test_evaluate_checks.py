"""``equinas evaluate`` checks the task against the checkpoint (classes, channels, image size)
and names a folder or a pickled checkpoint for what it is."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from equinas.cli import main

NET = ["--arch", "C4", "--ambient", "C4", "--widths", "1,1", "--pools-after", "0", "--kernel-size", "3"]


def _npz(path, classes: int, shape: tuple[int, ...]):
    rng = np.random.default_rng(0)
    count = 12 * classes
    np.savez(
        path, images=rng.integers(0, 256, (count, *shape), dtype=np.uint8), labels=np.arange(count) % classes
    )
    return f"npz:{path}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    task = _npz(root / "three.npz", 3, (8, 8))
    run = root / "run"
    argv = ["train", "--task", task, *NET, "--epochs", "0.2", "--quiet", "--run-dir", str(run)]
    assert main(argv) == 0
    return root, run / "checkpoint.pt"


def _one_line(argv, capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(
    ("classes", "shape", "message"),
    [
        (2, (8, 8), "was trained for classes 3, but this task has classes 2"),
        (3, (8, 8, 3), "was trained for image channels 1, but this task has image channels 3"),
        (3, (12, 12), "was trained for image size 8x8, but this task has image size 12x12"),
    ],
)
def test_evaluate_refuses_a_task_the_checkpoint_does_not_fit(
    trained, monkeypatch, capsys, classes, shape, message
):
    root, checkpoint = trained
    monkeypatch.setenv("EQUINAS_CACHE", str(root / "cache"))
    task = _npz(root / f"other-{classes}-{len(shape)}-{shape[0]}.npz", classes, shape)
    line = _one_line(["evaluate", str(checkpoint), "--task", task], capsys)
    assert message in line and str(checkpoint) in line


def test_evaluate_on_the_same_task_passes(trained, monkeypatch, capsys) -> None:
    root, checkpoint = trained
    monkeypatch.setenv("EQUINAS_CACHE", str(root / "cache"))
    assert main(["evaluate", str(checkpoint), "--task", f"npz:{root / 'three.npz'}"]) == 0


def test_a_folder_or_a_pickle_is_named_for_what_it_is(trained, tmp_path, capsys) -> None:
    _, checkpoint = trained
    line = _one_line(["evaluate", str(checkpoint.parent), "--task", "npz:x.npz"], capsys)
    assert "is a folder; pass the checkpoint file" in line
    evil = tmp_path / "evil.pt"

    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"x": Payload()}, evil, pickle_module=pickle)
    line = _one_line(["evaluate", str(evil), "--task", "npz:x.npz"], capsys)
    assert "a pickle, which could run code" in line and "weights_only" not in line


def test_stdout_json_has_no_bare_nan(trained, monkeypatch, capsys) -> None:
    root, checkpoint = trained
    monkeypatch.setenv("EQUINAS_CACHE", str(root / "cache"))
    monkeypatch.setattr("equinas.train.evaluate", lambda *args: {"acc": float("nan"), "loss": float("inf")})
    assert main(["evaluate", str(checkpoint), "--task", f"npz:{root / 'three.npz'}"]) == 0

    def refuse(name):
        raise AssertionError(f"bare {name} in stdout")

    report = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert report["val"] == {"acc": None, "loss": None}
