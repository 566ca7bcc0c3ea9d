"""Search methods: EquiNAS_E, EquiNAS_D, baselines, selection rules and resumable runs."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conftest import synthetic_task
from equinas.execution import LocalExecutor
from equinas.metrics import relative_error
from equinas.models import ArchSpec, build_model
from equinas.search import METHODS, BackboneSettings, SearchContext, SearchMethod, make_method, run_search
from equinas.search.methods.equinas_e import EquiNASE, EquiNASESettings, relaxations
from equinas.search.record import CandidateRecord
from equinas.search.run_directory import RunDirectory
from equinas.search.selection import dominates, pareto_fronts, pareto_select, top_k
from equinas.train import TrainConfig

BACKBONE = BackboneSettings(widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None)
TRAIN = TrainConfig(epochs=0.5, batch_size=32, lr=3e-3, num_threads=1)


def context(tmp_path, name: str = "run", executor=None, task=None, **train) -> SearchContext:
    config = TrainConfig.from_dict({**TRAIN.to_dict(), **train})
    return SearchContext(
        "synthetic",
        task or synthetic_task(),
        BACKBONE,
        config,
        executor or LocalExecutor(),
        RunDirectory(tmp_path / name),
        seed=3,
        progress=False,
    )


def record(cid: str, acc: float, params: int) -> CandidateRecord:
    return CandidateRecord(cid, "test", {}, [], params, acc, acc)


@given(st.lists(st.tuples(st.floats(0, 1), st.integers(1, 100)), min_size=1, max_size=12))
def test_pareto_fronts_are_non_dominated_and_cover(points: list[tuple[float, int]]) -> None:
    records = [record(f"c{i}", a, p) for i, (a, p) in enumerate(points)]
    fronts = pareto_fronts(records)
    assert sorted(r.candidate_id for f in fronts for r in f) == sorted(r.candidate_id for r in records)
    first = fronts[0]
    for r in first:
        assert not any(dominates(o, r) for o in records)
    for r in records:
        if r not in first:
            assert any(dominates(f, r) for f in first)
    k = max(1, len(records) // 2)
    assert len(pareto_select(records, k)) == k
    assert [r.val_acc for r in top_k(records, k)] == sorted((r.val_acc for r in records), reverse=True)[:k]


def test_relaxation_moves_cover_every_maximal_subgroup() -> None:
    spec = BACKBONE.spec(synthetic_task(), ["D4", "C2"])
    assert relaxations(spec) == [(0, "C4"), (0, "D2"), (0, "D2[axis=1]"), (1, "C1")]


def test_equinas_e_children_inherit_the_parent_function(tmp_path) -> None:
    ctx = context(tmp_path)
    ctx.run.create({"method": "equinas_e"}, resume=False)
    method = EquiNASE(EquiNASESettings(generations=1, population=1))
    from equinas.search.base import Evaluator

    ev = Evaluator(ctx, method.name)
    (parent,) = ev.evaluate([ev.job("p", BACKBONE.spec(ctx.data, "D4"), return_state=True)])
    jobs = method._children(ev, parent, 1, 0, 0.5)
    assert [j.mutation for j in jobs] == [
        "continue",
        "layer0:D4->C4",
        "layer0:D4->D2",
        "layer0:D4->D2[axis=1]",
        "layer1:D4->C4",
        "layer1:D4->D2",
        "layer1:D4->D2[axis=1]",
    ]
    parent_model = build_model(parent.spec)
    parent_model.load_state_dict(ctx.run.load_state("p"))
    parent_model.eval()
    x = ctx.data.val.images
    for job in jobs:
        child = build_model(job.spec)
        child.load_state_dict(job.state)
        child.eval()
        with torch.no_grad():
            assert relative_error(child(x), parent_model(x)) < 1e-5, job.mutation


def test_equinas_e_search_writes_every_candidate(tmp_path) -> None:
    ctx = context(tmp_path)
    settings = dict(generations=2, population=2, epochs_per_generation=0.25, children_per_parent=2)
    result = run_search(make_method("equinas_e", **settings), ctx)
    ids = [r.candidate_id for r in ctx.run.records()]
    assert len(ids) == len(set(ids)) == 1 + 3 + 2 * 3  # root, 1 parent x 3 jobs, 2 parents x 3 jobs
    trace = json.loads((ctx.run.path / "generations.json").read_text())
    assert [t["generation"] for t in trace] == [0, 1, 2]
    assert result.best.candidate_id in trace[-1]["population"]
    assert result.best.lineage_epochs == pytest.approx(0.75)
    assert {p.stem for p in ctx.run.states.glob("*.pt")} == set(trace[-1]["population"])
    assert (ctx.run.path / "candidates.csv").read_text().count("\n") == len(ids) + 1
    assert json.loads((ctx.run.path / "search.json").read_text())["status"] == "done"
    best_spec = ArchSpec.load(ctx.run.path / "best_spec.json")
    assert best_spec.groups_per_layer() == result.best.groups
    eq = result.best.equivariance
    assert len(eq["layers"]) == 2 and eq["group"] == "D4"


def test_equinas_d_records_alpha_trajectories_and_overhead(tmp_path) -> None:
    ctx = context(tmp_path, epochs=1.0)
    # the paper's recipe: every candidate to the end (search_epochs: the run's)
    paper = {"arch_lr": 0.05, "decide_at": 0.0, "prior": 0.0, "search_epochs": 1.0, "retrain": True}
    result = run_search(make_method("equinas_d", finetune_epochs=0.25, **paper), ctx)
    ids = [r.candidate_id for r in result.candidates]
    assert ids == ["mixed", "discrete", "finetuned", "retrained"]
    alpha = result.extras["alpha"]
    assert [p["epoch"] for p in alpha] == [0.0, 1.0]
    first, last = alpha[0]["layers"]["layer0"], alpha[-1]["layers"]["layer0"]
    assert sum(first.values()) == pytest.approx(1.0) and len(first) == 10
    assert first != last  # the architecture weights moved
    chosen = [max(p, key=p.get) for p in alpha[-1]["layers"].values()]
    assert result.extras["discrete_groups"] == chosen
    assert result.extras["search_overhead"] > 0
    assert result.best.val_acc == max(r.val_acc for r in result.candidates)


@pytest.mark.parametrize(
    ("method", "settings", "expected"),
    [
        ("fixed", {"groups": ("C1", "C4", "D4")}, ["fixed-C1", "fixed-C4", "fixed-D4"]),
        ("prior", {"targets": ("C4", "C1")}, ["prior-D4", "prior-D4-to-C4", "prior-D4-to-C1"]),
        ("rpp", {}, ["rpp-D4"]),
        ("random", {"samples": 2}, ["random-000", "random-001"]),
    ],
)
def test_baselines_run_through_the_same_interface(tmp_path, method, settings, expected) -> None:
    result = run_search(make_method(method, **settings), context(tmp_path))
    assert [r.candidate_id for r in result.candidates] == expected
    assert all(r.val_acc is not None and r.params > 0 for r in result.candidates)
    if method == "prior":
        relaxed = result.candidates[1]
        assert relaxed.groups == ["C4", "C4"] and relaxed.lineage_epochs == pytest.approx(0.5)


def test_every_method_derives_from_the_base_class_under_its_name() -> None:
    for name, cls in METHODS.items():
        assert issubclass(cls, SearchMethod) and cls.name == name
        assert isinstance(cls().settings, cls.settings_class)


def test_resolved_budgets_are_recorded_and_runs_of_older_versions_resume(tmp_path) -> None:
    run_search(make_method("prior", targets=("C1",)), context(tmp_path))
    meta_path = tmp_path / "run" / "search.json"
    meta = json.loads(meta_path.read_text())
    assert meta["settings"]["prior_epochs"] == pytest.approx(0.25)  # half of the run's 0.5 epochs
    # older versions recorded the settings as given: no prior_epochs
    del meta["settings"]["prior_epochs"]
    meta_path.write_text(json.dumps(meta))
    resumed = run_search(make_method("prior", targets=("C1",)), context(tmp_path), resume=True)
    assert [r.candidate_id for r in resumed.candidates] == ["prior-D4", "prior-D4-to-C1"]
    with pytest.raises(ValueError, match="prior_epochs: 0.25 -> 0.3"):
        run_search(make_method("prior", targets=("C1",), prior_epochs=0.3), context(tmp_path), resume=True)
    with pytest.raises(ValueError, match="prior_epochs: 0.5 leaves nothing"):
        run_search(make_method("prior", prior_epochs=0.5), context(tmp_path, "too-long"))
    assert not (tmp_path / "too-long").exists()


def test_unknown_methods_and_settings() -> None:
    with pytest.raises(ValueError, match="unknown search method"):
        make_method("darts")
    with pytest.raises(ValueError, match="bad settings"):
        make_method("equinas_e", generation=3)
    with pytest.raises(ValueError, match="population"):
        make_method("equinas_e", population=0)


class CrashAfter:
    """An executor that dies (like a killed process) after ``count`` finished evaluations."""

    name = "local"

    def __init__(self, count: int):
        self.count = count

    def map(self, fn, jobs, shared):
        for i, job in enumerate(jobs):
            if self.count == 0:
                raise KeyboardInterrupt("killed")
            self.count -= 1
            yield i, fn(job, shared)

    def close(self) -> None:
        pass


def test_interrupted_search_resumes_to_the_same_result(tmp_path) -> None:
    settings = dict(generations=2, population=2, epochs_per_generation=0.25, children_per_parent=2)
    reference = run_search(make_method("equinas_e", **settings), context(tmp_path, "reference"))
    crashed = context(tmp_path, "crashed", executor=CrashAfter(6))
    with pytest.raises(KeyboardInterrupt):
        run_search(make_method("equinas_e", **settings), crashed)
    survivors = {r.candidate_id for r in crashed.run.records()}
    assert len(survivors) == 6
    resumed = run_search(make_method("equinas_e", **settings), context(tmp_path, "crashed"), resume=True)
    assert resumed.best.candidate_id == reference.best.candidate_id
    assert resumed.best.val_acc == reference.best.val_acc
    ref = {r.candidate_id: r.val_acc for r in reference.candidates}
    got = {r.candidate_id: r.val_acc for r in resumed.candidates}
    assert got == ref  # nothing lost, nothing evaluated twice, same numbers
    assert survivors <= set(got)


def test_resume_refuses_changed_settings_and_fresh_runs_refuse_existing_dirs(tmp_path) -> None:
    run_search(make_method("fixed", groups=("C1",)), context(tmp_path))
    with pytest.raises(FileExistsError, match="resume"):
        run_search(make_method("fixed", groups=("C1",)), context(tmp_path))
    with pytest.raises(ValueError, match="settings"):
        run_search(make_method("fixed", groups=("C4",)), context(tmp_path), resume=True)


def test_ray_executor_matches_local(tmp_path) -> None:
    pytest.importorskip("ray")
    from equinas.execution import make_executor

    executor = make_executor("ray", num_cpus=2, cpus_per_task=1)
    try:
        ray_result = run_search(
            make_method("fixed", groups=("C1", "D4")), context(tmp_path, "ray", executor=executor)
        )
    finally:
        executor.close()
    local_result = run_search(make_method("fixed", groups=("C1", "D4")), context(tmp_path, "local"))
    assert [(r.candidate_id, r.val_acc, r.test_acc) for r in ray_result.candidates] == [
        (r.candidate_id, r.val_acc, r.test_acc) for r in local_result.candidates
    ]


def test_ray_executor_binds_loopback_and_refuses_oversized_tasks() -> None:
    pytest.importorskip("ray")
    import ray

    from equinas.execution import make_executor

    executor = make_executor("ray", num_cpus=1, cpus_per_task=1)
    try:
        addresses = {node["NodeManagerAddress"] for node in ray.nodes()}
        assert addresses == {"127.0.0.1"}
        with pytest.raises(ValueError, match=r"asks for 2 CPUs .* has 1 in all"):
            make_executor("ray", cpus_per_task=2)  # joins the running instance: checked up front
        assert ray.is_initialized()  # the failed executor did not stop an instance it did not start
        executor.cpus_per_task = 2
        with pytest.raises(ValueError, match="--cpus-per-task"):
            next(iter(executor.map(max, [1], 0)))
    finally:
        executor.close()
    assert not ray.is_initialized()


def test_the_paper_space_relaxes_d4_to_c4_or_d1_and_never_to_d2() -> None:
    task = synthetic_task()
    assert relaxations(BACKBONE.spec(task, ["D4", "C4"]), ("paper",)) == [(0, "C4"), (0, "D1"), (1, "C2")]
    assert relaxations(BACKBONE.spec(task, ["D1", "C1"]), ("paper",)) == [(0, "C1")]
    assert EquiNASESettings(space=("paper",)).space == ("D4", "C4", "D1", "C2", "C1")
    with pytest.raises(ValueError, match="at least one group"):
        EquiNASESettings(space=())


def test_successive_halving_continues_the_better_half(tmp_path) -> None:
    settings = {"generations": 1, "population": 1, "epochs_per_generation": 0.5, "children_per_parent": 3}
    result = run_search(make_method("equinas_e", halving=True, **settings), context(tmp_path))
    first = [r for r in result.candidates if r.generation == 1 and not r.candidate_id.endswith("+")]
    promoted = [r for r in result.candidates if r.candidate_id.endswith("+")]
    assert len(first) == 4 and len(promoted) == 2  # every child briefly, the better half on
    assert all(r.epochs == 0.25 for r in first + promoted)
    best_first = sorted(first, key=lambda r: -(r.val_acc or 0))[:2]
    assert {p.parent_id for p in promoted} == {r.candidate_id for r in best_first}
    assert all(p.lineage_epochs == 1.0 for p in promoted)  # initial 0.5 + 0.25 + 0.25
    trace = json.loads((tmp_path / "run" / "generations.json").read_text())
    assert trace[-1]["population"][0].endswith("+")


def test_equinas_d_can_search_briefly_and_retrain(tmp_path) -> None:
    result = run_search(
        make_method("equinas_d", groups=("paper",), search_epochs=0.25, retrain=True), context(tmp_path)
    )
    by_id = {r.candidate_id: r for r in result.candidates}
    assert by_id["mixed"].epochs == 0.25 and by_id["retrained"].epochs == 0.5
    assert set(by_id["mixed"].spec["layers"][0]["groups"]) == {"D4", "C4", "D1", "C2", "C1"}


def test_ray_executor_starts_its_own_instance_instead_of_joining_another_processes(monkeypatch) -> None:
    """Without an address, ``ray.init()`` joins a cluster another process started on this
    machine (it looks in /tmp/ray); the executor asks for a local instance of its own."""
    from equinas.execution import ray_executor

    calls: list[dict] = []

    class FakeRay:
        def is_initialized(self) -> bool:
            return False

        def init(self, **kwargs) -> None:
            calls.append(kwargs)

        def cluster_resources(self) -> dict:
            return {"CPU": 1}

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray_executor, "_import_ray", FakeRay)
    ray_executor.RayExecutor(num_cpus=1)
    assert calls and calls[0]["address"] == "local" and calls[0]["_node_ip_address"] == "127.0.0.1"
    assert calls[0]["num_cpus"] == 1
