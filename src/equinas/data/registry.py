"""Task names -> ``TaskData``: the one entry point the trainers and searches use.

Split policy:

* MNIST family (``mnist``, ``fashion-mnist``, ``mnist-c*``, ``mnist-mixed-*``, ``gmnist[...]``,
  ``gfmnist[...]``): 10% of the official training set, drawn with a fixed seed, is the
  validation split; the official test set is the test split.
* ``rotmnist``: its own 10k / 2k / 50k splits.
* ``galaxy10``, ``isic``: 10% of all images are the test split and 10% of the rest the
  validation split (seed 42).
* ``folder:PATH`` (an image folder, see ``equinas.data.folder``) and ``npz:PATH`` (arrays, see
  ``equinas.data.arrays``): splits the data fixes (``train/``/``val/``/``test/`` folders,
  ``val_*``/``test_*`` arrays) are kept; the others are carved out class-stratified
  (``val_fraction``, ``test_fraction``, default 0.1, chosen by the option ``split_seed``).

``train_size`` / ``val_size`` / ``test_size`` then take a class-stratified random subset of
each split, chosen by ``seed``; everything else (holdouts, transforms, RotMNIST) is fixed and
independent of ``seed``.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from equinas.data import galaxy10, isic, mnist, rotmnist
from equinas.data.arrays import array_sources, npz_splits
from equinas.data.assemble import assemble_task, normalisation
from equinas.data.augmented import SETTINGS, augmented_mnist
from equinas.data.cache import cache_problem, sha256_file
from equinas.data.errors import DataNotFoundError
from equinas.data.folder import folder_cache_path, list_folder, load_folder
from equinas.data.gmnist import ALIASES, TRANSFORMS, canonical_transforms, gmnist_sources
from equinas.data.gmnist import NORMALISATION as GMNIST_NORMALISATION
from equinas.data.idx import read_decompressed
from equinas.data.names import list_tasks
from equinas.data.splits import ImageSource, carve_splits, holdout_split
from equinas.data.task import TaskData

DataDir = str | os.PathLike[str] | None

VAL_FRACTION = 0.1
TEST_FRACTION = 0.1
MNIST_VAL_SEED = 0
HOLDOUT_SEED = 42
HASH_LIMIT = 256 << 20  # describe_task hashes files up to this size
_GMNIST: dict[str, mnist.Dataset] = {"gmnist": "mnist", "gfmnist": "fashion-mnist"}
_GMNIST_NAME = re.compile(r"(gmnist|gfmnist)\[([^\]]*)\]")
_PATH_TASKS = ("folder:", "npz:")


@dataclass(frozen=True)
class _Sources:
    """What a task builder hands to the shared assembly."""

    splits: dict[str, ImageSource]
    num_classes: int
    mean: float | Sequence[float] | None  # one value, or one per channel (checked by assemble_task)
    std: float | Sequence[float] | None
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Spec:
    """How to build a task, which files it reads and (optionally) its derived cache."""

    build: Callable[..., _Sources]  # (data_dir, **options)
    files: Callable[[DataDir, dict], list[tuple[Path, str | None]]]  # -> (path, known md5)
    cache: Callable[[DataDir, dict], Path] | None = None  # (data_dir, options) -> cache file
    prepare: Callable[[DataDir, dict], Path] | None = None  # -> cache file


# -- splits -----------------------------------------------------------------------------
def _split_val(pool: ImageSource, test: ImageSource, seed: int | str) -> dict[str, ImageSource]:
    train, val = holdout_split(len(pool), VAL_FRACTION, seed)
    return {"train": pool.take(train), "val": pool.take(val), "test": test}


def _three_way(source: ImageSource) -> dict[str, ImageSource]:
    rest, test = holdout_split(len(source), TEST_FRACTION, f"{HOLDOUT_SEED}/test")
    return _split_val(source.take(rest), source.take(test), f"{HOLDOUT_SEED}/val")


# -- files ------------------------------------------------------------------------------
def _idx_files(dataset: mnist.Dataset, data_dir: DataDir) -> list[tuple[Path, str | None]]:
    out = []
    for split in ("train", "test"):
        for path in mnist.mnist_files(dataset, split, data_dir):
            out.append((path, mnist.KNOWN_MD5.get((dataset, path.name.removesuffix(".gz")))))
    return out


def _names(files: list[tuple[Path, str | None]]) -> list[str]:
    return [str(path) for path, _ in files]


# -- builders ---------------------------------------------------------------------------
def _mnist_family(
    dataset: mnist.Dataset,
    pool: ImageSource,
    test: ImageSource,
    data_dir: DataDir,
    *,
    normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    num_classes: int = mnist.NUM_CLASSES,
    **info: object,
) -> _Sources:
    """Validation held out of the official training pool; ``dataset``'s normalisation unless
    another is given."""
    mean, std = normalisation or mnist.NORMALISATION[dataset]
    info = {"files": _names(_idx_files(dataset, data_dir)), **info}
    return _Sources(_split_val(pool, test, MNIST_VAL_SEED), num_classes, mean, std, info)


def _mnist(dataset: mnist.Dataset, data_dir: DataDir) -> _Sources:
    pool, test = (
        ImageSource.from_arrays(*mnist.load_mnist_arrays(dataset, split, data_dir))
        for split in ("train", "test")
    )
    return _mnist_family(dataset, pool, test, data_dir)


def _augmented(setting: str, data_dir: DataDir) -> _Sources:
    spec = SETTINGS[setting]
    return _mnist_family(
        "mnist",
        *augmented_mnist(setting, data_dir),
        data_dir,
        num_classes=spec.num_classes,
        group=spec.group,
        train_mix=spec.train_mix,
        test_mix=spec.test_mix,
    )


def _gmnist(dataset: mnist.Dataset, transforms: tuple[str, ...], data_dir: DataDir) -> _Sources:
    return _mnist_family(
        dataset,
        *gmnist_sources(dataset, transforms, data_dir),
        data_dir,
        transforms=list(transforms),
        normalisation=GMNIST_NORMALISATION,
    )


def _rotmnist(data_dir: DataDir, limit: int | None = None) -> _Sources:
    arrays = rotmnist.load_rotmnist(data_dir, limit=limit)
    splits = {
        split: ImageSource.from_arrays(arrays[f"{split}_images"], arrays[f"{split}_labels"])
        for split in ("train", "val", "test")
    }
    info = {"cache": str(rotmnist.rotmnist_cache_path(data_dir, limit=limit)), "limit": limit}
    return _Sources(splits, mnist.NUM_CLASSES, None, None, info)


def _galaxy10(data_dir: DataDir, image_size: int | None = 64, path: DataDir = None) -> _Sources:
    file = galaxy10.galaxy10_path(data_dir, path)
    source = galaxy10.galaxy10_source(file, image_size)
    info = {"files": [str(file)], "image_size": image_size, "classes": list(galaxy10.CLASS_NAMES)}
    return _Sources(_three_way(source), galaxy10.NUM_CLASSES, None, None, info)


def _isic(
    data_dir: DataDir, image_size: int = 64, image_dir: DataDir = None, csv_path: DataDir = None
) -> _Sources:
    folder, table = isic.isic_paths(data_dir, image_dir, csv_path)
    source = isic.isic_source(folder, table, image_size)
    info = {"files": [str(table), str(folder)], "image_size": image_size, "classes": list(isic.CLASSES)}
    return _Sources(_three_way(source), len(isic.CLASSES), None, None, info)


def _folder(
    path: str,
    data_dir: DataDir,
    image_size: int | None = None,
    channels: int | None = None,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    split_seed: int = 0,
    mean: float | list[float] | None = None,
    std: float | list[float] | None = None,
) -> _Sources:
    normalisation(f"folder:{path}", mean, std)  # checked before anything is decoded
    listing, images, cache, value_range = load_folder(path, image_size, channels)
    classes = list(listing.classes)
    indices = carve_splits(
        listing.labels,
        listing.indices(),
        classes,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=split_seed,
        where=path,
    )
    pool = ImageSource.from_arrays(images, listing.labels)
    info = {
        "files": [str(listing.root.resolve())],
        "classes": classes,
        "image_size": image_size,
        "channels": 1 if images.ndim == 3 else images.shape[-1],
        "split_seed": split_seed,
        "value_range": list(value_range),
        "cache": str(cache),
    }
    sources = {split: pool.take(i) for split, i in indices.items()}
    return _Sources(sources, len(classes), mean, std, info)


def _npz(
    path: str,
    data_dir: DataDir,
    num_classes: int | None = None,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    split_seed: int = 0,
) -> _Sources:
    splits, classes = array_sources(
        npz_splits(path),
        num_classes=num_classes,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        split_seed=split_seed,
        where=path,
    )
    info = {"files": [str(Path(path).resolve())], "split_seed": split_seed}
    return _Sources(splits, classes, None, None, info)


def _path_spec(kind: str, path: str) -> _Spec:
    """The spec of ``folder:PATH`` or ``npz:PATH``."""
    if not path:
        raise ValueError(f"task {kind}PATH needs a path, e.g. {kind}data/my_images")

    def files(data_dir: DataDir, options: dict) -> list[tuple[Path, str | None]]:
        if not Path(path).exists():
            raise DataNotFoundError(f"{path}: not found (task {kind}{path})")
        return [(Path(path), None)]

    if kind == "npz:":
        return _Spec(partial(_npz, path), files)

    def cache(data_dir: DataDir, options: dict) -> Path:
        return folder_cache_path(list_folder(path), options.get("image_size"), options.get("channels"))

    def prepare(data_dir: DataDir, options: dict) -> Path:
        return load_folder(path, options.get("image_size"), options.get("channels"))[2]

    return _Spec(partial(_folder, path), files, cache=cache, prepare=prepare)


def _mnist_spec(build: Callable[..., _Sources], dataset: mnist.Dataset) -> _Spec:
    return _Spec(build, lambda data_dir, options: _idx_files(dataset, data_dir))


_FIXED: dict[str, _Spec] = {
    "mnist": _mnist_spec(partial(_mnist, "mnist"), "mnist"),
    "fashion-mnist": _mnist_spec(partial(_mnist, "fashion-mnist"), "fashion-mnist"),
    "rotmnist": _Spec(
        _rotmnist,
        lambda data_dir, options: _idx_files("mnist", data_dir),
        cache=lambda data_dir, options: rotmnist.rotmnist_cache_path(data_dir, limit=options.get("limit")),
        prepare=lambda data_dir, options: rotmnist.prepare_rotmnist(data_dir, limit=options.get("limit")),
    ),
    **{name: _mnist_spec(partial(_augmented, name), "mnist") for name in SETTINGS},
    "galaxy10": _Spec(
        _galaxy10,
        lambda data_dir, options: [(galaxy10.galaxy10_path(data_dir, options.get("path")), None)],
    ),
    "isic": _Spec(
        _isic,
        lambda data_dir, options: [
            (path, None)
            for path in isic.isic_paths(data_dir, options.get("image_dir"), options.get("csv_path"))
        ],
    ),
}


def _resolve(name: str) -> tuple[str, _Spec]:
    """Canonical task name and its spec; ``ValueError`` listing the valid names."""
    if name in _FIXED:
        return name, _FIXED[name]
    for kind in _PATH_TASKS:
        if isinstance(name, str) and name.startswith(kind):
            return name, _path_spec(kind, name.removeprefix(kind))
    match = _GMNIST_NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(
            f"unknown task {name!r}; valid tasks: {', '.join(list_tasks())}, where [...] is a "
            f"comma-separated subset of {', '.join(TRANSFORMS)} (or aliases "
            f"{', '.join(ALIASES)}), e.g. gmnist[rot,hflip]; gmnist[] is clean"
        )
    family, listed = match.groups()
    transforms = canonical_transforms(n for n in listed.split(",") if n.strip())
    dataset = _GMNIST[family]
    spec = _mnist_spec(partial(_gmnist, dataset, transforms), dataset)
    return f"{family}[{','.join(transforms)}]", spec


def _check_options(name: str, function: Callable[..., object], options: dict) -> None:
    accepted = [p for p in inspect.signature(function).parameters if p != "data_dir"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"task {name} does not take options {unknown}; it accepts {accepted or 'none'}")


def load_task(
    name: str,
    data_dir: DataDir = None,
    *,
    train_size: int | None = None,
    val_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    **options: object,
) -> TaskData:
    """Load task ``name`` (see ``list_tasks``) as ``[N, C, H, W]`` splits (uint8 images stay uint8
    and are normalised batch by batch, see ``Split``; ``Split.images`` is always float32).

    ``*_size`` truncate each split to a class-stratified random subset chosen by ``seed``
    (None keeps the split whole). ``options`` are task specific: ``rotmnist``: ``limit``
    (generate only that many images in total); ``galaxy10``: ``image_size`` (default 64,
    block mean of the 256 px images; None keeps 256), ``path``; ``isic``: ``image_size``
    (default 64), ``image_dir``, ``csv_path``; ``folder:PATH``: ``image_size`` (centre crop and
    resize to N x N; default: keep the size, which must be common), ``channels`` (1 or 3;
    default 1 when every image is grayscale), ``val_fraction``, ``test_fraction``,
    ``split_seed``, ``mean`` and ``std`` (in [0, 1] units, one value or one per channel; default:
    measured on the train split); ``npz:PATH``: ``num_classes``, ``val_fraction``, ``test_fraction``,
    ``split_seed``. ``info`` records files, normalisation, sizes
    and the task's construction parameters.
    """
    canonical, spec = _resolve(name)
    _check_options(canonical, spec.build, options)
    sources = spec.build(data_dir, **options)
    sizes = {"train": train_size, "val": val_size, "test": test_size}
    info = {"task": canonical, **sources.info}
    return assemble_task(
        canonical,
        sources.num_classes,
        sources.splits,
        sizes,
        seed,
        mean=sources.mean,
        std=sources.std,
        info=info,
    )


def _describe_file(path: Path, expected_md5: str | None) -> dict:
    if path.is_dir():
        return {"path": str(path), "kind": "directory", "entries": sum(1 for _ in path.iterdir())}
    entry: dict = {"path": str(path), "bytes": path.stat().st_size}
    if entry["bytes"] <= HASH_LIMIT:
        content = read_decompressed(path)
        entry["content_bytes"] = len(content)
        entry["sha256"] = hashlib.sha256(content).hexdigest()
        entry["md5"] = hashlib.md5(content).hexdigest()
        if expected_md5 is not None:
            entry["md5_expected"] = expected_md5
            entry["ok"] = entry["md5"] == expected_md5
    return entry


def describe_task(name: str, data_dir: DataDir = None, **options: object) -> dict:
    """Files a task reads (size; for files up to 256 MiB the sha256 and md5 of the
    decompressed content, checked against the published md5 where known) and its cache."""
    canonical, spec = _resolve(name)
    _check_options(canonical, spec.build, options)
    report: dict = {
        "task": canonical,
        "files": [_describe_file(path, md5) for path, md5 in spec.files(data_dir, options)],
    }
    if spec.cache is not None:
        path = spec.cache(data_dir, options)
        problem = cache_problem(path)
        report["cache"] = {
            "path": str(path),
            "ready": problem is None,
            "problem": problem,
            "sha256": sha256_file(path) if path.is_file() else None,
        }
    return report


def prepare_task(name: str, data_dir: DataDir = None, **options: object) -> Path | None:
    """Generate and cache a task's derived data (RotMNIST); returns the cache file, or None
    for tasks that read their files directly (after checking that those files exist)."""
    canonical, spec = _resolve(name)
    _check_options(canonical, spec.build, options)
    if spec.prepare is None:
        spec.files(data_dir, options)
        return None
    return spec.prepare(data_dir, options)
