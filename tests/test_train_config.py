"""TrainConfig: defaults, validation, and dict / JSON / TOML round trips."""

from __future__ import annotations

import dataclasses
import json
import tomllib

import pytest

from equinas.train import TrainConfig


def test_defaults_are_valid_and_documented_ones_hold():
    config = TrainConfig()
    assert config.batch_size == 64
    assert config.momentum == 0.9
    assert config.weight_decay == 0.0
    assert config.warmup_epochs == 0.0
    assert config.seed == 0
    assert config.arch_lr == 0.0
    assert config.arch_betas == (0.5, 0.999)
    assert config.device == "auto"


def test_dict_and_json_round_trip():
    config = TrainConfig(epochs=0.2, optimizer="sgd", lr=0.1, grad_clip=5.0, num_threads=2)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_toml_round_trip_leaves_out_unset_fields():
    config = TrainConfig(scheduler="cosine", arch_lr=3e-4, arch_betas=(0.5, 0.99))
    values = config.to_dict()
    assert "grad_clip" not in values and "span" not in values  # TOML has no null
    assert values["num_threads"] == "auto"  # a word TOML writes as a string
    text = "\n".join(f"{key} = {json.dumps(value)}" for key, value in values.items())
    assert TrainConfig.from_dict(tomllib.loads(text)) == config


def test_ints_are_accepted_for_float_fields_and_lists_for_betas():
    config = TrainConfig.from_dict({"epochs": 2, "lr": 1, "arch_betas": [0, 0.9]})
    assert isinstance(config.epochs, float) and isinstance(config.lr, float)
    assert config.arch_betas == (0.0, 0.9)


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match="learning_rate, nesterov"):
        TrainConfig.from_dict({"nesterov": True, "learning_rate": 0.1})


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0),
        ("epochs", -1.0),
        ("epochs", float("nan")),
        ("epochs", float("inf")),
        ("batch_size", 0),
        ("batch_size", 2.5),
        ("batch_size", True),
        ("optimizer", "rmsprop"),
        ("lr", 0.0),
        ("lr", "0.1"),
        ("momentum", 1.0),
        ("weight_decay", -1e-4),
        ("scheduler", "linear"),
        ("step_size", 0),
        ("gamma", 0.0),
        ("gamma", 1.5),
        ("warmup_epochs", -1),
        ("seed", -1),
        ("seed", 2**40),
        ("device", "tpu"),
        ("amp", 1),
        ("amp_dtype", "fp8"),
        ("grad_clip", 0.0),
        ("eval_batch_size", 0),
        ("num_threads", 0),
        ("arch_lr", -1.0),
        ("arch_weight_decay", -1.0),
        ("arch_betas", (0.5,)),
        ("arch_betas", (0.5, 1.0)),
        ("log_every", -1),
    ],
)
def test_bad_values_raise_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}: expected"):
        TrainConfig(**{field: value})


def test_replace_revalidates():
    with pytest.raises(ValueError, match="epochs"):
        dataclasses.replace(TrainConfig(), epochs=-2)
