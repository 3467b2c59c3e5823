"""Convolution, pooling and upsampling layers as Modules (channels last).

Layers with settings are constructors (``conv(32, 3)``, ``max_pool(2)``);
``global_avg_pool`` and ``global_max_pool`` are Module instances. Kernels start
from He normal, ``N(0, 2 / fan_in)`` with ``fan_in = prod(window) * in``, biases
from zeros. The spatial rank (1-, 2- or 3-D) comes from the window's length, or
from the input when the window is an int.

Imports: fnnet.functional, fnnet.init.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet import functional as F
from fnnet import init as initializers
from fnnet.functional._checks import as_int, as_ints
from fnnet.functional._lowering import check_impl
from fnnet.nn.module import Module, spec_of, stateless

__all__ = ["conv", "conv_transpose", "depthwise_conv", "separable_conv", "max_pool", "avg_pool",
           "lp_pool", "global_avg_pool", "global_max_pool", "upsample"]


def _named(name: str, error: ValueError) -> ValueError:
    """A kernel's shape error, prefixed with the layer's name unless it already starts
    with it; any other error passes through unchanged."""
    msg = str(error)
    kernel = msg.split(":", 1)[0]
    if kernel not in _KERNELS or msg.startswith(f"{name}:"):
        return error
    return ValueError(f"{name}: {msg}")


_KERNELS = {"conv", "conv_transpose", "depthwise_conv", "separable_conv", "max_pool", "avg_pool",
            "lp_pool", "upsample"}


def _positive(name: str, what: str, value) -> int:
    """A positive int (Python or NumPy integer) as a Python int."""
    return as_int(name, what, value, minimum=1)


def _window(name: str, window, spec) -> tuple[int, ...]:
    """The window as a tuple matching the input's spatial rank."""
    if len(spec.shape) not in (3, 4, 5):
        raise ValueError(f"{name}: expected input (N, *spatial, C) with 1, 2 or 3 spatial axes "
                         f"(rank 3, 4 or 5), got shape {tuple(spec.shape)}")
    nd = len(spec.shape) - 2
    if isinstance(window, int):
        return (window,) * nd
    window = tuple(window)
    if len(window) != nd:
        raise ValueError(f"{name}: window {window} has {len(window)} axes, the input "
                         f"{tuple(spec.shape)} has {nd} spatial axes")
    return window


def _check_window_arg(name, window):
    """The window as a Python int or a tuple of 1-3 Python ints (NumPy integers accepted)."""
    window = as_ints(name, "window", window, minimum=1)
    if not isinstance(window, int) and not 1 <= len(window) <= 3:
        raise ValueError(f"{name}: expected a window as a positive int or 1-3 positive ints, "
                         f"got {window!r}")
    return window


def _weighted(name, kernel_shape_fn, forward, use_bias, kernel_init, bias_init, dtype,
              bias_size) -> Module:
    """A Module with params ``kernel`` (shape from the input spec) and optional ``bias``."""
    kernel_init = kernel_init or initializers.he_normal()
    bias_init = bias_init or initializers.zeros()

    def init(key, x):
        spec = spec_of(x)
        shape = kernel_shape_fn(spec)
        params = {"kernel": kernel_init(jax.random.fold_in(key, 0), shape, dtype)}
        if use_bias:
            params["bias"] = bias_init(jax.random.fold_in(key, 1), (bias_size(shape),), dtype)
        # Run the shape checks of the kernel now, at no compute cost.
        jax.eval_shape(lambda p, v: forward(p, v), params, spec)
        return params, {}

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        return forward(params, x), state

    return Module(init, apply, name)


