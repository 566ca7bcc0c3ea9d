"""``--tensorboard``: the trainer callback's scalars, alphas and groups, and the command line."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import SMALL_NET_ARGS, synthetic_task
from equinas.cli import main
from equinas.models import build_model
from equinas.search import BackboneSettings
from equinas.train import TrainConfig, train
from equinas.train.tensorboard import TensorBoardLogger


class FakeWriter:
    """Records what a ``SummaryWriter`` would write."""

    def __init__(self) -> None:
        self.scalars: dict[str, list[tuple[int, float]]] = {}
        self.texts: list[tuple[str, str, int]] = []
        self.closed = False

    def add_scalar(self, tag: str, value: float, global_step: int) -> None:
        self.scalars.setdefault(tag, []).append((global_step, value))

    def add_text(self, tag: str, text: str, global_step: int) -> None:
        self.texts.append((tag, text, global_step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_mixed_network_logs_alphas_and_leading_groups():
    data = synthetic_task(n_train=64, n_val=32, n_test=32)
    backbone = BackboneSettings(widths=(2, 2), pools_after=(0,), kernel_size=3, hidden=None)
    spec = backbone.spec(data, "C1", kind="mixed").to_dict()
    for layer in spec["layers"]:
        layer["groups"] = ["C1", "C4", "D4"]
    model = build_model(spec)
    writer = FakeWriter()
    logger = TensorBoardLogger("unused", writer=writer)
    config = TrainConfig(epochs=2, batch_size=32, lr=3e-3, arch_lr=0.05, num_threads=1)
    result = train(model, data, config, progress=False, callbacks=[logger])
    logger.write_final(result.metrics, result.history[-1]["step"])
    steps = [record["step"] for record in result.history]
    for tag in ("loss/train", "accuracy/train", "loss/val", "accuracy/val", "loss/arch", "lr"):
        assert [s for s, _ in writer.scalars[tag]] == steps
    assert writer.scalars["accuracy/val"][-1][1] == result.history[-1]["val_acc"]
    summary = result.history[-1]["architecture"]
    for layer, weights in summary.items():
        for group, value in weights.items():
            assert writer.scalars[f"alpha/{layer}/{group}"][-1] == (steps[-1], value)
    leading = [max(summary[f"layer{i}"], key=summary[f"layer{i}"].get) for i in range(2)]
    assert writer.texts[-1][:2] == ("groups", " ".join(leading))
    assert writer.scalars["accuracy/test"] == [(steps[-1], result.metrics["test_acc"])] and writer.closed


def _npz_task(tmp_path) -> str:
    rng = np.random.default_rng(0)
    labels = np.arange(80) % 2
    images = rng.integers(0, 50, (80, 8, 8), dtype=np.uint8)
    images[labels == 1, 2:5, 2:5] = 255
    np.savez(tmp_path / "tiny.npz", images=images, labels=labels)
    return f"npz:{tmp_path / 'tiny.npz'}"


def test_command_line_writes_event_files(tmp_path, capsys):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run = tmp_path / "run"
    task = _npz_task(tmp_path)
    args = ["train", "--task", task, "--arch", "C4", "--epochs", "1", "--run-dir", str(run), "--quiet"]
    assert main([*args, *SMALL_NET_ARGS, "--tensorboard"]) == 0
    events = event_accumulator.EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/train", "accuracy/train", "loss/val", "accuracy/val", "accuracy/test", "lr"} <= tags
    assert "groups/text_summary" in events.Tags()["tensors"]  # how text summaries are stored
    search = [
        "search",
        "fixed",
        "--task",
        task,
        "--groups",
        "C2",
        "--epochs",
        "1",
        "--run-dir",
        str(tmp_path / "s"),
    ]
    assert main([*search, *SMALL_NET_ARGS, "--quiet", "--tensorboard"]) == 0
    assert list((tmp_path / "s" / "tensorboard" / "fixed-C2").glob("events.out.tfevents.*"))


def test_without_the_package_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    task = _npz_task(tmp_path)
    args = ["train", "--task", task, "--arch", "C4", "--epochs", "1", "--run-dir", str(tmp_path / "r")]
    assert main([*args, *SMALL_NET_ARGS, "--tensorboard"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --tensorboard needs the optional dependency 'tensorboard': pip install tensorboard"
    assert not (tmp_path / "r").exists()
    assert main([*args, *SMALL_NET_ARGS, "--quiet"]) == 0  # without --tensorboard nothing changes
    assert not (tmp_path / "r" / "tensorboard").exists()
