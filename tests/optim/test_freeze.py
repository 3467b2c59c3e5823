"""Freezing: masks from layer names against hand-written trees, frozen leaves bit-identical
after training (weight decay and -0.0 included), the trainable ones on optax's
multi_transform trajectory, stop_gradient's zeros, and the mask errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import nn, optim
from fnnet.optim import freeze


def _model():
    return nn.serial(nn.dense(6), nn.tanh, nn.dense(5), nn.tanh, nn.dense(3))


def _setup(rng):
    model = _model()
    x = jnp.asarray(rng.normal(size=(16, 4)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(16, 3)), jnp.float32)
    params, state = model.init(jax.random.key(0), x)
    return model, params, state, x, y


def _bits(a):
    return np.asarray(a).view(np.uint32)


def test_param_paths_and_mask_by_name():
    params = {"0": {"kernel": 0, "bias": 1}, "1": {}, "10": {"kernel": 2},
              "block1": {"conv": {"kernel": 3}}, "block2": {"conv": {"kernel": 4, "bias": 5}}}
    assert freeze.param_paths(params) == ["0/bias", "0/kernel", "10/kernel", "block1/conv/kernel",
                                          "block2/conv/bias", "block2/conv/kernel"]
    # "0" is a whole component: it selects "0/..." but not "10/..."
    assert freeze.mask_by_name(params, "0") == {"0": {"kernel": True, "bias": True}, "1": {},
                                                "10": {"kernel": False}, "block1": {"conv": {"kernel": False}},
                                                "block2": {"conv": {"kernel": False, "bias": False}}}
    m = freeze.mask_by_name(params, ["block*", "10/kernel"])
    assert m["block1"]["conv"]["kernel"] and m["block2"]["conv"]["bias"] and m["10"]["kernel"]
    assert not m["0"]["kernel"]
    m = freeze.mask_by_name(params, "*/conv/bias")
    assert freeze.param_paths(params) and [p for p, v in zip(freeze.param_paths(params), jax.tree.leaves(m)) if v] \
        == ["block2/conv/bias"]


def test_frozen_leaves_bit_identical_and_trainable_on_optax_trajectory(rng):
    optax = pytest.importorskip("optax")
    model, params, state, x, y = _setup(rng)
    params = jax.tree.map(lambda a: a, params)
    params["0"]["bias"] = params["0"]["bias"].at[0].set(-0.0)     # -0.0 must stay -0.0
    frozen_names = ["0", "4/bias"]

    def loss(p):
        out, _ = model.apply(p, state, x)
        return jnp.mean((out - y) ** 2)

    ours = freeze.freeze_layers(optim.adamw(0.05, weight_decay=0.1), frozen_names)
    labels = {"0": {"kernel": "frozen", "bias": "frozen"}, "1": {}, "2": {"kernel": "train", "bias": "train"},
              "3": {}, "4": {"kernel": "train", "bias": "frozen"}}
    twin = optax.multi_transform({"train": optax.adamw(0.05, weight_decay=0.1), "frozen": optax.set_to_zero()},
                                 labels)
    p_ours, s_ours = params, ours.init(params)
    p_twin, s_twin = params, twin.init(params)
    step_ours, step_twin = jax.jit(ours.update), jax.jit(twin.update)
    for _ in range(25):
        u, s_ours = step_ours(jax.grad(loss)(p_ours), s_ours, p_ours)
        p_ours = optim.apply_updates(p_ours, u)
        u, s_twin = step_twin(jax.grad(loss)(p_twin), s_twin, p_twin)
        p_twin = optax.apply_updates(p_twin, u)
    for path in (("0", "kernel"), ("0", "bias"), ("4", "bias")):
        a, b = p_ours[path[0]][path[1]], params[path[0]][path[1]]
        np.testing.assert_array_equal(_bits(a), _bits(b))
    assert np.signbit(np.asarray(p_ours["0"]["bias"][0]))
    for path in (("2", "kernel"), ("2", "bias"), ("4", "kernel")):
        a, b = p_ours[path[0]][path[1]], p_twin[path[0]][path[1]]
        assert not np.array_equal(np.asarray(a), np.asarray(params[path[0]][path[1]]))
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    # the inner optimizer keeps no moments for frozen leaves
    inner_state = s_ours[0].inner_state
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(inner_state))
    n_moment = sum(np.size(a) for a in jax.tree.leaves(inner_state) if np.ndim(a) > 0)
    assert n_moment == 2 * (6 * 5 + 5 + 5 * 3)


def test_freeze_through_fit_with_a_bool_tree(rng):
    from fnnet import losses, train
    model, params, state, x, y = _setup(rng)
    mask = {"0": True, "1": {}, "2": {"kernel": False, "bias": True}, "3": {}, "4": False}   # a prefix tree
    result = train.fit(model, losses.mse, freeze.freeze_layers(optim.sgd(0.1), mask), params, state,
                       (x, y), key=jax.random.key(1), batch_size=8, epochs=3, progress=False)
    for a, b in ((result.params["0"]["kernel"], params["0"]["kernel"]),
                 (result.params["0"]["bias"], params["0"]["bias"]),
                 (result.params["2"]["bias"], params["2"]["bias"])):
        np.testing.assert_array_equal(_bits(a), _bits(b))
    assert not np.array_equal(np.asarray(result.params["2"]["kernel"]), np.asarray(params["2"]["kernel"]))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_stop_gradient_zeros_frozen_grads_keeps_the_rest(rng):
    model, params, state, x, y = _setup(rng)

    def loss(p, cut):
        out, _ = model.apply(freeze.stop_gradient(p, ["0", "2"]) if cut else p, state, x)
        return jnp.mean((out - y) ** 2)

    full, cut = jax.grad(loss)(params, False), jax.grad(loss)(params, True)
    assert float(loss(params, True)) == float(loss(params, False))
    for leaf in jax.tree.leaves((cut["0"], cut["2"])):
        np.testing.assert_array_equal(np.asarray(leaf), 0.0)
    np.testing.assert_array_equal(np.asarray(cut["4"]["kernel"]), np.asarray(full["4"]["kernel"]))
    assert np.abs(np.asarray(full["0"]["kernel"])).max() > 0
    # the frozen first layers' backward is pruned: no dot_general computes their gradients
    def count_dots(cut_):
        hlo = jax.jit(jax.grad(lambda p: loss(p, cut_))).lower(params).compile().as_text()
        return hlo.count(" dot(")
    assert count_dots(True) < count_dots(False)


def test_mask_errors_name_what_is_wrong(rng):
    _, params, *_ = _setup(rng)
    with pytest.raises(KeyError, match=r"no parameter matches \['5'\].*'0', '2', '4'"):
        freeze.freeze_layers(optim.sgd(0.1), ["5"]).init(params)
    with pytest.raises(KeyError, match="no parameter matches"):
        freeze.mask_by_name(params, "conv*")
    wrong = {"0": True, "2": False, "4": False, "7": True}
    with pytest.raises(ValueError, match=r"keys only in the mask \['7'\], keys only in the params \['1', '3'\]"):
        freeze.freeze_layers(optim.sgd(0.1), wrong).init(params)
    bad_leaf = {"0": 1, "1": {}, "2": False, "3": {}, "4": False}
    with pytest.raises(TypeError, match=r"expected a bool in the mask at '0', got int"):
        freeze.freeze_layers(optim.sgd(0.1), bad_leaf).init(params)
    nested = {"0": {"kernel": True}, "1": {}, "2": False, "3": {}, "4": False}
    with pytest.raises(ValueError, match=r"at '0'.*keys only in the params \['bias'\]"):
        freeze.stop_gradient(params, nested)
    with pytest.raises(TypeError, match="layer names or glob patterns"):
        freeze.mask_by_name(params, [""])
    with pytest.raises(TypeError, match="expected a gradient transformation"):
        freeze.freeze_layers(0.1, ["0"])
