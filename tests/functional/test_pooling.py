"""Pooling and upsampling against NumPy loops and PyTorch; both lowerings; float64
finite-difference gradients."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import functional as F

IMPLS = ("xla", "matmul")


def np_pool(x, window, stride, pads, kind, count_include_pad=True):
    """Loop over every output position and channel; ``kind`` in max/avg/l2."""
    nd = x.ndim - 2
    fill = -np.inf if kind == "max" else 0.0
    valid = np.pad(np.ones(x.shape[1:-1]), list(pads))
    x = np.pad(x, [(0, 0)] + list(pads) + [(0, 0)], constant_values=fill)
    out = [(x.shape[1 + i] - window[i]) // stride[i] + 1 for i in range(nd)]
    y = np.zeros((x.shape[0], *out, x.shape[-1]))
    for n in range(x.shape[0]):
        for o in itertools.product(*(range(m) for m in out)):
            region = tuple(slice(o[i] * stride[i], o[i] * stride[i] + window[i]) for i in range(nd))
            patch = x[(n, *region)].reshape(-1, x.shape[-1])
            if kind == "max":
                y[(n, *o)] = patch.max(0)
            elif kind == "avg":
                count = np.prod(window) if count_include_pad else valid[region].sum()
                y[(n, *o)] = patch.sum(0) / count
            else:
                y[(n, *o)] = np.sqrt((patch ** 2).sum(0))
    return y


FNS = {"max": F.max_pool, "avg": F.avg_pool, "l2": F.lp_pool}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", sorted(FNS))
def test_pool_against_loops(impl, kind, x64):
    rng = np.random.default_rng(len(kind))
    cases = [(1, (2,), None, "VALID", ((0, 0),)),
             (2, (2, 2), None, "VALID", ((0, 0), (0, 0))),
             (2, (3, 3), (2, 2), 1, ((1, 1), (1, 1))),
             (2, (3, 2), (1, 2), ((0, 2), (1, 0)), ((0, 2), (1, 0))),
             (3, (2, 2, 2), None, "VALID", ((0, 0),) * 3)]
    for nd, window, stride, padding, pads in cases:
        x = rng.normal(size=(2, *([5, 7, 4][:nd]), 3))
        y = FNS[kind](jnp.asarray(x), window, stride, padding, impl=impl)
        ref = np_pool(x, window, stride or window, pads, kind)
        np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_avg_pool_exclude_padding_and_same(impl, rng, x64):
    x = rng.normal(size=(1, 5, 6, 2))
    y = F.avg_pool(jnp.asarray(x), 3, 2, 1, count_include_pad=False, impl=impl)
    np.testing.assert_allclose(y, np_pool(x, (3, 3), (2, 2), ((1, 1),) * 2, "avg", False), rtol=1e-12)
    y = F.max_pool(jnp.asarray(x), 2, 2, "SAME", impl=impl)
    assert y.shape == (1, 3, 3, 2)
    np.testing.assert_allclose(y, np_pool(x, (2, 2), (2, 2), ((0, 1), (0, 0)), "max"))


@pytest.mark.parametrize("impl", IMPLS)
def test_pool_against_torch(impl, rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(2, 9, 8, 3)).astype(np.float32)
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    to_nhwc = lambda a: a.permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(F.max_pool(jnp.asarray(x), 3, 2, 1, impl=impl),
                               to_nhwc(torch.nn.functional.max_pool2d(t, 3, 2, 1)), rtol=1e-6)
    # Sums in another order: float32 rounding against the output's scale, not per entry
    # (an average near 0 has a large relative error).
    for ours, theirs in [(F.avg_pool(jnp.asarray(x), 2, impl=impl), torch.nn.functional.avg_pool2d(t, 2)),
                         (F.lp_pool(jnp.asarray(x), 2, impl=impl), torch.nn.functional.lp_pool2d(t, 2, 2))]:
        theirs = to_nhwc(theirs)
        assert np.max(np.abs(np.asarray(ours) - theirs)) <= 1e-6 * np.max(np.abs(theirs))


def test_global_pools_and_nearest_upsample_against_numpy(rng):
    x = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(F.global_avg_pool(jnp.asarray(x)), x.mean((1, 2)), rtol=1e-6)
    np.testing.assert_allclose(F.global_max_pool(jnp.asarray(x)), x.max((1, 2)))
    np.testing.assert_array_equal(F.upsample(jnp.asarray(x[:, 0]), 2),
                                  np.repeat(x[:, 0], 2, axis=1))


def test_upsample_against_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    for method, mode in [("nearest", "nearest"), ("bilinear", "bilinear")]:
        ref = torch.nn.functional.interpolate(t, scale_factor=(2, 3), mode=mode,
                                              **({} if mode == "nearest" else {"align_corners": False}))
        y = F.upsample(jnp.asarray(x), (2, 3), method)
        np.testing.assert_allclose(y, ref.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", IMPLS)
def test_pool_gradient_under_jit(impl, rng):
    x = jnp.asarray(rng.normal(size=(2, 4, 4, 3)), jnp.float32)
    xn = np.asarray(x).reshape(2, 2, 2, 2, 2, 3)
    # avg: d/dx sum(mean_w^2) = 2 mean_w / 4 for every x of window w
    mean = xn.mean(axis=(2, 4), keepdims=True)
    expected_avg = np.broadcast_to(mean / 2, xn.shape).reshape(x.shape)
    g = jax.jit(jax.grad(lambda a: jnp.sum(F.avg_pool(a, 2, impl=impl) ** 2)))(x)
    np.testing.assert_allclose(g, expected_avg, rtol=1e-6)
    mask = xn == xn.max(axis=(2, 4), keepdims=True)  # the gradient flows to each window's max
    expected = np.where(mask, 2 * xn.max(axis=(2, 4), keepdims=True), 0.0).reshape(x.shape)
    g = jax.jit(jax.grad(lambda a: jnp.sum(F.max_pool(a, 2, impl=impl) ** 2)))(x)
    np.testing.assert_allclose(g, expected, rtol=1e-6)


def test_pool_errors():
    x = jnp.ones((2, 5, 5, 3))
    with pytest.raises(ValueError, match=r"max_pool: window 7 is larger than the padded input .* 5 \+ 1 \+ 0"):
        F.max_pool(x, 7, 1, ((1, 0), (0, 0)))
    with pytest.raises(ValueError, match=r"avg_pool: window \(2, 2, 2\) has 3 axes"):
        F.avg_pool(x, (2, 2, 2))
    with pytest.raises(ValueError, match="lp_pool: expected a power p > 0"):
        F.lp_pool(x, 2, p=0)
    with pytest.raises(ValueError, match="upsample: expected method"):
        F.upsample(x, 2, "cubic")
    with pytest.raises(ValueError, match="global_avg_pool"):
        F.global_avg_pool(jnp.ones((2, 3)))


@pytest.mark.parametrize("impl", IMPLS)
def test_pool_gradients(impl, rng, x64):
    from fnnet.gradcheck import check_gradients
    x = jnp.asarray(rng.normal(size=(1, 5, 6, 2)))  # distinct values: max is differentiable
    cases = {
        "max_2x2": lambda a: F.max_pool(a, 2, impl=impl),
        "max_3x3_s2_pad": lambda a: F.max_pool(a, 3, 2, 1, impl=impl),
        "avg_overlap": lambda a: F.avg_pool(a, (3, 2), (2, 1), 1, count_include_pad=False, impl=impl),
        "avg_2x2": lambda a: F.avg_pool(a, 2, impl=impl),
        "l2": lambda a: F.lp_pool(a, 2, 1, impl=impl),
        "global": lambda a: F.global_avg_pool(a) + F.global_max_pool(a),
        "bilinear": lambda a: F.upsample(a, 2, "bilinear"),
        "nearest": lambda a: F.upsample(a, (2, 3)),
    }
    for name, fn in cases.items():
        w = jnp.asarray(rng.normal(size=jax.eval_shape(fn, x).shape))
        objective = jax.jit(lambda a, fn=fn, w=w: jnp.sum(w * fn(a)))
        check_gradients(objective, x, tol=1e-7, vectorize=False)


def test_numpy_integer_arguments_and_clear_type_errors(rng, x64):
    # Window, stride and scale take any integer operator.index accepts (NumPy ints from
    # a config or an array of sizes); bools and floats are refused by name.
    x = rng.normal(size=(1, 6, 7, 2))
    y = F.max_pool(jnp.asarray(x), np.int64(3), (np.int32(2), 2))
    np.testing.assert_array_equal(y, np_pool(x, (3, 3), (2, 2), ((0, 0),) * 2, "max"))
    y = F.avg_pool(jnp.asarray(x), np.array([2, 3]))
    np.testing.assert_allclose(y, np_pool(x, (2, 3), (2, 3), ((0, 0),) * 2, "avg"), rtol=1e-12)
    np.testing.assert_array_equal(F.upsample(jnp.asarray(x), np.int8(2)),
                                  np.repeat(np.repeat(x, 2, axis=1), 2, axis=2))
    for bad, what in [(2.0, "2.0 of type float"), (True, "the bool True"),
                      (np.float32(2), "of type float32")]:
        with pytest.raises(TypeError, match=f"max_pool: expected window as an int, got .*{what}"):
            F.max_pool(jnp.asarray(x), bad)
        with pytest.raises(TypeError, match="avg_pool: expected stride as an int"):
            F.avg_pool(jnp.asarray(x), 2, (2, bad))
        with pytest.raises(TypeError, match="upsample: expected scale as an int"):
            F.upsample(jnp.asarray(x), bad)
    with pytest.raises(ValueError, match="max_pool: expected window as a positive int, got 0"):
        F.max_pool(jnp.asarray(x), np.int64(0))
