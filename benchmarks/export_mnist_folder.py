"""Write MNIST as an image folder: ``OUT/train/<digit>/<index>.png`` and ``OUT/test/<digit>/...``.

The input of the ``folder:`` acceptance check (``bench_folder_task.py``); write it outside the
repository (default ``/tmp/mnist_png``) and never commit it. Lossless PNG, so the folder holds
exactly MNIST's pixels. Existing files are kept (rerunning resumes an interrupted export).

    python benchmarks/export_mnist_folder.py [--out /tmp/mnist_png] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from equinas.data.mnist import load_mnist_arrays


def export(out: Path, data_dir: str | None) -> int:
    """Write every missing PNG; returns the number of images in the folder."""
    total = 0
    for split in ("train", "test"):
        images, labels = load_mnist_arrays("mnist", split, data_dir)
        for digit in range(10):
            (out / split / str(digit)).mkdir(parents=True, exist_ok=True)
        for index, (image, label) in enumerate(
            tqdm(zip(images, labels, strict=True), total=len(labels), desc=split)
        ):
            path = out / split / str(int(label)) / f"{index:05d}.png"
            if not path.exists():
                temp = path.with_name(f".{path.name}.partial")
                Image.fromarray(image).save(temp, format="PNG")
                temp.replace(path)
        total += len(labels)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/mnist_png"))
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    print(f"{export(args.out, args.data_dir)} images in {args.out}")


if __name__ == "__main__":
    main()
