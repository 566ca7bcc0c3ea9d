"""Derived-data caches: keyed by their source files, and safe under concurrent builds."""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest

from equinas.data import DataError, DataNotFoundError, prepare_task
from equinas.data import paths as paths_module
from equinas.data.cache import cache_problem, read_npz, sidecar_path, write_npz
from equinas.data.rotmnist import load_rotmnist, prepare_rotmnist, rotmnist_cache_path
from test_data_support import real_data_dir, write_fake_mnist

LIMIT = 62


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(paths_module.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_explicit_missing_data_dir_is_an_error_even_with_a_cache(cache, tmp_path) -> None:
    cached = prepare_rotmnist(real_data_dir(), limit=LIMIT)
    assert cache_problem(cached) is None
    with pytest.raises(DataNotFoundError, match="nowhere"):
        load_rotmnist(tmp_path / "nowhere", limit=LIMIT)
    with pytest.raises(DataNotFoundError, match="nowhere"):
        prepare_task("rotmnist", tmp_path / "nowhere", limit=LIMIT)


def test_cache_is_not_reused_for_other_or_damaged_sources(cache, tmp_path) -> None:
    real = real_data_dir()
    cached = prepare_rotmnist(real, limit=LIMIT)
    other = write_fake_mnist(tmp_path / "fake")
    assert rotmnist_cache_path(other, limit=LIMIT) != cached
    with pytest.raises(DataError, match="70,000"):  # the fake set is too small to generate from
        load_rotmnist(other, limit=LIMIT)

    damaged = tmp_path / "damaged"
    shutil.copytree(real / "mnist", damaged / "mnist")
    images = next((damaged / "mnist").glob("train-images*"))
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    assert rotmnist_cache_path(damaged, limit=LIMIT) != cached
    with pytest.raises(DataError, match="train-images"):
        load_rotmnist(damaged, limit=LIMIT)

    copy = tmp_path / "copy"
    shutil.copytree(real / "mnist", copy / "mnist")
    assert rotmnist_cache_path(copy, limit=LIMIT) == cached  # same bytes: the cache is shared


def _run_concurrently(target, count: int) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            target()
        except BaseException as exc:  # collected and reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_npz_writes_all_succeed_and_leave_a_valid_file(tmp_path) -> None:
    path = tmp_path / "cache" / "arrays.npz"
    arrays = {"a": np.arange(50_000, dtype=np.int64), "b": np.ones((64, 64), np.float32)}
    for _ in range(2):
        assert _run_concurrently(lambda: write_npz(path, arrays), 4) == []
        assert cache_problem(path) is None
        np.testing.assert_array_equal(read_npz(path)["a"], arrays["a"])
    assert sorted(p.name for p in path.parent.iterdir()) == ["arrays.npz", "arrays.npz.sha256"]
    umask = os.umask(0)
    os.umask(umask)
    for file in (path, sidecar_path(path)):
        assert file.stat().st_mode & 0o777 == 0o666 & ~umask


def test_concurrent_rotmnist_prepares_both_succeed(cache) -> None:
    data = real_data_dir()
    paths = []
    errors = _run_concurrently(lambda: paths.append(prepare_rotmnist(data, limit=LIMIT)), 2)
    assert errors == []
    assert len(set(paths)) == 1 and cache_problem(paths[0]) is None
    assert not [p for p in cache.iterdir() if p.name.endswith((".partial", ".tmp"))]
