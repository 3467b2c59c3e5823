"""The Module protocol and the combinators (serial, parallel, residual), summary."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import nn


def np_forward(params, x):
    """The MLP of ``mlp()`` written by hand in NumPy."""
    h = np.maximum(x @ np.asarray(params["0"]["kernel"]) + np.asarray(params["0"]["bias"]), 0)
    return h @ np.asarray(params["2"]["kernel"]) + np.asarray(params["2"]["bias"])


def mlp():
    return nn.serial(nn.dense(8), nn.relu, nn.dense(3))


def test_serial_matches_numpy(rng):
    model = mlp()
    x = rng.normal(size=(5, 4)).astype(np.float32)
    params, state = model.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, params) == {"0": {"kernel": (4, 8), "bias": (8,)}, "1": {},
                                               "2": {"kernel": (8, 3), "bias": (3,)}}
    assert state == {"0": {}, "1": {}, "2": {}}
    y, new_state = model.apply(params, state, jnp.asarray(x))
    np.testing.assert_allclose(y, np_forward(params, x), rtol=1e-5, atol=1e-6)
    assert new_state == state


def test_init_accepts_shape_dtype_struct_and_runs_no_forward():
    model = mlp()
    spec = jax.ShapeDtypeStruct((2, 4), jnp.float32)
    p1, _ = model.init(jax.random.key(0), spec)
    p2, _ = model.init(jax.random.key(0), jnp.zeros((2, 4)))
    chex.assert_trees_all_equal(p1, p2)
    with pytest.raises(TypeError, match="example input"):
        model.init(jax.random.key(0), [1.0, 2.0])


def _counting(module, calls):
    """``module`` whose apply records whether it ran on a concrete array (a real forward
    pass) or on an abstract tracer (shape inference under eval_shape)."""
    def apply(params, state, x, *, key=None, train=False):
        calls.append("abstract" if isinstance(x, jax.core.Tracer) else "concrete")
        return module.apply(params, state, x, key=key, train=train)
    return nn.Module(module.init, apply, module.name)


def _program(init, x):
    """init's program as text (sub-programs inlined), to search for primitives."""
    return str(jax.make_jaxpr(lambda k: init(k, x))(jax.random.key(0)))


@pytest.mark.parametrize("combinator", ["serial", "parallel", "residual"])
def test_init_runs_no_forward_pass(combinator):
    # Each combinator calls its children's apply only abstractly (to infer shapes), never
    # on data, and init's program holds no matmul: init costs no forward pass.
    calls = []
    dense = lambda n: _counting(nn.dense(n), calls)
    model = {"serial": lambda: nn.serial(dense(8), nn.relu, dense(8), dense(3)),
             "parallel": lambda: nn.parallel(nn.serial(dense(8), dense(4)), dense(4), combine="sum"),
             "residual": lambda: nn.serial(nn.residual(nn.serial(dense(8), dense(6))), dense(2)),
             }[combinator]()
    x = jnp.ones((16, 6))
    model.init(jax.random.key(0), x)
    # The compiled init traces everything, so also run it op by op: there a child's
    # apply on data would see concrete arrays.
    model.init.eager(jax.random.key(0), x)
    assert "concrete" not in calls
    assert "dot_general" not in _program(model.init, x)


def test_zoo_model_init_runs_no_conv():
    from fnnet import models
    model = models.resnet18(10)
    program = _program(model.init, jnp.ones((2, 32, 32, 3)))
    assert "random_bits" in program                   # it does draw the weights
    for primitive in ("conv_general_dilated", "dot_general", "reduce_window"):
        assert primitive not in program


def test_init_vmaps_over_seeds():
    model = mlp()
    keys = jax.random.split(jax.random.key(0), 4)
    params, _ = jax.vmap(lambda k: model.init(k, jax.ShapeDtypeStruct((1, 4), jnp.float32)))(keys)
    assert params["0"]["kernel"].shape == (4, 4, 8)
    single, _ = model.init(keys[2], jax.ShapeDtypeStruct((1, 4), jnp.float32))
    np.testing.assert_array_equal(params["0"]["kernel"][2], single["0"]["kernel"])


