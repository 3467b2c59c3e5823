"""Conv, pooling and upsampling Modules: param shapes, He initialisation, agreement
with the kernels' NumPy references, and errors naming the layer."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import nn


def test_conv_module_params_and_forward(rng):
    x = jnp.asarray(rng.normal(size=(2, 9, 9, 4)), jnp.float32)
    layer = nn.conv(8, 3, stride=2, padding=1, groups=2)
    params, state = layer.init(jax.random.key(0), jax.ShapeDtypeStruct(x.shape, x.dtype))
    assert params["kernel"].shape == (3, 3, 2, 8) and params["bias"].shape == (8,)
    np.testing.assert_array_equal(params["bias"], 0.0)
    y, _ = layer.apply(params, state, x)
    assert y.shape == (2, 5, 5, 8)
    # Same numbers as an explicit NumPy sum over the window for one output pixel.
    k = np.asarray(params["kernel"])
    xp = np.pad(np.asarray(x), ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref = np.einsum("hwc,hwcf->f", xp[0, 2:5, 2:5, 2:4], k[..., 4:])
    np.testing.assert_allclose(y[0, 1, 1, 4:], ref, rtol=1e-5, atol=1e-5)


def test_he_initialisation_statistics():
    layer = nn.conv(256, (3, 3), use_bias=False)
    params, _ = layer.init(jax.random.key(1), jax.ShapeDtypeStruct((1, 8, 8, 64), jnp.float32))
    assert set(params) == {"kernel"}
    std = float(jnp.std(params["kernel"]))
    assert abs(std - np.sqrt(2 / (9 * 64))) < 0.02 * np.sqrt(2 / (9 * 64))


@pytest.mark.parametrize("window,shape,out", [(3, (2, 10, 3), (2, 8, 5)),
                                              ((3, 3, 3), (1, 5, 5, 5, 2), (1, 3, 3, 3, 5))])
def test_conv_1d_3d(window, shape, out):
    layer = nn.conv(5, window)
    params, state = layer.init(jax.random.key(0), jnp.ones(shape))
    assert jax.eval_shape(lambda p: layer.apply(p, state, jnp.ones(shape))[0], params).shape == out


def test_other_conv_modules(rng):
    x = jnp.asarray(rng.normal(size=(2, 6, 6, 3)), jnp.float32)
    for layer, pshapes, yshape in [
        (nn.conv_transpose(4, 3, stride=2, padding="SAME"), {"kernel": (3, 3, 3, 4), "bias": (4,)},
         (2, 12, 12, 4)),
        (nn.depthwise_conv(3, depth_multiplier=2, padding="SAME"),
         {"kernel": (3, 3, 1, 6), "bias": (6,)}, (2, 6, 6, 6)),
        (nn.separable_conv(5, 3, stride=2),
         {"depthwise_kernel": (3, 3, 1, 3), "pointwise_kernel": (1, 1, 3, 5), "bias": (5,)},
         (2, 2, 2, 5)),
    ]:
        params, state = layer.init(jax.random.key(0), x)
        assert {k: v.shape for k, v in params.items()} == pshapes, layer.name
        y = jax.eval_shape(lambda p, layer=layer: layer.apply(p, state, x)[0], params)
        assert y.shape == yshape, layer.name


def test_pool_and_upsample_modules(rng):
    x = jnp.asarray(rng.normal(size=(2, 6, 6, 3)), jnp.float32)
    xn = np.asarray(x)
    cases = [
        (nn.max_pool(2), xn.reshape(2, 3, 2, 3, 2, 3).max((2, 4))),
        (nn.avg_pool(2), xn.reshape(2, 3, 2, 3, 2, 3).mean((2, 4))),
        (nn.lp_pool(3), np.sqrt((xn ** 2).reshape(2, 2, 3, 2, 3, 3).sum((2, 4)))),
        (nn.global_avg_pool, xn.mean((1, 2))),
        (nn.global_max_pool, xn.max((1, 2))),
        (nn.upsample(2), xn.repeat(2, 1).repeat(2, 2)),
    ]
    for layer, ref in cases:
        params, state = layer.init(jax.random.key(0), x)
        assert params == {} and state == {}
        np.testing.assert_allclose(layer.apply(params, state, x)[0], ref, rtol=1e-5, atol=1e-6)


def test_lenet_shapes_in_serial():
    model = nn.serial(nn.conv(6, 5, padding=2), nn.relu, nn.max_pool(2), nn.conv(16, 5), nn.relu,
                      nn.avg_pool(2, 2), nn.flatten, nn.dense(10))
    params, state = model.init(jax.random.key(0), jax.ShapeDtypeStruct((4, 28, 28, 1), jnp.float32))
    y, _ = jax.eval_shape(lambda p: model.apply(p, state, jnp.ones((4, 28, 28, 1))), params)
    assert y.shape == (4, 10)
    assert params["3"]["kernel"].shape == (5, 5, 6, 16)


def test_module_errors_name_the_layer():
    spec = jax.ShapeDtypeStruct((2, 5, 5, 6), jnp.float32)
    with pytest.raises(ValueError, match="block1: input channels 6 are not divisible by groups=4"):
        nn.conv(8, 3, groups=4, name="block1").init(jax.random.key(0), spec)
    with pytest.raises(ValueError, match="conv: window 7 .* larger than the padded input"):
        nn.conv(8, 7).init(jax.random.key(0), spec)
    with pytest.raises(ValueError, match=r"conv: window \(3, 3, 3\) has 3 axes, the input"):
        nn.conv(8, (3, 3, 3)).init(jax.random.key(0), spec)
    with pytest.raises(ValueError, match="max_pool: window 6 is larger"):
        nn.max_pool(6).init(jax.random.key(0), spec)
    with pytest.raises(ValueError, match="features"):
        nn.conv(0, 3)
    params, state = nn.conv(8, 3).init(jax.random.key(0), spec)
    with pytest.raises(ValueError, match="conv: kernel .* expects 6 input channels"):
        nn.conv(8, 3).apply(params, state, jnp.ones((2, 5, 5, 4)))
