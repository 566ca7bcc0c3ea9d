"""Tutorial: relax a trained layer to a subgroup and keep its function.

Trains a D4 network briefly, relaxes one layer to C4 with the relaxation morphism and checks
that the relaxed network computes the same logits (the morphism re-expresses the D4 filter in
the C4 layer's larger parametrisation; nothing is approximated). Training then goes on: the
relaxed layer may now use filters that are not mirror-symmetric, so the network stays
C4-equivariant but leaves D4. This is the step EquiNAS_E's children and EquiNAS_G's decisions
take.

    python docs/tutorials/relax_trained.py          # about a minute on 2 CPU cores
    python docs/tutorials/relax_trained.py --tiny   # seconds: checks that it runs
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from shapes import make_shapes  # noqa: E402

from equinas.data import from_arrays  # noqa: E402
from equinas.models import BackboneSettings, build_model  # noqa: E402
from equinas.morphisms import relax_network  # noqa: E402
from equinas.testing import equivariance_report  # noqa: E402
from equinas.train import TrainConfig, train  # noqa: E402


def main(tiny: bool) -> float:
    torch.manual_seed(0)
    images, labels = make_shapes(per_class=40 if tiny else 300)
    data = from_arrays(images, labels, val_fraction=0.15, test_fraction=0.15)
    backbone = BackboneSettings(widths=(2, 2, 4, 4) if tiny else (4, 4, 8, 8), pools_after=(1,), hidden=None)
    model = build_model(backbone.spec(data, "D4").to_dict())
    config = TrainConfig(epochs=1 if tiny else 3, batch_size=32, lr=3e-3, num_threads=1)
    print("D4 network:", train(model, data, config, progress=False).metrics["test_acc"])

    relaxed = relax_network(model, layer_index=2, subgroup="C4")  # a copy; `model` is unchanged
    model.eval()
    relaxed.eval()
    x = data.test.images[:64]
    with torch.no_grad():
        gap = (relaxed(x) - model(x)).abs().max().item()
    groups = " ".join(relaxed.spec.groups_per_layer())
    print(f"relaxed layer 2 to C4: groups {groups}, largest logit change {gap:.1e}")
    assert gap < 1e-4, "the relaxation morphism keeps the function"

    more = dataclasses.replace(config, seed=1)
    print("after more training:", train(relaxed, data, more, progress=False).metrics["test_acc"])
    relaxed.eval()
    print("C4:", "equivariant" if equivariance_report(relaxed, group="C4").passed else "broken")
    mirrors = equivariance_report(relaxed, group="D4")
    print("D4:", "equivariant" if mirrors.passed else "broken (mirrors freed)")
    return gap


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a budget that only checks that it runs")
    main(parser.parse_args().tiny)
