"""A small real forward pass of every family (tiny inputs, batch 2): output shapes,
batch-norm state updated in training and kept in evaluation, dropout keys; and the
zoo's own pooling/shortcut helpers against PyTorch and finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck, models
from fnnet.models import _layers


def _random_init(model, x, rng):
    """Params and state of the shapes ``init`` gives (by eval_shape), filled here with He
    normal kernels, unit scales, zero biases and the initial batch-norm statistics: a
    compiled ``init`` of a whole model costs more compile time than its forward pass."""
    params, state = jax.eval_shape(lambda k: model.init(k, x), jax.random.key(0))

    def fill(path, leaf):
        name = path[-1].key
        if name in ("kernel", "depthwise_kernel", "pointwise_kernel"):
            std = np.sqrt(2 / np.prod(leaf.shape[:-1]))
            return jnp.asarray(rng.normal(size=leaf.shape) * std, leaf.dtype)
        return (jnp.ones if name in ("scale", "var") else jnp.zeros)(leaf.shape, leaf.dtype)

    return (jax.tree_util.tree_map_with_path(fill, params),
            jax.tree_util.tree_map_with_path(fill, state))


def _train_and_eval(model, shape, classes, rng, outputs=1):
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    params, state = _random_init(model, x, rng)

    @jax.jit
    def both(params, state, x, key):
        y_train, new_state = model.apply(params, state, x, key=key, train=True)
        y_eval, eval_state = model.apply(params, new_state, x)
        return y_train, new_state, y_eval, eval_state

    y_train, new_state, y_eval, eval_state = both(params, state, x, jax.random.key(1))
    ys = y_train if outputs > 1 else (y_train,)
    assert len(ys) == outputs
    for y in ys + (y_eval,):
        assert y.shape == (shape[0], classes) and bool(jnp.all(jnp.isfinite(y)))
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state, new_state))
    kept = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), eval_state, new_state))
    return moved, kept


def test_alexnet_forward(rng):
    # 64x64: the feature map is 1x1x256 before the adaptive 6x6 pool.
    moved, kept = _train_and_eval(models.alexnet(10, hidden=16), (2, 64, 64, 3), 10, rng)
    assert moved == [] and kept == []  # no batch norm, no state


def test_vgg_bn_forward(rng):
    moved, kept = _train_and_eval(models.vgg16(5, batch_norm=True, hidden=8), (2, 32, 32, 3),
                                  5, rng)
    assert len(moved) == 2 * 13 and all(moved) and all(kept)


def test_resnet18_forward(rng):
    moved, kept = _train_and_eval(models.resnet18(4), (2, 32, 32, 3), 4, rng)
    assert len(moved) == 2 * 20 and all(moved) and all(kept)


def test_resnet50_shapes():
    # ResNet-50 forward at 224 is too slow here: shapes only, by eval_shape.
    model = models.resnet50()
    spec = jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32)
    params, state = jax.eval_shape(lambda k: model.init(k, spec), jax.random.key(0))
    y = jax.eval_shape(lambda p, s, x: model.apply(p, s, x, train=True), params, state, spec)
    assert y[0].shape == (2, 1000)


def test_googlenet_aux_forward(rng):
    moved, kept = _train_and_eval(models.googlenet(3, aux_logits=True), (2, 64, 64, 3), 3, rng,
                                  outputs=3)
    assert all(moved) and all(kept)


def test_mobilenet_forward(rng):
    moved, kept = _train_and_eval(models.mobilenet_v1(6, width_multiplier=0.25),
                                  (2, 32, 32, 3), 6, rng)
    assert len(moved) == 2 * 27 and all(moved) and all(kept)


def test_dropout_needs_key():
    model = models.alexnet(10, hidden=8)
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    params, state = jax.eval_shape(lambda k: model.init(k, x), jax.random.key(0))
    with pytest.raises(ValueError, match="dropout: train=True needs a random key"):
        jax.eval_shape(lambda p, s, v: model.apply(p, s, v, train=True), params, state, x)


# ---------------------------------------------------------------------------
# Helpers of the zoo

@pytest.mark.parametrize("size,out", [(13, 6), (5, 6), (14, 4), (6, 6)])
def test_adaptive_avg_pool_matches_pytorch(size, out, rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(2, size, size + 1, 3)).astype(np.float32)
    y = _layers.adaptive_avg_pool(out).apply({}, {}, jnp.asarray(x))[0]
    ref = torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x.transpose(0, 3, 1, 2)), out)
    np.testing.assert_allclose(np.asarray(y), ref.numpy().transpose(0, 2, 3, 1), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("size,window,stride", [(112, 3, 2), (14, 2, 2), (13, 3, 2), (7, 3, 2)])
def test_max_pool_ceil_matches_pytorch(size, window, stride, rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(1, size, size, 2)).astype(np.float32)
    y = _layers.max_pool_ceil(window, stride).apply({}, {}, jnp.asarray(x))[0]
    ref = torch.nn.functional.max_pool2d(torch.tensor(x.transpose(0, 3, 1, 2)), window, stride,
                                         ceil_mode=True)
    np.testing.assert_array_equal(np.asarray(y), ref.numpy().transpose(0, 2, 3, 1))


def test_helper_gradients(x64, rng):
    x = jnp.asarray(rng.normal(size=(1, 7, 5, 2)) * 4)  # some entries beyond relu6's 6
    for module in (_layers.adaptive_avg_pool(3), _layers.max_pool_ceil(3, 2), _layers.relu6,
                   models.resnet._option_a(2, 5)):
        def f(v, module=module):
            return jnp.sum(jnp.sin(module.apply({}, {}, v)[0]))
        assert gradcheck.relative_difference(jax.jit(f), x) < 1e-7, module.name
