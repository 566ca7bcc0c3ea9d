"""Equivariance errors of layers and networks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import torch
from torch import nn

from equinas.groups import Element, PlanarGroup, act_on_features, act_on_images, parse_group


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """``||a - b|| / ||b||`` (0 when both vanish)."""
    denom = float(b.detach().norm())
    diff = float((a - b).detach().norm())
    return diff / denom if denom > 0 else diff


def inscribed_disc(reference: torch.Tensor) -> torch.Tensor:
    """``[H, W]`` indicator of the disc inscribed in the grid of ``reference`` (``[..., H, W]``).

    Rotations by angles that are not multiples of 90 degrees move the corners of a grid out of
    it; only the inscribed disc maps onto itself.
    """
    height, width = reference.shape[-2:]
    radius = (min(height, width) - 1) / 2
    rows = torch.arange(height, device=reference.device, dtype=reference.dtype) - (height - 1) / 2
    cols = torch.arange(width, device=reference.device, dtype=reference.dtype) - (width - 1) / 2
    return ((rows[:, None] ** 2 + cols[None, :] ** 2) <= radius**2).to(reference.dtype)


LAYOUTS = ("image", "features", "invariant")


def act_on_layout(t: torch.Tensor, g: Element, ambient: PlanarGroup, layout: str) -> torch.Tensor:
    """``g . t`` for a tensor in ``layout``: images ``[..., H, W]`` (``act_on_images``), group
    feature maps ``[B, C, |G|, H, W]`` of ``ambient`` (``act_on_features``), or ``invariant``
    values such as logits (left as they are)."""
    if layout == "image":
        return act_on_images(t, g, ambient)
    if layout == "features":
        return act_on_features(t, g, ambient)
    if layout == "invariant":
        return t
    raise ValueError(f"unknown layout {layout!r}: expected one of {LAYOUTS}")


def element_error(
    f_gx: torch.Tensor,
    f_x: torch.Tensor,
    g: Element,
    ambient: PlanarGroup,
    layout: str,
    within_disc: bool = False,
) -> float:
    """Relative error of ``F(g.x)`` (``f_gx``) against ``g.F(x)`` (``f_x`` acted on in ``layout``).

    With ``within_disc`` spatial maps are compared inside their inscribed disc (for rotations
    that are not multiples of 90 degrees; invariant values are compared whole).
    """
    expected = act_on_layout(f_x, g, ambient, layout)
    if within_disc and layout != "invariant":
        return relative_error(f_gx * inscribed_disc(f_gx), expected * inscribed_disc(expected))
    return relative_error(f_gx, expected)


def _features(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    feats = getattr(model, "features", None)
    return list(feats(x)) if callable(feats) else []


def equivariance_error(
    model: nn.Module,
    group: PlanarGroup | str,
    x: torch.Tensor,
    elements: Iterable[Element] | None = None,
    within_disc: bool = False,
) -> dict:
    """Per-layer equivariance and output invariance errors of ``model`` under ``group``.

    For every element ``g`` (default: all but the identity) it compares ``F_l(g.x)`` with
    ``g.F_l(x)`` for the output of every block ``l`` (models with a ``features(x)`` method
    returning ``[B, C, |G|, H, W]`` maps in the layout of ``model.ambient``) and the logits
    ``f(g.x)`` with ``f(x)``, as relative L2 errors. With ``within_disc`` the images are cut to
    their inscribed disc and feature maps are compared inside theirs (for rotations that are
    not multiples of 90 degrees). The model runs in eval mode under ``torch.no_grad()``; its
    mode is restored afterwards.

    Returns ``{"group", "layers": [max over g per block], "output": max over g,
    "per_element": {name: {"layers": [...], "output": float}}}``.
    """
    ambient: PlanarGroup | None = getattr(model, "ambient", None)
    group = parse_group(group, ambient=ambient)
    # feature maps are laid out over the model's ambient group; a model without one is
    # compared in ``group`` (logits, the ``invariant`` layout, use no group at all)
    layout_group = group if ambient is None else ambient
    elems = [Element(*e) for e in (elements if elements is not None else group.elements[1:])]

    if within_disc:
        x = x * inscribed_disc(x)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            base_feats, base_out = _features(model, x), model(x)
            per_element: dict[str, dict[str, Any]] = {}
            for g in elems:
                gx = act_on_images(x, g, group)
                feats = _features(model, gx)
                layer_errs = [
                    element_error(f_gx, f_x, g, layout_group, "features", within_disc)
                    for f_gx, f_x in zip(feats, base_feats, strict=True)
                ]
                per_element[f"{g.flip},{g.rot}"] = {
                    "layers": layer_errs,
                    "output": element_error(model(gx), base_out, g, layout_group, "invariant"),
                }
    finally:
        model.train(was_training)
    n_layers = len(base_feats)
    return {
        "group": str(group),
        "layers": [max((v["layers"][i] for v in per_element.values()), default=0.0) for i in range(n_layers)],
        "output": max((v["output"] for v in per_element.values()), default=0.0),
        "per_element": per_element,
    }


def equivariance_summary(model: nn.Module, x: torch.Tensor) -> dict:
    """Errors of a network under its ambient group, as run records and ``equinas evaluate`` list them.

    ``{"group", "layers", "output"}`` (see ``equivariance_error``) over the elements that act
    exactly on the grid (multiples of 90 degrees, mirrors) and, when the group has others
    (45-degree rotations of C8/D8), ``"interpolated": {"layers", "output"}`` over those,
    measured inside the inscribed disc.
    """
    ambient = cast(PlanarGroup, model.ambient)  # a network's ambient group (the docstring's contract)
    exact = [g for g in ambient.elements[1:] if ambient.is_exact_element(g)]
    inexact = [g for g in ambient.elements if not ambient.is_exact_element(g)]
    result = equivariance_error(model, ambient, x, elements=exact)
    summary = {"group": result["group"], "layers": result["layers"], "output": result["output"]}
    if inexact:
        approx = equivariance_error(model, ambient, x, elements=inexact, within_disc=True)
        summary["interpolated"] = {"layers": approx["layers"], "output": approx["output"]}
    return summary
