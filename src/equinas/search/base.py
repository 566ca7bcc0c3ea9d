"""The interface every search method shares, and the machinery they all use.

A method is a class with a ``Settings`` dataclass and ``run(ctx) -> SearchResult``; it
turns architectures into ``CandidateJob``s and hands them to ``Evaluator.evaluate``, which
runs them through the context's executor, stores every record (and, on request, weights)
in the run directory as it arrives, and skips candidates that a killed run already finished.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol

from tqdm.auto import tqdm

from equinas.data.task import TaskData
from equinas.execution import Executor
from equinas.models import ArchSpec, backbone
from equinas.search.evaluate import CandidateJob, candidate_seed, run_candidate
from equinas.search.records import CandidateRecord, RunDirectory
from equinas.train import TrainConfig


@dataclass(frozen=True)
class BackboneSettings:
    """The network family searched over (defaults: the paper's MNIST backbone, D4 ambient)."""

    ambient: str = "D4"
    widths: tuple[int, ...] = (16, 16, 16, 16, 32, 32, 32, 32)
    pools_after: tuple[int, ...] = (2, 4)
    kernel_size: int = 5
    basis: str = "auto"
    hidden: int | None = 64
    width_rule: str = "channels"

    def spec(
        self, data: TaskData, group: str | Sequence[str], kind: str = "regular", **options: Any
    ) -> ArchSpec:
        """The backbone with ``group`` (one name or one per layer) and layer ``kind``."""
        return backbone(
            group if isinstance(group, str) else list(group),
            ambient=self.ambient,
            widths=self.widths,
            pools_after=self.pools_after,
            kernel_size=self.kernel_size,
            basis=self.basis,
            in_channels=data.in_channels,
            num_classes=data.num_classes,
            kind=kind,
            width_rule=self.width_rule,
            hidden=self.hidden,
            options=options or None,
        )


@dataclass
class SearchContext:
    """What a search runs on: data, backbone, per-candidate training, executor, run directory."""

    task: str
    data: TaskData
    backbone: BackboneSettings
    train: TrainConfig
    executor: Executor
    run: RunDirectory
    seed: int = 0
    progress: bool = True

    def train_dict(self, **changes: Any) -> dict[str, Any]:
        return {**self.train.to_dict(), **changes}


@dataclass
class SearchResult:
    """The outcome: the best candidate (by validation accuracy) and every record."""

    method: str
    best: CandidateRecord
    candidates: list[CandidateRecord]
    extras: dict[str, Any] = field(default_factory=dict)
    wall_time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "best": self.best.to_dict(),
            "num_candidates": len(self.candidates),
            "wall_time": self.wall_time,
            "extras": self.extras,
        }


class SearchMethod(Protocol):
    name: ClassVar[str]

    def run(self, ctx: SearchContext) -> SearchResult: ...


def best_of(records: Sequence[CandidateRecord]) -> CandidateRecord:
    """Highest validation accuracy; ties go to fewer parameters, then to the id."""
    if not records:
        raise ValueError("no candidates were evaluated")
    return max(records, key=lambda r: (r.val_acc or 0.0, -r.params, r.candidate_id))


class Evaluator:
    """Runs jobs through the executor, persisting each record as it arrives.

    Records already in the run directory (a resumed run) are reused instead of recomputed,
    as long as their weights are stored when the job asks for them.
    """

    def __init__(self, ctx: SearchContext, method: str):
        self.ctx, self.method = ctx, method
        self.done = {r.candidate_id: r for r in ctx.run.records()}
        self.evaluated: list[CandidateRecord] = list(self.done.values())

    def job(self, candidate_id: str, spec: ArchSpec | dict[str, Any], **kwargs: Any) -> CandidateJob:
        """A job for ``candidate_id`` with the context's training settings (override via ``train=``)."""
        train = kwargs.pop("train", None) or self.ctx.train_dict()
        spec_dict = spec.to_dict() if isinstance(spec, ArchSpec) else spec
        seed = candidate_seed(self.ctx.seed, candidate_id)
        return CandidateJob(candidate_id, self.method, spec_dict, train, seed, **kwargs)

    def evaluate(self, jobs: Sequence[CandidateJob], label: str = "") -> list[CandidateRecord]:
        """Records of ``jobs`` in the same order."""
        run = self.ctx.run
        results: dict[int, CandidateRecord] = {}
        todo = []
        for i, job in enumerate(jobs):
            cached = self.done.get(job.candidate_id)
            if cached is not None and (not job.return_state or run.has_state(job.candidate_id)):
                results[i] = cached
            else:
                todo.append(i)
        bar = tqdm(
            total=len(jobs),
            initial=len(results),
            desc=label or self.method,
            disable=not self.ctx.progress,
            leave=False,
        )
        pending = [jobs[i] for i in todo]
        for j, outcome in self.ctx.executor.map(run_candidate, pending, self.ctx.data):
            if outcome.state is not None:
                run.save_state(outcome.record.candidate_id, outcome.state)
            run.append(outcome.record)
            self.done[outcome.record.candidate_id] = outcome.record
            self.evaluated.append(outcome.record)
            results[todo[j]] = outcome.record
            bar.update(1)
            bar.set_postfix(best_val=f"{max((r.val_acc or 0) for r in results.values()):.3f}")
        bar.close()
        return [results[i] for i in range(len(jobs))]


def finish(ctx: SearchContext, result: SearchResult) -> SearchResult:
    """Write result.json, best_spec.json and candidates.csv; mark the run done."""
    run = ctx.run
    run.write_json("result.json", result.to_dict())
    run.write_json("best_spec.json", result.best.spec)
    run.write_csv(result.candidates)
    run.mark("done")
    return result


def run_search(method: SearchMethod, ctx: SearchContext, resume: bool = False) -> SearchResult:
    """Create (or resume) the run directory, run ``method`` and store its result."""
    settings = asdict(method.settings) if hasattr(method, "settings") else {}
    meta = {
        "method": method.name,
        "task": ctx.task,
        "settings": settings,
        "backbone": asdict(ctx.backbone),
        "train": ctx.train.to_dict(),
        "seed": ctx.seed,
        "executor": ctx.executor.name,
    }
    ctx.run.create(meta, resume)
    start = time.perf_counter()
    result = method.run(ctx)
    result.wall_time = time.perf_counter() - start
    return finish(ctx, result)
