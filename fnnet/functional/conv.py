"""Convolution kernels for 1-, 2- and 3-D inputs, channels last.

Inputs are ``(N, *spatial, C)`` (NWC, NHWC, NDHWC); kernels are ``(*window, in, out)``
(WIO, HWIO, DHWIO). The spatial rank comes from the input. Along each spatial axis
the output size is

    n_out = floor((n + p_lo + p_hi - d (f - 1) - 1) / s) + 1

for input size ``n``, padding ``(p_lo, p_hi)``, dilation ``d``, window ``f`` and
stride ``s`` (the textbook ``floor((n + 2p - f) / s) + 1`` when ``d = 1``).

Each kernel has two lowerings (see :mod:`fnnet.functional._lowering`): XLA's native
convolution (GPU/TPU) and im2col + matmul (CPU). Both compute the same function.

Imports: jax only.
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from fnnet.functional._checks import as_int, as_ints, bias_add, check_floating
from fnnet.functional._lowering import resolve

__all__ = ["conv", "conv1d", "conv2d", "conv3d", "conv_transpose", "depthwise_conv",
           "separable_conv", "spatially_separable_conv", "conv_output_shape"]

_LAYOUTS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


# ---------------------------------------------------------------------------
# Argument normalisation (static, trace time)

def _tuple(name: str, what: str, value, nd: int) -> tuple[int, ...]:
    """An int or a length-``nd`` sequence of positive ints (Python or NumPy) -> tuple
    of ``nd`` Python ints."""
    value = as_ints(name, what, value, minimum=1)
    if isinstance(value, int):
        return (value,) * nd
    if len(value) != nd:
        raise ValueError(f"{name}: expected {what} as a positive int or {nd} positive ints "
                         f"(one per spatial axis), got {value!r}")
    return value


def _pads(name: str, padding, spatial: Sequence[int], window: Sequence[int],
          stride: Sequence[int], dilation: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Padding spec -> one ``(low, high)`` pair per spatial axis.

    ``"VALID"``: none. ``"SAME"``: output size ``ceil(n / s)``, the extra pixel on the
    high side (as in TensorFlow and ``lax``). ``"FULL"``: ``d (f - 1)`` on both sides,
    so every partial overlap is computed. An int: the same on both sides of every
    axis. A sequence: one int or one ``(low, high)`` pair per spatial axis.
    """
    nd = len(spatial)
    eff = [d * (f - 1) + 1 for f, d in zip(window, dilation)]
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return ((0, 0),) * nd
        if mode == "SAME":
            return tuple(tuple(p) for p in lax.padtype_to_pads(spatial, eff, stride, "SAME"))
        if mode == "FULL":
            return tuple((e - 1, e - 1) for e in eff)
        raise ValueError(f"{name}: expected padding 'VALID', 'SAME', 'FULL', an int or "
                         f"(low, high) pairs, got {padding!r}")
    if _integer_like(padding):
        p = as_int(name, "padding", padding, minimum=0)
        return ((p, p),) * nd
    try:
        pads = tuple((p, p) if _integer_like(p) else tuple(p) for p in padding)
        pads = tuple(tuple(as_int(name, "padding", v, minimum=0) for v in p) for p in pads)
    except TypeError:
        pads = None
    if pads is None or len(pads) != nd or not all(len(p) == 2 for p in pads):
        raise ValueError(f"{name}: expected padding as 'VALID', 'SAME', 'FULL', an int or "
                         f"{nd} (low, high) pairs, got {padding!r}")
    return pads


def _integer_like(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def conv_output_shape(spatial: Sequence[int], window: Sequence[int], stride: Sequence[int],
                      pads: Sequence[tuple[int, int]], dilation: Sequence[int]) -> tuple[int, ...]:
    """``floor((n + p_lo + p_hi - d (f - 1) - 1) / s) + 1`` per spatial axis."""
    return tuple((n + lo + hi - d * (f - 1) - 1) // s + 1
                 for n, f, s, (lo, hi), d in zip(spatial, window, stride, pads, dilation))


def _check_fits(name: str, spatial, window, pads, dilation) -> None:
    for axis, (n, f, (lo, hi), d) in enumerate(zip(spatial, window, pads, dilation)):
        eff = d * (f - 1) + 1
        if eff > n + lo + hi:
            raise ValueError(
                f"{name}: window {f} (dilation {d}, effective size {eff}) is larger than the "
                f"padded input along spatial axis {axis}: {n} + {lo} + {hi} = {n + lo + hi}")


def _check_input(name: str, x, kernel) -> int:
    check_floating(name, "input x", x)
    check_floating(name, "kernel", kernel)
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"{name}: expected input (N, *spatial, C) with 1, 2 or 3 spatial axes "
                         f"(rank 3, 4 or 5), got shape {x.shape}")
    nd = x.ndim - 2
    if kernel.ndim != x.ndim:
        raise ValueError(f"{name}: kernel of shape {kernel.shape} (rank {kernel.ndim}) does not fit "
                         f"an input of rank {x.ndim} {x.shape}: expected a kernel (*window, in, out) "
                         f"with {nd} window axes, rank {x.ndim}")
    return nd


