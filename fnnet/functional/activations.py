"""Activation functions, elementwise unless stated.

At a kink every derivative is PyTorch's (``torch.autograd`` in float64), also under
grad-of-grad and ``jvp``: each function is written with ``jnp.where`` on strict
comparisons, so the branch taken at the kink carries the wanted slope (``jnp.maximum``
and ``jnp.minimum`` would split a tie and give 1/2). NaN passes through as in PyTorch.

Imports: jax only.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["sigmoid", "tanh", "relu", "relu6", "hard_tanh", "leaky_relu", "elu", "selu",
           "gelu", "softplus", "softmax", "log_softmax", "maxout"]

# PyTorch's SELU constants (torch.nn.SELU; Klambauer et al., 2017).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def sigmoid(x: jax.Array) -> jax.Array:
    """``sigma(x) = 1 / (1 + exp(-x))``, evaluated without overflow."""
    return jax.nn.sigmoid(x)


def tanh(x: jax.Array) -> jax.Array:
    """``tanh(x) = (e^x - e^-x) / (e^x + e^-x)``."""
    return jnp.tanh(x)


def relu(x: jax.Array) -> jax.Array:
    """``max(0, x)``; the derivative at 0 is 0 (as ``torch.relu``, ``jax.nn.relu``)."""
    return jnp.where(x <= 0, 0, x)


def hard_tanh(x: jax.Array, min_val: float = -1.0, max_val: float = 1.0) -> jax.Array:
    """``min(max(x, min_val), max_val)``; the derivative is 1 strictly inside
    ``(min_val, max_val)`` and 0 elsewhere, the ends included (``torch.nn.Hardtanh``)."""
    if not min_val < max_val:
        raise ValueError(f"hard_tanh: expected min_val < max_val, got min_val={min_val}, "
                         f"max_val={max_val}")
    return jnp.where(x <= min_val, min_val, jnp.where(x >= max_val, max_val, x))


def relu6(x: jax.Array) -> jax.Array:
    """``min(max(x, 0), 6)`` (MobileNet); the derivative at 0 and at 6 is 0
    (``torch.nn.ReLU6``)."""
    return hard_tanh(x, 0.0, 6.0)


def leaky_relu(x: jax.Array, negative_slope: float = 0.01) -> jax.Array:
    """``x if x > 0 else negative_slope * x``; the derivative at 0 is ``negative_slope``."""
    return jnp.where(x > 0, x, negative_slope * x)


def elu(x: jax.Array, alpha: float = 1.0) -> jax.Array:
    """``x if x > 0 else alpha * (exp(x) - 1)`` (Clevert et al., 2016).

    At 0 the derivative is ``alpha`` and the second derivative 0, PyTorch's values
    (its backward takes the ``x <= 0`` branch, its double backward the ``x < 0`` one):
    the value at exactly 0 is computed as ``alpha * x``, whose slope is ``alpha`` and
    whose curvature is 0.
    """
    negative = alpha * jnp.expm1(jnp.where(x < 0, x, 0))  # guarded: no inf for large x
    return jnp.where(x > 0, x, jnp.where(x < 0, negative, alpha * x))


def selu(x: jax.Array) -> jax.Array:
    """``scale * elu(x, alpha)`` with PyTorch's ``alpha = 1.6732632423543772`` and
    ``scale = 1.0507009873554805`` (Klambauer et al., 2017, self-normalising networks);
    the derivative at 0 is ``scale * alpha``."""
    return SELU_SCALE * elu(x, SELU_ALPHA)


def gelu(x: jax.Array, approximate: bool = False) -> jax.Array:
    """Gaussian error linear unit (Hendrycks and Gimpel, 2016).

    ``x Phi(x) = x/2 (1 + erf(x / sqrt 2))`` by default (PyTorch's default, note
    ``jax.nn.gelu`` defaults to the approximation); with ``approximate=True``,
    ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``approximate='tanh'`` in PyTorch).
    """
    if approximate:
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1 + jnp.tanh(inner))
    return 0.5 * x * (1 + lax.erf(x * (1 / math.sqrt(2))))


def softplus(x: jax.Array) -> jax.Array:
    """``log(1 + exp(x))``, computed as ``max(x, 0) + log1p(exp(-|x|))``.

    PyTorch's ``softplus`` returns ``x`` itself above ``threshold=20`` (slope exactly
    1 there); this one keeps the exact ``sigmoid(x)`` slope, which differs from 1 by
    less than ``2.1e-9`` beyond 20.
    """
    return jnp.logaddexp(x, 0)


def softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    """``exp(x_i - max x) / sum_j exp(x_j - max x)`` along ``axis``."""
    return jax.nn.softmax(x, axis=axis)


def log_softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    """``x_i - max x - log sum_j exp(x_j - max x)`` along ``axis``."""
    return jax.nn.log_softmax(x, axis=axis)


def maxout(x: jax.Array, num_pieces: int) -> jax.Array:
    """Maxout (Goodfellow et al., 2013): the last axis of size ``k * num_pieces``
    is split into ``k`` groups of ``num_pieces`` consecutive units and each group
    is reduced by its max, giving ``(..., k)``.

    On a tie the whole gradient goes to the first maximal unit of the group, as in
    ``torch.max(x, dim)`` (whose index is the first maximal one) and max pooling;
    ``jnp.max`` and ``torch.amax`` would split it evenly among the tied units.
    """
    if num_pieces < 1 or x.shape[-1] % num_pieces:
        raise ValueError(f"maxout: expected the last axis ({x.shape[-1]}) to be a "
                         f"multiple of num_pieces={num_pieces}")
    groups = x.reshape(x.shape[:-1] + (x.shape[-1] // num_pieces, num_pieces))
    first = jnp.argmax(groups, axis=-1, keepdims=True)  # first maximal index (NaN counts as max)
    return jnp.take_along_axis(groups, first, axis=-1)[..., 0]
