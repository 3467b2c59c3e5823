"""Modules batch_norm, layer_norm, group_norm, dropout: state handling, modes, errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import nn


def test_batch_norm_module_state_and_modes(rng):
    m = nn.batch_norm(momentum=0.5)
    x = jnp.asarray(rng.normal(3.0, 2.0, (16, 2, 2, 4)), jnp.float32)
    params, state = m.init(jax.random.key(0), jax.ShapeDtypeStruct(x.shape, jnp.bfloat16))
    assert set(params) == {"scale", "bias"} and set(state) == {"mean", "var"}
    assert state["mean"].dtype == jnp.float32 and params["scale"].dtype == jnp.float32
    y, s1 = jax.jit(lambda p, s, v: m.apply(p, s, v, train=True))(params, state, x)
    xn = np.asarray(x).reshape(-1, 4)
    np.testing.assert_allclose(s1["mean"], 0.5 * xn.mean(0), rtol=1e-5)
    np.testing.assert_allclose(s1["var"], 0.5 + 0.5 * xn.var(0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(y).reshape(-1, 4).mean(0), 0, atol=1e-5)
    y_eval, s2 = m.apply(params, s1, x)
    assert s2 is s1
    np.testing.assert_allclose(y_eval, (np.asarray(x) - np.asarray(s1["mean"])) / np.sqrt(np.asarray(s1["var"]) + 1e-5),
                               rtol=1e-4, atol=1e-5)


def test_batch_norm_in_serial_trains_state_not_params(rng):
    model = nn.serial(nn.dense(3), nn.batch_norm(), nn.relu)
    x = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
    params, state = model.init(jax.random.key(0), x)
    assert "mean" not in jax.tree_util.tree_structure(params).__repr__()
    grads = jax.grad(lambda p: model.apply(p, state, x, train=True)[0].sum())(params)
    assert set(grads["1"]) == {"scale", "bias"}
    _, new_state = model.apply(params, state, x, train=True)
    assert not np.allclose(new_state["1"]["mean"], state["1"]["mean"])


def test_layer_and_group_norm_modules(rng):
    x = jnp.asarray(rng.normal(size=(2, 3, 3, 4)), jnp.float32)
    for m, shape in ((nn.layer_norm(), (4,)), (nn.layer_norm(axis=(1, 2, 3)), (3, 3, 4)),
                     (nn.group_norm(2), (4,))):
        params, state = m.init(jax.random.key(0), x)
        assert params["scale"].shape == shape and state == {}
        y, _ = m.apply(params, state, x)
        assert y.shape == x.shape
    with pytest.raises(ValueError, match="group_norm.*divide"):
        nn.group_norm(3).init(jax.random.key(0), x)


def test_dropout_module():
    m = nn.dropout(0.5)
    x = jnp.ones((4, 50))
    params, state = m.init(jax.random.key(0), x)
    y, _ = m.apply(params, state, x)
    assert y is x  # evaluation is the identity
    a, _ = m.apply(params, state, x, key=jax.random.key(7), train=True)
    b, _ = m.apply(params, state, x, key=jax.random.key(7), train=True)
    np.testing.assert_array_equal(a, b)
    assert 0.3 < float((a == 0).mean()) < 0.7
    with pytest.raises(ValueError, match="dropout.*key"):
        m.apply(params, state, x, train=True)
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="dropout.*rate"):
            nn.dropout(bad)


def test_dropout_children_get_different_masks():
    # Child i draws its mask from fold_in(key, i) (DESIGN section 1), so two dropouts in
    # one container drop different units. Reference masks: Bernoulli(0.5) from those keys.
    key, n = jax.random.key(1), 4096
    x = jnp.ones((1, n))
    ref = lambda i: np.asarray(jax.random.bernoulli(jax.random.fold_in(key, i), 0.5, (1, n)))
    branches = nn.parallel(nn.dropout(0.5), nn.dropout(0.5))
    y, _ = branches.apply(*branches.init(jax.random.key(0), x), x, key=key, train=True)
    a, b = np.asarray(y[:, :n]) != 0, np.asarray(y[:, n:]) != 0
    assert 0.45 < a.mean() < 0.55 and 0.45 < (a != b).mean() < 0.55    # independent masks
    np.testing.assert_array_equal(a, ref(0))
    np.testing.assert_array_equal(b, ref(1))
    chain = nn.serial(nn.dropout(0.5), nn.dropout(0.0, name="id"), nn.dropout(0.5))
    y, _ = chain.apply(*chain.init(jax.random.key(0), x), x, key=key, train=True)
    # a unit survives both dropouts with probability 1/4 (1/2 if the masks were one)
    np.testing.assert_array_equal(np.asarray(y) != 0, ref(0) & ref(2))
    assert 0.2 < float((y != 0).mean()) < 0.3
    np.testing.assert_allclose(np.asarray(y)[np.asarray(y) != 0], 4.0)
