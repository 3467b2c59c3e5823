"""Activations and dense against NumPy formulas; float64 gradient checks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import functional as F


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


REFERENCES = {
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (F.tanh, np.tanh),
    "relu": (F.relu, lambda x: np.where(x > 0, x, 0.0)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    "elu": (lambda x: F.elu(x, 1.5), lambda x: np.where(x > 0, x, 1.5 * (np.exp(x) - 1))),
    "softplus": (F.softplus, lambda x: np.log1p(np.exp(x))),
    "softmax": (F.softmax, np_softmax),
    "log_softmax": (F.log_softmax, lambda x: np.log(np_softmax(x))),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_activation_values(name, rng, x64):
    fn, ref = REFERENCES[name]
    x = rng.normal(size=(4, 7)) * 3
    np.testing.assert_allclose(fn(jnp.asarray(x)), ref(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_activation_gradients(name, rng, x64):
    from fnnet.gradcheck import relative_difference
    fn, _ = REFERENCES[name]
    x = jnp.asarray(rng.normal(size=(3, 5)) * 2 + 0.05)  # keep off the kinks at 0
    w = jnp.asarray(rng.normal(size=(3, 5)))
    assert relative_difference(lambda v: jnp.sum(w * fn(v)), x) < 1e-7


def test_activations_stable_at_extremes():
    x = jnp.array([-1e4, -50.0, 0.0, 50.0, 1e4], jnp.float32)
    for fn in (F.sigmoid, F.tanh, F.softplus, F.elu, F.softmax, F.log_softmax):
        assert bool(jnp.all(jnp.isfinite(fn(x)))), fn.__name__
    np.testing.assert_allclose(np.asarray(F.softplus(x))[[0, 4]], [0.0, 1e4])
    np.testing.assert_allclose(np.asarray(F.sigmoid(x))[[0, 4]], [0.0, 1.0])


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
