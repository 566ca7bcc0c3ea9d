"""Hostile inputs fail with one line before anything is allocated from them: npz files, image
folders, architecture specs, checkpoints, normalisation options, settings, a full disk."""

from __future__ import annotations

import copy
import errno
import json
import os
import signal
import struct
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SMALL_NET_ARGS, needs_data, synthetic_task
from equinas.atomic import atomic_write_text
from equinas.cli import main
from equinas.data import DataError, from_arrays, load_task
from equinas.models import ArchSpec, SpecError, backbone
from equinas.search.record import CandidateRecord
from equinas.search.run_directory import RunDirectory
from equinas.train import TrainConfig, train
from equinas.train.checkpoint import CheckpointError, load_checkpoint

Image = pytest.importorskip("PIL.Image")
SMALL_SPEC = backbone("D4", widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None).to_dict()


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("EQUINAS_CACHE", str(tmp_path / "cache"))


def _one_line(err: BaseException | str) -> str:
    text = str(err)
    assert "\n" not in text.strip()
    return text


# -- npz files -----------------------------------------------------------------------------------
def _npy(array: np.ndarray, shape: tuple[int, ...] | None = None) -> bytes:
    """The ``.npy`` bytes of ``array``, its header claiming ``shape`` when given (forged)."""
    header = np.lib.format.header_data_from_array_1_0(array)
    if shape is not None:
        header["shape"] = shape
    out = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + array.tobytes()


def _forged_sizes(path: Path, claimed: int) -> None:
    """Make every entry of the stored zip ``path`` claim ``claimed`` uncompressed bytes."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = data.find(signature)
        while start != -1:
            data[start + offset : start + offset + 4] = struct.pack("<I", claimed)
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))


def _npz_cases(tmp_path: Path) -> list[tuple[Path, str]]:
    labels = _npy(np.arange(4) % 2)
    cases = []
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    cases.append((empty, r"empty file \(0 bytes"))
    lone = tmp_path / "lone.npy"
    np.save(lone, np.zeros((4, 4, 4), np.uint8))
    cases.append((lone, r"a single \.npy array, not an \.npz archive"))
    noise = tmp_path / "noise.npz"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    cases.append((noise, r"not an \.npz archive \(no zip header\)"))
    forged = tmp_path / "forged.npz"
    with zipfile.ZipFile(forged, "w") as archive:  # a header claiming 1 TB of images
        archive.writestr("images.npy", _npy(np.zeros((4, 4, 4), np.uint8), shape=(10**12, 4, 4)))
        archive.writestr("labels.npy", labels)
    cases.append((forged, r"claims shape \(1000000000000, 4, 4\).*forged or damaged header"))
    sized = tmp_path / "sized.npz"
    with zipfile.ZipFile(sized, "w") as archive:  # header and zip directory agree on 1 GB
        archive.writestr("images.npy", _npy(np.zeros((4, 4, 4), np.uint8), shape=(2**30 // 16, 4, 4)))
    _forged_sizes(sized, 2**30 + 128)
    cases.append((sized, r"claims more data than the file holds"))
    other = tmp_path / "other.npz"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("images.npy", _npy(np.zeros((4, 4, 4), np.uint8)))
        archive.writestr("notes.txt", b"hello")
    cases.append((other, r"entry 'notes.txt' is not an \.npy array"))
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    cases.append((fifo, "not a regular file"))
    return cases


def test_broken_and_forged_npz_files_are_one_line_before_any_allocation(tmp_path) -> None:
    for path, message in _npz_cases(tmp_path):
        started = time.perf_counter()
        with pytest.raises(DataError, match=message) as caught:
            load_task(f"npz:{path}")
        text = _one_line(caught.value)
        assert str(path) in text and "allow_pickle" not in text
        assert time.perf_counter() - started < 5  # nothing of the claimed size was allocated


@pytest.mark.parametrize(
    ("labels", "options", "message"),
    [
        (np.array([0, 1, 10**9, 1]), {}, r"1,000,000,001 classes .* but only 4 images"),
        (np.array([0, 2, 0, 2]), {}, r"class 1 has no images"),
        (np.array([0, 1, 0, 1]), {"num_classes": 10**9}, r"1,000,000,000 classes .* only 4 images"),
        (np.array([0, 1, 0, 1]), {"num_classes": "2"}, r"num_classes must be an integer"),
    ],
)
def test_npz_labels_are_checked_against_a_sane_class_count(tmp_path, labels, options, message) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((4, 4, 4), np.uint8), labels=labels)
    started = time.perf_counter()
    with pytest.raises(DataError, match=message) as caught:
        load_task(f"npz:{path}", **options)
    _one_line(caught.value)
    assert time.perf_counter() - started < 5


@needs_data
def test_a_bad_npz_through_the_command_line_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zero.npz").write_bytes(b"")
    assert main(["train", "--task", "npz:zero.npz", *SMALL_NET_ARGS, "--run-dir", "out"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: zero.npz: empty file") and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zero.npz"]


# -- image folders --------------------------------------------------------------------------------
def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width x height`` 1-bit pixels (no image data follows)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def _two_classes(root: Path) -> Path:
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(10):
            Image.new("L", (4, 4), color=20 * i).save(root / name / f"{i}.png")
    return root


class _Alarm:
    """Raise ``TimeoutError`` in this thread after ``seconds`` (a hanging read fails the test)."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __enter__(self):
        def ring(signum, frame):
            raise TimeoutError("the load hung")

        self.previous = signal.signal(signal.SIGALRM, ring)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


