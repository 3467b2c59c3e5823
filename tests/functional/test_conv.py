"""Convolution kernels against naive NumPy loops, the worked examples, PyTorch, and
float64 finite differences; both lowerings (XLA native and im2col matmul)."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import functional as F
from fnnet import nn

IMPLS = ("xla", "matmul")


# ---------------------------------------------------------------------------
# Independent references (NumPy loops)

def np_conv(x, w, stride, pads, dilation, groups=1):
    """The textbook conv_forward: loop over examples, output positions and channels."""
    nd = x.ndim - 2
    x = np.pad(x, [(0, 0)] + list(pads) + [(0, 0)])
    window, (cg, f_out) = w.shape[:nd], w.shape[nd:]
    fg = f_out // groups
    out = [(x.shape[1 + i] - dilation[i] * (window[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    y = np.zeros((x.shape[0], *out, f_out))
    for n in range(x.shape[0]):
        for o in itertools.product(*(range(m) for m in out)):
            for f in range(f_out):
                g = f // fg
                total = 0.0
                for k in itertools.product(*(range(m) for m in window)):
                    pos = tuple(o[i] * stride[i] + k[i] * dilation[i] for i in range(nd))
                    total += np.dot(x[(n, *pos, slice(g * cg, (g + 1) * cg))], w[(*k, slice(None), f)])
                y[(n, *o, f)] = total
    return y


def np_conv_transpose(x, w, stride, pads, dilation):
    """Scatter form: every input pixel adds its weighted kernel into the output."""
    nd = x.ndim - 2
    window = w.shape[:nd]
    full = [(x.shape[1 + i] - 1) * stride[i] + dilation[i] * (window[i] - 1) + 1 for i in range(nd)]
    y = np.zeros((x.shape[0], *full, w.shape[-1]))
    for n in range(x.shape[0]):
        for i in itertools.product(*(range(m) for m in x.shape[1:-1])):
            for k in itertools.product(*(range(m) for m in window)):
                pos = tuple(i[a] * stride[a] + k[a] * dilation[a] for a in range(nd))
                y[(n, *pos)] += x[(n, *i)] @ w[k]
    crop = tuple(slice(lo, full[a] - hi) for a, (lo, hi) in enumerate(pads))
    return y[(slice(None), *crop)]


def same_pads(n, f, s, d):
    out = -(-n // s)
    total = max((out - 1) * s + d * (f - 1) + 1 - n, 0)
    return (total // 2, total - total // 2)


def random_case(rng, nd):
    spatial = tuple(int(v) for v in rng.integers(5, 9, size=nd))
    window = tuple(int(v) for v in rng.integers(1, 4, size=nd))
    stride = tuple(int(v) for v in rng.integers(1, 4, size=nd))
    dilation = tuple(int(v) for v in rng.integers(1, 3, size=nd))
    groups = int(rng.choice([1, 2, 3]))
    pads = tuple((int(lo), int(hi)) for lo, hi in rng.integers(0, 3, size=(nd, 2)))
    return spatial, window, stride, dilation, groups, pads


# ---------------------------------------------------------------------------
# conv

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_against_loops(impl, nd, x64):
    rng = np.random.default_rng(nd)
    for _ in range(3 if nd < 3 else 1):
        spatial, window, stride, dilation, groups, pads = random_case(rng, nd)
        cin, cout = 2 * groups, 3 * groups
        x = rng.normal(size=(2, *spatial, cin))
        w = rng.normal(size=(*window, cin // groups, cout))
        b = rng.normal(size=cout)
        ref = np_conv(x, w, stride, pads, dilation, groups) + b
        y = F.conv(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b), stride=stride, padding=pads,
                   dilation=dilation, groups=groups, impl=impl)
        np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_padding_modes(impl, rng, x64):
    x = rng.normal(size=(1, 7, 6, 2))
    w = rng.normal(size=(3, 2, 2, 4))
    stride, dilation = (2, 1), (1, 2)
    cases = {
        "VALID": ((0, 0), (0, 0)),
        "SAME": (same_pads(7, 3, 2, 1), same_pads(6, 2, 1, 2)),
        "FULL": ((2, 2), (2, 2)),
        1: ((1, 1), (1, 1)),
        (1, (0, 2)): ((1, 1), (0, 2)),
    }
    for padding, pads in cases.items():
        y = F.conv(jnp.asarray(x), jnp.asarray(w), stride=stride, padding=padding,
                   dilation=dilation, impl=impl)
        np.testing.assert_allclose(y, np_conv(x, w, stride, pads, dilation), rtol=1e-10, atol=1e-10)
    same = F.conv(jnp.asarray(x), jnp.asarray(w), stride=stride, padding="SAME", dilation=dilation)
    assert same.shape[1:3] == (4, 6)  # ceil(n / s)


@pytest.mark.parametrize("impl", IMPLS)
def test_vertical_edge_worked_example(impl):
    image = np.array([[3, 0, 1, 2, 7, 4], [1, 5, 8, 9, 3, 1], [2, 7, 2, 5, 1, 3],
                      [0, 1, 3, 1, 7, 8], [4, 2, 1, 6, 2, 8], [2, 4, 5, 2, 3, 9]], np.float32)
    edge = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], np.float32)
    y = F.conv2d(jnp.asarray(image)[None, :, :, None], jnp.asarray(edge)[:, :, None, None], impl=impl)
    np.testing.assert_array_equal(np.asarray(y)[0, :, :, 0],
                                  [[-5, -4, 0, 8], [-10, -2, 2, 3], [0, -2, -4, -7], [-3, -2, -3, -16]])
    halves = np.array([[10, 10, 10, 0, 0, 0]] * 6, np.float32)
    y = F.conv2d(jnp.asarray(halves)[None, :, :, None], jnp.asarray(edge)[:, :, None, None], impl=impl)
    np.testing.assert_array_equal(np.asarray(y)[0, :, :, 0], [[0, 30, 30, 0]] * 4)


def test_shape_chain():
    x = jax.ShapeDtypeStruct((1, 39, 39, 3), jnp.float32)
    shapes = []
    for f, s, c_in, c_out in [(3, 1, 3, 10), (5, 2, 10, 20), (5, 2, 20, 40)]:
        k = jax.ShapeDtypeStruct((f, f, c_in, c_out), jnp.float32)
        x = jax.eval_shape(lambda a, b, s=s: F.conv(a, b, stride=s), x, k)
        shapes.append(x.shape[1:])
    assert shapes == [(37, 37, 10), (17, 17, 20), (7, 7, 40)]


def test_conv_shape_errors():
    x = jnp.ones((2, 5, 5, 6))
    with pytest.raises(ValueError, match=r"conv: window 7 .* larger than the padded input .* 5 \+ 0 \+ 0 = 5"):
        F.conv(x, jnp.ones((7, 7, 6, 4)))
    with pytest.raises(ValueError, match="input channels 6 are not divisible by groups=4"):
        F.conv(x, jnp.ones((3, 3, 1, 8)), groups=4)
    with pytest.raises(ValueError, match=r"conv: kernel of shape \(3, 3, 6, 4, 1\) \(rank 5\) does not fit"):
        F.conv(x, jnp.ones((3, 3, 6, 4, 1)))
    with pytest.raises(ValueError, match="expects 4 input channels per group.* 6 channels"):
        F.conv(x, jnp.ones((3, 3, 4, 8)))
    with pytest.raises(ValueError, match="output channels 7"):
        F.conv(x, jnp.ones((3, 3, 3, 7)), groups=2)
    with pytest.raises(ValueError, match="stride"):
        F.conv(x, jnp.ones((3, 3, 6, 4)), stride=(1, 0))
    with pytest.raises(ValueError, match="padding"):
        F.conv(x, jnp.ones((3, 3, 6, 4)), padding="HALF")
    with pytest.raises(ValueError, match="rank 3, 4 or 5"):
        F.conv(jnp.ones((5, 6)), jnp.ones((3, 6, 4)))
    with pytest.raises(TypeError, match="floating"):
        F.conv(jnp.ones((2, 5, 5, 6), jnp.int32), jnp.ones((3, 3, 6, 4)))
    with pytest.raises(ValueError, match="conv2d: expected input of rank 4"):
        F.conv2d(jnp.ones((2, 5, 6)), jnp.ones((3, 6, 4)))


# ---------------------------------------------------------------------------
# conv_transpose, depthwise, separable

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("nd", [1, 2])
def test_conv_transpose_against_scatter_loop(impl, nd, x64):
    rng = np.random.default_rng(10 + nd)
    for _ in range(4):
        spatial, window, stride, dilation, _, pads = random_case(rng, nd)
        spatial = tuple(max(2, s - 3) for s in spatial)
        pads = tuple((min(lo, d * (f - 1)), min(hi, d * (f - 1)))
                     for (lo, hi), f, d in zip(pads, window, dilation))
        x = rng.normal(size=(2, *spatial, 3))
        w = rng.normal(size=(*window, 3, 4))
        y = F.conv_transpose(jnp.asarray(x), jnp.asarray(w), stride=stride, padding=pads,
                             dilation=dilation, impl=impl)
        np.testing.assert_allclose(y, np_conv_transpose(x, w, stride, pads, dilation),
                                   rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_transpose_is_gradient_of_conv(impl, rng, x64):
    stride, dilation, pads = (2, 3), (1, 2), ((1, 0), (2, 1))
    w = jnp.asarray(rng.normal(size=(3, 2, 4, 3)))  # forward conv kernel (in=4, out=3)
    x0 = jnp.asarray(rng.normal(size=(2, 9, 10, 4)))
    fwd = lambda v: F.conv(v, w, stride=stride, padding=pads, dilation=dilation, impl="xla")
    y, vjp = jax.vjp(fwd, x0)
    g = jnp.asarray(rng.normal(size=y.shape))
    (ref,) = vjp(g)
    got = F.conv_transpose(g, jnp.swapaxes(w, -1, -2), stride=stride, padding=pads,
                           dilation=dilation, impl=impl)
    # The transpose covers the rows the forward conv reads; the rest of x gets no gradient.
    np.testing.assert_allclose(got, ref[:, :got.shape[1], :got.shape[2]], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ref[:, got.shape[1]:], 0.0)


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_transpose_against_torch(impl, rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
    w = rng.normal(size=(3, 3, 3, 6)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    for stride, padding, dilation in [(2, 1, 1), ((2, 3), (0, 2), (2, 1)), (1, 0, 1)]:
        ref = torch.nn.functional.conv_transpose2d(
            torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(w).permute(2, 3, 0, 1),
            torch.from_numpy(b), stride=stride, padding=padding, dilation=dilation)
        pad = padding if isinstance(padding, tuple) else (padding, padding)
        y = F.conv_transpose(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b), stride=stride,
                             padding=[(p, p) for p in pad], dilation=dilation, impl=impl)
        np.testing.assert_allclose(y, ref.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_transpose_same_doubles(impl):
    x = jnp.ones((1, 5, 3, 2))
    for f in (1, 2, 3, 4):
        y = F.conv_transpose(x, jnp.ones((f, f, 2, 3)), stride=2, padding="SAME", impl=impl)
        assert y.shape == (1, 10, 6, 3)


@pytest.mark.parametrize("impl", IMPLS)
def test_depthwise_and_separable(impl, rng, x64):
    x = rng.normal(size=(2, 7, 6, 3))
    wd = rng.normal(size=(3, 3, 1, 6))  # depth multiplier 2
    wp = rng.normal(size=(1, 1, 6, 4))
    b = rng.normal(size=4)
    d = F.depthwise_conv(jnp.asarray(x), jnp.asarray(wd), stride=2, padding=1, impl=impl)
    d_ref = np_conv(x, wd, (2, 2), ((1, 1), (1, 1)), (1, 1), groups=3)
    np.testing.assert_allclose(d, d_ref, rtol=1e-10, atol=1e-10)
    s = F.separable_conv(jnp.asarray(x), jnp.asarray(wd), jnp.asarray(wp[0, 0]), jnp.asarray(b),
                         stride=2, padding=1, impl=impl)
    np.testing.assert_allclose(s, d_ref @ wp[0, 0] + b, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="depthwise_conv: expected kernel"):
        F.depthwise_conv(jnp.asarray(x), jnp.asarray(wp))


@pytest.mark.parametrize("impl", IMPLS)
def test_spatially_separable(impl, rng, x64):
    x = rng.normal(size=(2, 8, 7, 3))
    kv, kh = rng.normal(size=(3, 1, 3, 2)), rng.normal(size=(1, 3, 2, 5))
    full = np.einsum("icm,jmf->ijcf", kv[:, 0], kh[0])
    for stride, padding, pads in [(1, "VALID", ((0, 0), (0, 0))), ((2, 1), 1, ((1, 1), (1, 1)))]:
        y = F.spatially_separable_conv(jnp.asarray(x), jnp.asarray(kv), jnp.asarray(kh),
                                       stride=stride, padding=padding, impl=impl)
        st = (stride, stride) if isinstance(stride, int) else stride
        np.testing.assert_allclose(y, np_conv(x, full, st, pads, (1, 1)), rtol=1e-10, atol=1e-10)


def test_lowering_is_an_explicit_static_choice(rng):
    """``impl`` is part of the traced function: two jitted Modules that differ only in
    it compile to different programs, whatever ran before (no hidden global)."""
    x = jnp.asarray(rng.normal(size=(1, 6, 6, 2)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 2, 2)), jnp.float32)
    a = jax.make_jaxpr(lambda v: F.conv(v, w, impl="xla"))(x)
    b = jax.make_jaxpr(lambda v: F.conv(v, w, impl="matmul"))(x)
    assert "conv_general_dilated" in str(a) and "conv_general_dilated" not in str(b)
    for impl in ("matmul", "xla", "matmul"):
        layer = nn.conv(2, 3, impl=impl)
        params, _ = layer.init(jax.random.key(0), x)
        step = jax.jit(lambda p, v, layer=layer: layer.apply(p, {}, v)[0])
        step(params, x)
        lowered = str(step.lower(params, x).as_text())
        assert ("convolution" in lowered) == (impl == "xla"), impl
    # "auto": on CPU, 1x1 windows, one input channel per group, small convs with few
    # channels (<= 8 in, <= 16 out) or at most 16 output pixels per image go to matmul (unless the patch
    # matrix would exceed 2**25 entries), the rest to XLA.
    cpu = jax.default_backend() == "cpu"
    wide = jax.ShapeDtypeStruct((1, 10, 10, 16), jnp.float32)
    grid4 = jax.ShapeDtypeStruct((1, 6, 6, 16), jnp.float32)      # 3x3 VALID: 4x4 output
    c5 = jax.ShapeDtypeStruct((2, 5, 5, 16), jnp.float32)         # LeNet's C5: 1x1 output
    big = jax.ShapeDtypeStruct((1, 200, 200, 2), jnp.float32)
    big1 = jax.ShapeDtypeStruct((1, 200, 200, 1), jnp.float32)
    huge1 = jax.ShapeDtypeStruct((16, 512, 512, 1), jnp.float32)  # patch matrix > 2**25
    for inp, kshape, matmul_on_cpu in [(x, (3, 3, 2, 2), True), (wide, (3, 3, 16, 2), False),
                                       (big, (3, 3, 2, 2), False), (big1, (3, 3, 1, 2), True),
                                       (wide, (1, 1, 16, 2), True), (huge1, (5, 5, 1, 8), False),
                                       (grid4, (3, 3, 16, 2), True), (c5, (5, 5, 16, 120), True),
                                       (jax.ShapeDtypeStruct((1, 7, 7, 16), jnp.float32), (3, 3, 16, 2), False),
                                       (jax.ShapeDtypeStruct((1, 10, 10, 2), jnp.float32), (3, 3, 2, 17), False)]:
        kernel = jax.ShapeDtypeStruct(kshape, jnp.float32)
        jaxpr = str(jax.make_jaxpr(lambda v, k: F.conv(v, k))(inp, kernel))
        assert ("conv_general_dilated" not in jaxpr) == (cpu and matmul_on_cpu), (inp.shape, kshape)
    with pytest.raises(ValueError, match=r"conv: expected impl in \('auto', 'xla', 'matmul'\), got 'fast'"):
        F.conv(x, w, impl="fast")
    with pytest.raises(ValueError, match="max_pool: expected impl"):
        F.max_pool(x, 2, impl=None)
    with pytest.raises(ValueError, match="conv: expected impl"):
        nn.conv(2, 3, impl="XLA")


# ---------------------------------------------------------------------------
# Float64 gradient checks (fnnet.gradcheck: central differences over every coordinate)

@pytest.mark.parametrize("impl", IMPLS)
def test_gradients(impl, rng, x64):
    from fnnet.gradcheck import check_gradients
    x = jnp.asarray(rng.normal(size=(1, 5, 6, 4)))
    cases = {
        "conv": (lambda a, k: F.conv(a, k, stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 2),
                                     impl=impl), (3, 2, 4, 3)),
        "conv_groups": (lambda a, k: F.conv(a, k, stride=2, padding="SAME", groups=2, impl=impl),
                        (3, 3, 2, 2)),
        "depthwise": (lambda a, k: F.depthwise_conv(a, k, stride=(1, 2), dilation=2, padding=1,
                                                    impl=impl), (2, 3, 1, 4)),
        "conv_transpose": (lambda a, k: F.conv_transpose(a, k, stride=(2, 3), padding=1,
                                                         dilation=(2, 1), impl=impl), (3, 2, 4, 2)),
        "conv1d": (lambda a, k: F.conv(a[:, 0], k, stride=2, dilation=2, impl=impl), (2, 4, 2)),
        "conv3d": (lambda a, k: F.conv(a.reshape(1, 5, 3, 2, 4), k, stride=(2, 1, 1), padding=1,
                                       impl=impl), (2, 2, 2, 4, 1)),
        "conv_1x1_strided": (lambda a, k: F.conv(a, k, stride=2, impl=impl), (1, 1, 4, 2)),
    }
    for name, (fn, kshape) in cases.items():
        k = jnp.asarray(rng.normal(size=kshape))
        w = jnp.asarray(rng.normal(size=jax.eval_shape(fn, x, k).shape))
        objective = jax.jit(lambda t, fn=fn, w=w: jnp.sum(w * fn(t["x"], t["k"])))
        check_gradients(objective, {"x": x, "k": k}, tol=1e-7, vectorize=False)


@pytest.mark.parametrize("impl", IMPLS)
def test_lowering_higher_order(impl, rng, x64):
    """Both lowerings' custom_jvp (the im2col conv; on CPU, XLA's conv with its reverse
    mode in the canonical layout): reverse mode is differentiable again (checked by
    finite differences of the gradient), and forward mode gives the NumPy loop's
    directional derivative (the conv is bilinear: d conv(x, k)[dk] = conv(x, dk))."""
    from fnnet.gradcheck import check_gradients
    x = jnp.asarray(rng.normal(size=(2, 6, 5, 3)))
    k = jnp.asarray(rng.normal(size=(3, 2, 3, 2)))
    conv = lambda a, b: F.conv(a, b, stride=(2, 1), padding=1, impl=impl)
    w = jnp.asarray(rng.normal(size=conv(x, k).shape))

    def grad_objective(t):  # a scalar function of the first derivative
        gx, gk = jax.grad(lambda a, b: jnp.sum(w * jnp.sin(conv(a, b))), (0, 1))(t["x"], t["k"])
        return jnp.sum(gx ** 2) + jnp.sum(jnp.cos(gk))

    check_gradients(jax.jit(grad_objective), {"x": x, "k": k}, tol=1e-7, vectorize=False)
    _check_forward_mode(rng, x, k, impl)


def test_xla_conv_gradient_in_a_scan_stays_canonical(rng):
    """XLA:CPU runs a convolution on its conv library only in the layout
    (N, *S, C) x (*W, C, F) -> (N, *S, F) ("b01f_01io->b01f"), and rewrites other layouts
    into it only outside loops: the xla lowering writes its reverse-mode convs in that
    layout, so a train step compiled inside lax.scan has no other conv (an emitted loop
    nest, 20-100x slower), for conv and conv_transpose, strided and padded."""
    import re
    if jax.default_backend() != "cpu":
        pytest.skip("an XLA:CPU layout rule")
    x = jnp.asarray(rng.normal(size=(4, 9, 9, 5)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(3, 3, 5, 7)), jnp.float32)
    kt = jnp.asarray(rng.normal(size=(2, 2, 7, 5)), jnp.float32)

    def loss(p, x):
        h = F.conv(x, p["k"], stride=2, padding=1, impl="xla")
        h = F.conv(h, p["k2"], padding="FULL", impl="xla")   # an output larger than its input
        return jnp.sum(F.conv_transpose(h, p["kt"], stride=2, impl="xla") ** 2)

    def steps(p, x):
        def body(c, _):
            p, x = c
            gp, gx = jax.grad(loss, (0, 1))(p, x)
            return (jax.tree.map(lambda a, b: a - 1e-3 * b, p, gp), x - 1e-3 * gx), None
        return jax.lax.scan(body, (p, x), None, length=2)[0]

    k2 = jnp.asarray(rng.normal(size=(3, 2, 7, 7)), jnp.float32)
    hlo = jax.jit(steps).lower({"k": k, "k2": k2, "kt": kt}, x).compile().as_text()
    labels = re.findall(r"convolution\(.*?dim_labels=([a-z0-9_>-]+)", hlo)
    assert len(labels) >= 8, labels  # 3 forward, 5 gradients at least
    assert set(labels) == {"b01f_01io->b01f"}, labels


def _check_forward_mode(rng, x, k, impl):
    dx, dk = jnp.asarray(rng.normal(size=x.shape)), jnp.asarray(rng.normal(size=k.shape))
    pads = ((1, 1), (1, 1))
    want = (np_conv(np.asarray(x), np.asarray(dk), (2, 1), pads, (1, 1))
            + np_conv(np.asarray(dx), np.asarray(k), (2, 1), pads, (1, 1)))
    _, tangent = jax.jvp(lambda a, b: F.conv(a, b, stride=(2, 1), padding=1, impl=impl), (x, k), (dx, dk))
    np.testing.assert_allclose(tangent, want, rtol=1e-10, atol=1e-10)


def test_column_blocks_against_loops(rng, x64):
    """The matmul lowering's column-blocked form (few channels, stride 1 along the last
    axis): values against the NumPy loop, gradients by finite differences."""
    import sys
    from fnnet.gradcheck import check_gradients
    conv_module = sys.modules["fnnet.functional.conv"]
    cases = [  # input, kernel, stride, pads, dilation
        ((2, 9, 12, 1), (5, 5, 1, 6), (1, 1), ((0, 0), (0, 0)), (1, 1)),   # LeNet-like, b = 4
        ((2, 8, 8, 3), (3, 3, 3, 16), (2, 1), ((1, 1), (2, 1)), (2, 1)),   # b = 2, padded
        ((2, 7, 4), (4, 4, 9), (1,), ((3, 0),), (1,)),                      # 1-D, b = 2
        ((1, 3, 4, 9, 2), (2, 2, 3, 2, 6), (1, 2, 1), ((0, 0), (1, 0), (0, 2)), (1, 1, 1)),
    ]
    for xs, ks, stride, pads, dilation in cases:
        x, k = rng.normal(size=xs), rng.normal(size=ks)
        b = conv_module._column_block(x, k, stride, pads, dilation, 1)
        assert b > 1, (xs, ks)
        y = F.conv(jnp.asarray(x), jnp.asarray(k), stride=stride, padding=pads, dilation=dilation,
                   impl="matmul")
        np.testing.assert_allclose(y, np_conv(x, k, stride, pads, dilation), rtol=1e-10, atol=1e-10)
    xs, ks, stride, pads, dilation = cases[1]
    fn = lambda t: F.conv(t["x"], t["k"], stride=stride, padding=pads, dilation=dilation, impl="matmul")
    tree = {"x": jnp.asarray(rng.normal(size=xs)), "k": jnp.asarray(rng.normal(size=ks))}
    w = jnp.asarray(rng.normal(size=fn(tree).shape))
    check_gradients(jax.jit(lambda t: jnp.sum(w * fn(t))), tree, tol=1e-7, vectorize=False)


def test_numpy_integer_arguments_and_clear_errors(rng):
    """NumPy integers work wherever Python ints do (same output as the NumPy loop);
    floats and bools are named in the error, before any compute."""
    x = rng.normal(size=(1, 8, 7, 2))
    k = rng.normal(size=(3, 3, 2, 4))
    y = F.conv(jnp.asarray(x), jnp.asarray(k), stride=np.int64(2), padding=((np.int32(1), 0), (0, 1)),
               dilation=(np.int64(1), 1), groups=np.int8(1))
    np.testing.assert_allclose(y, np_conv(x, k, (2, 2), ((1, 0), (0, 1)), (1, 1)), rtol=1e-5, atol=1e-5)
    for bad, err, match in [(dict(stride=2.0), TypeError, "conv: expected stride as an int, got 2.0"),
                            (dict(dilation=True), TypeError, "conv: expected dilation as an int, got the bool"),
                            (dict(padding=-1), ValueError, "conv: expected padding as an int >= 0, got -1"),
                            (dict(padding=1.5), ValueError, "conv: expected padding as 'VALID'"),
                            (dict(groups=1.0), TypeError, "conv: expected groups as an int")]:
        with pytest.raises(err, match=match):
            F.conv(jnp.asarray(x), jnp.asarray(k), **bad)
