"""Selection rules: the best or top-k by validation accuracy, or Pareto fronts over (accuracy, parameters).

Selections consider only candidates that trained without diverging and have a validation
accuracy (``record.scored``).
"""

from __future__ import annotations

from collections.abc import Sequence

from equinas.search.record import CandidateRecord
from equinas.train.result import DIVERGENCE_ADVICE


def _rank_key(r: CandidateRecord) -> tuple[float, int, str]:
    """The one ranking rule: higher validation accuracy first, ties to fewer parameters, then
    to the smaller id."""
    return (-(r.val_acc or 0.0), r.params, r.candidate_id)


def top_k(records: Sequence[CandidateRecord], k: int) -> list[CandidateRecord]:
    """The ``k`` best by validation accuracy (ties: fewer parameters, then id)."""
    return sorted((r for r in records if r.scored), key=_rank_key)[:k]


def best_of(records: Sequence[CandidateRecord]) -> CandidateRecord:
    """The best candidate (``top_k``'s first) of those that trained without diverging and have a
    validation accuracy (``record.scored``); ``ValueError`` when there is none."""
    best = top_k(records, 1)
    if not best:
        detail = f" ({len(records)} diverged; {DIVERGENCE_ADVICE})" if records else ""
        raise ValueError(f"no candidate was evaluated successfully{detail}")
    return best[0]


def dominates(a: CandidateRecord, b: CandidateRecord) -> bool:
    """``a`` is at least as accurate with at most as many parameters, and better in one."""
    acc_a, acc_b = a.val_acc or 0.0, b.val_acc or 0.0
    return acc_a >= acc_b and a.params <= b.params and (acc_a > acc_b or a.params < b.params)


def pareto_fronts(records: Sequence[CandidateRecord]) -> list[list[CandidateRecord]]:
    """Non-dominated sorting: front 0 is the Pareto front, front 1 the front of the rest, ..."""
    remaining = list(records)
    fronts = []
    while remaining:
        front = [r for r in remaining if not any(dominates(o, r) for o in remaining if o is not r)]
        fronts.append(sorted(front, key=_rank_key))
        remaining = [r for r in remaining if all(r is not f for f in front)]
    return fronts


def pareto_select(records: Sequence[CandidateRecord], k: int) -> list[CandidateRecord]:
    """Fill ``k`` places front by front; a front that does not fit is cut by accuracy."""
    chosen: list[CandidateRecord] = []
    for front in pareto_fronts([r for r in records if r.scored]):
        chosen.extend(front[: k - len(chosen)])
        if len(chosen) >= k:
            break
    return chosen
