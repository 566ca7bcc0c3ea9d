"""Write MNIST as an image folder: ``OUT/train/<digit>/<name>.png``, ``OUT/test/...`` (and
``OUT/val/...`` with ``--builtin-splits``).

The input of the ``folder:`` acceptance check (``bench_folder_task.py``); write it outside the
repository (default ``/tmp/mnist_png``) and never commit it. Lossless PNG, so the folder holds
exactly MNIST's pixels. By default ``train/`` is the official training set and the folder task
carves its own class-balanced validation split out of it; with ``--builtin-splits`` ``val/``
holds the built-in ``mnist`` task's validation images and ``train/`` the rest, each file named
by its position in that split, so both tasks hold the same images in every split. Existing
files are kept (rerunning resumes an interrupted export).

    python benchmarks/export_mnist_folder.py [--out /tmp/mnist_png] [--builtin-splits] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from equinas.data.mnist import load_mnist_arrays
from equinas.data.registry import MNIST_VAL_SEED, VAL_FRACTION
from equinas.data.splits import holdout_split


def write_split(out: Path, images: np.ndarray, labels: np.ndarray, desc: str) -> None:
    """``out/<label>/<position>.png`` for every image not written yet."""
    for digit in range(10):
        (out / str(digit)).mkdir(parents=True, exist_ok=True)
    for index in tqdm(range(len(labels)), desc=desc):
        path = out / str(int(labels[index])) / f"{index:05d}.png"
        if not path.exists():
            temp = path.with_name(f".{path.name}.partial")
            Image.fromarray(images[index]).save(temp, format="PNG")
            temp.replace(path)


def export(out: Path, data_dir: str | None, builtin_splits: bool) -> int:
    """Write every missing PNG; returns the number of images in the folder."""
    train_x, train_y = load_mnist_arrays("mnist", "train", data_dir)
    splits = {"test": load_mnist_arrays("mnist", "test", data_dir)}
    if builtin_splits:  # the holdout of the built-in task (registry._split_val)
        rest, held = holdout_split(len(train_y), VAL_FRACTION, MNIST_VAL_SEED)
        splits |= {"train": (train_x[rest], train_y[rest]), "val": (train_x[held], train_y[held])}
    else:
        splits["train"] = (train_x, train_y)
    for split, (images, labels) in splits.items():
        write_split(out / split, images, labels, split)
    return sum(len(labels) for _, labels in splits.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/mnist_png"))
    parser.add_argument("--builtin-splits", action="store_true", help="val/ = the built-in task's val split")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    print(f"{export(args.out, args.data_dir, args.builtin_splits)} images in {args.out}")


if __name__ == "__main__":
    main()
