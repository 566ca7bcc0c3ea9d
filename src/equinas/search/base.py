"""The interface every search method shares, and the machinery they all use.

A method derives from ``SearchMethod``: a settings class, ``resolve(ctx)`` and
``run(ctx) -> SearchResult``; it turns architectures into ``CandidateJob``s and hands them to
``Evaluator.evaluate``, which runs them through the context's executor, stores every record
(and, on request, weights) in the run directory as it arrives, and skips candidates that a
killed run already finished.
"""

from __future__ import annotations

import contextlib
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, cast

from tqdm.auto import tqdm

from equinas.data.task import TaskData
from equinas.execution import Executor
from equinas.metrics.cost import Cost
from equinas.models import ArchSpec, BackboneSettings
from equinas.run_lock import hold_run_directory
from equinas.search.evaluate import CandidateJob, candidate_seed, run_candidate
from equinas.search.record import CandidateRecord
from equinas.search.run_directory import RunDirectory
from equinas.search.validation import validate_search_settings
from equinas.settings import Settings
from equinas.train import TrainConfig
from equinas.train.runtime import check_amp, resolve_device


@dataclass
class SearchContext:
    """What a search runs on: data, backbone, per-candidate training, executor, run directory.

    ``data_settings`` says how ``data`` was loaded (sizes, folder, task options); it is
    recorded with a fingerprint of the splits, and a resume with other data is refused.
    With ``tensorboard`` every trained candidate writes TensorBoard events into
    ``<run>/tensorboard/<candidate id>/``. ``news`` receives the search's news lines
    (``announce``) instead of stderr, also without progress bars.
    """

    task: str
    data: TaskData
    backbone: BackboneSettings
    train: TrainConfig
    executor: Executor
    run: RunDirectory
    seed: int = 0
    progress: bool = True
    data_settings: dict[str, Any] = field(default_factory=dict)
    tensorboard: bool = False
    news: Callable[[str], None] | None = None

    def train_dict(self, **changes: Any) -> dict[str, Any]:
        return {**self.train.to_dict(), **changes}

    def announce(self, message: str) -> None:
        """One line of news from the search (e.g. a decision): to ``news`` if given, else on
        stderr between the progress bars (nothing when ``progress`` is off)."""
        if self.news is not None:
            self.news(message)
        elif self.progress:
            tqdm.write(message, file=sys.stderr)


@dataclass
class SearchResult:
    """The outcome: the best candidate (by validation accuracy) and every record.

    ``total_cost`` sums the ``cost`` of every candidate (training, architecture steps,
    batch-norm recalibration and evaluations); ``wall_time`` is the wall time of every
    session of the search.
    """

    method: str
    best: CandidateRecord
    candidates: list[CandidateRecord]
    extras: dict[str, Any] = field(default_factory=dict)
    wall_time: float = 0.0

    @property
    def total_cost(self) -> Cost:
        return Cost.total([Cost.from_dict(r.cost) for r in self.candidates])

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "best": self.best.to_dict(),
            "num_candidates": len(self.candidates),
            "num_diverged": sum(not r.ok for r in self.candidates),
            "total_cost": self.total_cost.to_dict(),
            "wall_time": self.wall_time,
            "extras": self.extras,
        }


S = TypeVar("S", bound=Settings)


class SearchMethod(ABC, Generic[S]):
    """A search method: ``equinas search <name>``, configured by a ``settings_class`` instance.

    A method is one module of ``search/methods/`` deriving from this class and one line of
    ``search.METHODS``. ``run_search`` first calls ``resolve(ctx)``: the settings with every
    budget the method derives from the context decided (e.g. EquiNAS_D's ``search_epochs`` from
    ``ctx.train.epochs``), after every check that needs the context (``ValueError``), all
    before the run directory is created. The run then uses a method built from the resolved
    settings, on ``context(ctx)``, and ``search.json`` records those settings.
    """

    name: ClassVar[str]
    settings_class: ClassVar[type[Settings]]

    def __init__(self, settings: S | None = None) -> None:
        self.settings: S = settings if settings is not None else cast(S, self.settings_class())

    @abstractmethod
    def resolve(self, ctx: SearchContext) -> S:
        """The settings a run on ``ctx`` uses, every derived budget decided (``ValueError``
        for settings that cannot run on ``ctx``); resolving resolved settings changes nothing."""

    def context(self, ctx: SearchContext) -> SearchContext:
        """The context a run with these (resolved) settings uses: ``ctx`` unless overridden."""
        return ctx

    @abstractmethod
    def run(self, ctx: SearchContext) -> SearchResult:
        """Search on ``ctx`` (prepared by ``run_search``) and return the result."""


