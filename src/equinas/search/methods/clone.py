"""Symmetry cloning (Huang et al., "Symmetry From Scratch"): a G-CNN teaches a plain CNN its symmetry.

Three phases share the run's budget of ``epochs`` (``CloneSettings.split``):

1. teacher: the backbone with every layer constrained to ``group`` trains on the labels
   (``split[0]`` of the epochs), or is loaded (``teacher_from``; then ``split[0]`` is not spent);
2. cloning: a C1 student (the same backbone, unconstrained) learns to reproduce the teacher's
   logits on training images moved by random elements of ``group`` (``split[1]``; no labels);
3. fine-tuning: the student trains on the labels (``split[2]``), free to break the symmetry.

Each phase is a candidate record (``teacher-<G>``, ``clone``, ``finetuned``) with its cost; the
cloning record's cost counts the teacher's forward passes (as evaluation passes) besides the
student's training, so ``result.json``'s ``total_cost`` is the whole method's. The fine-tuned
student is the result.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from equinas.groups import PlanarGroup, parse_group
from equinas.metrics.cost import ComputeMeter
from equinas.models import build_model, describe_layers
from equinas.search.base import Evaluator, SearchContext, SearchMethod, SearchResult
from equinas.search.evaluate import candidate_seed, measure_equivariance, score_here
from equinas.search.record import CandidateRecord
from equinas.search.run_directory import RunDirectory, spec_network
from equinas.search.selection import best_of
from equinas.settings import Settings, setting
from equinas.train import TrainConfig, load_checkpoint
from equinas.train.checkpoint import CHECKPOINT_NAME, checkpoint_spec
from equinas.train.distill import CLONE_LOSSES, clone_logits, logit_distance
from equinas.train.result import DIVERGENCE_ADVICE, TrainingDiverged
from equinas.train.runtime import resolve_device

HELD_OUT = 256  # validation images on which the student's imitation of the teacher is measured


def _split(value: Any) -> tuple[float, ...]:
    """Three fractions >= 0 that sum to 1, the last two > 0."""
    expected = (
        "expected three fractions (teacher, cloning, fine-tuning) >= 0 that sum to 1, the last two > 0, "
        f"got {value!r}"
    )
    try:
        split = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(expected) from None
    if (
        len(split) != 3
        or not all(math.isfinite(v) and v >= 0 for v in split)
        or not math.isclose(sum(split), 1.0, abs_tol=1e-6)
        or min(split[1:]) <= 0
    ):
        raise ValueError(expected)
    return split


@dataclass(frozen=True)
class CloneSettings(Settings):
    """Symmetry cloning: a ``group`` G-CNN teacher, then a C1 student that matches its logits
    on randomly ``group``-transformed inputs (``loss``: ``mse`` or ``kl`` at ``temperature``),
    then fine-tunes on the labels. ``split``: fractions of the epochs for teacher, cloning and
    fine-tuning (sum 1). ``teacher_from``: a checkpoint (``equinas train``'s checkpoint.pt or
    its run dir) or a search run dir whose best candidate's weights are stored, used instead
    of training a teacher (its training cost is then not counted)."""

    group: str = setting("D4", subgroups=True, help="group of the teacher G-CNN")
    split: tuple[float, ...] = setting(
        (0.4, 0.3, 0.3),
        check=_split,
        help="fractions of --epochs for teacher, cloning and fine-tuning (sum 1)",
    )
    phase_epochs: tuple[float, ...] | None = setting(
        None, at_least=0, help="epochs of teacher, cloning and fine-tuning (default: --split of --epochs)"
    )
    loss: str = setting("mse", choices=CLONE_LOSSES, help="distance between the logits")
    temperature: float = setting(1.0, above=0, help="temperature of the kl loss")
    teacher_from: str | None = setting(
        None, help="a checkpoint or run directory whose trained network is the teacher (none: train one)"
    )

    def check(self) -> None:
        if self.split[0] == 0 and self.teacher_from is None:
            raise self.fail("split", "the teacher's fraction is 0 but no teacher_from is given")


def load_teacher(source: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(spec, weights)`` of a trained network: a checkpoint file of ``equinas train``, its run
    directory, or a search run directory whose best candidate's weights are in ``states/``."""
    path = Path(source)
    if (path / "search.json").exists():
        run = RunDirectory(path)
        try:
            best = run.read_json("result.json")["best"]
        except (OSError, KeyError, ValueError):
            raise ValueError(f"teacher_from: search run {path} has no result.json (unfinished?)") from None
        if not run.has_state(best["candidate_id"]):
            raise ValueError(
                f"teacher_from: search run {path} did not store the weights of its best candidate "
                f"{best['candidate_id']!r}; train the teacher with `equinas train --run-dir` instead"
            )
        return best["spec"], run.load_state(best["candidate_id"])
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise ValueError(f"teacher_from: {source} is neither a checkpoint nor a run directory")
    checkpoint = load_checkpoint(path)
    return checkpoint_spec(checkpoint, path), checkpoint["model"]


