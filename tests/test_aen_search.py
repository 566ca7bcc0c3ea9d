"""AEN's deep-Q-learning search: schedule, reward, replay, target sync, Q-steps, tiny end-to-end runs."""

from __future__ import annotations

import copy
import json
import math
import random

import pytest
import torch
import torch.nn.functional as F

from conftest import synthetic_task
from equinas.cli import build_parser
from equinas.data.task import Split, TaskData
from equinas.execution import LocalExecutor
from equinas.groups import parse_group
from equinas.search import BackboneSettings, SearchContext, make_method, run_search
from equinas.search.dqn import DQNAgent, ReplayMemory, Transition
from equinas.search.methods.aen import (
    FC_EPSILON,
    GCNN_EPSILON,
    AENGCNNSettings,
    AENSearch,
    AENSettings,
    generated_group,
    reward,
    target_sync_due,
)
from equinas.search.run_directory import RunDirectory
from equinas.train import TrainConfig

TRAIN = TrainConfig(epochs=1, batch_size=32, lr=3e-3, num_threads=1)


def task28(n_train: int = 48, n_eval: int = 24) -> TaskData:
    """Three classes of bright 6x6 squares on 28x28 noise (AEN's EQNet needs 28x28 inputs)."""
    gen = torch.Generator().manual_seed(7)

    def split(n: int) -> Split:
        labels = torch.arange(n) % 3
        images = 0.3 * torch.randn(n, 1, 28, 28, generator=gen)
        for c in range(3):
            images[labels == c, 0, 4 + 6 * c : 10 + 6 * c, 4:10] += 2.0
        return Split(images, labels)

    return TaskData("synthetic28", 3, split(n_train), split(n_eval), split(n_eval))


def context(tmp_path, task: TaskData, backbone: BackboneSettings | None = None) -> SearchContext:
    return SearchContext(
        task.name,
        task,
        backbone or BackboneSettings(),
        TRAIN,
        LocalExecutor(),
        RunDirectory(tmp_path / "run"),
        seed=5,
        progress=False,
    )


# -- schedule, reward, sync rule -------------------------------------------------------------------
def test_fc_epsilon_schedule_steps_at_the_reference_thresholds() -> None:
    expected = {1: 1.0, 199: 1.0, 200: 0.9, 299: 0.9, 300: 0.8, 899: 0.3, 900: 0.2, 949: 0.2}
    expected |= {950: 0.1, 999: 0.1, 1000: 0.05, 1199: 0.05, 1200: 0.01, 5000: 0.01}
    assert {m: FC_EPSILON(m) for m in expected} == expected


def test_gcnn_epsilon_schedule_steps_every_50_models() -> None:
    models = (49, 50, 100, 449, 450, 500, 550, 600)
    assert [GCNN_EPSILON(m) for m in models] == [1.0, 0.9, 0.8, 0.2, 0.1, 0.05, 0.01, 0.01]


def test_epsilon_thresholds_scale_with_the_budget() -> None:
    schedule = AENSearch(AENSettings(max_models=20)).schedule()  # default scale 20 / 1000
    assert schedule.thresholds[:2] == pytest.approx((4.0, 6.0))
    assert [schedule(m) for m in (3, 4, 6, 19, 20, 24)] == [1.0, 0.9, 0.8, 0.1, 0.05, 0.01]
    explicit = AENSearch(AENSettings(max_models=20, epsilon_scale=0.5)).schedule()
    assert explicit(99) == 1.0 and explicit(100) == 0.9


def test_reward_is_signed_and_super_exponential_in_percent() -> None:
    assert reward(95.0, 95.0) == 0.0
    assert reward(97.0, 95.0) == pytest.approx(2 * math.exp(2))
    assert reward(93.0, 95.0) == pytest.approx(-2 * math.exp(2))
    assert reward(105.0, 95.0) == pytest.approx(2.2026e5, rel=1e-4)  # 10 pp -> about 2.2e5


