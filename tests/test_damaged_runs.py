"""``equinas report`` on damaged runs: no scored record, an empty record file, a result.json
that is a list or lacks ``best``, and records written twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import synthetic_search_context
from equinas.cli import main
from equinas.execution import LocalExecutor
from equinas.search import RunDirectory, make_method, run_search


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runs") / "fixed-seed0"
    run_search(make_method("fixed", groups=("C1", "C2")), synthetic_search_context(path, LocalExecutor()))
    return path


@pytest.fixture
def run(finished, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


def _lines(path: Path) -> list[str]:
    return (path / "candidates.jsonl").read_text().splitlines()


def _report(run: Path, capsys) -> tuple[int, str]:
    code = main(["report", str(run)])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("damage", ["empty", "unscored"])
def test_a_run_without_scored_records_is_reported(run, capsys, damage) -> None:
    if damage == "empty":
        (run / "candidates.jsonl").write_text("")
    else:
        records = [json.loads(line) for line in _lines(run)]
        for record in records:
            record["val_acc"] = None  # a NaN accuracy is stored as null
        (run / "candidates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    code, err = _report(run, capsys)
    assert code == 0, err
    text = (run / "report.md").read_text()
    assert "no candidate with a validation accuracy" in text


@pytest.mark.parametrize(
    ("result", "message"),
    [([1, 2], "not a JSON object"), ({"wall_time": 1.0}, "no best candidate"), ({"best": [3]}, "no best")],
)
def test_a_damaged_result_json_is_one_line(run, capsys, result, message) -> None:
    (run / "result.json").write_text(json.dumps(result))
    code, err = _report(run, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "result.json" in err and message in err and "resume" in err


def test_records_written_twice_are_read_once(run) -> None:
    lines = _lines(run)
    (run / "candidates.jsonl").write_text("\n".join([*lines, lines[0]]) + "\n")
    records = RunDirectory(run).records()
    assert [r.candidate_id for r in records] == [json.loads(line)["candidate_id"] for line in lines]


def test_a_record_is_never_appended_twice(run) -> None:
    directory = RunDirectory(run)
    before = _lines(run)
    directory.append(directory.records()[0])
    assert _lines(run) == before


def test_a_refused_resume_names_the_setting_before_the_digests(run) -> None:
    directory = RunDirectory(run)
    meta = directory.read_json("search.json")
    meta["data"]["train_size"] = 7
    meta["data"]["fingerprint"] = {split: "0" * 64 for split in meta["data"]["fingerprint"]}
    with pytest.raises(ValueError, match="differs from the original run in data.train_size") as caught:
        directory.create(meta, resume=True)
    assert str(caught.value).index("train_size") < str(caught.value).index("fingerprint")