# ---------------------------------------------------------------------------
# The matmul (im2col) lowering

def _shifted_views(xp, window, stride, dilation, out):
    """For every window offset (row-major), the strided view of the padded input
    ``xp`` that the offset touches: a list of ``prod(window)`` arrays ``(N, *out, C)``."""
    views = []
    for offs in itertools.product(*(range(f) for f in window)):
        start = (0,) + tuple(o * d for o, d in zip(offs, dilation)) + (0,)
        limit = ((xp.shape[0],) + tuple(o * d + (m - 1) * s + 1
                                         for o, d, m, s in zip(offs, dilation, out, stride))
                 + (xp.shape[-1],))
        views.append(lax.slice(xp, start, limit, (1,) + tuple(stride) + (1,)))
    return views


# Most output pixels per image of a conv that "auto" lowers as a matmul whatever its channels.
_MAX_MATMUL_OUT_PIXELS = 16

# Largest im2col patch matrix (entries, at most input pixels x window x channels) that
# "auto" builds on CPU: 2**25 float32 are 128 MiB.
_MAX_PATCH_ELEMENTS = 1 << 25


def _cpu_choice(x, kernel, groups, out_pixels: int | None = None) -> str:
    """The lowering that measured faster on CPU for these shapes (benchmarks/bench_conv.py).

    XLA:CPU sends a convolution to its fast library (YNNPACK) only when
    ``max(C_in, C_out) > 16``; below that it is several times slower than a matmul of
    the same size. The matmul lowering wins for 1x1 windows (a plain dot), one input
    channel per group (a first layer: im2col; a depthwise conv: a weighted sum of
    shifted views) and small convs with few channels per group (LeNet's second layer:
    at most 8 input and 16 output channels, at most 32768 input pixels). Elsewhere (a
    ResNet stem, any wide layer) XLA's conv, forward and backward, measured faster on CPU:
    forcing the matmul lowering everywhere made the ResNet-18 step 1.3x slower.
    The im2col patch matrix is kept for the backward, so it is used only up to
    ``_MAX_PATCH_ELEMENTS`` entries (about 10x LeNet's first layer).

    Convs with at most ``_MAX_MATMUL_OUT_PIXELS`` (16) output pixels per image (LeNet's
    C5, a 5x5 window over a 5x5 input; the last stage of a small ResNet) are matmuls
    too: their gradient (forward + backward) measured 5-10x faster as im2col than as
    XLA's conv for C5 and 2.2x for a 4x4 grid with 64 channels, while at 8x8 and
    beyond XLA's conv was as fast or faster (0.5-0.9x). With more than 16 output
    channels XLA's conv reaches YNNPACK, and VGG's first layer (3 -> 64 channels,
    128x128) measured 2x faster there than as im2col (one and two cores), whereas 3 -> 16
    at 32x32 was 2.1x faster as im2col: the few-input-channel rule takes at most 16
    output channels.
    """
    nd = x.ndim - 2
    if all(f == 1 for f in kernel.shape[:nd]) and groups == 1:
        return "matmul"
    pixels = x.shape[0] * math.prod(x.shape[1:-1])
    if groups == 1 and pixels * math.prod(kernel.shape[:-1]) > _MAX_PATCH_ELEMENTS:
        return "xla"
    if groups == 1 and out_pixels is not None and out_pixels <= _MAX_MATMUL_OUT_PIXELS:
        return "matmul"
    if kernel.shape[-2] == 1:
        return "matmul"
    if kernel.shape[-2] <= 8 and kernel.shape[-1] <= 16 and pixels <= 32768:
        return "matmul"
    return "xla"


def _patches(xp, window, stride, dilation, out):
    """im2col of the padded input ``xp``: ``(N, *out, prod(window) C)``, the last axis
    ordered like ``kernel.reshape(-1, F)`` (window offsets row-major, then channels).

    Built one spatial axis at a time, last axis first: each pass concatenates the ``f``
    shifted strided slices of one axis along the channel axis. Two passes of 5 slices
    (a 5x5 window) copy runs of ``C`` and ``5 C`` floats; one concatenation of all 25
    shifted views, which XLA:CPU emits as a per-element select over its operands,
    measured 2-10x slower (benchmarks/bench_conv.py, docs/conv.md).
    """
    nd = xp.ndim - 2
    for d in reversed(range(nd)):
        axis, f, s, dil, m = 1 + d, window[d], stride[d], dilation[d], out[d]
        if f == 1 and s == 1 and xp.shape[axis] == m:
            continue
        views = [lax.slice_in_dim(xp, k * dil, k * dil + (m - 1) * s + 1, s, axis) for k in range(f)]
        xp = views[0] if f == 1 else jnp.concatenate(views, axis=-1)
    return xp