def test_target_sync_rule_uses_the_number_of_models_trained() -> None:
    assert [target_sync_due(m, 2) for m in range(1, 7)] == [False, True, False, True, False, True]


# -- replay memory and Q-learning ------------------------------------------------------------------
def transition(i: int) -> Transition:
    return Transition((i % 2, 0), i % 2, (1, i % 2), float(i))


def test_replay_memory_keeps_the_last_capacity_transitions() -> None:
    memory = ReplayMemory(3)
    for i in range(5):
        memory.push(transition(i))
    assert len(memory) == 3
    assert sorted(t.reward for t in memory.items) == [2.0, 3.0, 4.0]
    batch = memory.sample(3, random.Random(0))
    assert sorted(t.reward for t in batch) == [2.0, 3.0, 4.0]
    assert memory.sample(2, random.Random(1)) == memory.sample(2, random.Random(1))
    with pytest.raises(ValueError, match="cannot sample"):
        memory.sample(4, random.Random(0))


def test_q_step_uses_huber_on_the_unmasked_gamma_target_and_sync_copies() -> None:
    agent = DQNAgent(2, seed=0, gamma=0.5, batch_size=2, capacity=2, lr=1e-3)
    agent.memory.push(transition(0))
    assert agent.learn() is None  # fewer transitions than a batch (learning_starts default)
    agent.memory.push(transition(1))
    states = torch.tensor([t.state for t in agent.memory.items], dtype=torch.float64)
    nexts = torch.tensor([t.next_state for t in agent.memory.items], dtype=torch.float64)
    actions = torch.tensor([t.action for t in agent.memory.items])
    rewards = torch.tensor([t.reward for t in agent.memory.items], dtype=torch.float64)
    with torch.no_grad():
        q = agent.policy(states)[torch.arange(2), actions]
        y = rewards + 0.5 * agent.target(nexts).max(1).values
    assert agent.learn() == pytest.approx(float(F.smooth_l1_loss(q, y)))
    policy, target = agent.policy.state_dict(), agent.target.state_dict()
    assert any(not torch.equal(policy[k], target[k]) for k in policy)
    agent.sync()
    assert all(torch.equal(agent.policy.state_dict()[k], agent.target.state_dict()[k]) for k in policy)


def test_learning_starts_early_on_the_stored_transitions() -> None:
    agent = DQNAgent(2, seed=0, gamma=0.5, batch_size=128, capacity=100, lr=1e-3, learning_starts=3)
    for i in range(2):
        agent.memory.push(transition(i))
        assert agent.learn() is None
    agent.memory.push(transition(2))
    before = copy.deepcopy(agent.policy.state_dict())
    assert agent.learn() is not None  # a batch of the 3 stored transitions
    assert any(not torch.equal(before[k], v) for k, v in agent.policy.state_dict().items())


def test_actions_are_greedy_at_epsilon_zero() -> None:
    agent = DQNAgent(4, seed=1, gamma=0.5, batch_size=8, capacity=8, lr=1e-3)
    state = (0, 1, 0, 0)
    greedy = int(agent.policy(torch.tensor([state], dtype=torch.float64))[0].argmax())
    assert {agent.act(state, 0.0) for _ in range(5)} == {greedy}
    assert {agent.act(state, 1.0) for _ in range(200)} == {0, 1, 2, 3}


# -- settings --------------------------------------------------------------------------------------
def test_settings_validate_names_and_budgets() -> None:
    assert AENSettings(groups=("sc1", "rot")).groups == ("scramble1", "rot")
    with pytest.raises(ValueError, match="scramble7"):
        AENSettings(groups=("rot", "rot45"))
    with pytest.raises(ValueError, match="distinct"):
        AENSettings(groups=("sc1", "scramble1"))
    with pytest.raises(ValueError, match="rot90, hflip, vflip"):
        AENGCNNSettings(generators=("rot",))
    with pytest.raises(ValueError, match="max_models"):
        make_method("aen", max_models=0)


