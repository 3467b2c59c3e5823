"""A small real forward pass of every family (tiny inputs, batch 2): output shapes,
batch-norm state updated in training and kept in evaluation, dropout keys; and the
zoo's own pooling/shortcut helpers against PyTorch and finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck, models
from fnnet.models import _layers


def assert_close_to_scale(actual, desired, rtol):
    """``max|actual - desired| <= rtol * max|desired|``: an error measured against the
    output's scale, so it is as strict for logits of size 10 as for activations of 0.1."""
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    err, scale = np.max(np.abs(actual - desired)), np.max(np.abs(desired))
    assert err <= rtol * scale, f"max|a - b| = {err:.3g} > {rtol:g} * max|b| = {rtol * scale:.3g} (ratio {err / scale:.3g})"


RTOL = 2e-5  # float32 vs PyTorch: the worst measured ratio is 2.4e-6 (AlexNet logits)

# XLA's conv compiles these whole networks about twice as fast as the im2col form that
# CPU picks for small convs; both lowerings are tested equal in tests/functional.
XLA = "xla"


def _train_and_eval(random_init, model, shape, classes, rng, outputs=1):
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    params, state = random_init(model, x, rng)

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
    return moved, kept, (x, params, new_state, y_eval)


def test_alexnet_forward(random_init, rng):
    # 96x96: the feature map is 2x2x256 before the adaptive 6x6 pool.
    moved, kept, (x, params, _, y_eval) = _train_and_eval(
        random_init, models.alexnet(10, hidden=16, impl=XLA), (2, 96, 96, 3), 10, rng)
    assert moved == [] and kept == []  # no batch norm, no state
    # Evaluation against torchvision's layer list in PyTorch (NCHW, so the first dense
    # kernel's rows are permuted from fnnet's (h, w, c) flattening to (c, h, w)).
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    t = lambda a: torch.tensor(np.asarray(a))

    def conv(h, p, stride=1, padding=0):
        k = t(np.asarray(p["kernel"]).transpose(3, 2, 0, 1))
        return tf.relu(tf.conv2d(h, k, t(p["bias"]), stride=stride, padding=padding))

    h = t(np.asarray(x).transpose(0, 3, 1, 2))
    h = tf.max_pool2d(conv(h, params["0"], 4, 2), 3, 2)
    h = tf.max_pool2d(conv(h, params["3"], 1, 2), 3, 2)
    h = conv(conv(conv(h, params["6"], 1, 1), params["8"], 1, 1), params["10"], 1, 1)
    h = tf.adaptive_avg_pool2d(tf.max_pool2d(h, 3, 2), 6).flatten(1)
    k16 = np.asarray(params["16"]["kernel"]).reshape(6, 6, 256, -1).transpose(2, 0, 1, 3)
    h = tf.relu(h @ t(k16.reshape(9216, -1)) + t(params["16"]["bias"]))
    h = tf.relu(h @ t(params["19"]["kernel"]) + t(params["19"]["bias"]))
    logits = h @ t(params["21"]["kernel"]) + t(params["21"]["bias"])
    assert_close_to_scale(y_eval, logits.numpy(), RTOL)


def test_vgg_bn_forward(random_init, rng):
    moved, kept, _ = _train_and_eval(random_init, models.vgg16(5, batch_norm=True, hidden=8, impl=XLA),
                                  (2, 32, 32, 3), 5, rng)
    assert len(moved) == 2 * 13 and all(moved) and all(kept)


