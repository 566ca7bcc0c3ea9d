"""The memory budget is what this process may really use (available memory, cgroup, rlimits),
and specs, npz archives and image folders that would not fit are refused before allocation."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from equinas import memory
from equinas.data import DataError
from equinas.models import ArchSpec, SpecError, backbone
from equinas.models.size import LAYER_BYTES

SRC = str(Path(__file__).resolve().parents[1] / "src")
GIB = 2**30


def _run_limited(code: str, address_space: int, *args: str) -> subprocess.CompletedProcess:
    """``python -c code args`` with its address space limited to ``address_space`` bytes."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin", "EQUINAS_CACHE": args[0] if args else "/nonexistent"}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _zeros_npz(path: Path, nbytes: int) -> None:
    """An ``.npz`` of one uint8 array of ``nbytes`` zeros, written in chunks (a zip bomb: a few
    hundred kB on disk)."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros(0, np.uint8))
    header["shape"] = (nbytes,)
    chunk = bytes(2**24)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("images.npy", "w", force_zip64=True) as entry,
    ):
        np.lib.format.write_array_header_1_0(entry, header)
        for start in range(0, nbytes, len(chunk)):
            entry.write(chunk[: min(len(chunk), nbytes - start)])


def test_the_budget_reads_meminfo_cgroups_and_rlimits(tmp_path) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text("MemTotal: 100 kB\nMemAvailable:   2048 kB\n")
    assert memory.available_memory(proc) == 2048 * 1024
    (proc / "self" / "cgroup").write_text("0::/outer/inner\n")
    inner = root / "outer" / "inner"
    inner.mkdir(parents=True)
    (inner / "memory.max").write_text("max\n")
    (inner / "memory.current").write_text("100\n")
    (root / "outer" / "memory.max").write_text("1000\n")
    (root / "outer" / "memory.current").write_text("400\n")
    assert memory.cgroup_headroom(proc, root) == 600  # the ancestor's limit holds
    (inner / "memory.max").write_text("500\n")
    assert memory.cgroup_headroom(proc, root) == 400
    (proc / "self" / "cgroup").write_text("4:cpu,cpuacct:/a\n3:memory:/a\n")
    (root / "memory" / "a").mkdir(parents=True)
    (root / "memory" / "a" / "memory.limit_in_bytes").write_text("5000\n")
    (root / "memory" / "a" / "memory.usage_in_bytes").write_text("1000\n")
    assert memory.cgroup_headroom(proc, root) == 4000
    (proc / "self" / "cgroup").write_text("0::/\n")
    assert memory.cgroup_headroom(proc, tmp_path / "none") is None


PROBE = """
import resource, sys
from equinas.memory import memory_limit
limit = memory_limit()
assert limit is not None and limit < resource.getrlimit(resource.RLIMIT_AS)[0], limit
from equinas.data.cache import read_npz
from equinas.data import DataError
try:
    read_npz(sys.argv[2])
except DataError as err:
    print(err)
"""


def test_an_npz_bomb_is_refused_under_an_address_space_rlimit(tmp_path) -> None:
    bomb = tmp_path / "bomb.npz"
    _zeros_npz(bomb, 700 * 2**20)
    assert bomb.stat().st_size < 2**20
    done = _run_limited(PROBE, GIB // 2, str(tmp_path / "cache"), str(bomb))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "need 0.684 GiB, more than the" in done.stdout and "this process may use now" in done.stdout


SPEC_PROBE = """
import json, sys
from equinas.models import ArchSpec, SpecError
try:
    ArchSpec.from_dict(json.loads(open(sys.argv[2]).read())).check_training_memory(28, 28, 64)
except SpecError as err:
    print(err)
"""


def test_a_spec_beyond_the_rlimit_is_refused_before_building(tmp_path) -> None:
    deep = backbone("C4", widths=(4,) * 400, pools_after=(), kernel_size=5, hidden=None)
    path = tmp_path / "deep.json"
    path.write_text(json.dumps(deep.to_dict()))
    done = _run_limited(SPEC_PROBE, 3 * GIB, str(tmp_path / "cache"), str(path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("layers: ") and "memory this process may use" in done.stdout
    shallow = backbone("C4", widths=(1,) * 900, pools_after=(), kernel_size=3, hidden=None)
    path.write_text(json.dumps(shallow.to_dict()))
    done = _run_limited(SPEC_PROBE, 3 * GIB, str(tmp_path / "cache"), str(path))
    assert "layers: 900 layers; at most" in done.stdout  # 4 MiB a layer: ~600 fit in 2.4 GiB


def test_the_layer_limit_follows_the_budget(monkeypatch) -> None:
    spec = backbone("C4", widths=(1,) * 10, pools_after=(), kernel_size=3, hidden=None).to_dict()
    monkeypatch.setattr("equinas.models.size.memory_limit", lambda: 9 * LAYER_BYTES)
    with pytest.raises(SpecError, match=r"10 layers; at most 9 fit in the memory"):
        ArchSpec.from_dict(spec)
    monkeypatch.setattr("equinas.models.size.memory_limit", lambda: 10**6 * LAYER_BYTES)
    ArchSpec.from_dict(spec)


def test_an_image_folder_that_would_not_fit_is_refused_before_decoding(tmp_path, monkeypatch) -> None:
    image = pytest.importorskip("PIL.Image")
    monkeypatch.setenv("EQUINAS_CACHE", str(tmp_path / "cache"))
    for name in ("a", "b"):
        (tmp_path / "d" / name).mkdir(parents=True)
        for i in range(3):
            image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "d" / name / f"{i}.png")
    monkeypatch.setattr("equinas.data.folder.memory_limit", lambda: 40 * 40 * 3 * 6)
    from equinas.data.folder import load_folder

    with pytest.raises(
        DataError, match=r"6 images of 40x40 uint8 need about .* pass the task option image_size"
    ):
        load_folder(tmp_path / "d")
