"""Record integrity: resumes that cannot mix data, torn lines, diverging candidates, session time."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import pytest

from conftest import synthetic_task
from equinas.execution import LocalExecutor
from equinas.search import BackboneSettings, SearchContext, make_method, run_search
from equinas.search import evaluate as evaluate_module
from equinas.search.evaluate import candidate_seed
from equinas.search.record import CandidateRecord
from equinas.search.run_directory import RecordWarning, RunDirectory
from equinas.search.selection import best_of
from equinas.train import TrainConfig, TrainingDiverged

BACKBONE = BackboneSettings(widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None)
TRAIN = TrainConfig(epochs=0.5, batch_size=32, num_threads=1)


def context(path, task=None, data_settings=None, seed: int = 0) -> SearchContext:
    return SearchContext(
        "synthetic",
        task or synthetic_task(),
        BACKBONE,
        TRAIN,
        LocalExecutor(),
        RunDirectory(path),
        seed=seed,
        progress=False,
        data_settings=data_settings or {"train_size": 96},
    )


def fixed(path, groups=("C1", "C2"), **kwargs):
    return run_search(make_method("fixed", groups=groups), context(path, **kwargs), resume=True)


def test_resume_with_other_data_settings_is_refused_and_names_them(tmp_path) -> None:
    fixed(tmp_path / "run")
    with pytest.raises(ValueError, match=r"data\.train_size: 96 -> 2000"):
        fixed(tmp_path / "run", data_settings={"train_size": 2000})


def test_resume_with_other_examples_is_refused(tmp_path) -> None:
    fixed(tmp_path / "run")
    other = synthetic_task(n_train=97)
    with pytest.raises(ValueError, match=r"data\.fingerprint\.train"):
        fixed(tmp_path / "run", task=other)
    assert fixed(tmp_path / "run").best.candidate_id in {"fixed-C1", "fixed-C2"}  # same data: fine


def test_equinas_d_stores_every_candidate_and_all_files_agree(tmp_path) -> None:
    ctx = context(tmp_path / "d")
    settings = {"arch_lr": 1e-2, "finetune_epochs": 0.5, "retrain": True}
    result = run_search(make_method("equinas_d", **settings), ctx)
    ids = [json.loads(line)["candidate_id"] for line in (ctx.run.path / "candidates.jsonl").open()]
    csv_ids = [row.split(",")[0] for row in (ctx.run.path / "candidates.csv").read_text().splitlines()[1:]]
    assert sorted(ids) == sorted(csv_ids) == sorted(r.candidate_id for r in result.candidates)
    assert set(ids) == {"mixed", "discrete", "finetuned", "retrained"}
    assert json.loads((ctx.run.path / "result.json").read_text())["num_candidates"] == len(ids)
    # a resume recomputes nothing: the in-process "discrete" record is reused as well
    again = run_search(make_method("equinas_d", **settings), context(tmp_path / "d"), True)
    assert [json.loads(line)["candidate_id"] for line in (ctx.run.path / "candidates.jsonl").open()] == ids
    assert again.best.to_dict() == result.best.to_dict()


def _record(cid: str) -> CandidateRecord:
    return CandidateRecord(cid, "test", {}, [], 1, 0.5, 0.5)


def test_a_torn_last_line_is_cut_off_and_kept_aside(tmp_path) -> None:
    run = RunDirectory(tmp_path)
    run.append(_record("a"))
    with open(run.jsonl, "a") as handle:
        handle.write('{"candidate_id": "b", "meth')  # a write cut short
    run.append(_record("c"))
    assert [r.candidate_id for r in run.records()] == ["a", "c"]
    assert (tmp_path / "candidates.jsonl.torn-0").read_text() == '{"candidate_id": "b", "meth'
    assert all(json.loads(line) for line in run.jsonl.read_text().splitlines())


def test_a_resume_removes_the_temp_files_of_killed_writes_and_nothing_else(tmp_path) -> None:
    meta = {"method": "test", "seed": 0}
    RunDirectory(tmp_path).create(meta, resume=False)
    stale = [
        tmp_path / ".search.json.0123456789abcdef.tmp",
        tmp_path / "states" / ".x.pt.fedcba9876543210.tmp",
    ]
    kept = [tmp_path / "notes.tmp", tmp_path / ".search.json.not-hex.tmp"]
    for path in stale + kept:
        path.write_text("partial")
    RunDirectory(tmp_path).create(meta, resume=True)
    assert [p.exists() for p in stale + kept] == [False, False, True, True]


def _diverge_on(monkeypatch, seed: int) -> None:
    real_train = evaluate_module.train

    def train(model, data, config, **kwargs):
        if config.seed == seed:
            raise TrainingDiverged("loss is nan", epoch=0, step=2, loss=float("nan"))
        return real_train(model, data, config, **kwargs)

    monkeypatch.setattr(evaluate_module, "train", train)


def test_a_diverging_candidate_is_recorded_and_the_search_goes_on(tmp_path, monkeypatch) -> None:
    _diverge_on(monkeypatch, candidate_seed(0, "fixed-C2"))
    result = fixed(tmp_path / "run", groups=("C1", "C2", "C4"))
    by_id = {r.candidate_id: r for r in result.candidates}
    assert by_id["fixed-C2"].status == "diverged" and by_id["fixed-C2"].val_acc is None
    assert by_id["fixed-C2"].extra["divergence"] == {"epoch": 0, "step": 2, "loss": "nan"}
    assert result.best.candidate_id != "fixed-C2"
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["num_diverged"] == 1
    assert "fixed-C2,fixed,diverged," in (tmp_path / "run" / "candidates.csv").read_text()
    # the resume reuses the diverged record instead of diverging again forever
    assert fixed(tmp_path / "run", groups=("C1", "C2", "C4")).best.candidate_id == result.best.candidate_id


def test_equinas_e_skips_diverged_children(tmp_path, monkeypatch) -> None:
    _diverge_on(monkeypatch, candidate_seed(0, "g01-000"))
    settings = {"generations": 1, "population": 2, "epochs_per_generation": 0.5, "children_per_parent": 2}
    result = run_search(make_method("equinas_e", **settings), context(tmp_path / "e"))
    trace = json.loads((tmp_path / "e" / "generations.json").read_text())
    assert "g01-000" not in trace[-1]["population"]
    assert any(r.status == "diverged" for r in result.candidates)


def test_every_candidate_diverging_is_a_clear_error(tmp_path, monkeypatch) -> None:
    _diverge_on(monkeypatch, candidate_seed(0, "fixed-C1"))
    with pytest.raises(ValueError, match="no candidate was evaluated successfully"):
        fixed(tmp_path / "run", groups=("C1",))


def test_wall_time_counts_every_session(tmp_path) -> None:
    fixed(tmp_path / "run")
    meta_path = tmp_path / "run" / "search.json"
    meta = json.loads(meta_path.read_text())
    meta["sessions"] = [100.0, *meta["sessions"]]  # an earlier, interrupted session of 100 s
    meta_path.write_text(json.dumps(meta))
    result = fixed(tmp_path / "run")
    assert result.wall_time > 100.0
    assert len(json.loads(meta_path.read_text())["sessions"]) == 3


def test_a_corrupt_state_file_is_named(tmp_path) -> None:
    run = RunDirectory(tmp_path)
    run.states.mkdir(parents=True)
    (run.states / "g00-000.pt").write_bytes(b"PK\x03\x04 not weights")
    with pytest.raises(ValueError, match=r"g00-000\.pt"):
        run.load_state("g00-000")


def test_equinas_e_splits_its_lineage_budget_in_the_library() -> None:
    from equinas.search.methods.equinas_e import EquiNASESettings

    def per_generation(epochs: float, **settings) -> float:
        return EquiNASESettings(**settings).for_lineage(epochs).epochs_per_generation

    assert per_generation(8.0, generations=3) == 2.0
    assert per_generation(8.0, generations=3, initial_epochs=2.0) == 2.0
    assert per_generation(8.0, epochs_per_generation=0.25) == 0.25  # a per-candidate budget wins
    assert per_generation(2.0) * (EquiNASESettings.generations + 1) == 2.0
    with pytest.raises(ValueError, match="initial_epochs: 2 leaves nothing"):
        per_generation(2.0, initial_epochs=2.0)
    with pytest.raises(ValueError, match=r"^EquiNASESettings.generations: expected an integer >= 0, got -1$"):
        make_method("equinas_e", generations=-1)


def test_run_search_records_the_resolved_lineage_budget(tmp_path) -> None:
    ctx = SearchContext(
        "synthetic",
        synthetic_task(n_train=32, n_val=16, n_test=16),
        BackboneSettings(widths=(1,), pools_after=(), kernel_size=3, hidden=None),
        TrainConfig(epochs=0.5, batch_size=16, bn_recalibration=0, num_threads=1),
        LocalExecutor(),
        RunDirectory(tmp_path / "run"),
        progress=False,
    )
    run_search(make_method("equinas_e", generations=1, population=1, children_per_parent=1), ctx)
    meta = json.loads((tmp_path / "run" / "search.json").read_text())
    assert meta["settings"]["epochs_per_generation"] == meta["train"]["epochs"] == 0.25
    assert meta["settings"]["initial_epochs"] == 0.25  # the start network's budget, resolved too
    records = RunDirectory(tmp_path / "run").records()
    assert {r.epochs for r in records} == {0.25} and max(r.lineage_epochs for r in records) == 0.5


def test_train_resume_with_other_data_is_refused(tmp_path) -> None:
    from equinas.models import backbone, build_model
    from equinas.train import train

    def model():
        return build_model(
            backbone("C4", widths=(1,), pools_after=(), kernel_size=3, hidden=None, num_classes=3).to_dict()
        )

    config = TrainConfig(epochs=1, batch_size=32, num_threads=1)
    train(model(), synthetic_task(), config, run_dir=tmp_path, progress=False)
    longer = dataclasses.replace(config, epochs=2)
    other = synthetic_task(n_val=47)
    with pytest.raises(ValueError, match=r"other data \(the val"):
        train(model(), other, longer, run_dir=tmp_path, resume=True, progress=False)
    assert (
        train(model(), synthetic_task(), longer, run_dir=tmp_path, resume=True, progress=False).epochs_done
        == 2
    )


BAD_LINES = ['{"foo": 1}', "[1, 2, 3]", '{"candidate_id": "x", "method": "fixed"}', "{not json", ""]


def test_bad_lines_in_the_middle_are_moved_aside_on_resume_with_a_warning(tmp_path) -> None:
    reference = fixed(tmp_path / "run", groups=("C1", "C2", "C4"))
    lines = (tmp_path / "run" / "candidates.jsonl").read_text().splitlines()
    damaged = [lines[0], *BAD_LINES[:3], lines[1], *BAD_LINES[3:], lines[2]]
    (tmp_path / "run" / "candidates.jsonl").write_text("\n".join(damaged) + "\n")
    with pytest.warns(RecordWarning) as caught:
        assert len(RunDirectory(tmp_path / "run").records()) == 3  # reading skips them, names them
    assert [str(w.message).split(" is not")[0].rsplit(" ", 1)[1] for w in caught] == ["2", "3", "4", "6", "7"]
    with pytest.warns(RecordWarning) as caught:
        resumed = fixed(tmp_path / "run", groups=("C1", "C2", "C4"))
    assert len(caught) == 5
    assert re.search(r"line 3 is not a candidate record \(a JSON list.*bad-0", str(caught[1].message))
    assert (tmp_path / "run" / "candidates.jsonl").read_text().splitlines() == lines  # nothing recomputed
    assert (tmp_path / "run" / "candidates.jsonl.bad-0").read_text().splitlines() == [*BAD_LINES]
    assert resumed.best.to_dict() == reference.best.to_dict()


def test_nan_metrics_are_null_never_best_and_reports_handle_them(tmp_path, capsys) -> None:
    from equinas.cli import main

    runs = [tmp_path / "fixed-seed0", tmp_path / "fixed-seed1"]
    fixed(runs[1], groups=("C1", "C2"))
    shutil.copytree(runs[1], runs[0])  # two seeds of one method (the same numbers will do)
    jsonl = runs[0] / "candidates.jsonl"  # an older run wrote NaN (invalid JSON numbers) for C2
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    for record in records:
        if record["candidate_id"] == "fixed-C2":
            record.update(val_acc=float("nan"), test_acc=float("nan"))
            record["cost"]["total_flops"] = float("nan")
            record["equivariance"]["output"] = float("nan")
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = json.loads((runs[0] / "result.json").read_text())
    result["best"].update(test_acc=float("nan"), val_acc=float("nan"))
    result["wall_time"] = float("nan")
    (runs[0] / "result.json").write_text(json.dumps(result))

    loaded = {r.candidate_id: r for r in RunDirectory(runs[0]).records()}
    assert loaded["fixed-C2"].val_acc is None and loaded["fixed-C2"].cost["total_flops"] is None
    assert best_of(list(loaded.values())).candidate_id == "fixed-C1"  # NaN never ranks best
    assert main(["report", *map(str, runs), "--compare"]) == 0
    out = capsys.readouterr().out
    report = (runs[0] / "report.md").read_text()
    assert not re.search(r"\bnan", out + report, re.IGNORECASE)  # no "nan %", no "nane12"
    assert "fixed-C1 *" in report and "fixed-C2 *" not in report  # not on the Pareto front
    RunDirectory(runs[0]).write_json("result.json", result)
    assert "NaN" not in (runs[0] / "result.json").read_text()  # written as null


def test_equinas_e_resume_without_a_population_members_record_is_one_clear_error(tmp_path) -> None:
    settings = {"generations": 1, "population": 1, "epochs_per_generation": 0.5, "children_per_parent": 1}
    run_search(make_method("equinas_e", **settings), context(tmp_path / "e"))
    member = json.loads((tmp_path / "e" / "generations.json").read_text())[-1]["population"][0]
    lines = (tmp_path / "e" / "candidates.jsonl").read_text().splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line)["candidate_id"] != member]
    (tmp_path / "e" / "candidates.jsonl").write_text("".join(kept))
    with pytest.raises(ValueError, match=f"population member {member} has no record"):
        run_search(make_method("equinas_e", **settings), context(tmp_path / "e"), resume=True)
