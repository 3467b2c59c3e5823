"""Normalisation kernels against NumPy loops, PyTorch, and float64 finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import functional as F
from fnnet import gradcheck


def np_batch_norm(x, scale, bias, mean, var, train, momentum=0.1, eps=1e-5):
    """Per-channel loop over a flattened (N*spatial, C) view."""
    x = np.asarray(x, np.float64)
    flat = x.reshape(-1, x.shape[-1])
    y = np.empty_like(flat)
    new_mean, new_var = np.array(mean, np.float64), np.array(var, np.float64)
    for c in range(flat.shape[1]):
        col = flat[:, c]
        if train:
            mu = col.sum() / len(col)
            v = ((col - mu) ** 2).sum() / len(col)
            new_mean[c] = (1 - momentum) * mean[c] + momentum * mu
            new_var[c] = (1 - momentum) * var[c] + momentum * v * len(col) / (len(col) - 1)
        else:
            mu, v = mean[c], var[c]
        y[:, c] = scale[c] * (col - mu) / np.sqrt(v + eps) + bias[c]
    return y.reshape(x.shape), new_mean, new_var


@pytest.mark.parametrize("shape", [(6, 3), (2, 4, 5, 3)])
@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_matches_numpy(rng, shape, train):
    x = rng.normal(2.0, 3.0, shape).astype(np.float32)
    c = shape[-1]
    scale, bias = rng.normal(size=c).astype(np.float32), rng.normal(size=c).astype(np.float32)
    mean, var = rng.normal(size=c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32)
    y, m, v = F.batch_norm(jnp.asarray(x), scale, bias, mean, var, train=train)
    ry, rm, rv = np_batch_norm(x, scale, bias, mean, var, train)
    np.testing.assert_allclose(y, ry, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m, rm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, rv, rtol=1e-5, atol=1e-6)
    assert y.dtype == jnp.float32


def test_batch_norm_running_stats_after_steps(rng):
    """Several training steps: the running averages follow the EWMA recursion in closed form."""
    mean, var = np.zeros(2), np.ones(2)
    jm, jv = jnp.zeros(2), jnp.ones(2)
    for _ in range(5):
        x = rng.normal(1.0, 2.0, (8, 2)).astype(np.float32)
        _, jm, jv = F.batch_norm_train(jnp.asarray(x), None, None, jm, jv, momentum=0.3)
        mean = 0.7 * mean + 0.3 * x.mean(0)
        var = 0.7 * var + 0.3 * x.var(0, ddof=1)
    np.testing.assert_allclose(jm, mean, rtol=1e-5)
    np.testing.assert_allclose(jv, var, rtol=1e-5)


def test_batch_norm_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(0.5, 2.0, (4, 3, 5, 6)).astype(np.float32)  # NCHW for torch
    bn = torch.nn.BatchNorm2d(3, momentum=0.2, eps=1e-5)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.5, -1.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    scale, bias = bn.weight.detach().numpy(), bn.bias.detach().numpy()
    m, v = jnp.zeros(3), jnp.ones(3)
    xh = jnp.asarray(x.transpose(0, 2, 3, 1))
    bn.train()
    for step in range(3):
        xs = x * (step + 1)
        ty = bn(torch.tensor(xs)).detach().numpy().transpose(0, 2, 3, 1)
        y, m, v = F.batch_norm(xh * (step + 1), scale, bias, m, v, train=True, momentum=0.2)
        np.testing.assert_allclose(y, ty, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m, bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, bn.running_var.numpy(), rtol=1e-5, atol=1e-6)
    bn.eval()
    ty = bn(torch.tensor(x)).detach().numpy().transpose(0, 2, 3, 1)
    y, m2, v2 = F.batch_norm(xh, scale, bias, m, v, train=False)
    np.testing.assert_allclose(y, ty, rtol=1e-4, atol=1e-4)
    assert m2 is m and v2 is v


def test_batch_norm_axis_name_averages_devices(rng):
    """Under vmap with an axis name, statistics are those of the whole (concatenated) batch."""
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    f = jax.vmap(lambda xi: F.batch_norm_train(xi, None, None, jnp.zeros(3), jnp.ones(3),
                                               axis_name="d"), axis_name="d")
    y, m, v = f(jnp.asarray(x))
    ry, rm, rv = np_batch_norm(x.reshape(8, 3), np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), True)
    np.testing.assert_allclose(y.reshape(8, 3), ry, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m[0], rm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v[1], rv, rtol=1e-5, atol=1e-6)


def test_layer_norm_matches_loop(rng):
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    scale, bias = rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(4, 5)).astype(np.float32)
    y = F.layer_norm(jnp.asarray(x), scale, bias, axis=(-2, -1))
    ref = np.empty_like(x)
    for i in range(3):
        mu, var = x[i].mean(), x[i].var()
        ref[i] = (x[i] - mu) / np.sqrt(var + 1e-5) * scale + bias
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


def test_layer_norm_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    ln = torch.nn.LayerNorm(5)
    ty = ln(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(F.layer_norm(jnp.asarray(x), jnp.ones(5), jnp.zeros(5)), ty,
                               rtol=1e-4, atol=1e-5)


def test_group_norm_matches_loop(rng):
    x = rng.normal(size=(2, 3, 3, 6)).astype(np.float32)
    scale, bias = rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32)
    y = F.group_norm(jnp.asarray(x), scale, bias, num_groups=3)
    ref = np.empty_like(x)
    for n in range(2):
        for g in range(3):
            blk = x[n, :, :, 2 * g:2 * g + 2]
            ref[n, :, :, 2 * g:2 * g + 2] = (blk - blk.mean()) / np.sqrt(blk.var() + 1e-5)
    ref = ref * scale + bias
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


def test_group_norm_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(2, 3, 3, 6)).astype(np.float32)
    scale, bias = rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32)
    y = F.group_norm(jnp.asarray(x), scale, bias, num_groups=3)
    gn = torch.nn.GroupNorm(3, 6)
    with torch.no_grad():
        gn.weight.copy_(torch.tensor(scale))
        gn.bias.copy_(torch.tensor(bias))
    ty = gn(torch.tensor(x.transpose(0, 3, 1, 2))).detach().numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(y, ty, rtol=1e-4, atol=1e-5)


def test_bfloat16_input_keeps_dtype_and_float32_stats(rng):
    x = jnp.asarray(rng.normal(size=(4, 3)), jnp.bfloat16)
    y, m, v = F.batch_norm_train(x, None, None, jnp.zeros(3), jnp.ones(3))
    assert y.dtype == jnp.bfloat16 and m.dtype == jnp.float32 and v.dtype == jnp.float32


def test_errors_name_the_kernel():
    with pytest.raises(ValueError, match="batch_norm.*scale"):
        F.batch_norm(jnp.ones((2, 3)), jnp.ones(4), None, jnp.zeros(3), jnp.ones(3), train=True)
    with pytest.raises(TypeError, match="batch_norm"):
        F.batch_norm(jnp.ones((2, 3), jnp.int32), None, None, jnp.zeros(3), jnp.ones(3), train=True)
    with pytest.raises(ValueError, match="group_norm.*num_groups"):
        F.group_norm(jnp.ones((2, 5)), num_groups=2)
    with pytest.raises(ValueError, match="layer_norm.*axis"):
        F.layer_norm(jnp.ones((2, 5)), axis=2)
    with pytest.raises(ValueError, match="layer_norm.*scale"):
        F.layer_norm(jnp.ones((2, 5)), jnp.ones(4))


def test_gradients_float64(x64, rng):
    x = jnp.asarray(rng.normal(size=(4, 2, 3)))
    s, b = jnp.asarray(rng.normal(size=3)), jnp.asarray(rng.normal(size=3))
    w = jnp.asarray(rng.normal(size=(4, 2, 3)))  # a random projection so the loss is not trivial
    m, v = jnp.zeros(3), jnp.ones(3)

    def bn_train(t):
        return jnp.sum(w * F.batch_norm_train(t["x"], t["s"], t["b"], m, v)[0])

    def bn_eval(t):
        return jnp.sum(w * F.batch_norm_eval(t["x"], t["s"], t["b"], m + 0.3, v * 2.0))

    def ln(t):
        return jnp.sum(w * F.layer_norm(t["x"], t["s"], t["b"]))

    def gn(t):
        return jnp.sum(w[..., :2] * F.group_norm(t["x"][..., :2], t["s"][:2], t["b"][:2], num_groups=2))

    tree = {"x": x, "s": s, "b": b}
    for f in (bn_train, bn_eval, ln, gn):
        assert gradcheck.relative_difference(f, tree) < 1e-7, f.__name__


def test_batch_norm_training_needs_more_than_one_value_per_channel():
    # PyTorch: "Expected more than 1 value per channel when training"; the unbiased
    # running variance of one value would be 0/0. Evaluation mode is fine.
    for shape in [(1, 3), (1, 1, 1, 3), (1, 1, 2)]:
        x = jnp.ones(shape)
        with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per "
                                             r"channel when training, got input of shape"):
            F.batch_norm_train(x, None, None, jnp.zeros(shape[-1]), jnp.ones(shape[-1]))
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            jax.eval_shape(lambda v: F.batch_norm(v, None, None, jnp.zeros(shape[-1]),
                                                  jnp.ones(shape[-1]), train=True), x)
        y, _, _ = F.batch_norm(x, None, None, jnp.zeros(shape[-1]), jnp.ones(shape[-1]), train=False)
        np.testing.assert_allclose(y, 1 / np.sqrt(1 + 1e-5), rtol=1e-6)
    y, m, v = F.batch_norm_train(jnp.asarray([[1.0], [3.0]]), None, None, jnp.zeros(1), jnp.ones(1))
    np.testing.assert_allclose(v, 0.9 + 0.1 * 2.0, rtol=1e-6)   # two values: unbiased var 2


def test_numpy_integer_arguments_and_clear_type_errors(rng):
    x = rng.normal(size=(2, 3, 3, 6)).astype(np.float32)
    y = F.group_norm(jnp.asarray(x), num_groups=np.int64(3))
    ref = np.empty_like(x)
    for n in range(2):
        for g in range(3):
            blk = x[n, :, :, 2 * g:2 * g + 2]
            ref[n, :, :, 2 * g:2 * g + 2] = (blk - blk.mean()) / np.sqrt(blk.var() + 1e-5)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
    y = F.layer_norm(jnp.asarray(x), axis=np.int32(-1))
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
    for bad in (3.0, True):
        with pytest.raises(TypeError, match="group_norm: expected num_groups as an int, got"):
            F.group_norm(jnp.asarray(x), num_groups=bad)
    with pytest.raises(TypeError, match="layer_norm: expected axis as an int, got -1.0"):
        F.layer_norm(jnp.asarray(x), axis=-1.0)


def plain_layer_norm(x, scale, bias, axes):
    """The layer norm as written, differentiated by JAX: the reference for the
    written-out derivative of F.layer_norm."""
    mu = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean((x - mu) ** 2, axis=axes, keepdims=True)
    shape = tuple(x.shape[a] if a in axes else 1 for a in range(x.ndim))
    return (x - mu) / jnp.sqrt(var + 1e-5) * scale.reshape(shape) + bias.reshape(shape)


@pytest.mark.parametrize("axis", [-1, (-2, -1)])
def test_layer_norm_derivative_against_automatic_differentiation(x64, rng, axis):
    """F.layer_norm's custom_jvp: reverse mode against finite differences, and reverse
    mode, forward mode, the Hessian and vmap against JAX's derivatives of the formula."""
    x = jnp.asarray(rng.normal(size=(2, 3, 6)) * 3 + 1)
    axes = (2,) if axis == -1 else (1, 2)
    pshape = tuple(x.shape[a] for a in axes)
    scale, bias = jnp.asarray(rng.normal(size=pshape)), jnp.asarray(rng.normal(size=pshape))
    w = jnp.asarray(rng.normal(size=x.shape))
    ours = lambda x, s, b: jnp.sum(w * jnp.tanh(F.layer_norm(x, s, b, axis=axis)))      # noqa: E731
    reference = lambda x, s, b: jnp.sum(w * jnp.tanh(plain_layer_norm(x, s, b, axes)))  # noqa: E731
    for i, arg in enumerate((x, scale, bias)):
        def f(a, i=i):
            args = [x, scale, bias]
            args[i] = a
            return ours(*args)
        gradcheck.check_gradients(f, arg, tol=1e-7)
    for mine, want in zip(jax.grad(ours, (0, 1, 2))(x, scale, bias), jax.grad(reference, (0, 1, 2))(x, scale, bias)):
        np.testing.assert_allclose(mine, want, rtol=1e-10, atol=1e-12)
    tangents = tuple(jnp.asarray(rng.normal(size=a.shape)) for a in (x, scale, bias))
    np.testing.assert_allclose(jax.jvp(ours, (x, scale, bias), tangents)[1],
                               jax.jvp(reference, (x, scale, bias), tangents)[1], rtol=1e-10)
    np.testing.assert_allclose(jax.hessian(lambda x: ours(x, scale, bias))(x),
                               jax.hessian(lambda x: reference(x, scale, bias))(x), rtol=1e-8, atol=1e-10)
    one = lambda r, wr: jnp.sum(wr * jnp.tanh(F.layer_norm(r, scale, bias, axis=axis)))   # noqa: E731
    np.testing.assert_allclose(jax.vmap(jax.grad(one))(x, w), jax.grad(reference)(x, scale, bias), rtol=1e-10)
    # without scale and bias: the same derivative, unit scale
    np.testing.assert_allclose(jax.grad(lambda x: jnp.sum(w * F.layer_norm(x, axis=axis)))(x),
                               jax.grad(lambda x: jnp.sum(w * plain_layer_norm(x, jnp.ones(pshape),
                                                                               jnp.zeros(pshape), axes)))(x),
                               rtol=1e-10, atol=1e-12)
