"""Pooling and upsampling kernels for 1-, 2- and 3-D inputs, channels last.

Inputs are ``(N, *spatial, C)``; the spatial rank comes from the input. A window
slides with ``stride`` (default: the window, non-overlapping) over the padded input;
the output size per axis is ``floor((n + p_lo + p_hi - f) / s) + 1``.

Two lowerings (see :mod:`fnnet.functional._lowering`): ``lax.reduce_window``
(GPU/TPU), and on CPU a reshape + reduction for non-overlapping windows or an
elementwise chain over the shifted views otherwise. Both compute the same values.

Imports: jax only.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnnet.functional._checks import as_ints, check_floating
from fnnet.functional._lowering import resolve
from fnnet.functional.conv import _pads, _shifted_views, _tuple, conv_output_shape

__all__ = ["max_pool", "avg_pool", "lp_pool", "global_avg_pool", "global_max_pool", "upsample"]


def _prepare(name, x, window, stride, padding):
    check_floating(name, "input x", x)
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"{name}: expected input (N, *spatial, C) with 1, 2 or 3 spatial axes "
                         f"(rank 3, 4 or 5), got shape {x.shape}")
    nd = x.ndim - 2
    window = as_ints(name, "window", window, minimum=1)   # NumPy integers welcome
    stride = None if stride is None else as_ints(name, "stride", stride, minimum=1)
    if not isinstance(window, int) and len(tuple(window)) != nd:
        raise ValueError(f"{name}: window {tuple(window)} has {len(tuple(window))} axes, the input "
                         f"{x.shape} has {nd} spatial axes")
    window = _tuple(name, "window", window, nd)
    stride = window if stride is None else _tuple(name, "stride", stride, nd)
    pads = _pads(name, padding, x.shape[1:-1], window, stride, (1,) * nd)
    for axis, (n, f, (lo, hi)) in enumerate(zip(x.shape[1:-1], window, pads)):
        if f > n + lo + hi:
            raise ValueError(f"{name}: window {f} is larger than the padded input along spatial "
                             f"axis {axis}: {n} + {lo} + {hi} = {n + lo + hi}")
    return nd, window, stride, pads


def _pool(name, x, window, stride, pads, init, op, reduce, impl):
    """Reduce every window with ``op``/``reduce`` (lax op and jnp reduction) after
    padding with ``init``."""
    nd = x.ndim - 2
    out = conv_output_shape(x.shape[1:-1], window, stride, pads, (1,) * nd)
    # On CPU the reshape form of non-overlapping windows beats reduce_window (and its
    # select-and-scatter gradient) several times, and so does the elementwise chain over
    # shifted views for overlapping ones: max pool 3 / 2 (ResNet's stem, AlexNet) was
    # 4.0-8.8x faster forward and 5.3-12.7x with its gradient, 3 / 1 (GoogLeNet) 7.7x
    # forward and even (0.92) with its gradient (benchmarks/RESULTS.md).
    if resolve(name, impl, "matmul") == "xla":
        # A NumPy scalar init keeps the reducer a known monoid (differentiable) under jit.
        return lax.reduce_window(x, np.array(init, x.dtype), op, (1,) + window + (1,),
                                 (1,) + stride + (1,), ((0, 0),) + pads + ((0, 0),))
    if any(map(any, pads)):
        x = lax.pad(x, np.array(init, x.dtype),
                    [(0, 0, 0)] + [(lo, hi, 0) for lo, hi in pads] + [(0, 0, 0)])
    if window == stride:
        # Non-overlapping: crop the remainder, split each axis into (out, f), reduce.
        x = x[(slice(None),) + tuple(slice(0, m * f) for m, f in zip(out, window)) + (slice(None),)]
        shape = (x.shape[0],) + tuple(d for m, f in zip(out, window) for d in (m, f)) + (x.shape[-1],)
        return reduce(x.reshape(shape), axis=tuple(range(2, 2 * nd + 1, 2)))
    # Overlapping: an elementwise chain over the shifted views (one fused loop).
    views = _shifted_views(x, window, stride, (1,) * nd, out)
    y = views[0]
    for v in views[1:]:
        y = op(y, v)
    return y


def max_pool(x: jax.Array, window, stride=None, padding="VALID", *, impl: str = "auto"):
    """Max pooling: ``y[n, o, c] = max_k x_pad[n, s o + k, c]``, padding with ``-inf``.

    Args:
      x: ``(N, *spatial, C)`` with 1, 2 or 3 spatial axes.
      window: int or one per spatial axis.
      stride: int or one per spatial axis; None means the window.
      padding: ``"VALID"``, ``"SAME"``, ``"FULL"``, an int, or per-axis ``(low, high)``.
      impl: the lowering, ``"auto"``, ``"xla"`` or ``"matmul"`` (see
        :mod:`fnnet.functional._lowering`).
    """
    _, window, stride, pads = _prepare("max_pool", x, window, stride, padding)
    return _pool("max_pool", x, window, stride, pads, -jnp.inf, lax.max, jnp.max, impl)


def avg_pool(x: jax.Array, window, stride=None, padding="VALID", *,
             count_include_pad: bool = True, impl: str = "auto"):
    """Average pooling: ``y[n, o, c] = (1 / |K|) sum_k x_pad[n, s o + k, c]``.

    Args:
      x, window, stride, padding, impl: as in :func:`max_pool` (zero padding).
      count_include_pad: divide by the full window size ``|K|`` (PyTorch's default);
        False divides by the number of non-padding entries in each window.
    """
    _, window, stride, pads = _prepare("avg_pool", x, window, stride, padding)
    total = _pool("avg_pool", x, window, stride, pads, 0.0, lax.add, jnp.sum, impl)
    if count_include_pad or not any(map(any, pads)):
        return total / math.prod(window)
    ones = jnp.ones((1,) + x.shape[1:-1] + (1,), x.dtype)
    counts = _pool("avg_pool", ones, window, stride, pads, 0.0, lax.add, jnp.sum, impl)
    return total / counts


def lp_pool(x: jax.Array, window, stride=None, padding="VALID", *, p: float = 2.0,
            impl: str = "auto"):
    """Power-average pooling (PyTorch's ``LPPool``): ``y = (sum_k x_pad^p)^(1/p)``.

    ``p = 2`` (the default) is L2 pooling; ``p -> inf`` approaches max pooling. As in
    PyTorch the gradient is undefined (NaN) where a window sums to zero.

    Args:
      x, window, stride, padding, impl: as in :func:`max_pool` (zero padding).
      p: the power, > 0.
    """
    if not p > 0:
        raise ValueError(f"lp_pool: expected a power p > 0, got {p}")
    _, window, stride, pads = _prepare("lp_pool", x, window, stride, padding)
    xp = x * x if p == 2 else x ** p
    total = _pool("lp_pool", xp, window, stride, pads, 0.0, lax.add, jnp.sum, impl)
    return jnp.sqrt(total) if p == 2 else total ** (1.0 / p)


def _spatial_axes(name, x):
    check_floating(name, "input x", x)
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"{name}: expected input (N, *spatial, C) with 1, 2 or 3 spatial axes, "
                         f"got shape {x.shape}")
    return tuple(range(1, x.ndim - 1))


def global_avg_pool(x: jax.Array) -> jax.Array:
    """Mean over all spatial axes: ``(N, *spatial, C) -> (N, C)``."""
    return jnp.mean(x, axis=_spatial_axes("global_avg_pool", x))


def global_max_pool(x: jax.Array) -> jax.Array:
    """Max over all spatial axes: ``(N, *spatial, C) -> (N, C)``."""
    return jnp.max(x, axis=_spatial_axes("global_max_pool", x))


def upsample(x: jax.Array, scale, method: str = "nearest") -> jax.Array:
    """Upsample the spatial axes by integer factors.

    ``"nearest"`` repeats each pixel ``scale`` times per axis. ``"bilinear"`` (also
    ``"linear"``, ``"trilinear"``) interpolates linearly with half-pixel centres,
    ``src = (dst + 1/2) / scale - 1/2`` clamped to the edges: PyTorch's
    ``Upsample(mode="bilinear", align_corners=False)``.

    Args:
      x: ``(N, *spatial, C)``.
      scale: positive int or one per spatial axis.
      method: ``"nearest"`` or ``"bilinear"``.

    Returns:
      ``(N, *(n * scale), C)``.
    """
    name = "upsample"
    axes = _spatial_axes(name, x)
    nd = len(axes)
    scale = _tuple(name, "scale", as_ints(name, "scale", scale, minimum=1), nd)
    spatial = x.shape[1:-1]
    if method == "nearest":
        # (N, n1, 1, n2, 1, C) -> broadcast (N, n1, s1, n2, s2, C) -> reshape.
        expanded = x.reshape((x.shape[0],) + tuple(d for n in spatial for d in (n, 1)) + x.shape[-1:])
        target = (x.shape[0],) + tuple(d for n, s in zip(spatial, scale) for d in (n, s)) + x.shape[-1:]
        y = jnp.broadcast_to(expanded, target)
        return y.reshape((x.shape[0],) + tuple(n * s for n, s in zip(spatial, scale)) + x.shape[-1:])
    if method in ("bilinear", "linear", "trilinear"):
        shape = (x.shape[0],) + tuple(n * s for n, s in zip(spatial, scale)) + x.shape[-1:]
        return jax.image.resize(x, shape, method="linear", antialias=False)
    raise ValueError(f"{name}: expected method 'nearest' or 'bilinear', got {method!r}")
