"""Evaluate one candidate architecture: build, (inherit weights,) train, measure.

``run_candidate`` is the unit of work every search method sends to an executor; it is a
module-level function of picklable arguments so that Ray workers can run it.
"""

from __future__ import annotations

import contextlib
import zlib
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

import torch

from equinas.data.task import TaskData
from equinas.metrics import equivariance_summary
from equinas.metrics.cost import ComputeMeter
from equinas.models import build_model, describe_layers
from equinas.search.record import STATUS_DIVERGED, CandidateRecord
from equinas.train import TrainConfig, TrainingDiverged, evaluate, train
from equinas.train.norm_stats import recalibrate_batch_norm
from equinas.train.rng import derived_generator
from equinas.train.runtime import amp_dtype
from equinas.train.tensorboard import TensorBoardLogger

EQUIVARIANCE_BATCH = 32


def candidate_seed(search_seed: int, candidate_id: str) -> int:
    """A stable per-candidate seed (independent of execution order and of the executor)."""
    return zlib.crc32(f"{search_seed}:{candidate_id}".encode()) & 0x7FFFFFFF


class ProbeRecorder(AbstractContextManager[Any]):
    """What a ``TrainingProbe`` attaches to a model: active inside its ``with`` block (the
    training), then ``stats()`` gives its findings as JSON values."""

    def stats(self) -> Any:
        raise NotImplementedError


class TrainingProbe(Protocol):
    """A picklable request to watch a candidate's training steps (e.g. EquiNAS_G's
    ``relaxation_signal.RelaxationSignal``); its findings go into ``record.extra[key]``. It
    travels in the ``CandidateJob``, so the worker knows no method's probe."""

    key: ClassVar[str]

    def recorder(self, model: torch.nn.Module, config: TrainConfig, data: TaskData) -> ProbeRecorder: ...


@dataclass
class CandidateJob:
    """Everything needed to evaluate one candidate anywhere.

    ``state`` holds inherited weights (EquiNAS_E children start from their relaxed parent);
    ``train`` is a ``TrainConfig.to_dict()``; ``return_state`` asks for the trained weights;
    ``tensorboard`` is a folder for TensorBoard event files (``TensorBoardLogger``), or None;
    ``probe`` watches the training steps (``TrainingProbe``); ``score=False`` skips
    everything after training (batch-norm recalibration, validation, test, equivariance
    errors): for an intermediate stage whose weights only go on training, its record has no
    accuracies and its cost is the training alone.
    """

    candidate_id: str
    method: str
    spec: dict[str, Any]
    train: dict[str, Any]
    seed: int
    state: dict[str, torch.Tensor] | None = None
    generation: int = 0
    parent_id: str | None = None
    mutation: str | None = None
    lineage_epochs: float = 0.0
    return_state: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    tensorboard: str | None = None
    probe: TrainingProbe | None = None
    score: bool = True


@dataclass
class CandidateOutcome:
    record: CandidateRecord
    state: dict[str, torch.Tensor] | None


def measure_equivariance(model: torch.nn.Module, data: TaskData) -> dict[str, Any]:
    """Per-block and output equivariance errors under the model's ambient group (CNNs only)."""
    ambient = getattr(model, "ambient", None)
    if ambient is None or not hasattr(model, "features") or len(data.val) == 0:
        return {}
    device = next(model.parameters()).device
    return equivariance_summary(model, data.val.batch(slice(EQUIVARIANCE_BATCH)).to(device))


