"""The compiled ``Module.init`` gives bitwise the parameters of the eager init.

``module.init(key, x)`` runs the whole initialisation as one XLA program;
``module.init.eager(key, x)`` runs the same layer inits op by op, every random draw its
own compiled kernel, as inits ran before. Every leaf must be equal bit for bit (so no
recorded experiment changes), for several initialisers, layers and zoo models, under
``vmap`` too, with a legacy key and with jit disabled. One test also rebuilds a dense
layer's draw in plain JAX and NumPy; one checks the shape inference that containers
share during an init against a hand-computed kernel shape.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import init, models, nn


def _assert_bitwise(got, want):
    got_leaves = jax.tree_util.tree_leaves_with_path(got)
    want_leaves = jax.tree_util.tree_leaves_with_path(want)
    assert [p for p, _ in got_leaves] == [p for p, _ in want_leaves]
    for (path, a), (_, b) in zip(got_leaves, want_leaves):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, jax.tree_util.keystr(path)
        assert np.array_equal(a, b), (f"{jax.tree_util.keystr(path)}: {np.mean(a != b):.1%} of "
                                      f"entries differ, max |diff| {np.max(np.abs(a - b))}")


INITIALISERS = {
    "he_normal": init.he_normal(), "xavier_normal": init.xavier_normal(),
    "lecun_normal": init.lecun_normal(), "normal": init.normal(0.3),
    "normal_shifted": init.normal(0.3, mean=1.5), "he_uniform": init.he_uniform(),
    "xavier_uniform": init.xavier_uniform(), "uniform": init.uniform(0.2),
    "orthogonal": init.orthogonal(1.7),
}


@pytest.mark.parametrize("name", sorted(INITIALISERS))
def test_mlp_with_each_initialiser(name):
    # Normal draws times a constant were folded by XLA into one multiply (sqrt(2) * std)
    # and mean + std * z contracted into a fused multiply-add: about a third of the
    # entries differed by one ulp before fnnet.init kept the draws apart.
    k_init = INITIALISERS[name]
    bias_init = init.zeros() if name == "orthogonal" else k_init  # a 1-D bias has no Q
    model = nn.serial(nn.dense(37, kernel_init=k_init, bias_init=bias_init), nn.relu,
                      nn.dense(23, kernel_init=k_init), nn.dense(5, kernel_init=k_init))
    spec = jax.ShapeDtypeStruct((2, 41), jnp.float32)
    _assert_bitwise(model.init(jax.random.key(3), spec), model.init.eager(jax.random.key(3), spec))


def test_dense_kernel_is_the_textbook_draw():
    # Independent of fnnet: fold_in(fold_in(key, 0), 0) is the kernel's key in
    # serial(dense); he_normal is float32(sqrt(2 / in)) times a standard normal draw.
    model = nn.serial(nn.dense(30))
    key = jax.random.key(11)
    params, _ = model.init(key, jnp.zeros((1, 20)))
    z = np.asarray(jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, 0), 0), (20, 30)))
    want = np.float32(math.sqrt(2.0 / 20)) * z
    assert np.array_equal(np.asarray(params["0"]["kernel"]), want)
    assert np.array_equal(np.asarray(params["0"]["bias"]), np.zeros(30, np.float32))


def test_normal_with_mean_rounds_once_as_compiled():
    # mean + std * z is one compiled kernel, eagerly too: one rounding (a fused
    # multiply-add) or two, the compiled and eager inits agree; both are within an ulp
    # of the float64 value.
    key = lambda: jax.random.key(4)  # noqa: E731 (a fresh key object per draw)
    got = np.asarray(init.normal(0.3, mean=1.5)(key(), (64, 48)))
    z = np.asarray(jax.random.normal(key(), (64, 48)), np.float64)
    exact = 1.5 + np.float64(np.float32(0.3)) * z
    assert np.max(np.abs(got - exact) / np.spacing(np.abs(exact).astype(np.float32))) <= 1.0
    jitted = jax.jit(init.normal(0.3, mean=1.5), static_argnums=1)(key(), (64, 48))
    assert np.array_equal(np.asarray(jitted), got)


def test_conv_norm_and_recurrent_layers():
    conv_net = nn.serial(nn.conv(6, 3, kernel_init=init.xavier_normal()), nn.batch_norm(), nn.relu,
                         nn.depthwise_conv(3), nn.conv_transpose(4, 2, stride=2),
                         nn.separable_conv(5, 3), nn.flatten, nn.dense(7))
    spec = jax.ShapeDtypeStruct((2, 12, 12, 3), jnp.float32)
    _assert_bitwise(conv_net.init(jax.random.key(0), spec), conv_net.init.eager(jax.random.key(0), spec))
    seq = nn.serial(nn.rnn(nn.lstm_cell(9, forget_bias=1.0, peephole=True)),
                    nn.gru(8, bidirectional=True, num_layers=2), nn.dense(3))
    spec = jax.ShapeDtypeStruct((2, 5, 4), jnp.float32)
    _assert_bitwise(seq.init(jax.random.key(1), spec), seq.init.eager(jax.random.key(1), spec))


@pytest.mark.parametrize("make, shape", [
    (models.lenet5, (1, 32, 32, 1)),
    (lambda: models.cifar_resnet(8, 10, shortcut=False), (1, 8, 8, 1)),
    pytest.param(lambda: models.resnet18(10), (1, 32, 32, 3), marks=pytest.mark.slow)])
def test_zoo_models(make, shape):
    model = make()
    spec = jax.ShapeDtypeStruct(shape, jnp.float32)
    _assert_bitwise(model.init(jax.random.key(7), spec), model.init.eager(jax.random.key(7), spec))


def test_vmap_over_seeds_and_inside_jit():
    model = nn.serial(nn.dense(16), nn.relu, nn.dense(10, kernel_init=init.lecun_normal()))
    spec = jax.ShapeDtypeStruct((1, 12), jnp.float32)
    keys = lambda: jax.random.split(jax.random.key(0), 3)  # noqa: E731 (fresh key objects)
    batched = jax.vmap(lambda k: model.init(k, spec))(keys())
    jitted = jax.jit(lambda k: model.init(k, spec))(keys()[0])
    for i in range(3):
        _assert_bitwise(jax.tree.map(lambda a: a[i], batched), model.init.eager(keys()[i], spec))
    _assert_bitwise(jitted, model.init.eager(keys()[0], spec))


def test_init_accepts_an_array_and_returns_arrays():
    model = nn.serial(nn.dense(4), nn.batch_norm())
    x = jnp.ones((3, 5))
    params, state = model.init(jax.random.key(2), x)
    for leaf in jax.tree.leaves((params, state)):
        assert isinstance(leaf, jax.Array)
    _assert_bitwise((params, state), model.init.eager(jax.random.key(2), x))
    assert model.init.raw is not model.init and model == nn.Module(model.init.raw, model.apply, model.name)


def test_raw_key_and_disabled_jit():
    # A legacy uint32[2] key goes through the same program (its own compile): the eager
    # init's arrays. With jit disabled (which the compiled program needs) the init runs
    # op by op; jax.random's own kernels then round without fused multiply-adds, so the
    # uniform draws are within an ulp of the jitted ones.
    model = nn.serial(nn.dense(6), nn.relu, nn.dense(3, kernel_init=init.xavier_uniform()))
    x = jnp.ones((2, 5))
    raw = jax.random.PRNGKey(5)
    _assert_bitwise(model.init(raw, x), model.init.eager(raw, x))
    with jax.disable_jit():
        got = model.init(jax.random.key(5), x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(model.init.eager(jax.random.key(5), x))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-7)


def test_shape_inference_follows_the_apply_of_a_module_that_reuses_an_init():
    # Containers remember the output spec their init inferred, keyed by their apply: a
    # Module built from the same init with another apply (here doubling the width) is
    # traced, so the next layer's kernel is (8, 3), not (4, 3).
    inner = nn.serial(nn.dense(4))

    def doubled(params, state, x, *, key=None, train=False):
        y, state = inner.apply(params, state, x, key=key, train=train)
        return jnp.concatenate([y, y], axis=-1), state

    model = nn.serial(nn.Module(inner.init, doubled, "doubled"), nn.dense(3))
    spec = jax.ShapeDtypeStruct((2, 5), jnp.float32)
    params, _ = model.init(jax.random.key(0), spec)
    assert params["0"]["0"]["kernel"].shape == (5, 4) and params["1"]["kernel"].shape == (8, 3)
    eager, _ = model.init.eager(jax.random.key(0), spec)
    assert eager["1"]["kernel"].shape == (8, 3)