def test_adding_a_layer_leaves_other_layers_randomness_unchanged():
    a = nn.serial(nn.dense(8), nn.relu, nn.dense(3))
    b = nn.serial(nn.dense(8), nn.relu, nn.dense(3), nn.dense(2))
    pa, _ = a.init(jax.random.key(5), jnp.zeros((1, 4)))
    pb, _ = b.init(jax.random.key(5), jnp.zeros((1, 4)))
    for k in ("0", "2"):
        chex.assert_trees_all_equal(pa[k], pb[k])


def test_apply_under_jit_grad_vmap():
    model = mlp()
    params, state = model.init(jax.random.key(0), jnp.zeros((1, 4)))
    x = jnp.ones((6, 4))

    @jax.jit
    def loss(p, x):
        return jnp.sum(model.apply(p, state, x)[0] ** 2)

    g = jax.grad(loss)(params, x)
    assert jax.tree.map(jnp.shape, g) == jax.tree.map(jnp.shape, params)
    per_example = jax.vmap(lambda xi: model.apply(params, state, xi[None])[0][0])(x)
    np.testing.assert_allclose(per_example, model.apply(params, state, x)[0], rtol=1e-6)


def test_key_and_train_are_keyword_only():
    model = mlp()
    params, state = model.init(jax.random.key(0), jnp.zeros((1, 4)))
    with pytest.raises(TypeError):
        model.apply(params, state, jnp.zeros((1, 4)), jax.random.key(1))
    with pytest.raises(TypeError):
        model.apply(params, state, jnp.zeros((1, 4)), trian=True)


def test_containers_fold_child_keys():
    seen = {}

    def probe(tag):
        def apply(params, state, x, *, key=None, train=False):
            seen[tag] = key
            return x, state
        return nn.Module(lambda key, x: ({}, {}), apply, tag)

    model = nn.serial(probe("a"), nn.parallel(probe("b"), probe("c"), combine="sum"))
    key = jax.random.key(3)
    model.apply(*model.init(jax.random.key(0), jnp.zeros((1, 2))), jnp.zeros((1, 2)), key=key)
    data = lambda k: np.asarray(jax.random.key_data(k))
    np.testing.assert_array_equal(data(seen["a"]), data(jax.random.fold_in(key, 0)))
    k1 = jax.random.fold_in(key, 1)
    np.testing.assert_array_equal(data(seen["b"]), data(jax.random.fold_in(k1, 0)))
    np.testing.assert_array_equal(data(seen["c"]), data(jax.random.fold_in(k1, 1)))
    model.apply(*model.init(jax.random.key(0), jnp.zeros((1, 2))), jnp.zeros((1, 2)))
    assert seen["a"] is None and seen["c"] is None


def test_parallel_concat_and_sum(rng):
    x = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
    cat = nn.parallel(nn.dense(2), nn.dense(5))
    params, state = cat.init(jax.random.key(0), x)
    y, _ = cat.apply(params, state, x)
    ref = np.concatenate([np.asarray(x) @ np.asarray(params[k]["kernel"]) for k in ("0", "1")], axis=-1)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
    add = nn.parallel(nn.dense(2), nn.dense(2), combine="sum")
    params, state = add.init(jax.random.key(1), x)
    y, _ = add.apply(params, state, x)
    ref = sum(np.asarray(x) @ np.asarray(params[k]["kernel"]) for k in ("0", "1"))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
    bad = nn.parallel(nn.dense(2), nn.dense(3), combine="sum")
    with pytest.raises(ValueError, match=r"parallel: branch outputs must agree on all axes, got shapes \[\(3, 2\), \(3, 3\)\]"):
        bad.apply(*bad.init(jax.random.key(0), x), x)
    with pytest.raises(ValueError, match="combine="):
        nn.parallel(nn.relu, combine="mean")