def conv(features: int, window, *, stride=1, padding="VALID", dilation=1, groups: int = 1,
         use_bias: bool = True, kernel_init: initializers.Initializer | None = None,
         bias_init: initializers.Initializer | None = None, dtype=jnp.float32,
         impl: str = "auto", name: str = "conv") -> Module:
    """Convolution layer: ``y = conv(x, W) + b`` (see :func:`fnnet.functional.conv`).

    Params: ``kernel (*window, in / groups, features)``, He normal by default;
    ``bias (features,)``, zeros, when ``use_bias``.

    Args:
      features: output channels F.
      window: int (square/cubic, rank from the input) or 1-3 ints (1-, 2-, 3-D).
      stride, padding, dilation, groups: as in :func:`fnnet.functional.conv`.
      impl: the lowering, ``"auto"``, ``"xla"`` or ``"matmul"``, a static field of the
        layer (see :mod:`fnnet.functional._lowering`).
    """
    features, groups = _positive(name, "features", features), _positive(name, "groups", groups)
    window = _check_window_arg(name, window)
    stride, dilation = as_ints(name, "stride", stride), as_ints(name, "dilation", dilation)
    check_impl(name, impl)

    def kernel_shape(spec):
        w = _window(name, window, spec)
        cin = spec.shape[-1]
        if cin % groups:
            raise ValueError(f"{name}: input channels {cin} are not divisible by groups={groups}")
        if features % groups:
            raise ValueError(f"{name}: features {features} are not divisible by groups={groups}")
        return w + (cin // groups, features)

    def forward(params, x):
        try:
            return F.conv(x, params["kernel"], params.get("bias"), stride=stride, padding=padding,
                          dilation=dilation, groups=groups, impl=impl)
        except ValueError as e:
            raise _named(name, e) from None

    return _weighted(name, kernel_shape, forward, use_bias, kernel_init, bias_init, dtype,
                     lambda s: s[-1])


def conv_transpose(features: int, window, *, stride=1, padding="VALID", dilation=1,
                   use_bias: bool = True, kernel_init: initializers.Initializer | None = None,
                   bias_init: initializers.Initializer | None = None, dtype=jnp.float32,
                   impl: str = "auto", name: str = "conv_transpose") -> Module:
    """Transposed convolution layer (PyTorch's ``ConvTranspose``), see
    :func:`fnnet.functional.conv_transpose`. Output size per axis:
    ``(n - 1) s - p_lo - p_hi + d (f - 1) + 1``.

    Params: ``kernel (*window, in, features)``, He normal by default (fan_in
    ``prod(window) * in``); ``bias (features,)``.
    """
    features = _positive(name, "features", features)
    window = _check_window_arg(name, window)
    stride, dilation = as_ints(name, "stride", stride), as_ints(name, "dilation", dilation)
    check_impl(name, impl)

    def kernel_shape(spec):
        return _window(name, window, spec) + (spec.shape[-1], features)

    def forward(params, x):
        try:
            return F.conv_transpose(x, params["kernel"], params.get("bias"), stride=stride,
                                    padding=padding, dilation=dilation, impl=impl)
        except ValueError as e:
            raise _named(name, e) from None

    return _weighted(name, kernel_shape, forward, use_bias, kernel_init, bias_init, dtype,
                     lambda s: s[-1])


def depthwise_conv(window, *, depth_multiplier: int = 1, stride=1, padding="VALID", dilation=1,
                   use_bias: bool = True, kernel_init: initializers.Initializer | None = None,
                   bias_init: initializers.Initializer | None = None, dtype=jnp.float32,
                   impl: str = "auto", name: str = "depthwise_conv") -> Module:
    """Depthwise convolution layer: each of the C input channels convolved with its own
    ``depth_multiplier`` filters (see :func:`fnnet.functional.depthwise_conv`).

    Params: ``kernel (*window, 1, C * depth_multiplier)`` (He normal, fan_in
    ``prod(window)``), ``bias (C * depth_multiplier,)``.
    """
    depth_multiplier = _positive(name, "depth_multiplier", depth_multiplier)
    window = _check_window_arg(name, window)
    stride, dilation = as_ints(name, "stride", stride), as_ints(name, "dilation", dilation)
    check_impl(name, impl)

    def kernel_shape(spec):
        return _window(name, window, spec) + (1, spec.shape[-1] * depth_multiplier)

    def forward(params, x):
        try:
            return F.depthwise_conv(x, params["kernel"], params.get("bias"), stride=stride,
                                    padding=padding, dilation=dilation, impl=impl)
        except ValueError as e:
            raise _named(name, e) from None

    return _weighted(name, kernel_shape, forward, use_bias, kernel_init, bias_init, dtype,
                     lambda s: s[-1])


def separable_conv(features: int, window, *, depth_multiplier: int = 1, stride=1,
                   padding="VALID", dilation=1, use_bias: bool = True,
                   kernel_init: initializers.Initializer | None = None,
                   bias_init: initializers.Initializer | None = None, dtype=jnp.float32,
                   impl: str = "auto", name: str = "separable_conv") -> Module:
    """Depthwise separable convolution layer (MobileNet, Xception): depthwise conv then
    1x1 conv (see :func:`fnnet.functional.separable_conv`).

    Params: ``depthwise_kernel (*window, 1, C M)``, ``pointwise_kernel (*1, C M,
    features)`` (both He normal), ``bias (features,)``.
    """
    features = _positive(name, "features", features)
    depth_multiplier = _positive(name, "depth_multiplier", depth_multiplier)
    window = _check_window_arg(name, window)
    stride, dilation = as_ints(name, "stride", stride), as_ints(name, "dilation", dilation)
    check_impl(name, impl)
    kernel_init = kernel_init or initializers.he_normal()
    bias_init = bias_init or initializers.zeros()

    def forward(params, x):
        try:
            return F.separable_conv(x, params["depthwise_kernel"], params["pointwise_kernel"],
                                    params.get("bias"), stride=stride, padding=padding,
                                    dilation=dilation, impl=impl)
        except ValueError as e:
            raise _named(name, e) from None

    def init(key, x):
        spec = spec_of(x)
        w = _window(name, window, spec)
        cm = spec.shape[-1] * depth_multiplier
        params = {
            "depthwise_kernel": kernel_init(jax.random.fold_in(key, 0), w + (1, cm), dtype),
            "pointwise_kernel": kernel_init(jax.random.fold_in(key, 1),
                                            (1,) * len(w) + (cm, features), dtype),
        }
        if use_bias:
            params["bias"] = bias_init(jax.random.fold_in(key, 2), (features,), dtype)
        jax.eval_shape(forward, params, spec)
        return params, {}

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        return forward(params, x), state

    return Module(init, apply, name)


def _pool_module(fn, name, window, stride, padding, **kwargs) -> Module:
    window = _check_window_arg(name, window)
    stride = None if stride is None else as_ints(name, "stride", stride, minimum=1)
    check_impl(name, kwargs["impl"])

    def apply_fn(x):
        try:
            return fn(x, window, stride, padding, **kwargs)
        except ValueError as e:
            raise _named(name, e) from None

    module = stateless(apply_fn, name)

    def init(key, x):
        spec = spec_of(x)
        jax.eval_shape(apply_fn, spec)  # shape errors at init time
        return module.init(key, x)

    return Module(init, module.apply, name)


def max_pool(window, stride=None, padding="VALID", *, impl: str = "auto") -> Module:
    """Max pooling layer (see :func:`fnnet.functional.max_pool`); stride defaults to the window."""
    return _pool_module(F.max_pool, "max_pool", window, stride, padding, impl=impl)


def avg_pool(window, stride=None, padding="VALID", *, count_include_pad: bool = True,
             impl: str = "auto") -> Module:
    """Average pooling layer (see :func:`fnnet.functional.avg_pool`); stride defaults to the window."""
    return _pool_module(F.avg_pool, "avg_pool", window, stride, padding,
                        count_include_pad=count_include_pad, impl=impl)


def lp_pool(window, stride=None, padding="VALID", *, p: float = 2.0, impl: str = "auto") -> Module:
    """Power-average (L2 by default) pooling layer (see :func:`fnnet.functional.lp_pool`)."""
    return _pool_module(F.lp_pool, "lp_pool", window, stride, padding, p=p, impl=impl)


global_avg_pool = stateless(F.global_avg_pool, "global_avg_pool")
"""Mean over the spatial axes: ``(N, *spatial, C) -> (N, C)``."""

global_max_pool = stateless(F.global_max_pool, "global_max_pool")
"""Max over the spatial axes: ``(N, *spatial, C) -> (N, C)``."""


def upsample(scale, method: str = "nearest") -> Module:
    """Upsampling layer, ``"nearest"`` or ``"bilinear"`` (see :func:`fnnet.functional.upsample`)."""
    if method not in ("nearest", "bilinear", "linear", "trilinear"):
        raise ValueError(f"upsample: expected method 'nearest' or 'bilinear', got {method!r}")
    return stateless(lambda x: F.upsample(x, scale, method), "upsample")