def _matmul(a, b):
    """``a @ b`` for 2-D arrays (``dot_general``, no batch axes)."""
    return lax.dot_general(a, b, (((1,), (0,)), ((), ())))


def _im2col_input(x, window, stride, pads, dilation):
    xp = jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),)) if any(map(any, pads)) else x
    out = conv_output_shape(x.shape[1:-1], window, stride, pads, dilation)
    return _patches(xp, window, stride, dilation, out)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def _conv_im2col(x, kernel, stride, pads, dilation):
    """``conv`` (groups = 1) as one matmul of the patch matrix with the kernel:

    ``y = P K``, ``P = im2col(x)`` of shape ``(N prod(out), prod(window) C)``,
    ``K = kernel.reshape(prod(window) C, F)``.

    A ``jax.custom_jvp`` only to choose how XLA:CPU lays out the reverse-mode matmuls.
    The tangent ``dy = im2col(dx) K + P dK`` is written as

    ``dy = im2col(dx) (K^T)^T + (dK^T P^T)^T``

    with the transposes of ``K`` and ``dK`` behind ``lax.optimization_barrier``, so that
    JAX's transpose of it (reverse mode) is

    ``dK = (dY^T P)^T``  and  ``dx = im2col^T(dY K^T)``

    (``im2col^T``, the transpose of the patch extraction, is a sum of shifted pads).
    Autodiff of ``P K`` itself would contract ``P`` over its leading axis, a
    column-major operand that XLA:CPU's fast (YNNPACK) matmul refuses; its slow
    fallback made this weight gradient the largest item of the LeNet-5 step. The
    tangent is plain JAX, so every transform applies: forward mode (``jvp``,
    ``jacfwd``), reverse mode of any order, ``vmap``.
    """
    return _matmul_patches(_im2col_input(x, kernel.shape[:x.ndim - 2], stride, pads, dilation), kernel)


def _matmul_patches(patches, kernel):
    """``P K``: the patch matrix ``(N, *out, K)`` times the kernel reshaped to ``(K, F)``."""
    y = _matmul(patches.reshape(-1, patches.shape[-1]), kernel.reshape(-1, kernel.shape[-1]))
    return y.reshape(patches.shape[:-1] + (kernel.shape[-1],))


def _conv_im2col_jvp(stride, pads, dilation, primals, tangents):
    x, kernel = primals
    dx, dkernel = tangents
    nd = x.ndim - 2
    window = kernel.shape[:nd]
    patches = _im2col_input(x, window, stride, pads, dilation)
    y = _matmul_patches(patches, kernel)
    k, f = patches.shape[-1], kernel.shape[-1]
    nt = (((1,), (1,)), ((), ()))  # a @ b.T
    dy = None
    if not isinstance(dx, SymbolicZero):
        dpatches = _im2col_input(dx, window, stride, pads, dilation).reshape(-1, k)
        kernel_t = lax.optimization_barrier(kernel.reshape(k, f).T)           # (F, K)
        dy = lax.dot_general(dpatches, kernel_t, nt)                            # (M, F)
    if not isinstance(dkernel, SymbolicZero):
        dkernel_t = lax.optimization_barrier(dkernel.reshape(k, f).T)          # (F, K)
        dy_t = lax.dot_general(dkernel_t, patches.reshape(-1, k), nt)         # (F, M)
        term = lax.optimization_barrier(dy_t).T
        dy = term if dy is None else dy + term
    return y, dy.reshape(y.shape)  # not None: JAX calls the rule only with a nonzero tangent


_conv_im2col.defjvp(_conv_im2col_jvp, symbolic_zeros=True)


def _column_block(x, kernel, stride, pads, dilation, groups) -> int:
    """How many output columns (last spatial axis) :func:`_conv_column_blocks` groups
    into one, or 1 for no blocking.

    Used for few channels (at most 8 in, 16 out: LeNet), where a matmul whose rows are
    single pixels is too thin: the smallest ``b`` in 2..8 dividing the output width with
    ``b F > 16`` output channels per block. In the LeNet-5 step, blocking the first
    layer by 4 and the second by 2 made the step 1.5x (two threads) to 2.8x (one
    thread) faster on a loaded machine (docs/conv.md).
    """
    nd = x.ndim - 2
    fw, cin, cout = kernel.shape[nd - 1], kernel.shape[-2], kernel.shape[-1]
    if groups != 1 or stride[-1] != 1 or dilation[-1] != 1 or fw == 1 or cin > 8 or cout > 16:
        return 1
    wo = x.shape[-2] + pads[-1][0] + pads[-1][1] - fw + 1
    for b in range(2, 9):
        if wo % b == 0 and b * cout > 16:
            return b
    return 1


