"""Tutorial: find the symmetry of your own image folder with EquiNAS_G.

Writes a folder of PNG images (one subfolder per class, as you would arrange your own), loads
it as a task and lets EquiNAS_G train one network whose layers start at D4 and are relaxed where
a test on the gradients finds that the constraint costs loss. The shapes turn by quarter turns
but are chiral, so the answer should keep rotations and drop mirrors (C4 in the later layers).

    python docs/tutorials/folder_symmetry.py          # about a minute on 2 CPU cores
    python docs/tutorials/folder_symmetry.py --tiny   # seconds: checks that it runs
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from shapes import CLASSES, make_shapes  # noqa: E402

from equinas.data import load_task  # noqa: E402
from equinas.execution import LocalExecutor  # noqa: E402
from equinas.search import BackboneSettings, RunDirectory, SearchContext, make_method, run_search  # noqa: E402
from equinas.train import TrainConfig  # noqa: E402


def write_folder(root: Path, per_class: int) -> Path:
    """``root/<class>/<i>.png``: the layout ``folder:PATH`` tasks read."""
    images, labels = make_shapes(per_class)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    return root


def main(tiny: bool, work: Path) -> list[str]:
    folder = write_folder(work / "shapes", per_class=60 if tiny else 300)
    data = load_task(f"folder:{folder}")  # splits carved class-balanced: 80 % train, 10 % val, 10 % test
    backbone = BackboneSettings(widths=(2, 2, 4, 4) if tiny else (4, 4, 8, 8), pools_after=(1,), hidden=None)
    config = TrainConfig(epochs=1 if tiny else 8, batch_size=12 if tiny else 32, lr=3e-3, num_threads=1)
    # the tiny run has 6 steps per part: one decision, at a level its few steps can reach
    settings = {"decide_at": (0.5,), "alpha": 0.5} if tiny else {}
    ctx = SearchContext(
        "shapes", data, backbone, config, LocalExecutor(), RunDirectory(work / "run"), progress=False
    )
    result = run_search(make_method("equinas_g", **settings), ctx)
    for decision in result.extras["decisions"]:
        moves = [f"layer {d['layer']}: {d['from']} -> {d['to']}" for d in decision["layers"] if d["to"]]
        print(f"epoch {decision['epoch']:g}: {', '.join(moves) or 'no relaxation'}")
    best = result.best
    print(f"found {' '.join(best.groups)}, test accuracy {100 * best.test_acc:.1f} %")
    return list(best.groups)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a budget that only checks that it runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        main(args.tiny, Path(work))
