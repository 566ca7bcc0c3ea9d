"""The training engine shared by every model and search: ``Trainer`` and ``train``."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from equinas.atomic import remove_stale_temp_files
from equinas.data.task import Split, TaskData
from equinas.nn.layout import set_memory_format
from equinas.run_lock import hold_run_directory
from equinas.runlog import RunLog, json_metadata, jsonable
from equinas.train import hooks
from equinas.train.augment import Augmenter
from equinas.train.bilevel import ArchitectureSteps
from equinas.train.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    restore_trainer,
    save_checkpoint,
    trainer_checkpoint,
)
from equinas.train.config import TrainConfig, step_at
from equinas.train.evaluate import evaluate
from equinas.train.norm_stats import recalibrate_batch_norm
from equinas.train.objective import LabelLoss, Objective
from equinas.train.optim import LRSchedule, build_optimizer
from equinas.train.result import DIVERGENCE_ADVICE, TrainingDiverged, TrainResult
from equinas.train.rng import (
    derived_generator,
    seed_everything,
)
from equinas.train.runtime import (
    amp_dtype,
    autocast,
    dtype_name,
    keep_freed_memory,
    memory_format,
    resolve_device,
)
from equinas.train.threads import resolve_threads, torch_threads


class Trainer:
    """Trains ``model`` on ``data`` as ``config`` says; ``run()`` does the work.

    Each epoch visits the train split in an order drawn from ``(config.seed, epoch)`` only, in
    batches of ``config.batch_size`` (the last one may be smaller); ``config.epochs`` may end
    part-way through an epoch. Every step minimises ``objective`` (default ``LabelLoss``:
    cross-entropy plus the model's ``regularization_loss()``; ``equinas.train.objective``).
    When the model has ``architecture_parameters()`` they are left out of the weight
    optimizer; with ``config.arch_lr > 0`` weight steps are followed by Adam steps of them on
    the cross-entropy of batches of ``search_split`` (default ``data.val``) as
    ``equinas.train.bilevel`` says. With ``config.augment`` every training
    batch is transformed by random elements drawn from ``(config.seed, step)`` (architecture
    and validation batches are not). After each epoch: validation,
    ``architecture_summary()``, checkpoint and log (with a ``run_dir``), then callbacks'
    ``on_epoch_end(state)``, where ``state`` is the epoch record plus ``history``, ``model``
    and ``run_dir``. A model that draws random choices adds ``score_function_loss(losses)``
    of the step's per-example cross-entropies to ``LabelLoss`` (``equinas.train.hooks``).
    """

    def __init__(
        self,
        model: nn.Module,
        data: TaskData,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        *,
        search_split: Split | None = None,
        metadata: dict[str, Any] | None = None,
        callbacks: Iterable[Any] = (),
        progress: bool = True,
        objective: Objective | None = None,
    ) -> None:
        if len(data.train) == 0:
            raise ValueError(f"task {data.name!r} has an empty train split; nothing to train on")
        config = config if config is not None else TrainConfig()
        # the records (log, checkpoint) hold the thread count resolved here, not "auto"
        self.config = replace(config, num_threads=resolve_threads(config.num_threads))
        self.data = data
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.metadata = json_metadata(metadata)
        self.callbacks = hooks.epoch_callbacks(callbacks)
        self.progress = progress

        self.device = resolve_device(self.config.device)
        self.amp_dtype = amp_dtype(self.config, self.device)
        self.model = set_memory_format(model.to(self.device), memory_format(self.config, self.device))
        arch_params = hooks.architecture_parameters(self.model)
        arch_ids = {id(p) for p in arch_params}
        self.weight_params = [p for p in self.model.parameters() if p.requires_grad and id(p) not in arch_ids]
        self.optimizer = build_optimizer(self.weight_params, self.config)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.objective: Objective = objective if objective is not None else LabelLoss()

        self._train = data.train.to(self.device)
        self._val = data.val.to(self.device)
        batch_size = self.config.batch_size
        self.steps_per_epoch = math.ceil(len(data.train) / batch_size)
        search = self._val if search_split is None else search_split.to(self.device)
        self.arch = ArchitectureSteps(arch_params, self.config, search, self.steps_per_epoch, data.name)
        self.arch_optimizer = self.arch.optimizer
        self.total_steps = max(1, step_at(self.config.epochs, self.steps_per_epoch))
        self.num_epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.schedule = LRSchedule(self.config, self.steps_per_epoch, self.total_steps)
        self.augment = Augmenter(self.config.augment, self.config.seed, background=self._train.background)

        start, stop = self.config.span or (0.0, self.config.epochs)
        self.stop_step = min(self.total_steps, max(1, step_at(stop, self.steps_per_epoch)))
        self.global_step = min(step_at(start, self.steps_per_epoch), self.stop_step - 1)
        self.history: list[dict[str, Any]] = []
        self.wall_time = 0.0
        self._log: RunLog | None = None

    @functools.cached_property
    def data_fingerprint(self) -> dict[str, str]:
        return self.data.fingerprint()

    @property
    def checkpoint_path(self) -> Path | None:
        return self.run_dir / CHECKPOINT_NAME if self.run_dir is not None else None

    @property
    def epochs_done(self) -> float:
        return self.global_step / self.steps_per_epoch

    def run(self, resume: bool = False) -> TrainResult:
        """Train to ``config.epochs`` or the end of ``config.span`` (continuing from the
        checkpoint when ``resume``), then evaluate on the test split. A finished checkpoint is
        only re-evaluated. The run directory is locked meanwhile (``RunDirectoryBusy`` when
        another process uses it)."""
        if self.run_dir is None:
            return self._run(resume)
        with hold_run_directory(self.run_dir):
            return self._run(resume)

    def _run(self, resume: bool) -> TrainResult:
        keep_freed_memory()
        self._open(resume)
        with torch_threads(self.config.num_threads):
            bar = tqdm(
                total=self.stop_step,
                initial=self.global_step,
                unit="step",
                disable=None if self.progress else True,
                dynamic_ncols=True,
            )
            with bar:
                while self.global_step < self.stop_step:
                    self._run_epoch(bar)
            return self._finish()

    # -- setup and resumption -------------------------------------------------------------

    def _open(self, resume: bool) -> None:
        """Seed a fresh run, or restore the checkpoint; prepare the run directory's log."""
        path = self.checkpoint_path
        if path is None:
            if resume:
                raise ValueError("resume=True needs a run_dir holding the checkpoint")
            seed_everything(self.config.seed)
            return
        if (path.parent / "search.json").exists():
            raise ValueError(f"{path.parent} holds a search run (search.json); train into another folder")
        remove_stale_temp_files(path)
        log = self._log = RunLog(path.parent)
        if path.exists():
            if not resume:
                raise FileExistsError(
                    f"{path} already exists; pass resume=True to continue that run, or use another run_dir"
                )
            restore_trainer(self, load_checkpoint(path), path)
            log.truncate_after(self.global_step)
            log.write("resume", self.global_step, epoch=self.epochs_done, autocast=dtype_name(self.amp_dtype))
        else:
            seed_everything(self.config.seed)
            log.start_fresh()
            log.write(
                "start",
                0,
                task=self.data.name,
                config=self.config.to_dict(),
                device=str(self.device),
                autocast=dtype_name(self.amp_dtype),
                num_params=_num_params(self.model),
                metadata=self.metadata,
            )

    # -- training ---------------------------------------------------------------------------

    def _run_epoch(self, bar: tqdm) -> None:
        """Train from the current step to the end of its epoch (or of the run), then wrap up."""
        started = time.perf_counter()
        epoch, first = divmod(self.global_step, self.steps_per_epoch)
        last = min(self.steps_per_epoch, self.stop_step - epoch * self.steps_per_epoch)
        batch_size = self.config.batch_size
        hooks.set_training_progress(self.model, epoch, self.num_epochs)
        order = torch.randperm(
            len(self._train), generator=derived_generator(self.config.seed, "train", epoch)
        ).to(self.device)
        bar.set_description(f"epoch {epoch + 1}/{self.num_epochs}")
        self.model.train()
        totals = {"loss": 0.0, "correct": 0.0, "seen": 0, "arch_loss": 0.0, "arch_steps": 0}
        lr = self.config.lr
        for batch in range(first, last):
            index = order[batch * batch_size : (batch + 1) * batch_size]
            lr = self.schedule.apply(self.optimizer, self.global_step)
            images = self.augment(self._train.batch(index), self.global_step)
            loss, ce, correct = self._weight_step(images, self._train.labels[index], epoch, lr)
            totals["loss"] += loss * len(index)
            totals["correct"] += correct
            totals["seen"] += len(index)
            arch_index = self.arch.index(self.global_step)
            if arch_index is not None:
                totals["arch_loss"] += self._arch_step(arch_index, epoch, lr)
                totals["arch_steps"] += 1
            self.global_step += 1
            hooks.set_training_time(self.model, self.epochs_done)
            bar.update(1)
            bar.set_postfix(
                loss=f"{totals['loss'] / totals['seen']:.4f}",
                acc=f"{totals['correct'] / totals['seen']:.3f}",
                refresh=False,
            )
            if (
                self._log is not None
                and self.config.log_every
                and (self.global_step % self.config.log_every == 0)
            ):
                self._log.write("step", self.global_step, epoch=self.epochs_done, loss=loss, ce=ce, lr=lr)
        record: dict[str, Any] = {
            "epoch": self.epochs_done,
            "epoch_index": epoch,
            "step": self.global_step,
            "train_loss": totals["loss"] / totals["seen"],
            "train_acc": totals["correct"] / totals["seen"],
            "lr": lr,
        }
        if totals["arch_steps"]:
            record["arch_loss"] = totals["arch_loss"] / totals["arch_steps"]
        self._end_epoch(record, started)

    def _weight_step(
        self, images: torch.Tensor, labels: torch.Tensor, epoch: int, lr: float
    ) -> tuple[float, float, float]:
        """One optimizer step on the weights; returns (loss, cross-entropy, #correct)."""
        with autocast(self.device, self.amp_dtype):
            logits = self.model(images)
            self._check_logits(logits, len(labels))
            loss, ce = self.objective(self.model, images, labels, logits)
        correct = (logits.argmax(dim=1) == labels).sum()
        loss_value, ce_value, correct_value = torch.stack(
            [loss.detach().float(), ce.detach().float(), correct.float()]
        ).tolist()
        self._check_finite(loss_value, epoch, "training", lr)
        self.model.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.weight_params, self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss_value, ce_value, correct_value

    def _arch_step(self, index: int, epoch: int, lr: float) -> float:
        """Architecture step ``index``: one Adam step on the search batch ``index``; its loss."""
        images, labels = self.arch.batch(index)
        with autocast(self.device, self.amp_dtype):
            loss = F.cross_entropy(self.model(images).float(), labels)
        value = loss.item()
        self._check_finite(value, epoch, "architecture search", lr)
        self.model.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        assert self.arch_optimizer is not None, "an architecture step needs an architecture optimizer"
        self.scaler.step(self.arch_optimizer)
        self.scaler.update()
        return value

    def _check_logits(self, logits: torch.Tensor, batch: int) -> None:
        expected = (batch, self.data.num_classes)
        if tuple(logits.shape) != expected:
            raise ValueError(
                f"the model returned logits of shape {tuple(logits.shape)}; task "
                f"{self.data.name!r} needs {list(expected)} ([batch, num_classes])"
            )

    def _check_finite(self, loss: float, epoch: int, phase: str, lr: float) -> None:
        if math.isfinite(loss):
            return
        step = self.global_step + 1
        path = self.checkpoint_path
        where = (
            f"the last good checkpoint {path} is intact"
            if path is not None and path.exists()
            else "no checkpoint was written"
        )
        message = (
            f"training diverged in epoch {epoch} at step {step} ({phase} loss is {loss}, lr={lr:g}); "
            f"{DIVERGENCE_ADVICE}; {where}"
        )
        if self._log is not None:
            self._log.write("diverged", step, epoch=epoch, loss=str(loss), message=message)
        raise TrainingDiverged(message, epoch, step, loss)

    # -- end of epoch and of run ------------------------------------------------------------

    def _end_epoch(self, record: dict[str, Any], started: float) -> None:
        """Recalibrate norms and validate (at every ``eval_every``-th epoch and the last one),
        summarise the architecture, checkpoint, log, call callbacks."""
        last = self.global_step >= self.stop_step
        if last or (record["epoch_index"] + 1) % self.config.eval_every == 0:
            self._validate(record)
        architecture = hooks.architecture_summary(self.model)
        if architecture is not None:
            record["architecture"] = architecture
        elapsed = time.perf_counter() - started
        self.wall_time += elapsed
        record["epoch_time"] = elapsed
        record["wall_time"] = self.wall_time
        record = jsonable(record)
        self.history.append(record)
        path = self.checkpoint_path
        if self._log is not None and path is not None:
            save_checkpoint(path, trainer_checkpoint(self))
            self._log.write("epoch", **record)
        state = {
            **record,
            "history": list(self.history),
            "model": self.model,
            "run_dir": self.run_dir,
        }
        for callback in self.callbacks:
            callback.on_epoch_end(state)

    def _validate(self, record: dict[str, Any]) -> None:
        """Recalibrate batch norms (``bn_recalibration`` batches), then score the val split."""
        if self.config.bn_recalibration:
            recalibrate_batch_norm(
                self.model,
                self._train,
                self.config.bn_recalibration,
                self.config.batch_size,
                derived_generator(self.config.seed, "bn-recalibration", 0),
                self.amp_dtype,
            )
        if len(self._val) > 0:
            val = self._evaluate(self._val)
            record["val_loss"], record["val_acc"] = val["loss"], val["acc"]

    def _evaluate(self, split: Split) -> dict[str, float | int]:
        return evaluate(self.model, split, self.config.eval_batch_size, self.device, self.amp_dtype)

    def _finish(self) -> TrainResult:
        """Test evaluation, the result, and (with a run_dir) the end event and summary."""
        last = self.history[-1]
        metrics = {
            "train_loss": last["train_loss"],
            "train_acc": last["train_acc"],
            "val_loss": last.get("val_loss"),
            "val_acc": last.get("val_acc"),
            "test_loss": None,
            "test_acc": None,
        }
        if len(self.data.test) > 0:
            test = self._evaluate(self.data.test)
            metrics["test_loss"], metrics["test_acc"] = test["loss"], test["acc"]
        scored = [r for r in self.history if r.get("val_acc") is not None]
        best = max(scored, key=lambda r: r["val_acc"], default=None)
        result = TrainResult(
            metrics=metrics,
            history=list(self.history),
            best_val_acc=best["val_acc"] if best is not None else None,
            best_val_epoch=best["epoch"] if best is not None else None,
            epochs_done=self.epochs_done,
            wall_time=self.wall_time,
            device=str(self.device),
            num_params=_num_params(self.model),
            autocast=dtype_name(self.amp_dtype),
        )
        if self._log is not None:
            self._log.write("end", self.global_step, metrics=metrics, wall_time=self.wall_time)
            summary = {"task": self.data.name, **result.to_dict()}
            del summary["history"]
            summary.update(config=self.config.to_dict(), metadata=self.metadata)
            self._log.write_summary(summary)
        return result


def train(
    model: nn.Module,
    data: TaskData,
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Iterable[Any] = (),
    *,
    search_split: Split | None = None,
    metadata: dict[str, Any] | None = None,
    objective: Objective | None = None,
) -> TrainResult:
    """``Trainer(model, data, config, run_dir, ...).run(resume)``; see ``Trainer``."""
    trainer = Trainer(
        model,
        data,
        config,
        run_dir,
        search_split=search_split,
        metadata=metadata,
        callbacks=callbacks,
        progress=progress,
        objective=objective,
    )
    return trainer.run(resume)


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