def test_resnet18_forward(random_init, rng):
    moved, kept, (x, params, state, y_eval) = _train_and_eval(
        random_init, models.resnet18(4, impl=XLA), (2, 32, 32, 3), 4, rng)
    assert len(moved) == 2 * 20 and all(moved) and all(kept)
    # Evaluation with the updated statistics against the same network in PyTorch
    # (torchvision's layer order: stem, max pool 3/2/1, 8 basic blocks, pool, fc).
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    t = lambda a: torch.tensor(np.asarray(a))

    def conv_bn(h, p, s, stride=1, relu=True):
        k = t(np.asarray(p["0"]["kernel"]).transpose(3, 2, 0, 1))
        h = tf.conv2d(h, k, stride=stride, padding=k.shape[-1] // 2)
        h = tf.batch_norm(h, t(s["1"]["mean"]), t(s["1"]["var"]), t(p["1"]["scale"]),
                          t(p["1"]["bias"]), training=False, eps=1e-5)
        return tf.relu(h) if relu else h

    h = t(np.asarray(x).transpose(0, 3, 1, 2))
    h = tf.max_pool2d(conv_bn(h, params["0"], state["0"], 2), 3, 2, 1)
    for i in range(2, 10):
        p, s = params[str(i)]["0"], state[str(i)]["0"]
        stride = 2 if i in (4, 6, 8) else 1
        r = conv_bn(h, p["block"]["0"], s["block"]["0"], stride)
        r = conv_bn(r, p["block"]["1"], s["block"]["1"], relu=False)
        skip = h
        if "shortcut" in p:
            skip = conv_bn(h, p["shortcut"], s["shortcut"], stride, relu=False)
        h = tf.relu(r + skip)
    logits = h.mean(dim=(2, 3)) @ t(params["11"]["kernel"]) + t(params["11"]["bias"])
    assert_close_to_scale(y_eval, logits.numpy(), RTOL)


def test_resnet50_shapes():
    # ResNet-50 forward at 224 is too slow here: shapes only, by eval_shape.
    model = models.resnet50()
    spec = jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32)
    params, state = jax.eval_shape(lambda k: model.init(k, spec), jax.random.key(0))
    y = jax.eval_shape(lambda p, s, x: model.apply(p, s, x, train=True), params, state, spec)
    assert y[0].shape == (2, 1000)


@pytest.mark.slow
def test_googlenet_aux_forward(random_init, rng):
    moved, kept, (x, params, state, y_eval) = _train_and_eval(
        random_init, models.googlenet(3, aux_logits=True, impl=XLA), (2, 64, 64, 3), 3, rng, outputs=3)
    assert all(moved) and all(kept)
    # Evaluation against torchvision's layer list in PyTorch (ceil-mode max pools).
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    t = lambda a: torch.tensor(np.asarray(a))

    def cbr(h, p, s, stride=1):
        k = t(np.asarray(p["0"]["kernel"]).transpose(3, 2, 0, 1))
        h = tf.conv2d(h, k, stride=stride, padding=k.shape[-1] // 2)
        h = tf.batch_norm(h, t(s["1"]["mean"]), t(s["1"]["var"]), t(p["1"]["scale"]),
                          t(p["1"]["bias"]), training=False, eps=1e-3)
        return tf.relu(h)

    def inception(h, p, s):
        return torch.cat([cbr(h, p["0"], s["0"]),
                          cbr(cbr(h, p["1"]["0"], s["1"]["0"]), p["1"]["1"], s["1"]["1"]),
                          cbr(cbr(h, p["2"]["0"], s["2"]["0"]), p["2"]["1"], s["2"]["1"]),
                          cbr(tf.max_pool2d(h, 3, 1, 1, ceil_mode=True), p["3"]["1"],
                              s["3"]["1"])], dim=1)

    pool = lambda h, k=3: tf.max_pool2d(h, k, 2, ceil_mode=True)
    p, s = params["0"], state["0"]
    h = t(np.asarray(x).transpose(0, 3, 1, 2))
    h = pool(cbr(h, p["0"], s["0"], 2))
    h = pool(cbr(cbr(h, p["2"], s["2"]), p["3"], s["3"]))
    h = pool(inception(inception(h, p["5"], s["5"]), p["6"], s["6"]))
    h = inception(h, p["8"], s["8"])
    for i in "012":
        h = inception(h, params["1"][i], state["1"][i])
    p, s = params["2"], state["2"]
    h = pool(inception(h, p["0"], s["0"]), 2)
    h = inception(inception(h, p["2"], s["2"]), p["3"], s["3"]).mean(dim=(2, 3))
    logits = h @ t(p["6"]["kernel"]) + t(p["6"]["bias"])
    assert_close_to_scale(y_eval, logits.numpy(), RTOL)


def test_googlenet_aux_outputs_and_state():
    # Training returns (logits, aux1, aux2) and updates the heads' batch norm; evaluation
    # returns the logits and keeps the heads' state (shapes only: compiling GoogLeNet is
    # slow, the full forward runs under `make reproduce`).
    model = models.googlenet(7, aux_logits=True)
    spec = jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32)
    params, state = jax.eval_shape(lambda k: model.init(k, spec), jax.random.key(0))
    assert set(params) == {"0", "1", "2", "aux1", "aux2"}
    train = jax.eval_shape(lambda p, s, x: model.apply(p, s, x, key=jax.random.key(1),
                                                       train=True), params, state, spec)
    (logits, aux1, aux2), new_state = train
    assert logits.shape == aux1.shape == aux2.shape == (2, 7)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    logits, same = jax.eval_shape(lambda p, s, x: model.apply(p, s, x), params, state, spec)
    assert logits.shape == (2, 7) and jax.tree.structure(same) == jax.tree.structure(state)


