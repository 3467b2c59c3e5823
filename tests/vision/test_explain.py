"""Seeing inside a ConvNet: saliency against central differences in float64, Grad-CAM
against a case computed by hand, occlusion against a Python loop over patch positions,
filters against the kernel, and the bad-input errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import nn
from fnnet.vision import explain

LAYERS = [nn.conv(3, 3, padding=1), nn.tanh, nn.avg_pool(2), nn.conv(4, 3, padding=1), nn.tanh,
          nn.flatten, nn.dense(5)]
NAMES = ("conv1", "tanh1", "pool", "conv2", "tanh2", "flatten", "logits")


def _net(dtype=jnp.float32):
    x = jax.ShapeDtypeStruct((1, 6, 6, 2), dtype)
    params, state = nn.serial(*LAYERS).init(jax.random.key(0), x)
    return params, state


def test_saliency_against_finite_differences(x64, rng):
    params, state = _net(jnp.float64)
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    model = nn.serial(*LAYERS)
    logits_fn = jax.jit(lambda v: model.apply(params, state, v)[0])
    x = rng.normal(size=(2, 6, 6, 2))
    target = np.array([1, 4])
    grad = np.asarray(explain.saliency(logits_fn, jnp.asarray(x), jnp.asarray(target), reduce=None))
    eps, fd = 1e-6, np.zeros_like(x)
    # every coordinate's two shifted copies of the batch in one call
    idx = list(np.ndindex(*x.shape))
    shifted = np.repeat(x[None], 2 * len(idx), axis=0)
    for j, i in enumerate(idx):
        shifted[(2 * j,) + i] += eps
        shifted[(2 * j + 1,) + i] -= eps
    scores = np.asarray(jax.jit(jax.vmap(logits_fn))(jnp.asarray(shifted)))   # (2 * coords, N, classes)
    for j, i in enumerate(idx):
        n = i[0]
        fd[i] = (scores[2 * j, n, target[n]] - scores[2 * j + 1, n, target[n]]) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
    sal = np.asarray(explain.saliency(logits_fn, jnp.asarray(x), jnp.asarray(target)))
    np.testing.assert_allclose(sal, np.abs(fd).max(-1), rtol=1e-6, atol=1e-9)


def test_grad_cam_hand_computed():
    # conv 1x1 identity (A = x), global average pool, dense: S_c = sum_k w_kc mean_ij A_ijk + b_c,
    # so dS_c/dA_ijk = w_kc / (h w), alpha_k = w_kc / 4 and L = ReLU(sum_k w_kc A_k / 4).
    layers = [nn.conv(2, 1), nn.global_avg_pool, nn.dense(2)]
    params = {"0": {"kernel": jnp.eye(2).reshape(1, 1, 2, 2), "bias": jnp.zeros(2)}, "1": {},
              "2": {"kernel": jnp.asarray([[1.0, -2.0], [3.0, 0.5]]), "bias": jnp.asarray([0.3, -0.1])}}
    state = {"0": {}, "1": {}, "2": {}}
    x = jnp.asarray([[[[1.0, 2.0], [0.0, -1.0]],
                      [[-3.0, 1.0], [2.0, 0.0]]]])                       # (1, 2, 2, 2)
    # class 0: w = (1, 3): 1*A_0 + 3*A_1 = [[7, -3], [0, 2]] / 4, ReLU -> [[1.75, 0], [0, 0.5]]
    cam = jax.jit(lambda v: explain.grad_cam(layers, params, state, v, "0", 0, resize=False))(x)
    np.testing.assert_allclose(np.asarray(cam), [[[1.75, 0.0], [0.0, 0.5]]], rtol=1e-6)
    # class 1: w = (-2, 0.5): -2 A_0 + 0.5 A_1 = [[-1, -0.5], [6.5, -4]] / 4
    cam = jax.jit(lambda v: explain.grad_cam(layers, params, state, v, "0", jnp.asarray([1]), resize=False))(x)
    np.testing.assert_allclose(np.asarray(cam), [[[0.0, 0.0], [1.625, 0.0]]], rtol=1e-6)


def test_grad_cam_resizes_and_names_layers(rng):
    params, state = _net()
    x = jnp.asarray(rng.normal(size=(2, 6, 6, 2)), jnp.float32)
    cam, small = jax.jit(lambda p, s, v: (
        explain.grad_cam(LAYERS, p, s, v, "conv2", jnp.asarray([0, 3]), layer_names=NAMES),
        explain.grad_cam(LAYERS, p, s, v, "3", jnp.asarray([0, 3]), resize=False)))(params, state, x)
    assert cam.shape == (2, 6, 6) and float(cam.min()) >= 0.0 and float(cam.max()) > 0.0
    assert small.shape == (2, 3, 3)
    # the resized map is the bilinear resize of the layer's map
    np.testing.assert_allclose(np.asarray(cam), np.asarray(jax.image.resize(small, (2, 6, 6), "bilinear")),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyError, match=r"grad_cam: no layer named 'conv7'; the layers are \['conv1'"):
        explain.grad_cam(LAYERS, params, state, x, "conv7", 0, layer_names=NAMES)
    with pytest.raises(ValueError, match=r"output maps \(N, h, w, K\), got shape \(2, 36\)"):
        jax.eval_shape(lambda v: explain.grad_cam(LAYERS, params, state, v, "flatten", 0, layer_names=NAMES), x)


def test_occlusion_against_a_loop(rng):
    params, state = _net()
    model = nn.serial(*LAYERS)
    logits_fn = jax.jit(lambda v: model.apply(params, state, v)[0])
    x = rng.normal(size=(2, 6, 6, 2)).astype(np.float32)
    target = np.array([2, 0])
    got = np.asarray(jax.jit(lambda v: explain.occlusion(logits_fn, v, jnp.asarray(target), patch=3, stride=2,
                                                         value=0.5))(jnp.asarray(x)))
    assert got.shape == (2, 2, 2)
    base = np.asarray(logits_fn(jnp.asarray(x)))[np.arange(2), target]
    for a, r in enumerate(range(0, 4, 2)):
        for b, c in enumerate(range(0, 4, 2)):
            covered = x.copy()
            covered[:, r:r + 3, c:c + 3, :] = 0.5
            score = np.asarray(logits_fn(jnp.asarray(covered)))[np.arange(2), target]
            np.testing.assert_allclose(got[:, a, b], base - score, rtol=1e-5, atol=1e-5)


def test_filters_and_errors(rng):
    params, state = _net()
    f = explain.filters(params, "conv2", layers=LAYERS, layer_names=NAMES)
    assert f.shape == (4, 3, 3, 3)
    np.testing.assert_array_equal(np.asarray(f[2, 1, 0]), np.asarray(params["3"]["kernel"][1, 0, :, 2]))
    with pytest.raises(KeyError, match=r"no conv kernel at layer '1'; layers with a kernel: \['0', '3', '6'\]"):
        explain.filters(params, "1")
    with pytest.raises(KeyError, match="expected a 2-D conv kernel"):
        explain.filters(params, "6")
    x = jnp.zeros((2, 6, 6, 2))
    fn = lambda v: nn.serial(*LAYERS).apply(params, state, v)[0]  # noqa: E731
    with pytest.raises(ValueError, match=r"one class index per image, shape \(2,\), got \(3,\)"):
        explain.saliency(fn, x, jnp.asarray([0, 1, 2]))
    with pytest.raises(ValueError, match=r"expected images \(N, H, W, C\)"):
        explain.saliency(fn, jnp.zeros((6, 6, 2)), 0)
    with pytest.raises(ValueError, match="expected patch <= the image side 6, got 7"):
        explain.occlusion(fn, x, 0, patch=7)
    with pytest.raises(ValueError, match="expected stride > 0, got 0"):
        explain.occlusion(fn, x, 0, patch=2, stride=0)