def test_residual(rng):
    x = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
    block = nn.serial(nn.dense(4), nn.tanh)
    res = nn.residual(block)
    params, state = res.init(jax.random.key(0), x)
    assert set(params) == {"block"}
    y, _ = res.apply(params, state, x)
    k, b = (np.asarray(params["block"]["0"][n]) for n in ("kernel", "bias"))
    np.testing.assert_allclose(y, np.tanh(np.asarray(x) @ k + b) + np.asarray(x), rtol=1e-5, atol=1e-6)
    proj = nn.residual(nn.serial(nn.dense(6), nn.relu), shortcut=nn.dense(6, use_bias=False))
    params, state = proj.init(jax.random.key(1), x)
    assert set(params) == {"block", "shortcut"} and proj.apply(params, state, x)[0].shape == (3, 6)
    with pytest.raises(ValueError, match="pass a projection shortcut"):
        nn.residual(nn.dense(6)).init(jax.random.key(0), x)


def test_combinator_argument_errors():
    with pytest.raises(TypeError, match="argument 1 is function, expected a Module"):
        nn.serial(nn.relu, nn.dense)
    with pytest.raises(ValueError, match="at least one Module"):
        nn.serial()


def test_layers_shapes_and_errors(rng):
    x = jnp.asarray(rng.normal(size=(2, 3, 4)), jnp.float32)
    for layer, shape in [(nn.flatten, (2, 12)), (nn.reshape((4, 3)), (2, 4, 3)), (nn.reshape((-1,)), (2, 12)),
                         (nn.identity, (2, 3, 4)), (nn.maxout(2), (2, 3, 2)), (nn.leaky_relu(0.1), (2, 3, 4)),
                         (nn.elu(), (2, 3, 4)), (nn.softmax, (2, 3, 4))]:
        params, state = layer.init(jax.random.key(0), x)
        assert params == {} and layer.apply(params, state, x)[0].shape == shape
    np.testing.assert_allclose(nn.leaky_relu(0.1).apply({}, {}, x)[0], np.where(x > 0, x, 0.1 * np.asarray(x)))
    with pytest.raises(ValueError, match="cannot reshape"):
        nn.reshape((5,)).apply({}, {}, x)
    d = nn.dense(3)
    params, state = d.init(jax.random.key(0), jnp.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"dense: expected input with last axis 4, got input of shape \(2, 5\)"):
        d.apply(params, state, jnp.zeros((2, 5)))
    with pytest.raises(ValueError, match="positive int"):
        nn.dense(0)


def test_dense_init_options():
    d = nn.dense(3, use_bias=False, kernel_init=nn_init_constant(0.5), dtype=jnp.float64 if jax.config.x64_enabled else jnp.bfloat16)
    params, _ = d.init(jax.random.key(0), jnp.zeros((1, 2)))
    assert set(params) == {"kernel"} and params["kernel"].dtype in (jnp.bfloat16, jnp.float64)
    np.testing.assert_array_equal(np.asarray(params["kernel"], np.float32), np.full((2, 3), 0.5))
    default, _ = nn.dense(3).init(jax.random.key(0), jnp.zeros((1, 2)))
    assert default["kernel"].dtype == jnp.float32
    np.testing.assert_array_equal(default["bias"], np.zeros(3))


def nn_init_constant(v):
    from fnnet import init
    return init.constant(v)


def test_count_params_and_summary():
    model = nn.serial(nn.dense(8), nn.relu, nn.residual(nn.serial(nn.dense(8), nn.relu)), nn.dense(3))
    params, _ = model.init(jax.random.key(0), jnp.zeros((1, 4)))
    assert nn.count_params(params) == (4 * 8 + 8) + (8 * 8 + 8) + (8 * 3 + 3)
    lines = []
    rows = nn.summary(model, jax.ShapeDtypeStruct((2, 4), jnp.float32), print_fn=lines.append)
    assert [(r["path"], r["layer"], r["output_shape"], r["params"]) for r in rows] == [
        ("0", "dense", (2, 8), 40), ("1", "relu", (2, 8), 0), ("2/block/0", "dense", (2, 8), 72),
        ("2/block/1", "relu", (2, 8), 0), ("3", "dense", (2, 3), 27)]
    assert "Total params: 139" in lines[0]