def _conv_column_blocks(x, kernel, b, stride, pads, dilation):
    """A conv with stride and dilation 1 along the last spatial axis, computed over
    blocks of ``b`` columns (the same function, exactly: the kernel entries are only
    moved, and multiplied by 1 or 0):

    ``x (N, ..., W, C) -> (N, ..., W / b, b C)`` (a reshape, after padding ``W``),
    ``K[..., s, (v, c), (u, f)] = w[..., s b + v - u, c, f]`` (zero outside the window,
    ``s < S = ceil((b + f - 1) / b)``), then an im2col conv with window ``(..., S)`` and
    output ``(N, ..., Wo / b, b F) -> (N, ..., Wo, F)`` (a reshape).

    Each matmul row then covers ``b`` output pixels: ``K`` grows by ``S b / f`` (1.6x
    for ``f = 5, b = 4``) but the patch matrix shrinks and is copied in runs ``b``
    times longer, and the matmul gets ``b F`` output columns.
    """
    nd = x.ndim - 2
    fw, cin, cout = kernel.shape[nd - 1], kernel.shape[-2], kernel.shape[-1]
    lo, hi = pads[-1]
    wo = x.shape[-2] + lo + hi - fw + 1
    nblocks = -(-(b + fw - 1) // b)
    # The blocks cover (Wo / b + S - 1) b >= Wo + f - 1 input columns (S b >= b + f - 1):
    # pad the high side with the columns the last block reads beyond the window.
    width = (wo // b + nblocks - 1) * b
    x = jnp.pad(x, ((0, 0),) * nd + ((lo, width - x.shape[-2] - lo), (0, 0)))
    xb = x.reshape(x.shape[:-2] + (width // b, b * cin))
    select = np.zeros((nblocks, b, b, fw), np.float32)  # [s, v, u, k]: s b + v - u == k
    for blk, v, u in itertools.product(range(nblocks), range(b), range(b)):
        if 0 <= blk * b + v - u < fw:
            select[blk, v, u, blk * b + v - u] = 1
    kb = jnp.einsum("svuk,...kcf->...svcuf", jnp.asarray(select, kernel.dtype), kernel)
    kb = kb.reshape(kernel.shape[:nd - 1] + (nblocks, b * cin, b * cout))
    yb = _conv_im2col(xb, kb, tuple(stride[:-1]) + (1,), tuple(tuple(p) for p in pads[:-1]) + ((0, 0),),
                      tuple(dilation[:-1]) + (1,))
    return yb.reshape(yb.shape[:-2] + (wo, cout))


def _conv_matmul(x, kernel, stride, pads, dilation, groups):
    """``conv`` as matmuls; the same function as ``_conv_xla``."""
    nd = x.ndim - 2
    window = kernel.shape[:nd]
    cin, cout = x.shape[-1], kernel.shape[-1]
    if all(f == 1 for f in window) and not any(map(any, pads)) and groups == 1:
        if any(s > 1 for s in stride):  # strided 1x1: subsample, then a plain dot
            x = x[(slice(None),) + tuple(slice(None, None, s) for s in stride) + (slice(None),)]
        return lax.dot_general(x, kernel.reshape(cin, cout), (((x.ndim - 1,), (0,)), ((), ())))
    if groups == 1:
        b = _column_block(x, kernel, stride, pads, dilation, groups)
        if b > 1:
            return _conv_column_blocks(x, kernel, b, stride, pads, dilation)
        return _conv_im2col(x, kernel, tuple(stride), tuple(tuple(p) for p in pads), tuple(dilation))
    out = conv_output_shape(x.shape[1:-1], window, stride, pads, dilation)
    xp = jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),)) if any(map(any, pads)) else x
    views = _shifted_views(xp, window, stride, dilation, out)
    p = len(views)
    cg, fg = cin // groups, cout // groups
    k = kernel.reshape(p, cg, groups, fg)
    if cg == 1:  # depthwise: a weighted sum of the views, no matmul
        y = None
        for i, v in enumerate(views):
            term = v.reshape(v.shape + (1,)) * k[i, 0].reshape((1,) * (nd + 1) + (groups, fg))
            y = term if y is None else y + term
        return y.reshape(y.shape[:-2] + (cout,))
    patches = jnp.stack(views, axis=-2)  # (N, *out, P, C)
    patches = patches.reshape(patches.shape[:-1] + (groups, cg))  # (N, *out, P, G, Cg)
    y = jnp.einsum("...pgc,pcgf->...gf", patches, k)
    return y.reshape(y.shape[:-2] + (cout,))


def _conv_xla(x, kernel, stride, pads, dilation, groups):
    nd = x.ndim - 2
    if groups == 1 and jax.default_backend() == "cpu":
        return _conv_canonical(x, kernel, tuple(stride), tuple(tuple(p) for p in pads), tuple(dilation),
                               (1,) * nd)
    return lax.conv_general_dilated(x, kernel, window_strides=stride, padding=pads,
                                    rhs_dilation=dilation, dimension_numbers=_LAYOUTS[nd],
                                    feature_group_count=groups)


def _canonical_specs(nd):
    """Dimension numbers of the two tangent convs of :func:`_conv_canonical`."""
    space, window = tuple(range(1, nd + 1)), tuple(range(nd))
    # dx (N, *S, C) with the kernel stored (*W, F, C): in = axis nd + 1, out = axis nd
    input_term = lax.ConvDimensionNumbers((0, nd + 1) + space, (nd, nd + 1) + window, (0, nd + 1) + space)
    # x stored (C, *S, N) with dK stored (C, *W, F), giving (*O, N, F)
    kernel_term = lax.ConvDimensionNumbers((nd + 1, 0) + space, (nd + 1, 0) + space, (nd, nd + 1) + window)
    return input_term, kernel_term


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5))
def _conv_canonical(x, kernel, stride, pads, dilation, lhs_dilation):
    """XLA's convolution (groups = 1) whose reverse-mode convolutions are written in the
    one layout XLA:CPU runs on its conv library (Eigen / YNNPACK), inside loops too.

    The forward is ``lax.conv_general_dilated`` in ``(N, *S, C) x (*W, C, F)``, the
    layout XLA:CPU calls "canonical". JAX's own transposes of it are convolutions in
    other layouts (the weight gradient contracts over the batch: ``f01b_i01o->01bf``;
    the input gradient reads the kernel as ``01oi``). XLA:CPU rewrites such convs into
    the canonical layout (explicit transposes around them) only in the entry
    computation of a program; inside a ``lax.scan`` or ``while`` body they stay as they
    are and are emitted as a naive loop nest: a train step ran 13-150x slower per step
    inside a scan than outside (``benchmarks/bench_conv.py --scan``,
    ``benchmarks/RESULTS.md``). The tangent

    ``dy = conv(dx, K) + conv(x, dK)``

    is therefore written with the kernel stored ``(*W, F, C)`` in the first term, and
    ``x`` stored ``(C, *S, N)``, ``dK`` stored ``(C, *W, F)`` and the output
    ``(*O, N, F)`` in the second (the transposes behind ``lax.optimization_barrier``
    so that XLA does not fold them back), so that JAX's transpose of it (reverse mode)
    is the two canonical convolutions XLA:CPU would have built in the entry
    computation: ``dx = conv(pad(dy), flip(K)^T)`` and
    ``dK = conv(x^T, dy^T)^T`` with ``x^T`` as ``C`` images of ``N`` channels. The
    tangent is plain JAX, so every transform applies (forward mode, any order, vmap).
    """
    nd = x.ndim - 2
    return lax.conv_general_dilated(x, kernel, stride, pads, lhs_dilation, dilation, _LAYOUTS[nd])


