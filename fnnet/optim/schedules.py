"""Learning-rate schedules: functions ``count -> value`` of the step count ``t = 0, 1, ...``.

optax's schedules (same names, arguments and defaults) and three decays of the course
that optax lacks: :func:`inverse_time_decay` ``lr0 / (1 + k t)``,
:func:`inverse_sqrt_decay` ``k / sqrt(t)`` and :func:`cyclical_schedule`, the
triangular cyclical learning rate of Smith (2017). Every schedule is a pure jnp
function, so it works on a traced count under ``jit`` and on an array of counts.

Pass one as ``learning_rate`` to any optimizer: ``adam(exponential_decay(1e-3, 1000, 0.5))``.

Imports: jax.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence

import jax
import jax.numpy as jnp

__all__ = ["constant_schedule", "polynomial_schedule", "linear_schedule", "piecewise_constant_schedule",
           "exponential_decay", "cosine_decay_schedule", "warmup_constant_schedule",
           "warmup_cosine_decay_schedule", "warmup_exponential_decay_schedule", "join_schedules",
           "sgdr_schedule", "inverse_time_decay", "inverse_sqrt_decay", "cyclical_schedule"]

Schedule = Callable[[jax.typing.ArrayLike], jax.typing.ArrayLike]


def constant_schedule(value: float) -> Schedule:
    """``lr_t = value``."""
    return lambda count: value


def polynomial_schedule(init_value: float, end_value: float, power: float, transition_steps: int,
                        transition_begin: int = 0) -> Schedule:
    """Polynomial decay from ``init_value`` to ``end_value`` over ``transition_steps``.

    ``s = clip(t - transition_begin, 0, transition_steps)``,
    ``lr_t = (init - end) (1 - s / transition_steps)^power + end``. A non-positive
    ``transition_steps`` gives the constant ``init_value``; a negative
    ``transition_begin`` counts as 0.
    """
    if transition_steps <= 0:
        return lambda count: init_value
    transition_begin = max(transition_begin, 0)

    def schedule(count):
        s = jnp.clip(count - transition_begin, 0, transition_steps)
        return (init_value - end_value) * (1 - s / transition_steps) ** power + end_value

    return schedule


def linear_schedule(init_value: float, end_value: float, transition_steps: int,
                    transition_begin: int = 0) -> Schedule:
    """Linear ramp from ``init_value`` to ``end_value``: :func:`polynomial_schedule` with power 1."""
    return polynomial_schedule(init_value, end_value, 1, transition_steps, transition_begin)


def piecewise_constant_schedule(init_value: float, boundaries_and_scales: Optional[dict] = None) -> Schedule:
    """Step decay: multiply the value by ``scale`` from each ``boundary`` on.

    ``lr_t = init_value * prod_{b <= t} scale_b`` for ``{b: scale_b}`` in
    ``boundaries_and_scales`` (scales must be non-negative).
    """
    items = sorted((boundaries_and_scales or {}).items())
    if any(s < 0 for _, s in items):
        raise ValueError(f"piecewise_constant_schedule: expected non-negative scales, got "
                         f"{dict(items)}")

    def schedule(count):
        value = init_value
        for boundary, factor in items:
            before = jnp.maximum(0.0, jnp.sign(boundary - count))  # 1 for count < boundary, else 0
            value = value * before + (1 - before) * factor * value
        return value

    return schedule


def exponential_decay(init_value: float, transition_steps: int, decay_rate: float, transition_begin: int = 0,
                      staircase: bool = False, end_value: Optional[float] = None) -> Schedule:
    """Exponential decay: ``lr_t = init_value * decay_rate^((t - transition_begin) / transition_steps)``.

    Before ``transition_begin`` the value is ``init_value``; ``staircase`` floors the
    exponent (a step decay every ``transition_steps``); ``end_value`` bounds the value
    (from below if ``decay_rate < 1``, from above otherwise). A non-positive
    ``transition_steps`` or a zero ``decay_rate`` gives the constant ``init_value``.
    """
    if transition_steps <= 0 or decay_rate == 0:
        return lambda count: init_value
    transition_begin = max(transition_begin, 0)
    bound = None if end_value is None else (jnp.maximum if decay_rate < 1.0 else jnp.minimum)

    def schedule(count):
        shifted = count - transition_begin
        exponent = shifted / transition_steps
        if staircase:
            exponent = jnp.floor(exponent)
        value = jnp.where(shifted <= 0, init_value, init_value * jnp.power(decay_rate, exponent))
        return value if bound is None else bound(value, end_value)

    return schedule


def cosine_decay_schedule(init_value: float, decay_steps: int, alpha: float = 0.0,
                          exponent: float = 1.0) -> Schedule:
    """Cosine decay (Loshchilov & Hutter 2017, one cycle without restart).

    ``c_t = (1 + cos(pi min(t, T) / T)) / 2``, ``lr_t = init_value ((1 - alpha) c_t^exponent + alpha)``
    with ``T = decay_steps``; the value ends at ``alpha * init_value``.
    """
    if not decay_steps > 0:
        raise ValueError(f"cosine_decay_schedule: expected positive decay_steps, got {decay_steps}")
    total = float(decay_steps)

    def schedule(count):
        count = float(count) if isinstance(count, int) else count
        t = jnp.minimum(count, total)
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * t / total))
        return init_value * ((1 - alpha) * cosine ** exponent + alpha)

    return schedule


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Schedule ``i`` from ``boundaries[i-1]`` on, restarted at its own count 0 there."""
    if len(schedules) != len(boundaries) + 1:
        raise ValueError(f"join_schedules: expected one boundary fewer than schedules, got "
                         f"{len(schedules)} schedules and {len(boundaries)} boundaries")

    def schedule(count):
        value = schedules[0](count)
        for boundary, nxt in zip(boundaries, schedules[1:]):
            value = jnp.where(count < boundary, value, nxt(count - boundary))
        return value

    return schedule


