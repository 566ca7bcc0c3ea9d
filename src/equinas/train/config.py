"""``TrainConfig``: every setting of a training run, declared, validated, and round-trippable via dicts."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from equinas.nn.choices import MEMORY_FORMATS
from equinas.settings import Settings, setting
from equinas.train.augment import parse_augment
from equinas.train.threads import AUTO, thread_choice

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "cosine", "step")
DEVICES = ("auto", "cpu", "cuda")
AMP_DTYPES = ("auto", "bfloat16", "float16")
# what a search method must do for the arch_* fields to mean anything (``Declaration.needs``)
ARCHITECTURE_STEPS = "architecture steps"

# Settings that may differ between a run and its resumption: they do not change which updates
# are applied (``epochs`` extends or keeps the run; it does reshape a cosine schedule), only
# where and in which arithmetic precision they are computed (``device``, ``amp``).
RESUMABLE_CHANGES = frozenset(
    {
        "epochs",
        "device",
        "num_threads",
        "log_every",
        "eval_batch_size",
        "eval_every",
        "memory_format",
        "amp",
        "amp_dtype",
    }
)
# Settings that change no trained weight and no final metric (only which epochs are logged/validated).
RESULT_NEUTRAL = frozenset({"log_every", "eval_every"})
# Settings a search may resume with changed: the result-neutral ones and the thread count, which
# moves only float rounding, as it may for a resumed training run (and older searches recorded
# 1 or nothing where newer ones record "auto").
SEARCH_RESUMABLE_CHANGES = RESULT_NEUTRAL | {"num_threads"}


def _augment(value: Any) -> str | None:
    """``"rot"`` or a group name; ``"none"`` is stored as ``None`` (left out of dicts)."""
    if not isinstance(value, str):
        raise ValueError(f"expected a string or None, got {value!r}")
    parse_augment(value)
    return None if value == "none" else value


MAX_EPOCHS = 1e6  # beyond any real budget; bounds step counts far below float and int overflow


def step_at(epochs: float, steps_per_epoch: int) -> int:
    """The training step at which ``epochs`` epochs end: where a span stopping there stops and a
    span starting there starts, so consecutive spans share no step and skip none."""
    return math.ceil(epochs * steps_per_epoch - 1e-9)


@dataclass(frozen=True)
class TrainConfig(Settings):
    """Settings of one training run. Construction validates every field (``ValueError``).

    ``epochs`` may be fractional: the run takes ``ceil(epochs * batches_per_epoch)`` steps, so
    ``0.2`` trains on the first 20% of the (shuffled) batches of epoch 0. ``span = (start,
    stop)`` trains only that part of the run, with the run's schedule and batch order (a search
    that rewrites a network between parts trains it as one run; the optimizer state of each
    part starts afresh). Schedules are per step:
    ``warmup_epochs`` ramps the lr linearly from ``lr / warmup_steps`` to ``lr``; ``cosine``
    anneals it to 0 at the last step; ``step`` multiplies it by ``gamma`` every ``step_size``
    epochs. ``amp`` runs forward passes under autocast (``runtime.amp_dtype``): bfloat16 on CPUs
    with native bf16 arithmetic (AVX-512 BF16 or AMX; elsewhere a warning and float32, and
    ``amp_dtype='float16'`` is refused on CPU) and on GPUs that support it, float16 with a
    GradScaler on other GPUs or with ``amp_dtype='float16'``; weights, optimizer state, batch-norm
    statistics and checkpoints stay float32, and a resume may switch it. ``arch_lr > 0`` enables
    first-order bilevel updates of a model's ``architecture_parameters()`` with Adam: one after every
    ``arch_every``-th weight step, from epoch ``arch_warmup_epochs`` on (before it only the
    weights train) for ``arch_epochs`` epochs (``None``: to the end). ``log_every`` is in
    steps (0 disables step logs). ``None`` means "not set" for ``grad_clip``, ``span`` (the
    whole run) and ``arch_epochs``. ``num_threads`` is a count or ``"auto"``
    (``equinas.train.threads``); a run records the count it resolved to.
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

    epochs: float = setting(
        2.0,
        above=0,
        at_most=MAX_EPOCHS,
        help="epochs per network (fractions allowed; the budget unit); for equinas_e the budget of a "
        "whole lineage",
    )
    span: tuple[float, float] | None = setting(
        None,
        at_least=0,
        metavar="START,STOP",
        help="train only the epochs [START, STOP) of this run of --epochs, with its schedule and batch "
        "order (none: the whole run)",
    )
    batch_size: int = setting(64, at_least=1, help="training batch size")
    optimizer: str = setting("adam", choices=OPTIMIZERS, help="weight optimizer")
    lr: float = setting(1e-3, above=0, help="learning rate")
    momentum: float = setting(0.9, at_least=0, below=1, help="momentum of sgd")
    weight_decay: float = setting(0.0, at_least=0, help="L2 weight decay")
    scheduler: str = setting("none", choices=SCHEDULERS, help="learning-rate schedule (per step)")
    step_size: int = setting(
        30, at_least=1, flag="lr-step-size", help="epochs between the lr steps of --scheduler step"
    )
    gamma: float = setting(
        0.1, above=0, at_most=1, flag="lr-gamma", help="lr factor of every step of --scheduler step"
    )
    warmup_epochs: float = setting(
        0.0, at_least=0, flag="lr-warmup-epochs", help="epochs of linear learning-rate warmup"
    )
    seed: int = setting(0, at_least=0, at_most=2**32 - 1, help="random seed")
    device: str = setting("auto", choices=DEVICES, help="auto (cuda when available), cpu or cuda")
    amp: bool = setting(
        False,
        help="mixed precision: bfloat16 autocast on CPUs with native bf16 (AVX-512 BF16, AMX; elsewhere a "
        "warning and float32) and on GPUs (float16 where a GPU lacks bf16); weights stay float32",
    )
    amp_dtype: str = setting(
        "auto",
        choices=AMP_DTYPES,
        help="autocast type of --amp (auto: bfloat16 where the device has it; float16: CUDA only)",
    )
    grad_clip: float | None = setting(
        None, above=0, help="clip the gradient norm of every weight step to this value (none: off)"
    )
    eval_batch_size: int = setting(128, at_least=1, help="batch size of evaluations")
    num_threads: int | str = setting(
        AUTO,
        check=thread_choice,
        flag="threads",
        metavar="N|auto",
        help="torch CPU threads: an integer, or auto: every usable core (CPU affinity and cgroup quota) for "
        "a network training alone, cores / workers for each of several pool workers",
    )
    arch_lr: float = setting(
        0.0,
        at_least=0,
        needs=ARCHITECTURE_STEPS,
        help="Adam lr of bilevel architecture steps (0: no architecture steps)",
    )
    arch_weight_decay: float = setting(
        0.0, at_least=0, needs=ARCHITECTURE_STEPS, help="weight decay of the architecture steps"
    )
    arch_betas: tuple[float, float] = setting(
        (0.5, 0.999),
        at_least=0,
        below=1,
        needs=ARCHITECTURE_STEPS,
        help="Adam betas of the architecture steps",
    )
    arch_every: int = setting(
        1, at_least=1, needs=ARCHITECTURE_STEPS, help="one architecture step after every N-th weight step"
    )
    arch_warmup_epochs: float = setting(
        0.0, at_least=0, needs=ARCHITECTURE_STEPS, help="epochs of weight training before arch steps"
    )
    arch_epochs: float | None = setting(
        None,
        at_least=0,
        needs=ARCHITECTURE_STEPS,
        help="epochs of architecture steps after their warmup (none: to the end of the run)",
    )
    log_every: int = setting(50, at_least=0, help="log every N steps (0: no step logs)")
    bn_recalibration: int = setting(
        16,
        at_least=0,
        metavar="BATCHES",
        help="re-estimate batch-norm statistics on this many train batches before each evaluation (0: off)",
    )
    eval_every: int = setting(
        1,
        at_least=1,
        metavar="EPOCHS",
        help="validate after every EPOCHS-th epoch and the last (fewer validations, same results)",
    )
    memory_format: str = setting(
        "auto",
        choices=MEMORY_FORMATS,
        help="layout of feature maps: channels_last, contiguous (NCHW), or auto: the faster one for "
        "the device (channels_last on CPU, NCHW on GPUs); results agree to float rounding",
    )
    augment: str | None = setting(
        None,
        check=_augment,
        metavar="KIND",
        help="training-time augmentation: 'none'; a group (e.g. D4, C4, D1): each training image moved by "
        "a random element (exact for multiples of 90 degrees and mirrors); or 'rot': random continuous "
        "rotations (bilinear). Recorded in the run; a resume must use the same",
    )

    def check(self) -> None:
        if self.span is not None and not self.span[0] < self.span[1] <= self.epochs:
            raise self.fail("span", f"expected START < STOP <= epochs ({self.epochs:g}), got {self.span!r}")

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
