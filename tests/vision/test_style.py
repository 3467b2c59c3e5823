"""Style transfer: the Gram matrix, content and style costs and total variation against
NumPy loops written from the notes' formulas, their float64 gradients against finite
differences, the Adam pixel loop against optax step by step, and the bad-input errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck, nn
from fnnet.vision import style
from fnnet.vision.features import layer_outputs


def _gram_loop(a):
    h, w, c = a.shape
    g = np.zeros((c, c))
    for k in range(c):
        for k2 in range(c):
            for i in range(h):
                for j in range(w):
                    g[k, k2] += a[i, j, k] * a[i, j, k2]
    return g


def test_gram_matrix_against_numpy_loop(rng):
    a = rng.normal(size=(2, 4, 5, 3))
    g = np.asarray(style.gram_matrix(jnp.asarray(a, jnp.float32)))
    assert g.shape == (2, 3, 3)
    for n in range(2):
        np.testing.assert_allclose(g[n], _gram_loop(a[n]), rtol=1e-5, atol=1e-5)
    # the notes' form: A A^T with A the (n_C, n_H n_W) unrolled activations
    unrolled = a[0].reshape(-1, 3).T
    np.testing.assert_allclose(g[0], unrolled @ unrolled.T, rtol=1e-5, atol=1e-5)


def test_content_and_style_costs_against_the_notes_formulas(rng):
    a_c, a_s, a_g = (rng.normal(size=(4, 5, 3)) for _ in range(3))
    n_h, n_w, n_c = a_c.shape
    ref_content = np.sum((a_c - a_g) ** 2) / (4 * n_h * n_w * n_c)
    got = float(style.content_cost(jnp.asarray(a_c, jnp.float32), jnp.asarray(a_g, jnp.float32)))
    assert got == pytest.approx(ref_content, rel=1e-5)
    ref_style = np.sum((_gram_loop(a_s) - _gram_loop(a_g)) ** 2) / (2 * n_h * n_w * n_c) ** 2
    got = float(style.style_layer_cost(jnp.asarray(a_s, jnp.float32), jnp.asarray(a_g, jnp.float32)))
    assert got == pytest.approx(ref_style, rel=1e-5)
    # a style image of another size: each Gram divided by its own n_H n_W
    a_big = rng.normal(size=(6, 7, 3))
    ref = np.sum((_gram_loop(a_big) / 42 - _gram_loop(a_g) / 20) ** 2) / (4 * n_c ** 2)
    got = float(style.style_layer_cost(jnp.asarray(a_big, jnp.float32), jnp.asarray(a_g, jnp.float32)))
    assert got == pytest.approx(ref, rel=1e-5)
    # weighted over layers
    b_s, b_g = rng.normal(size=(2, 2, 5)), rng.normal(size=(2, 2, 5))
    ref_b = np.sum((_gram_loop(b_s) - _gram_loop(b_g)) ** 2) / (2 * 2 * 2 * 5) ** 2
    acts_s = {"l1": jnp.asarray(a_s, jnp.float32), "l2": jnp.asarray(b_s, jnp.float32)}
    acts_g = {"l1": jnp.asarray(a_g, jnp.float32), "l2": jnp.asarray(b_g, jnp.float32)}
    got = float(style.style_cost(acts_s, acts_g, {"l1": 0.3, "l2": 0.7}))
    assert got == pytest.approx(0.3 * ref_style + 0.7 * ref_b, rel=1e-5)


def test_total_variation_against_numpy_loop(rng):
    x = rng.normal(size=(2, 4, 5, 3))
    for p in (1.0, 2.0):
        ref = np.zeros(2)
        for n in range(2):
            for i in range(4):
                for j in range(5):
                    for c in range(3):
                        if i + 1 < 4:
                            ref[n] += abs(x[n, i + 1, j, c] - x[n, i, j, c]) ** p
                        if j + 1 < 5:
                            ref[n] += abs(x[n, i, j + 1, c] - x[n, i, j, c]) ** p
        np.testing.assert_allclose(np.asarray(style.total_variation(jnp.asarray(x, jnp.float32), power=p)),
                                   ref, rtol=1e-5)


def test_gradients_match_finite_differences(x64, rng):
    a_s, a_g, a_c = (jnp.asarray(rng.normal(size=(3, 4, 2))) for _ in range(3))
    gradcheck.check_gradients(lambda t: style.gram_matrix(t).sum() + (style.gram_matrix(t) ** 2).sum(), a_g)
    gradcheck.check_gradients(lambda t: style.style_layer_cost(a_s, t), a_g)
    gradcheck.check_gradients(lambda t: style.content_cost(a_c, t), a_g)
    gradcheck.check_gradients(lambda t: style.total_variation(t, power=2.0), a_g)
    gradcheck.check_gradients(lambda t: style.total_variation(t), a_g)   # no ties in random data


LAYERS = [nn.conv(4, 3, padding=1), nn.relu, nn.conv(5, 3, padding=1), nn.relu, nn.avg_pool(2),
          nn.conv(6, 3, padding=1), nn.relu]
NAMES = ("conv1", "relu1", "conv2", "relu2", "pool", "conv3", "relu3")


def _net(rng):
    x = jnp.asarray(rng.uniform(size=(1, 8, 8, 3)), jnp.float32)
    params, state = nn.serial(*LAYERS).init(jax.random.key(0), x)
    return params, state


def test_layer_outputs_against_serial_prefixes(rng):
    params, state = _net(rng)
    x = jnp.asarray(rng.uniform(size=(2, 8, 8, 3)), jnp.float32)
    out = jax.jit(lambda p, s, v: layer_outputs(LAYERS, p, s, v, ["relu3", "conv2", "4"], layer_names=NAMES))(
        params, state, x)
    for name, stop in (("conv2", 3), ("4", 5), ("relu3", 7)):
        prefix = nn.serial(*LAYERS[:stop])
        ref, _ = jax.jit(prefix.apply)({str(i): params[str(i)] for i in range(stop)},
                              {str(i): state[str(i)] for i in range(stop)}, x)
        np.testing.assert_allclose(np.asarray(out[name]), np.asarray(ref), rtol=1e-6, atol=1e-6)
    with pytest.raises(KeyError, match=r"no layer named 'conv9'; the layers are \['conv1', 'relu1'"):
        layer_outputs(LAYERS, params, state, x, ["conv9"], layer_names=NAMES)
    with pytest.raises(TypeError, match="pass its layer list"):
        layer_outputs(nn.serial(*LAYERS), params, state, x, ["0"])


def test_transfer_loop_matches_optax_adam_steps(rng):
    optax = pytest.importorskip("optax")
    params, state = _net(rng)
    features = style.feature_fn(LAYERS, params, state, layer_names=NAMES)
    content = jnp.asarray(rng.uniform(size=(8, 8, 3)), jnp.float32)
    style_img = jnp.asarray(rng.uniform(size=(6, 6, 3)), jnp.float32)
    weights = {"relu1": 0.5, "relu3": 0.5}
    result = style.transfer(features, content, style_img, style_weights=weights, content_layer="conv3",
                            alpha=1.0, beta=100.0, tv_weight=0.01, steps=6, learning_rate=0.05, clip=None)

    # reference: the cost written from the notes with NumPy-free jnp, Adam from optax, a Python loop
    mean, std = (jnp.asarray(v).reshape(1, 1, 3) for v in (style.IMAGENET_MEAN, style.IMAGENET_STD))

    def acts(img, names):
        return layer_outputs(LAYERS, params, state, ((img - mean) / std)[None], names, layer_names=NAMES)

    def cost(img):
        target_c = acts(content, ["conv3"])["conv3"][0]
        target_s = acts(style_img, ["relu1", "relu3"])
        a = acts(img, ["relu1", "relu3", "conv3"])
        j_c = jnp.sum((a["conv3"][0] - target_c) ** 2) / (4 * 4 * 4 * 6)
        j_s = 0.0
        for n in ("relu1", "relu3"):
            s, g = target_s[n][0], a[n][0]
            gs = jnp.einsum("ijk,ijl->kl", s, s) / (s.shape[0] * s.shape[1])
            gg = jnp.einsum("ijk,ijl->kl", g, g) / (g.shape[0] * g.shape[1])
            j_s = j_s + 0.5 * jnp.sum((gs - gg) ** 2) / (4 * g.shape[2] ** 2)
        tv = jnp.sum(jnp.abs(jnp.diff(img, axis=0))) + jnp.sum(jnp.abs(jnp.diff(img, axis=1)))
        return j_c + 100.0 * j_s + 0.01 * tv

    opt = optax.adam(0.05)
    img, opt_state, totals = content, opt.init(content), []
    value_and_grad = jax.jit(jax.value_and_grad(cost))
    for _ in range(6):
        value, g = value_and_grad(img)
        totals.append(float(value))
        u, opt_state = jax.jit(opt.update)(g, opt_state)
        img = optax.apply_updates(img, u)
    np.testing.assert_allclose(np.asarray(result.history["total"]), totals, rtol=2e-4)
    np.testing.assert_allclose(np.asarray(result.image), np.asarray(img), rtol=1e-4, atol=1e-5)
    assert result.history["total"][-1] < result.history["total"][0]


def test_texture_synthesis_lowers_the_style_cost(rng):
    params, state = _net(rng)
    features = style.feature_fn(LAYERS, params, state, layer_names=NAMES)
    style_img = jnp.asarray(rng.uniform(size=(8, 8, 3)), jnp.float32)
    result = style.transfer(features, None, style_img, style_weights={"relu1": 1.0, "relu2": 1.0},
                            beta=1.0, steps=40, learning_rate=0.05, key=jax.random.key(3))
    h = np.asarray(result.history["style"])
    assert result.image.shape == (8, 8, 3) and h[-1] < 0.2 * h[0]
    assert float(result.image.min()) >= 0.0 and float(result.image.max()) <= 1.0
    np.testing.assert_array_equal(np.asarray(result.history["content"]), 0.0)


def test_bad_input_raises_before_compute(rng):
    params, state = _net(rng)
    features = style.feature_fn(LAYERS, params, state, layer_names=NAMES)
    content = jnp.zeros((8, 8, 3))
    with pytest.raises(KeyError, match=r"style transfer: no layer named 'relu9'; the layers are \['conv1'"):
        style.transfer(features, content, content, style_weights={"relu9": 1.0}, content_layer="conv3", steps=1)
    with pytest.raises(ValueError, match=r"result \(start\) image to have the content image's size \(8, 8, 3\), "
                                         r"got \(6, 8, 3\)"):
        style.transfer(features, content, content, style_weights={"relu1": 1.0}, content_layer="conv3",
                       init=jnp.zeros((6, 8, 3)), steps=1)
    with pytest.raises(ValueError, match=r"content and generated activations to have one shape"):
        style.content_cost(jnp.zeros((4, 4, 2)), jnp.zeros((3, 4, 2)))
    with pytest.raises(ValueError, match="content_layer"):
        style.transfer(features, content, content, style_weights={"relu1": 1.0}, steps=1)
    with pytest.raises(ValueError, match="expected steps > 0, got 0"):
        style.transfer(features, content, content, style_weights={"relu1": 1.0}, content_layer="conv3", steps=0)
    with pytest.raises(ValueError, match="needs a key"):
        style.transfer(features, None, content, style_weights={"relu1": 1.0}, steps=1)
    with pytest.raises(ValueError, match=r"expected activations \(n_H, n_W, n_C\)"):
        style.gram_matrix(jnp.zeros((4, 4)))
    with pytest.raises(KeyError, match=r"no generated activations for layers \['b'\]"):
        style.style_cost({"a": jnp.zeros((2, 2, 1)), "b": jnp.zeros((2, 2, 1))}, {"a": jnp.zeros((2, 2, 1))},
                         {"a": 1.0, "b": 1.0})
