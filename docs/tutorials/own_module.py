"""Tutorial: build your own equivariant module and test it with ``assert_equivariant``.

A module of any structure built from equinas layers: ``assert_equivariant`` reads the input
layout off its first equinas layer and the group off all of them (their intersection), feeds a
smooth random input and compares ``F(g.x)`` with ``g.F(x)`` for every element ``g``. A layer
whose group is a subgroup (here C4 inside D4) makes the whole module only C4-equivariant; a
plain ``nn.Conv2d`` in the middle breaks equivariance altogether, and the report names the
worst element.

    python docs/tutorials/own_module.py   # seconds (--tiny: the same, it is small already)
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from equinas.nn import GroupConv, GroupPool, LiftingConv
from equinas.testing import assert_equivariant, equivariance_report


class MyNet(nn.Module):
    """Lift to D4 feature maps, one C4 group conv, pool over the group: ``[B, 1, H, W] -> [B, 8, H, W]``."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.lift = LiftingConv(1, channels, 5, "D4")
        self.conv = GroupConv(channels, channels, 5, "C4", ambient="D4")
        self.pool = GroupPool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(torch.relu(self.lift(x))))


class Broken(MyNet):
    """The same with a plain convolution on the pooled maps: pixels only, no group."""

    def __init__(self, channels: int = 8):
        super().__init__(channels)
        self.plain = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.plain(super().forward(x))


def main(tiny: bool) -> None:
    torch.manual_seed(0)
    channels = 2 if tiny else 8
    report = assert_equivariant(MyNet(channels))  # float64 by default; raises if an element fails
    print(report)  # group C4: every element with its relative error (~1e-16)
    mirrors = equivariance_report(MyNet(channels), group="D4")  # ask for D4: the mirrors fail
    print("worst mirror:", mirrors.failures()[0])
    try:
        assert_equivariant(Broken(channels), group="C4")
    except AssertionError as failure:
        print("the plain conv breaks it:", str(failure).splitlines()[0])
    else:
        raise SystemExit("a plain convolution should have broken equivariance")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="smaller layers")
    main(parser.parse_args().tiny)