def warmup_constant_schedule(init_value: float, peak_value: float, warmup_steps: int) -> Schedule:
    """Linear warm-up from ``init_value`` to ``peak_value`` over ``warmup_steps``, then constant."""
    return linear_schedule(init_value, peak_value, warmup_steps)


def warmup_cosine_decay_schedule(init_value: float, peak_value: float, warmup_steps: int, decay_steps: int,
                                 end_value: float = 0.0, exponent: float = 1.0) -> Schedule:
    """Linear warm-up to ``peak_value`` over ``warmup_steps``, then cosine decay to ``end_value``.

    ``decay_steps`` counts the whole schedule, warm-up included (optax's convention).
    """
    alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
    return join_schedules([linear_schedule(init_value, peak_value, warmup_steps),
                           cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha, exponent)],
                          [warmup_steps])


def warmup_exponential_decay_schedule(init_value: float, peak_value: float, warmup_steps: int,
                                      transition_steps: int, decay_rate: float, transition_begin: int = 0,
                                      staircase: bool = False, end_value: Optional[float] = None) -> Schedule:
    """Linear warm-up to ``peak_value`` over ``warmup_steps``, then :func:`exponential_decay` from it."""
    return join_schedules([linear_schedule(init_value, peak_value, warmup_steps),
                           exponential_decay(peak_value, transition_steps, decay_rate, transition_begin,
                                             staircase, end_value)],
                          [warmup_steps])


def sgdr_schedule(cosine_kwargs: Iterable[dict]) -> Schedule:
    """SGDR: warm restarts (Loshchilov & Hutter 2017) as a sequence of warm-up cosine cycles.

    Each dict holds the arguments of :func:`warmup_cosine_decay_schedule`; cycle ``i``
    lasts its ``decay_steps``.
    """
    schedules, boundaries, step = [], [], 0
    for kwargs in cosine_kwargs:
        schedules.append(warmup_cosine_decay_schedule(**kwargs))
        step += kwargs["decay_steps"]
        boundaries.append(step)
    return join_schedules(schedules, boundaries[:-1])


# ----------------------------------------------------------------------------- the course's decays

def inverse_time_decay(init_value: float, decay_rate: float, transition_steps: int = 1,
                       staircase: bool = False) -> Schedule:
    """Inverse-time decay: ``lr_t = init_value / (1 + decay_rate * t / transition_steps)``.

    The course's ``alpha = alpha_0 / (1 + k * epoch)``: with ``transition_steps`` the
    number of steps per epoch and ``staircase=True`` (floor of ``t / transition_steps``)
    the rate changes once per epoch. Not in optax (Keras's ``InverseTimeDecay``).
    """
    if transition_steps <= 0:
        raise ValueError(f"inverse_time_decay: expected positive transition_steps, got {transition_steps}")

    def schedule(count):
        p = count / float(transition_steps)
        if staircase:
            p = jnp.floor(p)
        return init_value / (1 + decay_rate * p)

    return schedule


def inverse_sqrt_decay(init_value: float, transition_steps: int = 1, staircase: bool = False) -> Schedule:
    """``lr_t = k / sqrt(n)`` with ``k = init_value`` and ``n = 1 + t / transition_steps``.

    ``n`` is the course's epoch number starting at 1 (so the first value is ``k``);
    ``staircase`` floors ``t / transition_steps``. Not in optax.
    """
    if transition_steps <= 0:
        raise ValueError(f"inverse_sqrt_decay: expected positive transition_steps, got {transition_steps}")

    def schedule(count):
        p = count / float(transition_steps)
        if staircase:
            p = jnp.floor(p)
        return init_value / jnp.sqrt(1 + p)

    return schedule


def cyclical_schedule(base_value: float, max_value: float, step_size: int, mode: str = "triangular",
                      gamma: float = 1.0) -> Schedule:
    """Cyclical learning rate (Smith 2017, "Cyclical Learning Rates for Training Neural Networks").

    The rate goes linearly from ``base_value`` up to ``max_value`` in ``step_size``
    steps and back down in as many (a cycle is ``2 step_size`` steps)::

        cycle = floor(1 + t / (2 step_size)),  x = |t / step_size - 2 cycle + 1|
        lr_t  = base + (max - base) max(0, 1 - x) * scale

    with ``scale = 1`` (``mode="triangular"``), ``1 / 2^(cycle - 1)`` (``"triangular2"``:
    the amplitude halves every cycle) or ``gamma^t`` (``"exp_range"``), as in the
    paper and PyTorch's ``CyclicLR``. Not in optax.
    """
    if step_size <= 0:
        raise ValueError(f"cyclical_schedule: expected positive step_size, got {step_size}")
    if mode not in ("triangular", "triangular2", "exp_range"):
        raise ValueError(f"cyclical_schedule: expected mode 'triangular', 'triangular2' or 'exp_range', "
                         f"got {mode!r}")

    def schedule(count):
        cycle = jnp.floor(1 + count / float(2 * step_size))
        x = jnp.abs(count / float(step_size) - 2 * cycle + 1)
        height = (max_value - base_value) * jnp.maximum(0.0, 1 - x)
        if mode == "triangular2":
            height = height / 2.0 ** (cycle - 1)
        elif mode == "exp_range":
            height = height * gamma ** count
        return base_value + height

    return schedule
