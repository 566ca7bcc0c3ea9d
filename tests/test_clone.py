"""Symmetry cloning: the student imitates its teacher on transformed inputs; phases and costs recorded."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from conftest import synthetic_task
from equinas.execution import LocalExecutor
from equinas.groups import parse_group
from equinas.metrics.cost import macs_per_image
from equinas.models import build_model
from equinas.search import BackboneSettings, SearchContext, make_method, run_search
from equinas.search.methods.clone import CloneSettings
from equinas.search.run_directory import RunDirectory
from equinas.train import TrainConfig, train
from equinas.train.distill import clone_logits, logit_distance, logit_loss

BACKBONE = BackboneSettings(widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None)
TRAIN = TrainConfig(epochs=1.0, batch_size=32, lr=1e-2, num_threads=1, device="cpu")


def test_cloned_student_matches_its_teacher_on_held_out_transformed_inputs():
    data = synthetic_task()
    d4 = parse_group("D4")
    torch.manual_seed(1)
    teacher = build_model(BACKBONE.spec(data, "D4").to_dict())
    train(teacher, data, TRAIN, progress=False)
    student = build_model(BACKBONE.spec(data, "C1").to_dict())
    untrained = copy.deepcopy(student)
    clone_logits(student, teacher, data, TrainConfig.from_dict({**TRAIN.to_dict(), "epochs": 6}), d4)
    held_out = data.test.images  # never seen while cloning
    before = logit_distance(untrained, teacher, held_out, d4, seed=9)
    after = logit_distance(student, teacher, held_out, d4, seed=9)
    print(f"held-out logit MSE to the teacher: untrained {before:.4f}, cloned {after:.4f}")
    assert after < 0.5 * before, (before, after)


def test_logit_losses_vanish_exactly_on_equal_logits_only():
    logits = torch.randn(5, 4)
    for loss in ("mse", "kl"):
        assert logit_loss(logits, logits.clone(), loss, 2.0).item() == pytest.approx(0.0, abs=1e-6)
        assert logit_loss(logits + torch.randn(5, 4), logits, loss, 2.0).item() > 1e-3
    with pytest.raises(ValueError, match="unknown cloning loss"):
        logit_loss(logits, logits, "l1")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"split": (0.5, 0.5)}, "split"),
        ({"split": (0.5, 0.3, 0.3)}, "split"),
        ({"split": (0.0, 0.5, 0.5)}, "teacher_from"),
        ({"split": ("a", 1, 1)}, "split"),
        ({"loss": "l1"}, "loss"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        CloneSettings(**settings)


def _context(path) -> SearchContext:
    return SearchContext(
        "synthetic",
        synthetic_task(),
        BACKBONE,
        TRAIN,
        LocalExecutor(),
        RunDirectory(path),
        seed=2,
        progress=False,
    )


def test_clone_search_records_every_phase_and_counts_the_teacher_passes(tmp_path):
    ctx = _context(tmp_path / "run")
    result = run_search(make_method("clone", split=("0.4", "0.3", "0.3"), loss="kl"), ctx)
    ids = [r.candidate_id for r in result.candidates]
    assert ids == ["teacher-D4", "clone", "finetuned"]
    teacher, cloned, finetuned = result.candidates
    assert result.best.candidate_id == "finetuned" and finetuned.groups == ["C1", "C1"]
    assert [r.epochs for r in result.candidates] == pytest.approx([0.4, 0.3, 0.3])
    # cloning ran ceil(0.3 * 3 batches) = 1 step of 32 images; the teacher saw them (and the
    # held-out check) as evaluation passes, the student as training passes
    assert cloned.cost["train_images"] == 32
    teacher_macs = macs_per_image(build_model(teacher.spec), ctx.data.train.images[0])
    assert cloned.cost["eval_flops"] >= teacher_macs * (32 + 2 * 48)
    written = json.loads((tmp_path / "run" / "result.json").read_text())
    total = written["total_cost"]["total_flops"]
    assert total == sum(r.cost["total_flops"] for r in result.candidates)
    assert written["extras"]["teacher_match"] >= 0 and "equivariance" in cloned.to_dict()
    again = run_search(make_method("clone", split=(0.4, 0.3, 0.3), loss="kl"), ctx, resume=True)
    assert [r.to_dict() for r in again.candidates] == [r.to_dict() for r in result.candidates]


def test_teacher_can_be_loaded_from_a_training_run(tmp_path):
    data = synthetic_task()
    spec = BACKBONE.spec(data, "C4").to_dict()
    teacher = build_model(spec)
    train(teacher, data, TRAIN, tmp_path / "teacher", progress=False, metadata={"spec": spec})
    method = make_method("clone", group="C4", split=(0.0, 0.5, 0.5), teacher_from=str(tmp_path / "teacher"))
    result = run_search(method, _context(tmp_path / "run"))
    loaded = result.candidates[0]
    assert loaded.candidate_id == "teacher-loaded" and loaded.groups == ["C4", "C4"]
    assert loaded.cost["train_images"] == 0 and loaded.test_acc is not None
    with pytest.raises(ValueError, match="neither a checkpoint nor a run directory"):
        run_search(make_method("clone", teacher_from=str(tmp_path / "nothing")), _context(tmp_path / "bad"))
