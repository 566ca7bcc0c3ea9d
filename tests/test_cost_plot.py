"""``cost_vs_accuracy``: readable ticks on the log axis and a marker for a one-point run (issue 33)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.collections import PathCollection

from equinas.report import plots
from equinas.search import CandidateRecord


def record(cid: str, tera_flops: float, acc: float | None) -> CandidateRecord:
    cost = {"train_flops": tera_flops * 1e12, "total_flops": tera_flops * 1e12}
    return CandidateRecord(cid, "test", {}, [], 10, acc, acc, cost=cost)


def drawn(monkeypatch, tmp_path: Path, runs) -> object:
    """The figure ``cost_vs_accuracy`` draws, kept open for inspection."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.cost_vs_accuracy(runs, tmp_path / "plot.png", "test")
    return figures[0]


def test_log_axis_labels_do_not_overlap_and_a_single_point_is_a_marker(monkeypatch, tmp_path) -> None:
    runs = {  # the demo's range: 0.3 to 6 (1e12 multiply-adds), less than two decades
        "fixed": [[record("a", 1.1, 0.8)]],
        "one-network search": [[record("p0", 0.4, None), record("p1", 0.7, 0.9)]],
        "search": [[record(f"c{i}", 0.3, 0.5 + 0.05 * i) for i in range(20)]],
    }
    fig = drawn(monkeypatch, tmp_path, runs)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = [t for t in ax.get_xticklabels(minor=False) + ax.get_xticklabels(minor=True) if t.get_text()]
        lo, hi = ax.get_xlim()
        boxes = sorted(
            (t.get_window_extent(renderer) for t in labels if lo <= t.get_position()[0] <= hi),
            key=lambda b: b.x0,
        )
        assert len(boxes) >= 2
        assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:], strict=False)), [
            t.get_text() for t in labels
        ]
        assert all("10^" not in t.get_text() and "times" not in t.get_text() for t in labels)
        markers = [c for c in ax.collections if isinstance(c, PathCollection)]
        assert len(markers) == len(runs)  # every run ends in a marker, the one-point runs included