def _conv_canonical_jvp(stride, pads, dilation, lhs_dilation, primals, tangents):
    x, kernel = primals
    dx, dkernel = tangents
    nd = x.ndim - 2
    y = lax.conv_general_dilated(x, kernel, stride, pads, lhs_dilation, dilation, _LAYOUTS[nd])
    input_term, kernel_term = _canonical_specs(nd)
    window = tuple(range(nd))
    dy = None
    if not isinstance(dx, SymbolicZero):
        kernel_t = lax.optimization_barrier(jnp.transpose(kernel, window + (nd + 1, nd)))   # (*W, F, C)
        dy = lax.conv_general_dilated(dx, kernel_t, stride, pads, lhs_dilation, dilation, input_term)
    if not isinstance(dkernel, SymbolicZero):
        x_t = jnp.transpose(x, (nd + 1,) + tuple(range(1, nd + 1)) + (0,))
        k_pads, k_dilation = pads, lhs_dilation
        if any(d > 1 for d in lhs_dilation) or math.prod(y.shape[1:-1]) > math.prod(x.shape[1:-1]):
            # XLA swaps the operands of a conv whose window (here dy, of the output's size)
            # is larger than its input, into another layout: give it the padded, dilated
            # input instead, which is at least as large as the output
            config = [(lo, hi, d - 1) for (lo, hi), d in zip(pads, lhs_dilation)]
            x_t = lax.pad(x_t, jnp.zeros((), x.dtype), [(0, 0, 0)] + config + [(0, 0, 0)])
            k_pads, k_dilation = ((0, 0),) * nd, (1,) * nd
        x_t = lax.optimization_barrier(x_t)
        dkernel_t = lax.optimization_barrier(jnp.transpose(dkernel, (nd,) + window + (nd + 1,)))
        term = lax.conv_general_dilated(x_t, dkernel_t, stride, k_pads, k_dilation, dilation, kernel_term)
        # (*O, N, F) -> (N, *O, F)
        term = jnp.transpose(lax.optimization_barrier(term), (nd,) + window + (nd + 1,))
        dy = term if dy is None else dy + term
    return y, dy  # not None: JAX calls the rule only with a nonzero tangent


