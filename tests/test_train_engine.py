"""The training engine end to end on a tiny synthetic task (256 train images of 1x8x8)."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from equinas.data.task import Split, TaskData
from equinas.train import (
    CheckpointError,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    load_checkpoint,
    train,
)

TIME_KEYS = ("wall_time", "epoch_time")


def make_task(num_train: int = 256, num_classes: int = 2, size: int = 8) -> TaskData:
    """Class ``c`` brightens the ``c``-th horizontal band of the image: trivially separable."""
    generator = torch.Generator().manual_seed(1234)
    total = num_train + 128
    labels = torch.randint(0, num_classes, (total,), generator=generator)
    images = 0.3 * torch.randn(total, 1, size, size, generator=generator)
    band = size // num_classes
    for c in range(num_classes):
        images[labels == c, :, c * band : (c + 1) * band, :] += 1.0

    def split(start: int, stop: int) -> Split:
        return Split(images[start:stop], labels[start:stop])

    return TaskData(
        "bands", num_classes, split(0, num_train), split(num_train, num_train + 64), split(-64, None)
    )


class TinyNet(nn.Module):
    """conv -> relu -> 2x2 pool -> dropout -> linear. Dropout makes the global RNG matter."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, dropout: float = 0.1):
        super().__init__()
        self.in_channels = in_channels
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(16, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"TinyNet expects {self.in_channels} channels, got {x.shape[1]}")
        h = F.adaptive_avg_pool2d(F.relu(self.features(x)), 2).flatten(1)
        return self.head(self.drop(h))


