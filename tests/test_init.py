"""Initialisers: moments against their formulas, orthogonality exactly."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import init


@pytest.mark.parametrize("shape, fan_in, fan_out", [
    ((7,), 7, 7), ((3, 5), 3, 5), ((3, 3, 4, 8), 36, 72), ((2, 5, 6, 1, 4), 60, 240),
])
def test_fans(shape, fan_in, fan_out):
    assert init.fans(shape) == (fan_in, fan_out)


SHAPE = (400, 300)  # fan_in 400, fan_out 300
CASES = {
    "xavier_normal": (2 / 700, "normal"),
    "xavier_uniform": (2 / 700, "uniform"),
    "he_normal": (2 / 400, "normal"),
    "he_uniform": (2 / 400, "uniform"),
    "lecun_normal": (1 / 400, "normal"),
    "lecun_uniform": (1 / 400, "uniform"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_variance_scaling_moments(name):
    variance, dist = CASES[name]
    w = np.asarray(getattr(init, name)()(jax.random.key(0), SHAPE), np.float64)
    assert w.dtype == np.float64 and w.shape == SHAPE
    n = w.size
    # Sample variance within 4 standard errors of the formula.
    assert abs(w.var() - variance) < 4 * variance * math.sqrt(2 / n)
    assert abs(w.mean()) < 4 * math.sqrt(variance / n)
    if dist == "uniform":
        limit = math.sqrt(3 * variance)
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    else:  # untruncated normal: values beyond 2 sigma exist (~4.6% of them)
        frac = np.mean(np.abs(w) > 2 * math.sqrt(variance))
        assert 0.04 < frac < 0.052
        kurtosis = np.mean((w - w.mean()) ** 4) / w.var() ** 2
        assert abs(kurtosis - 3) < 0.1


def test_glorot_aliases():
    assert init.glorot_normal is init.xavier_normal
    assert init.glorot_uniform is init.xavier_uniform


def test_constant_zeros_ones_normal_uniform():
    key, k_normal, k_uniform = jax.random.split(jax.random.key(1), 3)
    np.testing.assert_array_equal(init.zeros()(key, (2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(init.ones()(key, (4,)), np.ones(4))
    np.testing.assert_array_equal(init.constant(0.5)(key, (2,)), [0.5, 0.5])
    w = np.asarray(init.normal(0.1, mean=2.0)(k_normal, (200, 200)))
    assert abs(w.mean() - 2.0) < 4 * 0.1 / 200 and abs(w.std() - 0.1) < 0.002
    u = np.asarray(init.uniform(0.3)(k_uniform, (200, 200)))
    assert np.abs(u).max() <= 0.3 and abs(u.var() - 0.09 / 3) < 0.001


@pytest.mark.parametrize("shape", [(6, 6), (10, 4), (4, 10), (3, 3, 5, 7)])
def test_orthogonal_is_orthogonal(shape, x64):
    w = np.asarray(init.orthogonal(scale=2.0)(jax.random.key(2), shape, jnp.float64))
    m = w.reshape(-1, shape[-1])
    rows, cols = m.shape
    gram = m.T @ m if rows >= cols else m @ m.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(min(rows, cols)), atol=1e-12)


def test_orthogonal_rejects_vectors():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.orthogonal()(jax.random.key(0), (5,))


def test_default_dtype_is_float32():
    for name in CASES:
        assert getattr(init, name)()(jax.random.key(0), (3, 4)).dtype == jnp.float32
    assert init.orthogonal()(jax.random.key(0), (3, 4)).dtype == jnp.float32