_conv_canonical.defjvp(_conv_canonical_jvp, symbolic_zeros=True)


# ---------------------------------------------------------------------------
# Public kernels

def conv(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None, *, stride=1,
         padding="VALID", dilation=1, groups: int = 1, impl: str = "auto") -> jax.Array:
    """N-D convolution (cross-correlation, as in every DL library), channels last.

    ``y[n, o, f] = b[f] + sum_{k, c} x_pad[n, s o + d k, g(f) Cg + c] w[k, c, f]``

    over window offsets ``k`` and the ``Cg = C / groups`` input channels of the group
    ``g(f)`` of output channel ``f``.

    Args:
      x: ``(N, *spatial, C)`` with 1, 2 or 3 spatial axes.
      kernel: ``(*window, C / groups, F)``.
      bias: ``(F,)`` or None.
      stride: int or one per spatial axis.
      padding: ``"VALID"``, ``"SAME"``, ``"FULL"``, an int, or per-axis ints or
        ``(low, high)`` pairs.
      dilation: int or one per spatial axis (spacing of the kernel taps).
      groups: split channels into ``groups`` independent convolutions; both ``C`` and
        ``F`` must be divisible by it (``groups = C`` is a depthwise convolution).
      impl: the lowering, ``"auto"`` (per backend and shape, see
        :mod:`fnnet.functional._lowering`), ``"xla"`` or ``"matmul"``.

    Returns:
      ``(N, *out, F)`` with ``out = floor((n + p_lo + p_hi - d (f - 1) - 1) / s) + 1``.
    """
    name = "conv"
    nd = _check_input(name, x, kernel)
    window = tuple(kernel.shape[:nd])
    stride = _tuple(name, "stride", stride, nd)
    dilation = _tuple(name, "dilation", dilation, nd)
    groups = as_int(name, "groups", groups, minimum=1)
    cin, cout = x.shape[-1], kernel.shape[-1]
    if cin % groups:
        raise ValueError(f"{name}: input channels {cin} are not divisible by groups={groups}")
    if cout % groups:
        raise ValueError(f"{name}: output channels {cout} (kernel {kernel.shape}) are not "
                         f"divisible by groups={groups}")
    if kernel.shape[-2] != cin // groups:
        raise ValueError(f"{name}: kernel {kernel.shape} expects {kernel.shape[-2]} input channels "
                         f"per group, but the input {x.shape} has {cin} channels in {groups} "
                         f"group(s), i.e. {cin // groups} per group")
    pads = _pads(name, padding, x.shape[1:-1], window, stride, dilation)
    _check_fits(name, x.shape[1:-1], window, pads, dilation)
    kernel = kernel.astype(jnp.result_type(x, kernel))
    x = x.astype(kernel.dtype)
    out_pixels = math.prod(conv_output_shape(x.shape[1:-1], window, stride, pads, dilation))
    if resolve(name, impl, _cpu_choice(x, kernel, groups, out_pixels)) == "matmul":
        y = _conv_matmul(x, kernel, stride, pads, dilation, groups)
    else:
        y = _conv_xla(x, kernel, stride, pads, dilation, groups)
    return bias_add(name, y, bias)


def _fixed_rank(nd: int):
    def fn(x, kernel, bias=None, *, stride=1, padding="VALID", dilation=1, groups=1, impl="auto"):
        if x.ndim != nd + 2:
            raise ValueError(f"conv{nd}d: expected input of rank {nd + 2} "
                             f"({_LAYOUTS[nd][0]}), got shape {x.shape}")
        return conv(x, kernel, bias, stride=stride, padding=padding, dilation=dilation,
                    groups=groups, impl=impl)
    fn.__name__ = f"conv{nd}d"
    fn.__doc__ = f"{nd}-D :func:`conv`: input ``{_LAYOUTS[nd][0]}``, kernel ``{_LAYOUTS[nd][1]}``."
    return fn