class Evaluator:
    """Runs jobs through the executor, persisting each record as it arrives.

    Records already in the run directory (a resumed run) are reused instead of recomputed,
    as long as their weights are stored when the job asks for them. ``evaluated`` lists every
    record of the search, in the order the method asked for them.
    """

    def __init__(self, ctx: SearchContext, method: str):
        self.ctx, self.method = ctx, method
        self.done = {r.candidate_id: r for r in ctx.run.records()}
        self.evaluated: list[CandidateRecord] = []

    def job(self, candidate_id: str, spec: ArchSpec | dict[str, Any], **kwargs: Any) -> CandidateJob:
        """A job for ``candidate_id`` with the context's training settings (override via ``train=``)."""
        train = kwargs.pop("train", None) or self.ctx.train_dict()
        spec_dict = spec.to_dict() if isinstance(spec, ArchSpec) else spec
        seed = candidate_seed(self.ctx.seed, candidate_id)
        if self.ctx.tensorboard:
            kwargs.setdefault("tensorboard", str(self.ctx.run.path / "tensorboard" / candidate_id))
        return CandidateJob(candidate_id, self.method, spec_dict, train, seed, **kwargs)

    def _store(self, record: CandidateRecord) -> None:
        self.ctx.run.append(record)
        self.done[record.candidate_id] = record

    def evaluate(self, jobs: Sequence[CandidateJob], label: str = "") -> list[CandidateRecord]:
        """Records of ``jobs`` in the same order."""
        run = self.ctx.run
        results: dict[int, CandidateRecord] = {}
        todo = []
        for i, job in enumerate(jobs):
            cached = self.done.get(job.candidate_id)
            if cached is not None and (
                not job.return_state or not cached.ok or run.has_state(job.candidate_id)
            ):
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
            self._store(outcome.record)
            results[todo[j]] = outcome.record
            bar.update(1)
            scored = [r.val_acc for r in results.values() if r.val_acc is not None and r.ok]
            if scored:
                bar.set_postfix(best_val=f"{max(scored):.3f}")
        bar.close()
        ordered = [results[i] for i in range(len(jobs))]
        self.evaluated.extend(ordered)
        return ordered

    def evaluate_here(self, candidate_id: str, compute: Callable[[], CandidateRecord]) -> CandidateRecord:
        """A record computed in this process by ``compute()`` (e.g. scoring a network without
        training it), stored like every other record, and reused on resume."""
        record = self.done.get(candidate_id)
        if record is None:
            record = compute()
            self._store(record)
        self.evaluated.append(record)
        return record


def finish(ctx: SearchContext, result: SearchResult) -> SearchResult:
    """Write result.json, best_spec.json and candidates.csv; mark the run done."""
    run = ctx.run
    result.wall_time = run.elapsed()
    run.write_json("result.json", result.to_dict())
    run.write_json("best_spec.json", result.best.spec)
    run.write_csv(result.candidates)
    run.mark("done")
    return result


def prepare(method: SearchMethod[Any], ctx: SearchContext) -> tuple[SearchMethod[Any], SearchContext]:
    """The method and context a run uses: the settings checked against the backbone and the data
    (``validate_search_settings``) and the mixed precision against the device (``check_amp``),
    then a method of the resolved settings (``method.resolve``) and its ``context``."""
    validate_search_settings(method.settings, ctx.backbone, ctx.data, ctx.train.batch_size)
    check_amp(ctx.train, resolve_device(ctx.train.device))
    resolved = type(method)(method.resolve(ctx))
    return resolved, resolved.context(ctx)


def recorded_settings(method: SearchMethod[Any], ctx: SearchContext, recorded: Any) -> Any:
    """The settings of an existing run's ``search.json`` as this version records them: resolved on
    ``ctx`` (runs recorded before a budget was resolved hold ``None`` or lack the field), so that
    a resume compares like with like; ``recorded`` itself when it is no valid settings."""
    try:
        old = type(method)(method.settings_class(**recorded))
        return asdict(type(method)(old.resolve(ctx)).settings)
    except (TypeError, ValueError):
        return recorded


def run_search(method: SearchMethod[Any], ctx: SearchContext, resume: bool = False) -> SearchResult:
    """Check and resolve the settings (``prepare``), then, holding the run directory's lock
    (``RunDirectoryBusy`` when another process uses it), create (or resume) it, run ``method``
    and store its result."""
    resolved, run_ctx = prepare(method, ctx)
    with hold_run_directory(run_ctx.run.path):
        meta = {
            "method": resolved.name,
            "task": run_ctx.task,
            "data": {**run_ctx.data_settings, "fingerprint": run_ctx.data.fingerprint()},
            "settings": asdict(resolved.settings),
            "backbone": asdict(run_ctx.backbone),
            "train": run_ctx.train.to_dict(),
            "seed": run_ctx.seed,
            "executor": run_ctx.executor.name,
        }
        run_ctx.run.create(meta, resume, settings_of=lambda old: recorded_settings(method, ctx, old))
        try:
            result = resolved.run(run_ctx)
        except BaseException as err:  # not left "running": Ctrl-C or an error ended this session
            with contextlib.suppress(OSError, ValueError):  # e.g. a full disk: the first error is raised
                run_ctx.run.mark("interrupted" if isinstance(err, KeyboardInterrupt) else "failed")
            raise
        return finish(run_ctx, result)