class SymmetryCloning(SearchMethod[CloneSettings]):
    """Symmetry cloning: a G-CNN teacher, a plain student cloned on transformed inputs, fine-tuned.

    Teacher, cloning and fine-tuning share ``--epochs`` (``--split``); the teacher's forward
    passes while cloning count in the cost. Cost: about one network (1.2 measured).
    """

    name = "clone"
    settings_class = CloneSettings

    def resolve(self, ctx: SearchContext) -> CloneSettings:
        """``phase_epochs`` decided (``split`` of the run's epochs)."""
        s = self.settings
        epochs = s.phase_epochs or tuple(ctx.train.epochs * f for f in s.split)
        if len(epochs) != 3 or min(epochs[1:]) <= 0:
            raise s.fail("phase_epochs", f"expected three epochs, the last two > 0, got {epochs!r}")
        return dataclasses.replace(s, phase_epochs=epochs)

    def run(self, ctx: SearchContext) -> SearchResult:
        s = self.settings
        ev = Evaluator(ctx, self.name)
        group = parse_group(s.group, ambient=ctx.backbone.ambient)
        if s.phase_epochs is None:
            raise ValueError("symmetry cloning runs on resolved settings (run_search resolves them)")
        teacher_epochs, clone_epochs, finetune_epochs = s.phase_epochs
        teacher_record, teacher = self._teacher(ctx, ev, teacher_epochs)
        student_spec = ctx.backbone.spec(ctx.data, "C1").to_dict()
        cloned = ev.evaluate_here(
            "clone",
            lambda: self._clone(ctx, teacher, student_spec, group, clone_epochs, teacher_record),
        )
        finetune = ev.job(
            "finetuned",
            student_spec,
            state=ctx.run.load_state(cloned.candidate_id),
            parent_id=cloned.candidate_id,
            mutation="finetune",
            lineage_epochs=cloned.lineage_epochs,
            train=ctx.train_dict(epochs=finetune_epochs),
        )
        (finetuned,) = ev.evaluate([finetune], label="fine-tuning")
        extras = {
            "teacher": teacher_record.candidate_id,
            "teacher_from": s.teacher_from,
            "clone_group": group.name,
            "teacher_match": cloned.extra["teacher_match"],
            "untrained_match": cloned.extra["untrained_match"],
        }
        return SearchResult(self.name, best_of([finetuned]), [teacher_record, cloned, finetuned], extras)

    def _teacher(self, ctx: SearchContext, ev: Evaluator, epochs: float) -> tuple[CandidateRecord, nn.Module]:
        """The teacher's record and trained model (trained here, or loaded and only scored)."""
        s = self.settings
        if s.teacher_from is None:
            job = ev.job(
                f"teacher-{s.group}",
                ctx.backbone.spec(ctx.data, s.group),
                train=ctx.train_dict(epochs=epochs),
                return_state=True,
            )
            (record,) = ev.evaluate([job], label="teacher")
            if not record.ok:
                raise ValueError(f"the {s.group} teacher diverged; {DIVERGENCE_ADVICE}")
            model = ctx.run.trained_model(record)
        else:
            spec, state = load_teacher(s.teacher_from)
            model = spec_network(build_model(spec))
            model.load_state_dict(state)
            # scored on a copy: its recalibrated batch norms must not change the teacher, which
            # a resumed run (that reuses this record) would not recalibrate
            record = ev.evaluate_here(
                "teacher-loaded",
                lambda: score_here(
                    copy.deepcopy(model),
                    spec,
                    ctx.data,
                    ctx.train,
                    "teacher-loaded",
                    self.name,
                    candidate_seed(ctx.seed, "teacher-loaded"),
                    extra={"source": s.teacher_from},
                ),
            )
        return record, model.to(resolve_device(ctx.train.device))

    def _clone(
        self,
        ctx: SearchContext,
        teacher: nn.Module,
        spec: dict[str, Any],
        group: PlanarGroup,
        epochs: float,
        parent: CandidateRecord,
    ) -> CandidateRecord:
        """Clone ``teacher`` into a fresh student of ``spec`` (``clone_logits``: the training
        engine with the logit-matching objective, which also scores the student); store its
        weights as ``clone``."""
        s = self.settings
        seed = candidate_seed(ctx.seed, "clone")
        config = TrainConfig.from_dict(ctx.train_dict(epochs=epochs, seed=seed))
        torch.manual_seed(seed)
        device = resolve_device(config.device)
        student = build_model(spec).to(device)
        held_out = (ctx.data.val if len(ctx.data.val) else ctx.data.test).batch(slice(HELD_OUT)).to(device)
        example = ctx.data.train.batch(0)
        with ComputeMeter(student, example) as meter, ComputeMeter(teacher, example) as teacher_meter:
            before = logit_distance(student, teacher, held_out, group, seed)
            try:
                result = clone_logits(
                    student, teacher, ctx.data, config, group, s.loss, s.temperature, ctx.progress
                )
            except TrainingDiverged as err:
                raise ValueError(f"cloning the {group.name} teacher: {err}") from None
            after = logit_distance(student, teacher, held_out, group, seed)
        metrics = result.metrics
        record = CandidateRecord(
            candidate_id="clone",
            method=self.name,
            spec=spec,
            groups=describe_layers(spec),
            params=sum(p.numel() for p in student.parameters()),
            val_acc=metrics["val_acc"],
            test_acc=metrics["test_acc"],
            val_loss=metrics["val_loss"],
            test_loss=metrics["test_loss"],
            epochs=epochs,
            lineage_epochs=epochs,
            parent_id=parent.candidate_id,
            mutation=f"clone:{group.name}",
            seed=seed,
            extra={
                "clone_loss": [epoch["train_loss"] for epoch in result.history],
                "teacher_match": after,
                "untrained_match": before,
            },
        )
        # the teacher's passes ran inside the same wall-clock block: count its compute, not its time
        cost = meter.cost() + dataclasses.replace(teacher_meter.cost(), train_seconds=0.0)
        record.cost, record.time_s = cost.to_dict(), cost.train_seconds
        record.equivariance = measure_equivariance(student, ctx.data)
        ctx.run.save_state("clone", {k: v.detach().cpu() for k, v in student.state_dict().items()})
        return record


__all__ = ["CloneSettings", "SymmetryCloning", "load_teacher"]