conv1d, conv2d, conv3d = _fixed_rank(1), _fixed_rank(2), _fixed_rank(3)


def conv_transpose(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None, *,
                   stride=1, padding="VALID", dilation=1, impl: str = "auto") -> jax.Array:
    """Transposed convolution: the gradient of :func:`conv` with respect to its input.

    With the same ``stride``, ``padding`` and ``dilation`` as the forward ``conv`` it
    transposes (PyTorch's ``ConvTranspose`` semantics), the output size is

        n_out = (n - 1) s - p_lo - p_hi + d (f - 1) + 1

    ``conv_transpose(y, w)`` equals ``vjp(lambda x: conv(x, w'), x)(y)`` where ``w'`` is
    ``w`` with its last two axes swapped. ``padding="SAME"`` gives ``n_out = n s``.

    Args:
      x: ``(N, *spatial, C)``.
      kernel: ``(*window, C, F)`` (in, out), i.e. PyTorch's ``(C, F, *window)`` moved.
      bias: ``(F,)`` or None.
      stride, dilation: int or one per spatial axis.
      padding: the forward conv's padding: ``"VALID"``, ``"SAME"``, ``"FULL"``, an int,
        or per-axis ints or ``(low, high)`` pairs.
      impl: the lowering, see :func:`conv`.

    Returns:
      ``(N, *out, F)``.
    """
    name = "conv_transpose"
    nd = _check_input(name, x, kernel)
    window = tuple(kernel.shape[:nd])
    stride = _tuple(name, "stride", stride, nd)
    dilation = _tuple(name, "dilation", dilation, nd)
    if kernel.shape[-2] != x.shape[-1]:
        raise ValueError(f"{name}: kernel {kernel.shape} expects {kernel.shape[-2]} input channels, "
                         f"got input {x.shape} with {x.shape[-1]}")
    eff = [d * (f - 1) + 1 for f, d in zip(window, dilation)]
    if isinstance(padding, str) and padding.upper() == "SAME":
        # Forward pads whose transpose has output n * s (the high side takes the extra one).
        totals = [e - s for e, s in zip(eff, stride)]
        pads = tuple((t // 2, t - t // 2) if t >= 0 else (0, t) for t in totals)
    elif isinstance(padding, str) and padding.upper() == "FULL":
        pads = tuple((e - 1, e - 1) for e in eff)
    else:
        pads = _pads(name, padding, x.shape[1:-1], window, stride, dilation)
    out = [(n - 1) * s - lo - hi + e for n, s, (lo, hi), e in zip(x.shape[1:-1], stride, pads, eff)]
    if any(o < 1 for o in out):
        raise ValueError(f"{name}: padding {pads} removes the whole output: input {x.shape[1:-1]}, "
                         f"window {window}, stride {stride}, dilation {dilation} give size {out}")
    kernel = kernel.astype(jnp.result_type(x, kernel))
    x = x.astype(kernel.dtype)
    # Dilate the input by the stride, pad by d (f - 1) - p (negative trims), then a
    # stride-1 conv with the spatially flipped kernel.
    tpads = [(e - 1 - lo, e - 1 - hi) for e, (lo, hi) in zip(eff, pads)]
    flipped = lax.rev(kernel, tuple(range(nd)))
    if resolve(name, impl, _cpu_choice(x, kernel, 1, math.prod(out))) == "xla":
        if jax.default_backend() == "cpu":  # reverse mode in XLA:CPU's conv layout (_conv_canonical)
            y = _conv_canonical(x, flipped, (1,) * nd, tuple(tuple(p) for p in tpads), tuple(dilation),
                                tuple(stride))
        else:
            y = lax.conv_general_dilated(x, flipped, window_strides=(1,) * nd, padding=tpads,
                                         lhs_dilation=stride, rhs_dilation=dilation,
                                         dimension_numbers=_LAYOUTS[nd])
    else:
        xd = lax.pad(x, jnp.zeros((), x.dtype),
                     [(0, 0, 0)] + [(lo, hi, s - 1) for (lo, hi), s in zip(tpads, stride)]
                     + [(0, 0, 0)])
        y = _conv_matmul(xd, flipped, (1,) * nd, ((0, 0),) * nd, dilation, 1)
    return bias_add(name, y, bias)


def depthwise_conv(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None, *,
                   stride=1, padding="VALID", dilation=1, impl: str = "auto") -> jax.Array:
    """Depthwise convolution: each input channel convolved with its own filters.

    ``conv`` with ``groups = C``. With a depth multiplier ``M`` the kernel is
    ``(*window, 1, C M)`` and output channel ``c M + m`` comes from input channel ``c``.

    Args:
      x: ``(N, *spatial, C)``.
      kernel: ``(*window, 1, C * M)``.
      bias: ``(C * M,)`` or None.
      stride, padding, dilation, impl: as in :func:`conv`.
    """
    name = "depthwise_conv"
    _check_input(name, x, kernel)
    c = x.shape[-1]
    if kernel.shape[-2] != 1 or kernel.shape[-1] % c:
        raise ValueError(f"{name}: expected kernel (*window, 1, {c} * depth_multiplier) for an input "
                         f"with {c} channels, got kernel {kernel.shape}")
    return conv(x, kernel, bias, stride=stride, padding=padding, dilation=dilation, groups=c,
                impl=impl)


def separable_conv(x: jax.Array, depthwise_kernel: jax.Array, pointwise_kernel: jax.Array,
                   bias: jax.Array | None = None, *, stride=1, padding="VALID", dilation=1,
                   impl: str = "auto") -> jax.Array:
    """Depthwise separable convolution (Chollet, 2017; MobileNet): a depthwise conv
    followed by a 1x1 conv.

    ``y = conv(depthwise_conv(x, w_d), w_p) + b``

    Args:
      x: ``(N, *spatial, C)``.
      depthwise_kernel: ``(*window, 1, C M)``.
      pointwise_kernel: ``(*1, C M, F)``: ones for the window axes, or ``(C M, F)``.
      bias: ``(F,)`` or None.
      stride, padding, dilation, impl: of the depthwise step, as in :func:`conv`.
    """
    name = "separable_conv"
    nd = _check_input(name, x, depthwise_kernel)
    if pointwise_kernel.ndim == 2:
        pointwise_kernel = pointwise_kernel.reshape((1,) * nd + pointwise_kernel.shape)
    if pointwise_kernel.ndim != nd + 2 or pointwise_kernel.shape[:nd] != (1,) * nd:
        raise ValueError(f"{name}: expected a pointwise kernel (in, out) or ({'1, ' * nd}in, out), "
                         f"got {pointwise_kernel.shape}")
    h = depthwise_conv(x, depthwise_kernel, stride=stride, padding=padding, dilation=dilation,
                       impl=impl)
    if pointwise_kernel.shape[-2] != h.shape[-1]:
        raise ValueError(f"{name}: pointwise kernel {pointwise_kernel.shape} expects "
                         f"{pointwise_kernel.shape[-2]} input channels, the depthwise step gives "
                         f"{h.shape[-1]}")
    return conv(h, pointwise_kernel, bias, impl=impl)


def spatially_separable_conv(x: jax.Array, kernel_v: jax.Array, kernel_h: jax.Array,
                             bias: jax.Array | None = None, *, stride=1, padding="VALID",
                             dilation=1, impl: str = "auto") -> jax.Array:
    """A 2-D ``n x n`` convolution factored into ``n x 1`` then ``1 x n`` (Inception v3).

    ``y = conv(conv(x, w_v), w_h) + b``: the same as ``conv`` with the kernel
    ``w[i, j, c, f] = sum_m w_v[i, 0, c, m] w_h[0, j, m, f]`` (rank ``M``), computed
    with ``n (C M + M F)`` instead of ``n^2 C F`` multiplies per pixel.

    Args:
      x: ``(N, H, W, C)``.
      kernel_v: ``(n, 1, C, M)``, the vertical (height) factor.
      kernel_h: ``(1, n', M, F)``, the horizontal (width) factor.
      bias: ``(F,)`` or None.
      stride, padding, dilation: of the equivalent ``n x n'`` conv, as in :func:`conv`.
    """
    name = "spatially_separable_conv"
    _check_input(name, x, kernel_v)
    if x.ndim != 4:
        raise ValueError(f"{name}: expected input (N, H, W, C), got shape {x.shape}")
    if kernel_v.shape[1] != 1 or kernel_h.ndim != 4 or kernel_h.shape[0] != 1:
        raise ValueError(f"{name}: expected kernels (n, 1, C, M) and (1, n, M, F), got "
                         f"{kernel_v.shape} and {kernel_h.shape}")
    stride = _tuple(name, "stride", stride, 2)
    dilation = _tuple(name, "dilation", dilation, 2)
    window = (kernel_v.shape[0], kernel_h.shape[1])
    pads = _pads(name, padding, x.shape[1:3], window, stride, dilation)
    h = conv(x, kernel_v, stride=(stride[0], 1), padding=(pads[0], (0, 0)),
             dilation=(dilation[0], 1), impl=impl)
    return conv(h, kernel_h, bias, stride=(1, stride[1]), padding=((0, 0), pads[1]),
                dilation=(1, dilation[1]), impl=impl)
