"""Tutorial: compare search methods at equal compute.

Every record carries its compute (``cost.total_flops``: 3 x the multiply-adds of a training
pass per image, 1 x for evaluation), so methods are compared by what they spent, counted in
networks: the compute of one fixed network trained and scored for ``EPOCHS`` epochs. Each
method here gets two networks' worth: the fixed C4 and D4 networks (one each), EquiNAS_G (one
network trained twice as long) and EquiNAS_D (which costs about 1.9 networks per ``--epochs``,
so it gets 2 / 1.9 of them).

    python docs/tutorials/equal_compute.py          # a few minutes on 2 CPU cores
    python docs/tutorials/equal_compute.py --tiny   # seconds: checks that it runs
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shapes import make_shapes  # noqa: E402

from equinas.data import from_arrays  # noqa: E402
from equinas.execution import LocalExecutor  # noqa: E402
from equinas.search import BackboneSettings, RunDirectory, SearchContext, make_method, run_search  # noqa: E402
from equinas.train import TrainConfig  # noqa: E402

BUDGET = 2.0  # networks per method
D_COST = 1.9  # EquiNAS_D's cost in networks per --epochs (its default recipe)


def main(tiny: bool, work: Path) -> dict[str, float]:
    images, labels = make_shapes(per_class=60 if tiny else 200, noise=0.6)  # noisy: no method is perfect
    data = from_arrays(images, labels, val_fraction=0.15, test_fraction=0.15)
    backbone = BackboneSettings(widths=(2, 2, 4, 4) if tiny else (4, 4, 8, 8), pools_after=(1,), hidden=None)
    epochs = 1.0 if tiny else 4.0
    g_settings = {"decide_at": (0.5,), "alpha": 0.5} if tiny else {}  # the tiny parts are short
    runs = {  # name: (method, settings, epochs)
        "fixed C4 + D4": ("fixed", {"groups": ("C4", "D4")}, epochs),
        "EquiNAS_G": ("equinas_g", g_settings, BUDGET * epochs),
        "EquiNAS_D": ("equinas_d", {}, BUDGET / D_COST * epochs),
    }
    results = {}
    for name, (method, settings, run_epochs) in runs.items():
        config = TrainConfig(epochs=run_epochs, batch_size=12 if tiny else 32, lr=3e-3, num_threads=1)
        run = RunDirectory(work / method)
        ctx = SearchContext("shapes", data, backbone, config, LocalExecutor(), run, progress=False)
        results[name] = run_search(make_method(method, **settings), ctx)
    network = results["fixed C4 + D4"].total_cost.total_flops / 2  # one fixed network of `epochs`
    costs = {}
    print(f"{'method':<14} {'found':<14} {'test acc':>8} {'cost (networks)':>16}")
    for name, result in results.items():
        best = result.best
        costs[name] = result.total_cost.total_flops / network
        print(f"{name:<14} {' '.join(best.groups):<14} {100 * best.test_acc:7.1f}% {costs[name]:16.2f}")
    return costs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a budget that only checks that it runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        main(args.tiny, Path(work))
