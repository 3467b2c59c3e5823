"""Schedules: optax's beside their optax twins, the course's decays against their closed
forms (written here as plain Python loops) and the cyclical rate against PyTorch's CyclicLR.

Each schedule is evaluated under ``jax.jit`` on the counts 0..399 (one compiled program
for all of them per dtype), in float32 and with float64 enabled.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnnet import optim

COUNTS = 400
TOL = {"float32": 1e-6, "float64": 1e-12}

CASES = [
    ("constant", lambda lib: lib.constant_schedule(0.3)),
    ("polynomial", lambda lib: lib.polynomial_schedule(1.0, 0.1, 2.0, 300, transition_begin=50)),
    ("polynomial-no-steps", lambda lib: lib.polynomial_schedule(1.0, 0.1, 2.0, 0)),
    ("linear", lambda lib: lib.linear_schedule(0.0, 2.0, 100, transition_begin=10)),
    ("piecewise-constant", lambda lib: lib.piecewise_constant_schedule(1.0, {100: 0.5, 50: 0.1, 300: 2.0})),
    ("piecewise-none", lambda lib: lib.piecewise_constant_schedule(0.7)),
    ("exponential", lambda lib: lib.exponential_decay(1.0, 50, 0.5)),
    ("exponential-begin-staircase", lambda lib: lib.exponential_decay(1.0, 30, 0.7, transition_begin=40,
                                                                       staircase=True)),
    ("exponential-end-value", lambda lib: lib.exponential_decay(1.0, 20, 0.5, end_value=0.05)),
    ("exponential-growth-end-value", lambda lib: lib.exponential_decay(0.1, 20, 1.5, end_value=2.0)),
    ("cosine", lambda lib: lib.cosine_decay_schedule(0.5, 300)),
    ("cosine-alpha-exponent", lambda lib: lib.cosine_decay_schedule(0.5, 300, alpha=0.1, exponent=2.0)),
    ("warmup-constant", lambda lib: lib.warmup_constant_schedule(0.0, 1.0, 40)),
    ("warmup-cosine", lambda lib: lib.warmup_cosine_decay_schedule(0.0, 1.0, 50, 350, end_value=0.01)),
    ("warmup-exponential", lambda lib: lib.warmup_exponential_decay_schedule(0.0, 1.0, 30, 40, 0.8,
                                                                             staircase=True, end_value=0.1)),
    ("join", lambda lib: lib.join_schedules([lib.constant_schedule(1.0), lib.linear_schedule(1.0, 0.0, 100),
                                             lib.cosine_decay_schedule(0.5, 50)], [100, 250])),
    ("sgdr", lambda lib: lib.sgdr_schedule([dict(init_value=0.0, peak_value=1.0, warmup_steps=10,
                                                 decay_steps=100, end_value=0.0)] * 2
                                           + [dict(init_value=0.1, peak_value=0.5, warmup_steps=5,
                                                   decay_steps=150, end_value=0.05, exponent=2.0)])),
]


def evaluate_all(cases, dtype):
    """Every schedule on counts 0..COUNTS-1 (int32, as in an optimizer's state), one jit."""
    with jax.enable_x64(dtype == "float64"):
        @jax.jit
        def values():
            count = jnp.arange(COUNTS, dtype=jnp.int32)
            return {name: jnp.broadcast_to(jnp.asarray(s(count)), (COUNTS,)) for name, s in cases}
        return jax.device_get(values())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_schedules_match_optax(dtype):
    ours = evaluate_all([(name, make(optim)) for name, make in CASES], dtype)
    theirs = evaluate_all([(name, make(optax)) for name, make in CASES], dtype)
    for name, _ in CASES:
        assert ours[name].dtype == theirs[name].dtype, name
        np.testing.assert_allclose(ours[name], theirs[name], rtol=TOL[dtype], atol=TOL[dtype], err_msg=name)
    assert np.ptp(ours["sgdr"]) > 0.5  # the schedules vary


def test_schedules_accept_python_ints():
    for name, make in CASES:
        ours, theirs = make(optim), make(optax)
        for t in (0, 7, 120, 999):
            np.testing.assert_allclose(np.asarray(ours(t)), np.asarray(theirs(t)), rtol=1e-6, err_msg=name)


# ----------------------------------------------------------------------------- closed forms

def smith_triangular(t, base, peak, step_size, mode, gamma):
    """Smith (2017), Section 3.1: the triangular policy, written from the paper."""
    cycle = math.floor(1 + t / (2 * step_size))
    x = abs(t / step_size - 2 * cycle + 1)
    scale = {"triangular": 1.0, "triangular2": 1 / 2 ** (cycle - 1), "exp_range": gamma ** t}[mode]
    return base + (peak - base) * max(0.0, 1 - x) * scale


COURSE = [
    ("inverse-time", lambda: optim.inverse_time_decay(0.5, 0.1),
     lambda t: 0.5 / (1 + 0.1 * t)),
    ("inverse-time-epochs", lambda: optim.inverse_time_decay(0.2, 1.0, transition_steps=25, staircase=True),
     lambda t: 0.2 / (1 + 1.0 * (t // 25))),
    ("inverse-time-smooth", lambda: optim.inverse_time_decay(0.2, 0.5, transition_steps=10),
     lambda t: 0.2 / (1 + 0.5 * t / 10)),
    ("inverse-sqrt", lambda: optim.inverse_sqrt_decay(0.3),
     lambda t: 0.3 / math.sqrt(t + 1)),
    ("inverse-sqrt-epochs", lambda: optim.inverse_sqrt_decay(0.3, transition_steps=40, staircase=True),
     lambda t: 0.3 / math.sqrt(t // 40 + 1)),
    ("triangular", lambda: optim.cyclical_schedule(0.001, 0.006, 50),
     lambda t: smith_triangular(t, 0.001, 0.006, 50, "triangular", 1.0)),
    ("triangular2", lambda: optim.cyclical_schedule(0.01, 0.1, 30, mode="triangular2"),
     lambda t: smith_triangular(t, 0.01, 0.1, 30, "triangular2", 1.0)),
    ("exp-range", lambda: optim.cyclical_schedule(0.01, 0.1, 40, mode="exp_range", gamma=0.995),
     lambda t: smith_triangular(t, 0.01, 0.1, 40, "exp_range", 0.995)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_course_decays_closed_form(dtype):
    values = evaluate_all([(name, make()) for name, make, _ in COURSE], dtype)
    for name, _, closed in COURSE:
        expected = np.array([closed(t) for t in range(COUNTS)])
        np.testing.assert_allclose(values[name], expected, rtol=10 * TOL[dtype], atol=1e-12, err_msg=name)
    assert values["inverse-time"][0] == pytest.approx(0.5) and values["triangular"][50] == pytest.approx(0.006)


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclical_matches_torch(mode):
    torch = pytest.importorskip("torch")
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.01)
    sched = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=20, mode=mode,
                                              gamma=0.99, cycle_momentum=False)
    expected = []
    for _ in range(150):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = jax.jit(optim.cyclical_schedule(0.01, 0.1, 20, mode=mode, gamma=0.99))(jnp.arange(150))
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-5, atol=1e-7)


def test_schedule_drives_sgd_like_the_closed_form():
    """sgd with inverse_time_decay on f(w) = w^2 / 2: w_{t+1} = (1 - lr_t) w_t."""
    opt = optim.sgd(optim.inverse_time_decay(0.5, 0.2))
    w = jnp.asarray(3.0)
    state = opt.init(w)
    expected = 3.0
    for t in range(20):
        u, state = opt.update(w, state, w)
        w = optim.apply_updates(w, u)
        expected *= 1 - 0.5 / (1 + 0.2 * t)
    assert float(w) == pytest.approx(expected, rel=1e-5)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="decay_steps"):
        optim.cosine_decay_schedule(1.0, 0)
    with pytest.raises(ValueError, match="non-negative"):
        optim.piecewise_constant_schedule(1.0, {10: -1.0})
    with pytest.raises(ValueError, match="mode"):
        optim.cyclical_schedule(0.1, 1.0, 10, mode="sawtooth")
    with pytest.raises(ValueError, match="step_size"):
        optim.cyclical_schedule(0.1, 1.0, 0)
    with pytest.raises(ValueError, match="boundary"):
        optim.join_schedules([optim.constant_schedule(1.0)], [10])