def test_a_pipe_named_png_is_refused_not_read(tmp_path) -> None:
    root = _two_classes(tmp_path / "images")
    os.mkfifo(root / "a" / "pipe.png")
    with _Alarm(20), pytest.raises(DataError, match=r"pipe\.png: not a regular file") as caught:
        load_task(f"folder:{root}")
    _one_line(caught.value)


@pytest.mark.parametrize("side", [10_000, 20_000])  # above Pillow's warning, and its bomb error
def test_huge_images_are_one_line_naming_the_file_and_the_limit(tmp_path, side) -> None:
    root = _two_classes(tmp_path / "images")
    _png_header(root / "b" / "huge.png", side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning is not printed either
        with pytest.raises(
            DataError, match=r"huge\.png: .*more than the limit of 89,478,485 pixels"
        ) as caught:
            load_task(f"folder:{root}")
    _one_line(caught.value)
    assert not list((tmp_path / "cache").glob("*"))  # no zero-byte lock file (nor anything) left


def test_a_failed_decode_leaves_no_lock_file(tmp_path) -> None:
    root = _two_classes(tmp_path / "images")
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with pytest.raises(DataError, match=r"broken\.png: unreadable image"):
        load_task(f"folder:{root}")
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"std": 0.3}, r"std given without mean; give both or neither"),
        ({"mean": 0.5}, r"mean given without std"),
        ({"mean": 0.5, "std": float("nan")}, r"std must be finite numbers"),
        ({"mean": float("inf"), "std": 0.5}, r"mean must be finite numbers"),
        ({"mean": 0.5, "std": 0.0}, r"std must be > 0"),
        ({"mean": "dark", "std": 0.5}, r"mean must be finite numbers"),
        ({"mean": [0.5, 0.5], "std": [0.2, 0.2]}, r"2 mean values for 1 channels"),
    ],
)
def test_normalisation_options_are_finite_positive_and_given_together(tmp_path, options, message) -> None:
    root = _two_classes(tmp_path / "images")
    with pytest.raises(DataError, match=message) as caught:
        load_task(f"folder:{root}", **options)
    _one_line(caught.value)
    if "channels" not in message:
        assert not (tmp_path / "cache").exists()  # checked before anything was decoded


def test_normalisation_options_in_python_and_one_value_for_every_channel(tmp_path) -> None:
    with pytest.raises(DataError, match="std given without mean"):
        from_arrays(np.zeros((12, 4, 4), object), np.arange(12) % 2, std=[0.5])  # before the arrays
    task = load_task(f"folder:{_two_classes(tmp_path / 'images')}", mean=0.25, std=0.5)
    assert task.info["mean"] == [0.25] and task.info["std"] == [0.5]


# -- specs and checkpoints ------------------------------------------------------------------------
def _fields(data, path=()):
    for key, value in data.items():
        yield (*path, key)
        if isinstance(value, dict):
            yield from _fields(value, (*path, key))
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for i, item in enumerate(value):
                yield from _fields(item, (*path, key, i))


