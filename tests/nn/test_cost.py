"""count_multiplies: closed forms for dense, strided/grouped/dilated convs, the notes'
Inception bottleneck claim, sub-jaxprs (jit, custom_vjp, scan, cond), both conv
lowerings, and MobileNet's published 569M multiply-adds."""
import jax
import jax.numpy as jnp
import pytest
from jax import lax

from fnnet import functional as F
from fnnet import models, nn

S = jax.ShapeDtypeStruct
f32 = jnp.float32


@pytest.mark.parametrize("lowering", ["xla", "matmul"])
def test_inception_bottleneck_claim(lowering):
    # The notes: a "same" 5x5 conv 28x28x192 -> 28x28x32 costs ~120M multiplications;
    # a 1x1 conv to 16 channels first brings it to ~12.4M.
    x = S((1, 28, 28, 192), f32)
    direct = nn.count_multiplies(lambda v, k: F.conv(v, k, padding="SAME", impl=lowering), x,
                                 S((5, 5, 192, 32), f32))
    assert direct == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
    bottleneck = nn.serial(nn.conv(16, 1, impl=lowering), nn.relu,
                           nn.conv(32, 5, padding="SAME", impl=lowering))
    assert nn.count_multiplies(bottleneck, x) == (
        28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16) == 2_408_448 + 10_035_200 == 12_443_648


def test_dense_closed_form():
    assert nn.count_multiplies(nn.dense(7), S((2, 5, 3), f32)) == 2 * 5 * 3 * 7
    assert nn.count_multiplies(lambda a, b: a @ b, S((4, 6), f32), S((6, 9), f32)) == 4 * 6 * 9
    # A batched matmul: every batch entry counts.
    assert nn.count_multiplies(lambda a, b: jnp.einsum("bij,bjk->bik", a, b),
                               S((3, 4, 5), f32), S((3, 5, 2), f32)) == 3 * 4 * 5 * 2


@pytest.mark.parametrize("lowering", ["xla", "matmul"])
def test_strided_grouped_dilated_conv_closed_form(lowering):
    # x (2, 11, 13, 8), 3x3 kernel, stride 2, padding 1, 4 groups of 2 input channels:
    # out = floor((n + 2 - 3) / 2) + 1 = 6 x 7; each of 2*6*7*12 outputs sums 3*3*2 products.
    layer = nn.conv(12, 3, stride=2, padding=1, groups=4, impl=lowering)
    assert nn.count_multiplies(layer, S((2, 11, 13, 8), f32)) == \
        2 * 6 * 7 * 12 * 3 * 3 * 2
    # Dilation 2 widens the 3x3 window to 5x5 but keeps 9 taps: out 12 - 4 = 8 per axis.
    dilated = nn.conv(5, 3, dilation=2, impl=lowering)
    assert nn.count_multiplies(dilated, S((1, 12, 12, 4), f32)) == \
        8 * 8 * 5 * 9 * 4
    # A 1-D conv (NWC), stride 3, "SAME": out = ceil(20 / 3) = 7.
    assert nn.count_multiplies(nn.conv(6, 4, stride=3, padding="SAME", impl=lowering),
                               S((2, 20, 5), f32)) == 2 * 7 * 6 * 4 * 5


def test_depthwise_conv_closed_form():
    # Depthwise 3x3 (groups = C), depth multiplier 2, stride 2, "SAME" on 16x16x8:
    # 8x8x16 outputs, 9 products each.
    layer = nn.depthwise_conv(3, depth_multiplier=2, stride=2, padding="SAME", impl="xla")
    assert nn.count_multiplies(layer, S((1, 16, 16, 8), f32)) == 8 * 8 * 16 * 9


def test_sub_jaxprs_jit_custom_vjp_scan_cond():
    w = S((6, 6), f32)
    h0 = S((3, 6), f32)

    @jax.jit
    def step(h, w):
        return jnp.tanh(h @ w)

    @jax.custom_vjp
    def lin(h, w):
        return h @ w

    lin.defvjp(lambda h, w: (h @ w, (h, w)), lambda res, g: (g @ res[1].T, res[0].T @ g))

    def scanned(h, w):
        return lax.scan(lambda c, _: (step(c, w), None), h, None, length=11)[0]

    def branches(h, w):
        return lax.cond(h[0, 0] > 0, lambda: (h @ w) @ w, lambda: h @ w)

    per_step = 3 * 6 * 6
    assert nn.count_multiplies(step, h0, w) == per_step
    assert nn.count_multiplies(lin, h0, w) == per_step  # the forward only
    assert nn.count_multiplies(scanned, h0, w) == 11 * per_step
    assert nn.count_multiplies(branches, h0, w) == 2 * per_step  # the costlier branch


def test_errors():
    with pytest.raises(TypeError, match="count_multiplies: expected a Module or a function"):
        nn.count_multiplies(3, S((1, 2), f32))
    with pytest.raises(TypeError, match="count_multiplies: a Module takes one example input"):
        nn.count_multiplies(nn.dense(2), S((1, 2), f32), S((1, 2), f32))


def test_mobilenet_v1_published_multiply_adds():
    # Howard et al. (2017), Table 8: 1.0 MobileNet-224 has 569 million mult-adds.
    count = nn.count_multiplies(models.mobilenet_v1(impl="xla"), S((1, 224, 224, 3), f32))
    assert round(count / 1e6) == 569