def test_cli_exposes_the_aen_settings() -> None:
    args = build_parser().parse_args(
        ["search", "aen", "--task", "gmnist[rot]", "--groups", "rot,hflip", "--max-models", "3"]
        + ["--epsilon-scale", "0.1", "--reference-quirks"]
    )
    assert (args.groups, args.max_models, args.epsilon_scale, args.reference_quirks) == (
        ("rot", "hflip"),
        3,
        0.1,
        True,
    )


# -- G-CNN variant: generator subsets -> subgroups of D4 -------------------------------------------
def test_generator_subsets_map_to_six_subgroups_of_d4() -> None:
    d4 = parse_group("D4")
    names = {
        bits: generated_group(
            d4, [g for g, on in zip(("rot90", "hflip", "vflip"), bits, strict=True) if on]
        ).name
        for bits in [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    }
    assert names == {
        (0, 0, 0): "C1",
        (0, 0, 1): "D1[axis=2]",
        (0, 1, 0): "D1",
        (0, 1, 1): "D2",
        (1, 0, 0): "C4",
        (1, 0, 1): "D4",
        (1, 1, 0): "D4",
        (1, 1, 1): "D4",
    }
    with pytest.raises(ValueError, match="containing D4"):
        generated_group(parse_group("C4"), ["rot90"])


# -- end to end ------------------------------------------------------------------------------------
def read_records(run: RunDirectory) -> list[dict]:
    return [json.loads(line) for line in (run.path / "candidates.jsonl").read_text().splitlines()]


def test_tiny_aen_search_trains_each_state_once_and_resumes_without_training(tmp_path) -> None:
    ctx = context(tmp_path, task28())
    method = make_method("aen", groups=("rot", "hflip"), max_models=4, episode_length=3, max_episodes=12)
    result = run_search(method, ctx)
    extras = result.extras
    records = read_records(ctx.run)
    ids = [r["candidate_id"] for r in records]
    assert ids[0] == "aen-00" and len(set(ids)) == len(ids) == extras["models_trained"]
    assert all(r["spec"]["family"] == "aen_fc" for r in records)
    assert sum(h["new"] for h in extras["history"]) == len(ids) - 1
    assert extras["cache_hits"] > 0 and extras["steps"] == len(extras["history"])
    visited = {h["state"] for h in extras["history"]} | {"00"}
    assert {f"aen-{s}" for s in visited} == set(ids)
    assert [v["key"] for v in extras["visited"]] == ids and extras["visited"][0]["reward"] == 0.0
    assert len(extras["top_states"]) <= 5
    saved = json.loads((ctx.run.path / "result.json").read_text())
    assert saved["extras"]["top_states"] == extras["top_states"]

    again = run_search(
        make_method("aen", groups=("rot", "hflip"), max_models=4, episode_length=3, max_episodes=12),
        context(tmp_path, task28()),
        resume=True,
    )
    assert len(read_records(ctx.run)) == len(ids)  # nothing retrained
    assert again.extras["history"] == extras["history"]


def test_tiny_aen_gcnn_search_shares_one_record_per_subgroup(tmp_path) -> None:
    backbone = BackboneSettings(widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None)
    ctx = context(tmp_path, synthetic_task(n_train=64, n_val=16, n_test=16), backbone)
    result = run_search(make_method("aen_gcnn", max_models=4, episode_length=4, max_episodes=6), ctx)
    records = read_records(ctx.run)
    ids = [r["candidate_id"] for r in records]
    assert ids[0] == "aen_gcnn-C1" and len(set(ids)) == len(ids) == result.extras["models_trained"] <= 4
    d4 = parse_group("D4")
    bits = result.extras["bits"]
    groups = {
        generated_group(d4, [g for g, on in zip(bits, h["state"], strict=True) if on == "1"]).name
        for h in result.extras["history"]
    }
    assert {r["groups"][0] for r in records} == groups | {"C1"}