def run_candidate(job: CandidateJob, data: TaskData) -> CandidateOutcome:
    """Build ``job.spec``, load inherited weights, train with ``job.train``, measure.

    A run whose loss becomes NaN/inf gives a record with status ``"diverged"`` (where it
    happened in ``extra["divergence"]``, no accuracies, no weights) instead of an exception,
    so that one bad candidate cannot stop a search. The record's ``cost`` counts everything
    this evaluation computed, a diverged run up to the failing step.
    """
    torch.manual_seed(job.seed)
    model = build_model(job.spec)
    if job.state is not None:
        model.load_state_dict(job.state)
    config = TrainConfig.from_dict({**job.train, "seed": job.seed})
    if not job.score:
        config = replace(config, bn_recalibration=0)
        data = replace(data, val=data.val.subset(0), test=data.test.subset(0))
    start, stop = config.span or (0.0, config.epochs)
    record = CandidateRecord(
        candidate_id=job.candidate_id,
        method=job.method,
        spec=job.spec,
        groups=describe_layers(job.spec),
        params=sum(p.numel() for p in model.parameters()),
        val_acc=None,
        test_acc=None,
        epochs=stop - start,
        lineage_epochs=job.lineage_epochs + stop - start,
        generation=job.generation,
        parent_id=job.parent_id,
        mutation=job.mutation,
        seed=job.seed,
        extra=dict(job.extra),
    )
    logger = TensorBoardLogger(job.tensorboard) if job.tensorboard else None
    probe = job.probe
    recorder = probe.recorder(model, config, data) if probe is not None else None
    with ComputeMeter(model, data.train.batch(0)) as meter:
        try:
            with recorder if recorder is not None else contextlib.nullcontext():
                result = train(model, data, config, progress=False, callbacks=[logger] if logger else ())
        except TrainingDiverged as err:
            record.status = STATUS_DIVERGED
            record.extra["divergence"] = {"epoch": err.epoch, "step": err.step, "loss": str(err.loss)}
        else:
            metrics = result.metrics
            record.val_acc, record.test_acc = metrics["val_acc"], metrics["test_acc"]
            record.val_loss, record.test_loss = metrics["val_loss"], metrics["test_loss"]
            record.train_loss = metrics["train_loss"]
            record.extra["history"] = result.history
            if result.autocast is not None:
                record.extra["autocast"] = result.autocast
            record.equivariance = measure_equivariance(model, data)
            if probe is not None and recorder is not None:
                record.extra[probe.key] = recorder.stats()
            if logger is not None:
                logger.write_final(metrics, result.history[-1]["step"])
    cost = meter.cost()
    record.cost, record.time_s = cost.to_dict(), cost.train_seconds
    keep = job.return_state and record.ok
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()} if keep else None
    return CandidateOutcome(record, state)


def score_here(
    model: torch.nn.Module,
    spec: dict[str, Any],
    data: TaskData,
    config: TrainConfig,
    candidate_id: str,
    method: str,
    seed: int,
    **fields: Any,
) -> CandidateRecord:
    """The record of ``model`` (of ``spec``, already trained), scored in this process as the
    trainer scores at its end: batch norms recalibrated (``config.bn_recalibration`` batches of
    the train split drawn from ``(seed, "bn-recalibration", 0)``), then validation and test loss
    and accuracy (None for an empty split) and the equivariance errors. Its ``cost`` and
    ``time_s`` count these passes; ``fields`` fill the rest of the record."""
    device = next(model.parameters()).device
    dtype = amp_dtype(config, device)
    record = CandidateRecord(
        candidate_id=candidate_id,
        method=method,
        spec=spec,
        groups=describe_layers(spec),
        params=sum(p.numel() for p in model.parameters()),
        val_acc=None,
        test_acc=None,
        seed=seed,
        **fields,
    )
    with ComputeMeter(model, data.train.batch(0)) as meter:
        batches, generator = config.bn_recalibration, derived_generator(seed, "bn-recalibration", 0)
        recalibrate_batch_norm(model, data.train, batches, config.batch_size, generator, dtype)
        for name, split in (("val", data.val), ("test", data.test)):
            if len(split):
                scores = evaluate(model, split, config.eval_batch_size, device, dtype)
                setattr(record, f"{name}_acc", scores["acc"])
                setattr(record, f"{name}_loss", scores["loss"])
        record.equivariance = measure_equivariance(model, data)
    cost = meter.cost()
    record.cost, record.time_s = cost.to_dict(), cost.train_seconds
    return record
