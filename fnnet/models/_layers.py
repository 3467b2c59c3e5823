"""Building blocks shared by the model zoo: the image-input check, conv + batch norm
(+ activation), ReLU6, PyTorch's ceil-mode max pooling and adaptive average pooling.

Imports: fnnet.nn, fnnet.functional.
"""
from __future__ import annotations

import jax.numpy as jnp

from fnnet import functional as F
from fnnet import nn

def images(model: nn.Module) -> nn.Module:
    """``model`` with its input checked to be a batch of images ``(N, H, W, C)`` before
    any compute (a rank-3 input would otherwise run as a 1-D network); params, state
    and name are the model's own."""
    def check(x):
        shape = tuple(nn.spec_of(x).shape)
        if len(shape) != 4:
            raise ValueError(f"{model.name}: expected images (N, H, W, C), got an input of shape {shape}")

    def init(key, x):
        check(x)
        return model.init(key, x)

    def apply(params, state, x, *, key=None, train=False):
        check(x)
        return model.apply(params, state, x, key=key, train=train)

    return nn.Module(init, apply, model.name)


relu6 = nn.activation(F.relu6, "relu6")
"""``min(max(x, 0), 6)`` (MobileNet)."""


def conv_bn(features: int, window, *, stride=1, padding=0, groups: int = 1, eps: float = 1e-5,
            momentum: float = 0.1, activation: nn.Module | None = nn.relu,
            impl: str = "auto") -> nn.Module:
    """``conv`` (no bias: batch norm's own bias replaces it) -> ``batch_norm`` ->
    ``activation`` (none if None). Params ``{"0": conv, "1": batch_norm}``."""
    layers = [nn.conv(features, window, stride=stride, padding=padding, groups=groups,
                      use_bias=False, impl=impl),
              nn.batch_norm(eps=eps, momentum=momentum)]
    if activation is not None:
        layers.append(activation)
    return nn.serial(*layers, name="conv_bn")


def _ceil_pads(n: int, window: int, stride: int) -> int:
    """High-side padding that gives PyTorch's ``ceil_mode=True`` output size
    ``ceil((n - f) / s) + 1``, dropping a last window that would start past the input."""
    out = -(-(n - window) // stride) + 1
    if (out - 1) * stride >= n:
        out -= 1
    return max((out - 1) * stride + window - n, 0)


def max_pool_ceil(window: int, stride: int, impl: str = "auto") -> nn.Module:
    """Max pooling with PyTorch's ``ceil_mode=True`` (as in torchvision's GoogLeNet):
    the last partial window is kept, padded with ``-inf`` on the high side only."""
    def fn(x):
        pads = tuple((0, _ceil_pads(n, window, stride)) for n in x.shape[1:-1])
        return F.max_pool(x, window, stride, pads, impl=impl)

    return nn.stateless(fn, "max_pool_ceil")


def adaptive_avg_pool(size: int) -> nn.Module:
    """PyTorch's ``AdaptiveAvgPool2d(size)``: output cell ``i`` averages input rows
    ``floor(i n / size)`` to ``ceil((i + 1) n / size)`` (and likewise columns), so any
    input size gives a ``size x size`` map. The identity when the input is already
    ``size x size``."""
    def bounds(n):
        return [(i * n // size, -(-(i + 1) * n // size)) for i in range(size)]

    def fn(x):
        if x.ndim != 4:
            raise ValueError(f"adaptive_avg_pool: expected input (N, H, W, C), got shape {x.shape}")
        h, w = x.shape[1:3]
        if (h, w) == (size, size):
            return x
        rows = [jnp.mean(x[:, a:b], axis=1) for a, b in bounds(h)]       # size x (N, W, C)
        x = jnp.stack(rows, axis=1)                                      # (N, size, W, C)
        cols = [jnp.mean(x[:, :, a:b], axis=2) for a, b in bounds(w)]
        return jnp.stack(cols, axis=2)

    return nn.stateless(fn, "adaptive_avg_pool")
