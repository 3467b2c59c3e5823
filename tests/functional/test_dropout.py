"""Dropout kernel: kept fraction, preserved mean, determinism per key, float64 gradient."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import functional as F
from fnnet import gradcheck


def test_kept_fraction_scale_and_mean():
    x = jnp.ones((200, 100))
    y = F.dropout(x, 0.3, jax.random.key(0))
    kept = np.asarray(y != 0)
    # 20000 Bernoulli(0.7) draws: standard error 0.0032
    assert abs(kept.mean() - 0.7) < 0.015
    np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.7, rtol=1e-6)
    assert abs(float(y.mean()) - 1.0) < 0.025


def test_same_key_same_mask_other_key_other_mask():
    x = jnp.arange(1.0, 65.0)
    a = F.dropout(x, 0.5, jax.random.key(1))
    b = F.dropout(x, 0.5, jax.random.key(1))
    c = F.dropout(x, 0.5, jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.asarray(a) != 0, np.asarray(c) != 0)


def test_rate_zero_is_identity_and_bad_rate_raises():
    x = jnp.arange(4.0)
    np.testing.assert_array_equal(F.dropout(x, 0.0, jax.random.key(0)), x)
    with pytest.raises(ValueError, match="dropout.*rate"):
        F.dropout(x, 1.0, jax.random.key(0))


def test_gradient_float64(x64):
    key = jax.random.key(3)
    x = jnp.linspace(-1.0, 1.0, 12)
    f = lambda t: jnp.sum(jnp.sin(F.dropout(t, 0.4, key)))
    assert gradcheck.relative_difference(f, x) < 1e-7