def test_every_spec_field_of_a_wrong_type_is_a_spec_error() -> None:
    mixed = backbone("D4", widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=8, kind="mixed").to_dict()
    wrong = [None, "x", [], {}, 1.5, True, -1, 10**30, ["a"], float("nan")]
    for spec in (SMALL_SPEC, mixed):
        for path in _fields(spec):
            for value in wrong:
                data = copy.deepcopy(spec)
                parent = data
                for key in path[:-1]:
                    parent = parent[key]
                parent[path[-1]] = value
                try:
                    ArchSpec.from_dict(data)
                except SpecError as err:
                    _one_line(err)
                except Exception as err:  # noqa: BLE001 - the test reports which field leaked it
                    pytest.fail(f"{'.'.join(map(str, path))} = {value!r}: {type(err).__name__}: {err}")


def test_too_deep_or_too_wide_specs_are_refused_before_building(monkeypatch) -> None:
    monkeypatch.setattr("equinas.models.size.memory_limit", lambda: 16 * 2**30)
    started = time.perf_counter()
    with pytest.raises(SpecError, match="10,000 layers; at most 4,096 fit in the memory"):
        ArchSpec.from_dict({**SMALL_SPEC, "layers": [SMALL_SPEC["layers"][1]] * 10_000})
    wide = backbone("D4", widths=(16, 16), pools_after=(0,), kernel_size=5, hidden=None).to_dict()
    wide["layers"][1]["channels"] = 10**6
    with pytest.raises(SpecError, match=r"would need about .* GiB to train \(its filters\), more than"):
        ArchSpec.from_dict(wide)
    narrow_then_wide = copy.deepcopy(SMALL_SPEC)
    narrow_then_wide["layers"][1]["channels"] = 10**6  # few filter entries, huge feature maps
    spec = ArchSpec.from_dict(narrow_then_wide)
    with pytest.raises(SpecError, match=r"\(its filters and activations for batches of 64 28x28 images\)"):
        spec.check_training_memory(28, 28, batch_size=64)
    assert time.perf_counter() - started < 5


def _checkpoint(tmp_path: Path) -> Path:
    spec = backbone("C4", widths=(1,), pools_after=(), kernel_size=3, hidden=None, num_classes=3)
    from equinas.models import build_model

    config = TrainConfig(epochs=0.25, batch_size=32, num_threads=1)
    train(build_model(spec.to_dict()), synthetic_task(), config, run_dir=tmp_path / "run", progress=False)
    return tmp_path / "run" / "checkpoint.pt"


def test_checkpoint_fields_of_the_wrong_type_are_named(tmp_path, capsys) -> None:
    path = _checkpoint(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    for key, value in (("global_step", "12"), ("history", {}), ("metadata", ["spec"]), ("model", None)):
        torch.save({**checkpoint, key: value}, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=f"bad.pt: {key} is a "):
            load_checkpoint(tmp_path / "bad.pt")
    torch.save({**checkpoint, "metadata": {"spec": "D4 D4"}}, tmp_path / "string.pt")
    assert main(["evaluate", str(tmp_path / "string.pt"), "--task", "mnist"]) == 2
    err = capsys.readouterr().err
    assert "string.pt: metadata.spec is a str, expected an object" in err and len(err.splitlines()) == 1


@needs_data
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--generations", "-1"], "generations (--generations): expected an integer >= 0, got -1"),
        (["--generations", "-1", "--epochs-per-generation", "0.5"], "generations (--generations)"),
    ],
)
def test_negative_generations_are_one_line(tmp_path, monkeypatch, capsys, options, message) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["search", "equinas_e", "--task", "mnist", *SMALL_NET_ARGS, *options, "--run-dir", "out"]
    if "--epochs-per-generation" not in options:
        argv += ["--epochs", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


# -- a full disk ----------------------------------------------------------------------------------
def test_a_full_disk_names_the_file(tmp_path, monkeypatch) -> None:
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    run = RunDirectory(tmp_path)
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=f"cannot write {tmp_path / 'search.json'}: No space left") as caught:
        atomic_write_text(tmp_path / "search.json", "{}")
    assert caught.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match="cannot append to .*candidates.jsonl: No space left"):
        run.append(CandidateRecord("a", "test", {}, [], 1, 0.5, 0.5))
    assert [p.name for p in tmp_path.iterdir()] == ["candidates.jsonl"]  # no temp file left


def test_record_lines_are_strict_json(tmp_path) -> None:
    run = RunDirectory(tmp_path)
    run.append(CandidateRecord("a", "test", {}, [], 1, float("nan"), float("inf"), val_loss=float("nan")))
    line = run.jsonl.read_text()
    assert "NaN" not in line and "Infinity" not in line
    assert json.loads(line)["val_acc"] is None
