"""Bad input named in issue 32 ends in one line and exit 2, and a failed search is not left
marked "running"."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from conftest import synthetic_search_context
from equinas.cli import main
from equinas.data import DataError, load_task
from equinas.execution import LocalExecutor
from equinas.search import make_method, run_search

SMALL = ["--widths", "1,1", "--pools-after", "0", "--kernel-size", "3", "--quiet"]


@pytest.fixture
def tiny_npz(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUINAS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, images=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8), labels=np.arange(40) % 2)
    return path


def _one_line_exit_2(argv, capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("command", [["train"], ["search", "fixed"], ["search", "equinas_g"]])
def test_absurd_epochs_are_one_line_before_the_run_starts(tiny_npz, tmp_path, capsys, command) -> None:
    run = tmp_path / "run"
    argv = [*command, "--task", f"npz:{tiny_npz}", "--epochs", "1e308", "--run-dir", str(run), *SMALL]
    line = _one_line_exit_2(argv, capsys)
    assert "TrainConfig.epochs (--epochs): expected a finite number > 0 and <= 1000000, got 1e+308" in line
    assert not (run / "search.json").exists()


def test_a_failing_search_is_marked_failed_not_running(tmp_path, monkeypatch) -> None:
    ctx = synthetic_search_context(tmp_path / "run", LocalExecutor())
    method = make_method("fixed", groups=("C1",))

    def broken(ctx):
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(type(method), "run", lambda self, ctx: broken(ctx))
    with pytest.raises(OverflowError):
        run_search(method, ctx)
    assert json.loads((tmp_path / "run" / "search.json").read_text())["status"] == "failed"


def test_an_unterminated_npy_header_is_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EQUINAS_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "bad.npz"
    header = b"\x93NUMPY\x01\x00" + (70).to_bytes(2, "little") + b"{'descr': '<u1', 'shape': (4," + b" " * 39
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", header + b"\n" + bytes(4))
        archive.writestr("labels.npy", header + b"\n" + bytes(4))
    with pytest.raises(DataError, match=r"bad\.npz: damaged \.npz archive") as caught:
        load_task(f"npz:{path}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"epochs = 1\nlr = \xff\xfe\n", r"config .*bad\.toml: not UTF-8 text"),
        (b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", r"config .*bad\.toml: nested too deeply to read"),
    ],
)
def test_unreadable_configs_are_one_line(tmp_path, capsys, content, message) -> None:
    config = tmp_path / "bad.toml"
    config.write_bytes(content)
    line = _one_line_exit_2(["--config", str(config), "data", "list"], capsys)
    assert pytest.importorskip("re").search(message, line), line


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('resume = "no"\n', r"config .*c\.toml: resume: expected true or false, got \'no\'"),
        ("task-option = 5\n", r"config .*c\.toml: task-option: expected a table"),
        ('task-option = ["image_size"]\n', r"config .*c\.toml: task-option: expected KEY=VALUE"),
        ('epochs = "many"\n', r"config .*c\.toml: epochs: expected a number, got 'many'"),
        ("run-dir = 3\n", r"config .*c\.toml: run-dir: expected text, got 3"),
    ],
)
def test_toml_values_are_parsed_like_flags(tmp_path, capsys, content, message) -> None:
    config = tmp_path / "c.toml"
    config.write_text(content)
    line = _one_line_exit_2(["--config", str(config), "train", "--task", "npz:none.npz"], capsys)
    assert pytest.importorskip("re").search(message, line), line


def test_toml_switches_and_tables_work(tmp_path) -> None:
    from equinas.cli import build_parser
    from equinas.cli.config import parse_with_config

    config = tmp_path / "c.toml"
    config.write_text('quiet = true\nresume = false\ntask-option = {image_size = 8}\nwidths = "2,4"\n')
    args = parse_with_config(build_parser("train"), ["--config", str(config), "train", "--task", "x"])
    assert args.quiet is True and args.resume is False
    assert dict(args.task_option) == {"image_size": 8} and args.widths == (2, 4)


def test_pool_workers_leave_ctrl_c_to_the_parent() -> None:
    from equinas.execution import ProcessExecutor
    from helpers import sigint_ignored

    executor = ProcessExecutor(workers=1)
    try:
        assert dict(executor.map(sigint_ignored, [0], None)) == {0: (0, True)}
    finally:
        executor.close()


def test_ctrl_c_while_importing_is_one_line(monkeypatch, capsys) -> None:
    import builtins

    from equinas.cli import __main__ as entry

    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "equinas.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    assert entry.run() == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_ctrl_c_marks_the_search_interrupted(tmp_path, monkeypatch) -> None:
    ctx = synthetic_search_context(tmp_path / "run", LocalExecutor())
    method = make_method("fixed", groups=("C1",))

    def ctrl_c(self, ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(method), "run", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_search(method, ctx)
    assert json.loads((tmp_path / "run" / "search.json").read_text())["status"] == "interrupted"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"version": 1, "x": ' + "9" * 5000 + "}", r"spec\.json: not a spec: Exceeds the limit"),
        ("[" * 100_000 + "]" * 100_000, r"spec\.json: not a spec: JSON nested too deeply"),
    ],
)
def test_spec_files_with_huge_numbers_or_deep_nesting_name_the_file(tmp_path, text, message) -> None:
    from equinas.models import ArchSpec, SpecError

    path = tmp_path / "spec.json"
    path.write_text(text)
    with pytest.raises(SpecError, match=message) as caught:
        ArchSpec.load(path)
    assert "\n" not in str(caught.value)


def test_write_errors_name_the_file_not_its_temp_file(tmp_path, capsys) -> None:
    from equinas.atomic import atomic_write_text

    target = tmp_path / "missing" / "table.md"
    with pytest.raises(OSError, match=r"cannot write .*missing/table\.md: No such file") as caught:
        atomic_write_text(target, "x")
    assert ".tmp" not in str(caught.value) and "table.md." not in str(caught.value)