class ArchNet(TinyNet):
    """A softmax(alpha)-weighted mix of a 3x3 and a 1x1 conv, with alpha as architecture."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 1)
        self.alpha = nn.Parameter(torch.zeros(2))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.alpha.softmax(0)
        return weights[0] * self.conv(x) + weights[1] * self.conv1(x)

    def architecture_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def architecture_summary(self) -> dict:
        return {"weights": self.alpha.softmax(0)}


def make_model(kind: type[TinyNet] = TinyNet) -> TinyNet:
    torch.manual_seed(0)
    return kind()


def config(**overrides) -> TrainConfig:
    values = {"epochs": 2, "batch_size": 32, "lr": 0.01, "device": "cpu", "log_every": 4}
    values["num_threads"] = 1  # tiny ops; also keeps timings stable on a busy machine
    return TrainConfig(**{**values, **overrides})


def run(model: nn.Module, cfg: TrainConfig, run_dir=None, **kwargs):
    return train(model, make_task(), cfg, run_dir, progress=False, **kwargs)


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def without_times(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k not in TIME_KEYS} for record in history]


def read_log(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


class Kill(Exception):
    """Stands in for the process being killed right after a checkpoint."""


class KillAfter:
    def __init__(self, epochs: float):
        self.epochs = epochs

    def on_epoch_end(self, state: dict) -> None:
        if state["epoch"] >= self.epochs:
            raise Kill


# -- learning, determinism, result --------------------------------------------------------


def test_learns_a_separable_task():
    result = run(make_model(), config(epochs=3))
    assert result.metrics["val_acc"] > 0.9 and result.metrics["test_acc"] > 0.9
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.epochs_done == 3.0 and result.device == "cpu"
    assert result.num_params == sum(p.numel() for p in TinyNet().parameters())
    assert result.best_val_acc == max(r["val_acc"] for r in result.history)
    json.dumps(result.to_dict(), allow_nan=False)


def test_same_config_and_data_give_bit_identical_runs():
    a, b = make_model(), make_model()
    result_a, result_b = run(a, config()), run(b, config())
    assert_same_weights(a, b)
    assert result_a.metrics == result_b.metrics
    assert without_times(result_a.history) == without_times(result_b.history)


def test_seed_changes_the_run():
    a, b = make_model(), make_model()
    run(a, config(seed=0)), run(b, config(seed=1))
    assert not torch.equal(a.head.weight, b.head.weight)


# -- fractional epochs --------------------------------------------------------------------


class CountingNet(TinyNet):
    def __init__(self) -> None:
        super().__init__()
        self.train_forwards = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.train_forwards += self.training
        return super().forward(x)


@pytest.mark.parametrize("epochs, steps", [(0.25, 2), (0.2, 2), (1.5, 12), (0.01, 1)])
def test_fractional_epochs_run_that_share_of_batches(epochs, steps):
    model = make_model(CountingNet)  # 256 examples / 32 per batch = 8 batches per epoch
    result = run(model, config(epochs=epochs))
    assert model.train_forwards == steps
    assert result.history[-1]["step"] == steps
    assert result.epochs_done == steps / 8


def test_partial_last_batch_is_used():
    model = make_model(CountingNet)
    result = train(model, make_task(num_train=70), config(epochs=1), progress=False)
    assert model.train_forwards == 3 and result.history[-1]["step"] == 3


# -- checkpoints and resumption -----------------------------------------------------------


def test_resume_equals_uninterrupted_bit_for_bit(tmp_path):
    reference = make_model()
    expected = run(reference, config(epochs=2))

    first = make_model()
    run(first, config(epochs=1), tmp_path)
    resumed = make_model()
    result = run(resumed, config(epochs=2), tmp_path, resume=True)

    assert_same_weights(reference, resumed)
    assert result.metrics == expected.metrics
    assert without_times(result.history) == without_times(expected.history)


@pytest.mark.parametrize("kind", [TinyNet, ArchNet])
def test_resume_after_kill_with_cosine_and_momentum(tmp_path, kind):
    cfg = config(epochs=3, optimizer="sgd", lr=0.05, scheduler="cosine", warmup_epochs=0.5, arch_lr=0.01)
    reference = make_model(kind)
    expected = run(reference, cfg)

    with pytest.raises(Kill):
        run(make_model(kind), cfg, tmp_path, callbacks=[KillAfter(1)])
    resumed = make_model(kind)
    result = run(resumed, cfg, tmp_path, resume=True)

    assert_same_weights(reference, resumed)
    assert result.metrics == expected.metrics
    epochs_logged = [e["epoch"] for e in read_log(tmp_path) if e["event"] == "epoch"]
    assert epochs_logged == [1.0, 2.0, 3.0]


def test_resume_from_a_fractional_epoch(tmp_path):
    reference = make_model()
    expected = run(reference, config(epochs=1.5))
    run(make_model(), config(epochs=0.5), tmp_path)
    resumed = make_model()
    result = run(resumed, config(epochs=1.5), tmp_path, resume=True)
    assert_same_weights(reference, resumed)
    assert result.metrics == expected.metrics
    assert [r["epoch"] for r in result.history] == [0.5, 1.0, 1.5]


def test_resume_after_kill_mid_epoch_drops_unsaved_log_events(tmp_path):
    run(make_model(), config(epochs=1, log_every=1), tmp_path)
    with (tmp_path / "log.jsonl").open("a") as log:  # a killed run's events and a torn line
        log.write(json.dumps({"event": "step", "step": 9, "loss": 1.0}) + '\n{"event": "st')
    run(make_model(), config(epochs=2, log_every=1), tmp_path, resume=True)
    steps = [e["step"] for e in read_log(tmp_path) if e["event"] == "step"]
    assert steps == list(range(1, 17))


def test_resuming_a_finished_run_only_evaluates(tmp_path):
    expected = run(make_model(), config(), tmp_path)
    model = make_model(CountingNet)
    result = run(model, config(), tmp_path, resume=True)
    assert model.train_forwards == 0
    assert result.metrics == expected.metrics


def test_checkpoint_loads_with_weights_only(tmp_path):
    meta = {"arch": {"layers": [{"group": "C4", "channels": 4}]}, "note": "spec"}
    cfg = config(epochs=1.5, arch_lr=0.01)
    run(make_model(ArchNet), cfg, tmp_path, metadata=meta)
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert set(checkpoint) == {
        "format_version", "model", "optimizer", "arch_optimizer", "grad_scaler", "global_step",
        "steps_per_epoch", "num_train", "epochs_done", "wall_time", "rng", "history", "config",
        "metadata", "data_fingerprint",
    }  # fmt: skip
    assert checkpoint["metadata"] == meta
    assert checkpoint["config"] == cfg.to_dict()
    assert checkpoint["global_step"] == 12 and checkpoint["epochs_done"] == 1.5
    assert isinstance(checkpoint["rng"]["torch_cpu"], torch.Tensor)
    assert [r["epoch"] for r in checkpoint["history"]] == [1.0, 1.5]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["metadata"] == meta


def test_run_dir_holds_only_final_files(tmp_path):
    run(make_model(), config(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.pt",
        "log.jsonl",
        "summary.json",
    ]


@pytest.mark.parametrize("keep", [0, 100])
def test_corrupt_checkpoint_is_an_error_not_a_restart(tmp_path, keep):
    run(make_model(), config(epochs=1), tmp_path)
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        run(make_model(), config(), tmp_path, resume=True)


def test_existing_checkpoint_needs_resume(tmp_path):
    run(make_model(), config(epochs=1), tmp_path)
    with pytest.raises(FileExistsError, match="resume=True"):
        run(make_model(), config(epochs=1), tmp_path)


def test_resume_refuses_a_changed_config(tmp_path):
    run(make_model(), config(epochs=1), tmp_path)
    with pytest.raises(ValueError, match=r"lr: 0.01 -> 0.02"):
        run(make_model(), config(epochs=2, lr=0.02), tmp_path, resume=True)


def test_resume_without_checkpoint_starts_fresh_and_without_run_dir_fails(tmp_path):
    expected = run(make_model(), config(epochs=1))
    result = run(make_model(), config(epochs=1), tmp_path / "new", resume=True)
    assert result.metrics == expected.metrics
    with pytest.raises(ValueError, match="run_dir"):
        run(make_model(), config(), resume=True)


def test_checkpoint_of_another_model_is_a_checkpoint_error(tmp_path):
    run(make_model(), config(epochs=1), tmp_path)

    class Wider(TinyNet):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(16, 2, bias=False)

    with pytest.raises(CheckpointError, match="does not fit"):
        run(Wider(), config(), tmp_path, resume=True)


# -- divergence ---------------------------------------------------------------------------


class ExplodingNet(TinyNet):
    """Its regularisation term becomes NaN once epoch ``explode_at`` starts."""

    def __init__(self, explode_at: int = 1):
        super().__init__()
        self.explode_at, self.epoch = explode_at, 0

    def set_training_progress(self, epoch: int, num_epochs: int) -> None:
        self.epoch = epoch

    def regularization_loss(self) -> torch.Tensor:
        return torch.tensor(float("nan") if self.epoch >= self.explode_at else 0.0)


def test_nan_loss_raises_and_keeps_last_good_checkpoint(tmp_path):
    model = make_model(ExplodingNet)
    with pytest.raises(TrainingDiverged, match=r"epoch 1 at step 9.*nan.*learning rate") as info:
        run(model, config(epochs=3), tmp_path)
    assert info.value.epoch == 1 and info.value.step == 9
    assert "checkpoint.pt is intact" in str(info.value)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint["global_step"] == 8
    assert torch.isfinite(checkpoint["model"]["head.weight"]).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "log.jsonl"]
    assert read_log(tmp_path)[-1]["event"] == "diverged"


def test_nan_loss_in_first_epoch_raises_a_picklable_error_without_run_dir():
    with pytest.raises(TrainingDiverged, match="no checkpoint was written") as info:
        run(make_model(lambda: ExplodingNet(explode_at=0)), config())
    clone = pickle.loads(pickle.dumps(info.value))
    assert (str(clone), clone.epoch, clone.step) == (str(info.value), 0, 1)


def test_empty_search_split_is_rejected_for_architecture_search():
    empty = make_task().val.subset(0)
    with pytest.raises(ValueError, match="non-empty search split"):
        run(make_model(ArchNet), config(arch_lr=0.01), search_split=empty)


# -- hooks --------------------------------------------------------------------------------


class RegularizedNet(TinyNet):
    def regularization_loss(self) -> torch.Tensor:
        return 3.0 * self.head.bias.sum()


def test_regularization_loss_adds_its_gradient():
    cfg = config(epochs=1 / 8, optimizer="sgd", momentum=0.0, lr=0.1)  # exactly one step
    plain, regularized = make_model(), make_model(RegularizedNet)
    run(plain, cfg), run(regularized, cfg)
    # d(3 * sum(bias)) / d(bias) = 3, so SGD moves the bias by a further -lr * 3.
    assert torch.allclose(regularized.head.bias, plain.head.bias - 0.3, atol=1e-6)
    assert torch.equal(regularized.head.weight, plain.head.weight)


class ProgressNet(TinyNet):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int]] = []

    def set_training_progress(self, epoch: int, num_epochs: int) -> None:
        self.calls.append((epoch, num_epochs))


@pytest.mark.parametrize("epochs", [3, 2.5])
def test_set_training_progress_is_called_before_every_epoch(epochs):
    model = make_model(ProgressNet)
    run(model, config(epochs=epochs))
    assert model.calls == [(0, 3), (1, 3), (2, 3)]


class SpyArchNet(ArchNet):
    """Records, per training forward, whether the batch is a search batch and alpha then."""

    def __init__(self) -> None:
        super().__init__()
        self.trace: list[tuple[bool, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.trace.append((bool((x[:, 0, 0, 0] == 100.0).all()), self.alpha.detach().clone()))
        return super().forward(x)


def search_split() -> Split:
    """A marked search split: pixel (0, 0) is 100 so the spy can tell its batches apart."""
    val = make_task().val
    images = val.images.clone()
    images[:, 0, 0, 0] = 100.0
    return Split(images, val.labels)


def test_architecture_parameters_move_only_on_search_batches():
    model = make_model(SpyArchNet)
    trainer = Trainer(model, make_task(), config(arch_lr=0.05), search_split=search_split(), progress=False)
    weight_ids = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert id(model.alpha) not in weight_ids
    assert [p for group in trainer.arch_optimizer.param_groups for p in group["params"]] == [model.alpha]
    result = trainer.run()

    kinds = [is_search for is_search, _ in model.trace]
    assert kinds == [False, True] * 16  # 2 epochs x 8 weight steps, each followed by a search
    alphas = [alpha for _, alpha in model.trace] + [model.alpha.detach()]
    for (is_search, before), after in zip(model.trace, alphas[1:], strict=True):
        assert torch.equal(before, after) != is_search
    assert result.history[-1]["architecture"]["weights"] == pytest.approx(model.alpha.softmax(0).tolist())
    assert "arch_loss" in result.history[-1]


def test_architecture_parameters_stay_frozen_without_arch_lr():
    model = make_model(ArchNet)
    trainer = Trainer(model, make_task(), config(), progress=False)
    assert trainer.arch_optimizer is None
    trainer.run()
    assert torch.equal(model.alpha, torch.zeros(2))


# -- schedules, logs, callbacks -----------------------------------------------------------


def test_cosine_ends_near_zero_lr(tmp_path):
    result = run(make_model(), config(epochs=3, scheduler="cosine", log_every=1), tmp_path)
    lrs = [e["lr"] for e in read_log(tmp_path) if e["event"] == "step"]
    assert len(lrs) == 24 and lrs[0] == 0.01
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    assert result.history[-1]["lr"] == lrs[-1] < 0.01 * 0.01


def test_log_and_summary_are_valid_json(tmp_path):
    result = run(make_model(), config(), tmp_path, metadata={"spec": "tiny"})
    events = read_log(tmp_path)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert kinds.count("epoch") == 2 and kinds.count("step") == 4  # 16 steps, log_every=4
    assert all({"event", "step", "time"} <= set(e) for e in events)
    epoch = next(e for e in events if e["event"] == "epoch")
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "wall_time", "epoch_time"} <= set(epoch)

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["metrics"] == result.metrics
    assert summary["best_val_acc"] == result.best_val_acc
    assert summary["best_val_epoch"] in (1.0, 2.0)
    assert summary["num_params"] == result.num_params
    assert summary["config"] == config().to_dict()
    assert summary["metadata"] == {"spec": "tiny"}
    assert {"wall_time", "device", "epochs_done"} <= set(summary)


def test_callbacks_see_each_epoch():
    seen = []

    class Recorder:
        def on_epoch_end(self, state: dict) -> None:
            seen.append((state["epoch"], len(state["history"]), state["model"] is model))

    model = make_model()
    run(model, config(epochs=1.5), callbacks=[Recorder()])
    assert seen == [(1.0, 1, True), (1.5, 2, True)]


def test_callback_without_on_epoch_end_is_rejected():
    with pytest.raises(TypeError, match="on_epoch_end"):
        run(make_model(), config(), callbacks=[print])


# -- bad input ----------------------------------------------------------------------------


def test_empty_train_split_is_a_clear_error():
    task = make_task()
    empty = TaskData("empty", 2, task.train.subset(0), task.val, task.test)
    with pytest.raises(ValueError, match="empty train split"):
        train(make_model(), empty, config(), progress=False)


def test_channel_mismatch_surfaces_the_models_error():
    with pytest.raises(ValueError, match="TinyNet expects 3 channels, got 1"):
        run(TinyNet(in_channels=3), config())


def test_wrong_number_of_logits_is_a_clear_error():
    with pytest.raises(ValueError, match=r"logits of shape \(32, 5\).*\[32, 2\]"):
        run(TinyNet(num_classes=5), config())


def test_unserialisable_metadata_is_rejected():
    with pytest.raises(ValueError, match="metadata must be JSON-able"):
        run(make_model(), config(), metadata={"model": TinyNet()})


# -- CUDA (skipped without a GPU) ---------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp_dtype", ["bfloat16", "float16"])
def test_cuda_mixed_precision_trains_and_resumes(tmp_path, amp_dtype):
    cfg = config(device="cuda", amp=True, amp_dtype=amp_dtype, arch_lr=0.01, grad_clip=1.0)
    with pytest.raises(Kill):
        run(make_model(ArchNet), cfg, tmp_path, callbacks=[KillAfter(1)])
    model = make_model(ArchNet)
    result = run(model, cfg, tmp_path, resume=True)
    assert model.alpha.device.type == "cuda" and result.device.startswith("cuda")
    assert result.metrics["val_acc"] > 0.9
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert bool(checkpoint["grad_scaler"]) == (amp_dtype == "float16")
    assert len(checkpoint["rng"]["torch_cuda"]) == torch.cuda.device_count()


def test_validating_less_often_changes_no_weight_and_no_final_metric():
    cfg = config(epochs=3, bn_recalibration=2)
    model_every, model_last = make_model(), make_model()
    every = run(model_every, cfg)
    last = run(model_last, config(epochs=3, bn_recalibration=2, eval_every=5))
    assert [r.get("val_acc") is not None for r in last.history] == [False, False, True]
    assert last.metrics == every.metrics
    assert_same_weights(model_every, model_last)
