"""Activations and dense against NumPy formulas; float64 gradient checks."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import functional as F


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


np_erf = np.vectorize(math.erf)
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


REFERENCES = {
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (F.tanh, np.tanh),
    "relu": (F.relu, lambda x: np.where(x > 0, x, 0.0)),
    "relu6": (F.relu6, lambda x: np.clip(x, 0.0, 6.0)),
    "hard_tanh": (F.hard_tanh, lambda x: np.clip(x, -1.0, 1.0)),
    "hard_tanh_-2_3": (lambda x: F.hard_tanh(x, -2.0, 3.0), lambda x: np.clip(x, -2.0, 3.0)),
    "selu": (F.selu, lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1))),
    "gelu": (F.gelu, lambda x: x / 2 * (1 + np_erf(x / np.sqrt(2)))),
    "gelu_tanh": (lambda x: F.gelu(x, approximate=True),
                  lambda x: x / 2 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    "elu": (lambda x: F.elu(x, 1.5), lambda x: np.where(x > 0, x, 1.5 * (np.exp(x) - 1))),
    "softplus": (F.softplus, lambda x: np.log1p(np.exp(x))),
    "softmax": (F.softmax, np_softmax),
    "log_softmax": (F.log_softmax, lambda x: np.log(np_softmax(x))),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_activation_values(name, rng, x64):
    fn, ref = REFERENCES[name]
    x = rng.normal(size=(4, 7)) * 3  # spans relu6's 6 and hard_tanh's ends
    np.testing.assert_allclose(fn(jnp.asarray(x)), ref(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_activation_gradients(name, rng, x64):
    from fnnet.gradcheck import relative_difference
    fn, _ = REFERENCES[name]
    x = jnp.asarray(rng.normal(size=(3, 5)) * 2 + 0.05)  # off the kinks (0, +-1, 6, -2, 3): the nearest is 0.021 away
    w = jnp.asarray(rng.normal(size=(3, 5)))
    assert relative_difference(lambda v: jnp.sum(w * fn(v)), x) < 1e-7


def test_activations_stable_at_extremes():
    x = jnp.array([-1e4, -50.0, 0.0, 50.0, 1e4], jnp.float32)
    for fn in (F.sigmoid, F.tanh, F.softplus, F.elu, F.selu, F.gelu, F.relu6, F.hard_tanh,
               F.softmax, F.log_softmax):
        assert bool(jnp.all(jnp.isfinite(fn(x)))), fn.__name__
    np.testing.assert_allclose(np.asarray(F.softplus(x))[[0, 4]], [0.0, 1e4])
    np.testing.assert_allclose(np.asarray(F.sigmoid(x))[[0, 4]], [0.0, 1.0])
    np.testing.assert_allclose(np.asarray(F.selu(x))[[0, 4]], [-SELU_SCALE * SELU_ALPHA, SELU_SCALE * 1e4],
                               rtol=1e-6)
    np.testing.assert_allclose(np.asarray(F.gelu(x))[[0, 4]], [0.0, 1e4])


def test_activations_pass_nan():
    x = jnp.array([jnp.nan, -1.0, 7.0])
    for fn in (F.relu, F.relu6, F.hard_tanh, F.leaky_relu, F.elu, F.selu, F.gelu):
        assert bool(jnp.isnan(fn(x)[0])), fn.__name__


def test_hard_tanh_bounds_error():
    with pytest.raises(ValueError, match="hard_tanh: expected min_val < max_val, got min_val=1.0, max_val=-1.0"):
        F.hard_tanh(jnp.ones(3), 1.0, -1.0)


def test_maxout(rng):
    x = rng.normal(size=(2, 3, 12))
    ref = x.reshape(2, 3, 4, 3).max(-1)
    np.testing.assert_allclose(F.maxout(jnp.asarray(x, jnp.float32), 3), ref, rtol=1e-6)
    with pytest.raises(ValueError, match="multiple of num_pieces=5"):
        F.maxout(jnp.ones((2, 12)), 5)


def test_dense_against_numpy(rng, x64):
    x, w, b = rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), rng.normal(size=3)
    ref = np.array([[sum(x[n, i] * w[i, j] for i in range(4)) + b[j] for j in range(3)] for n in range(5)])
    np.testing.assert_allclose(F.dense(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b)), ref, rtol=1e-12)
    np.testing.assert_allclose(F.dense(jnp.asarray(x), jnp.asarray(w)), ref - b, rtol=1e-12)
    # Leading axes beyond the batch are kept.
    x3 = rng.normal(size=(2, 5, 4))
    assert F.dense(jnp.asarray(x3), jnp.asarray(w)).shape == (2, 5, 3)


def test_dense_gradient(rng, x64):
    from fnnet.gradcheck import relative_difference
    x = jnp.asarray(rng.normal(size=(5, 4)))
    params = {"w": jnp.asarray(rng.normal(size=(4, 3))), "b": jnp.asarray(rng.normal(size=3)), "x": x}
    f = lambda p: jnp.sum(jnp.tanh(F.dense(p["x"], p["w"], p["b"])))
    assert relative_difference(f, params) < 1e-7


def test_dense_errors():
    with pytest.raises(ValueError, match=r"dense: expected input with last axis 4 .* got input of shape \(5, 3\)"):
        F.dense(jnp.ones((5, 3)), jnp.ones((4, 2)))
    with pytest.raises(ValueError, match=r"dense: expected bias of shape \(2,\), got \(3,\)"):
        F.dense(jnp.ones((5, 4)), jnp.ones((4, 2)), jnp.ones(3))
    with pytest.raises(ValueError, match="kernel of shape"):
        F.dense(jnp.ones((5, 4)), jnp.ones((4, 2, 1)))
    with pytest.raises(TypeError, match="floating dtype, got int32"):
        F.dense(jnp.ones((5, 4), jnp.int32), jnp.ones((4, 2)))