def test_module_is_hashable_static_argument():
    model = mlp()
    params, state = model.init(jax.random.key(0), jnp.zeros((1, 4)))

    @jax.jit
    def f(params, x):
        return model.apply(params, state, x)[0]

    g = jax.jit(lambda m, p, x: m.apply(p, state, x)[0], static_argnums=0)
    np.testing.assert_allclose(g(model, params, jnp.ones((2, 4))), f(params, jnp.ones((2, 4))))
    init_fn, apply_fn = model  # unpacks like stax
    assert init_fn is model.init and apply_fn is model.apply


def test_layers_accept_numpy_integers_and_refuse_bools_and_floats(rng):
    # Sizes read from a config array are NumPy integers: the layers take them as ints
    # (same params and outputs as with Python ints) and name any bool or float.
    x = jnp.asarray(rng.normal(size=(2, 6, 6, 4)), jnp.float32)
    pairs = [(nn.dense(np.int64(3)), nn.dense(3)),
             (nn.conv(np.int32(6), (np.int64(3), 3), stride=np.int64(2), groups=np.int8(2)),
              nn.conv(6, (3, 3), stride=2, groups=2)),
             (nn.depthwise_conv(np.int64(3), depth_multiplier=np.int64(2), dilation=np.int16(2)),
              nn.depthwise_conv(3, depth_multiplier=2, dilation=2)),
             (nn.max_pool(np.int64(2), np.int64(1)), nn.max_pool(2, 1)),
             (nn.group_norm(np.int64(2)), nn.group_norm(2)),
             (nn.serial(nn.flatten, nn.reshape((np.int64(-1), np.int32(4)))),
              nn.serial(nn.flatten, nn.reshape((36, 4))))]
    for numpy_ints, python_ints in pairs:
        p1, s1 = numpy_ints.init(jax.random.key(0), x)
        p2, s2 = python_ints.init(jax.random.key(0), x)
        chex.assert_trees_all_equal(p1, p2)
        chex.assert_trees_all_equal(numpy_ints.apply(p1, s1, x)[0], python_ints.apply(p2, s2, x)[0])
    np.testing.assert_allclose(pairs[0][0].apply(*pairs[0][0].init(jax.random.key(0), x), x)[0],
                               np_dense(x, pairs[0][0].init(jax.random.key(0), x)[0]), rtol=1e-5, atol=1e-5)
    for make, message in [
            (lambda: nn.dense(3.0), "dense: expected features as an int, got 3.0 of type float"),
            (lambda: nn.dense(True), "dense: expected features as an int, got the bool True"),
            (lambda: nn.conv(4, 3, groups=2.0), "conv: expected groups as an int, got 2.0"),
            (lambda: nn.conv(4, 3, stride=(1, 1.5)), "conv: expected stride as an int, got 1.5"),
            (lambda: nn.conv(4, np.float64(3)), "conv: expected window as an int"),
            (lambda: nn.max_pool(2, stride=False), "max_pool: expected stride as an int, got the bool"),
            (lambda: nn.group_norm(np.float32(2)), "group_norm: expected num_groups as an int"),
            (lambda: nn.reshape((2.0, 3)), "reshape: expected each entry of shape as an int")]:
        with pytest.raises(TypeError, match=message):
            make()
    with pytest.raises(ValueError, match="dense: expected features as a positive int, got 0"):
        nn.dense(np.int64(0))
    # batch norm in training with one value per channel: PyTorch's error, before compute
    bn = nn.batch_norm()
    params, state = bn.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="batch_norm: expected more than 1 value per channel"):
        bn.apply(params, state, x[:1, :1, :1], train=True)
    assert bn.apply(params, state, x[:1, :1, :1])[0].shape == (1, 1, 1, 4)


def np_dense(x, params):
    return np.asarray(x) @ np.asarray(params["kernel"]) + np.asarray(params["bias"])