@pytest.mark.parametrize("five_by_five", [False, True])
def test_inception_module_matches_pytorch(five_by_five, random_init, rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    module = models.inception(8, 4, 6, 2, 5, 3, five_by_five=five_by_five)
    x = jnp.asarray(rng.normal(size=(2, 9, 9, 6)), jnp.float32)
    params, state = random_init(module, x, rng, random_affine=True)
    y, _ = jax.jit(module.apply)(params, state, x)
    assert y.shape == (2, 9, 9, 8 + 6 + 5 + 3)

    def cbr(h, p, s):  # conv (no bias) -> batch norm (eval, eps 1e-3) -> relu, in NCHW
        k = torch.tensor(np.asarray(p["0"]["kernel"]).transpose(3, 2, 0, 1))
        h = tf.conv2d(h, k, padding=k.shape[-1] // 2)
        t = lambda a: torch.tensor(np.asarray(a))
        h = tf.batch_norm(h, t(s["1"]["mean"]), t(s["1"]["var"]), t(p["1"]["scale"]),
                          t(p["1"]["bias"]), training=False, eps=1e-3)
        return tf.relu(h)

    h = torch.tensor(np.asarray(x).transpose(0, 3, 1, 2))
    p, s = params, state
    branches = [cbr(h, p["0"], s["0"]),
                cbr(cbr(h, p["1"]["0"], s["1"]["0"]), p["1"]["1"], s["1"]["1"]),
                cbr(cbr(h, p["2"]["0"], s["2"]["0"]), p["2"]["1"], s["2"]["1"]),
                cbr(tf.max_pool2d(h, 3, 1, 1), p["3"]["1"], s["3"]["1"])]
    expected = torch.cat(branches, dim=1).numpy().transpose(0, 2, 3, 1)
    assert params["2"]["1"]["0"]["kernel"].shape[:2] == ((5, 5) if five_by_five else (3, 3))
    assert_close_to_scale(y, expected, RTOL)


def test_mobilenet_forward(random_init, rng):
    moved, kept, (x, params, state, y_eval) = _train_and_eval(
        random_init, models.mobilenet_v1(6, width_multiplier=0.25, impl=XLA), (2, 32, 32, 3), 6, rng)
    assert len(moved) == 2 * 27 and all(moved) and all(kept)
    # Evaluation against the same network in PyTorch, padded as Keras pads: (0, 1) then
    # "VALID" before a stride-2 conv, 1 on both sides for a stride-1 3x3 conv.
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    t = lambda a: torch.tensor(np.asarray(a))

    def conv(h, kernel, stride=1, groups=1):
        k = t(np.asarray(kernel).transpose(3, 2, 0, 1))
        if k.shape[-1] == 3:
            h = tf.pad(h, (0, 1, 0, 1) if stride == 2 else (1, 1, 1, 1))
        return tf.conv2d(h, k, stride=stride, groups=groups)

    def bn_relu6(h, p, s):
        h = tf.batch_norm(h, t(s["mean"]), t(s["var"]), t(p["scale"]), t(p["bias"]),
                          training=False, eps=1e-3)
        return tf.relu6(h)

    h = t(np.asarray(x).transpose(0, 3, 1, 2))
    h = bn_relu6(conv(h, params["0"]["0"]["kernel"], 2), params["0"]["1"], state["0"]["1"])
    for i, stride in enumerate((1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1), start=1):
        p, s = params[str(i)], state[str(i)]
        h = bn_relu6(conv(h, p["0"]["kernel"], stride, groups=h.shape[1]), p["1"], s["1"])
        h = bn_relu6(conv(h, p["3"]["0"]["kernel"]), p["3"]["1"], s["3"]["1"])
    logits = h.mean(dim=(2, 3)) @ t(params["16"]["kernel"]) + t(params["16"]["bias"])
    assert_close_to_scale(y_eval, logits.numpy(), RTOL)


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
    assert_close_to_scale(y, ref.numpy().transpose(0, 2, 3, 1), RTOL)


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
    helpers = (_layers.adaptive_avg_pool(3), _layers.max_pool_ceil(3, 2), _layers.relu6,
               models.resnet._option_a(2, 5))

    def f(v):  # one objective over all four helpers: one compilation
        return sum(jnp.sum(jnp.sin(m.apply({}, {}, v)[0]) * (i + 1)) for i, m in enumerate(helpers))

    assert gradcheck.relative_difference(jax.jit(f), x) < 1e-7


@pytest.mark.parametrize("block,stride", [("bottleneck", 2), ("basic", 1)])
def test_resnet_blocks_match_pytorch(block, stride, random_init, rng):
    # torchvision's Bottleneck (stride on the 3x3 conv, projection shortcut) and
    # BasicBlock (identity shortcut), batch norm in evaluation mode, in NCHW.
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    if block == "bottleneck":
        module, out = models.resnet._bottleneck(8, 4, stride, XLA)
        x = jnp.asarray(rng.normal(size=(2, 8, 8, 8)), jnp.float32)  # even: padding matters
    else:
        module, out = models.resnet._basic_block(6, 6, stride, XLA)
        x = jnp.asarray(rng.normal(size=(2, 7, 7, 6)), jnp.float32)
    params, state = random_init(module, x, rng, random_affine=True)
    y, _ = jax.jit(module.apply)(params, state, x)
    t = lambda a: torch.tensor(np.asarray(a))

    def conv_bn(h, p, s, stride=1):
        k = t(np.asarray(p["0"]["kernel"]).transpose(3, 2, 0, 1))
        h = tf.conv2d(h, k, stride=stride, padding=k.shape[-1] // 2)
        return tf.batch_norm(h, t(s["1"]["mean"]), t(s["1"]["var"]), t(p["1"]["scale"]),
                             t(p["1"]["bias"]), training=False, eps=1e-5)

    h = t(np.asarray(x).transpose(0, 3, 1, 2))
    p, s = params["0"], state["0"]
    body_p, body_s = p["block"], s["block"]
    if block == "bottleneck":
        r = tf.relu(conv_bn(h, body_p["0"], body_s["0"]))
        r = tf.relu(conv_bn(r, body_p["1"], body_s["1"], stride))
        r = conv_bn(r, body_p["2"], body_s["2"])
        skip = conv_bn(h, p["shortcut"], s["shortcut"], stride)
    else:
        r = tf.relu(conv_bn(h, body_p["0"], body_s["0"]))
        r = conv_bn(r, body_p["1"], body_s["1"])
        skip = h
        assert "shortcut" not in p
    expected = tf.relu(r + skip).numpy().transpose(0, 2, 3, 1)
    assert y.shape == expected.shape and y.shape[-1] == out
    assert_close_to_scale(y, expected, RTOL)
