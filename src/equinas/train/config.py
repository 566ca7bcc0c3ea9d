"""``TrainConfig``: every setting of a training run, validated, and round-trippable via dicts."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from equinas.nn.choices import MEMORY_FORMATS
from equinas.train.augment import parse_augment

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "cosine", "step")
DEVICES = ("auto", "cpu", "cuda")
AMP_DTYPES = ("auto", "bfloat16", "float16")

# Settings that may differ between a run and its resumption: they do not change which updates
# are applied (``epochs`` extends or keeps the run; it does reshape a cosine schedule).
RESUMABLE_CHANGES = frozenset(
    {"epochs", "device", "num_threads", "log_every", "eval_batch_size", "eval_every", "memory_format"}
)
# Settings that change no trained weight and no final metric (only which epochs are logged/validated).
RESULT_NEUTRAL = frozenset({"log_every", "eval_every"})


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. Construction validates every field (``ValueError``).

    ``epochs`` may be fractional: the run takes ``ceil(epochs * batches_per_epoch)`` steps, so
    ``0.2`` trains on the first 20% of the (shuffled) batches of epoch 0. Schedules are per step:
    ``warmup_epochs`` ramps the lr linearly from ``lr / warmup_steps`` to ``lr``; ``cosine``
    anneals it to 0 at the last step; ``step`` multiplies it by ``gamma`` every ``step_size``
    epochs. ``amp`` only acts on CUDA (bf16 autocast, or fp16 autocast with a GradScaler when
    ``amp_dtype`` is ``float16`` or the GPU lacks bf16). ``arch_lr > 0`` enables first-order
    bilevel updates of a model's ``architecture_parameters()`` with Adam: one after every
    ``arch_every``-th weight step, from epoch ``arch_warmup_epochs`` on (before it only the
    weights train). ``log_every`` is in
    steps (0 disables step logs). ``None`` means "not set" for ``grad_clip`` and ``num_threads``.
    ``bn_recalibration > 0`` re-estimates batch-norm statistics from that many train batches
    before every evaluation (short runs otherwise evaluate with lagging running averages).
    ``eval_every`` validates (and recalibrates) after every ``eval_every``-th epoch and after
    the last one only; as recalibration starts afresh each time and validation draws no random
    numbers, the weights and the final metrics do not depend on it. ``memory_format`` lays group
    feature maps out ``channels_last`` or ``contiguous`` (NCHW); ``auto`` picks the faster one for
    the device (``runtime.memory_format``); values agree to float rounding. ``eval_batch_size``
    128 evaluates fastest on CPU (256 and more take 1.5x longer per image with one thread:
    feature maps stop fitting in cache); on a GPU larger batches pay off. ``augment`` transforms every
    training image of a weight step by a random element of a group (``"D4"``, ``"C4"``, ...)
    or a random continuous rotation (``"rot"``); ``None`` (or ``"none"``) trains on the images
    as they are (see ``equinas.train.augment``).
    """

    epochs: float = 10.0
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "none"
    step_size: int = 30
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    amp_dtype: str = "auto"
    grad_clip: float | None = None
    eval_batch_size: int = 128
    num_threads: int | None = None
    arch_lr: float = 0.0
    arch_weight_decay: float = 0.0
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_every: int = 1
    arch_warmup_epochs: float = 0.0
    log_every: int = 50
    bn_recalibration: int = 0
    eval_every: int = 1
    memory_format: str = "auto"
    augment: str | None = None

    def __post_init__(self) -> None:
        check = _Checker(self)
        check.real("epochs", low=0.0, low_open=True)
        check.integer("batch_size", low=1)
        check.choice("optimizer", OPTIMIZERS)
        check.real("lr", low=0.0, low_open=True)
        check.real("momentum", low=0.0, high=1.0)
        check.real("weight_decay", low=0.0)
        check.choice("scheduler", SCHEDULERS)
        check.integer("step_size", low=1)
        check.real("gamma", low=0.0, high=1.0, low_open=True, high_closed=True)
        check.real("warmup_epochs", low=0.0)
        check.integer("seed", low=0, high=2**32 - 1)
        check.choice("device", DEVICES)
        check.boolean("amp")
        check.choice("amp_dtype", AMP_DTYPES)
        check.real("grad_clip", low=0.0, low_open=True, optional=True)
        check.integer("eval_batch_size", low=1)
        check.integer("num_threads", low=1, optional=True)
        check.real("arch_lr", low=0.0)
        check.real("arch_weight_decay", low=0.0)
        check.betas("arch_betas")
        check.integer("arch_every", low=1)
        check.real("arch_warmup_epochs", low=0.0)
        check.integer("log_every", low=0)
        check.integer("bn_recalibration", low=0)
        check.integer("eval_every", low=1)
        check.choice("memory_format", MEMORY_FORMATS)
        check.augment("augment")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML types; unset (``None``) fields are left out, tuples become lists."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``; missing keys take defaults, unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown TrainConfig key(s): {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
            )
        return cls(**values)


class _Checker:
    """Validates and normalises (int -> float, list -> tuple) fields of a frozen config."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    def _fail(self, name: str, expected: str) -> None:
        value = getattr(self.config, name)
        raise ValueError(f"TrainConfig.{name} must be {expected}, got {value!r}")

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self.config, name, value)

    def real(
        self,
        name: str,
        *,
        low: float,
        high: float = math.inf,
        low_open: bool = False,
        high_closed: bool = False,
        optional: bool = False,
    ) -> None:
        value = getattr(self.config, name)
        if value is None and optional:
            return
        left = "(" if low_open else "["
        right = "]" if high_closed else ")"
        expected = f"a finite number in {left}{low}, {high}{right}"
        if optional:
            expected += " or None"
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._fail(name, expected)
        value = float(value)
        too_low = value <= low if low_open else value < low
        too_high = value > high if high_closed else value >= high
        if not math.isfinite(value) or too_low or too_high:
            self._fail(name, expected)
        self._set(name, value)

    def integer(self, name: str, *, low: int, high: int | None = None, optional: bool = False) -> None:
        value = getattr(self.config, name)
        if value is None and optional:
            return
        expected = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
        if optional:
            expected += " or None"
        if isinstance(value, bool) or not isinstance(value, int):
            self._fail(name, expected)
        if value < low or (high is not None and value > high):
            self._fail(name, expected)

    def boolean(self, name: str) -> None:
        if not isinstance(getattr(self.config, name), bool):
            self._fail(name, "a bool")

    def choice(self, name: str, options: tuple[str, ...]) -> None:
        if getattr(self.config, name) not in options:
            self._fail(name, "one of " + ", ".join(repr(o) for o in options))

    def augment(self, name: str) -> None:
        """``None``, ``"rot"`` or a group name; ``"none"`` is stored as ``None`` (left out of dicts)."""
        value = getattr(self.config, name)
        if value is not None and not isinstance(value, str):
            self._fail(name, "a string or None")
        try:
            parse_augment(value)
        except ValueError as err:
            raise ValueError(f"TrainConfig.{name}: {err}") from None
        if value == "none":
            self._set(name, None)

    def betas(self, name: str) -> None:
        value = getattr(self.config, name)
        expected = "two numbers in [0, 1)"
        if not isinstance(value, tuple | list) or len(value) != 2:
            self._fail(name, expected)
        for beta in value:
            if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 <= beta < 1:
                self._fail(name, expected)
        self._set(name, (float(value[0]), float(value[1])))
