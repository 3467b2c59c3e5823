"""Activation functions, elementwise unless stated.

Imports: jax only.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "softmax",
           "log_softmax", "maxout"]


def sigmoid(x: jax.Array) -> jax.Array:
    """``sigma(x) = 1 / (1 + exp(-x))``, evaluated without overflow."""
    return jax.nn.sigmoid(x)


def tanh(x: jax.Array) -> jax.Array:
    """``tanh(x) = (e^x - e^-x) / (e^x + e^-x)``."""
    return jnp.tanh(x)


def relu(x: jax.Array) -> jax.Array:
    """``max(0, x)``; the derivative at 0 is taken as 0."""
    return jnp.maximum(x, 0)


def leaky_relu(x: jax.Array, negative_slope: float = 0.01) -> jax.Array:
    """``x if x > 0 else negative_slope * x``."""
    return jnp.where(x > 0, x, negative_slope * x)


def elu(x: jax.Array, alpha: float = 1.0) -> jax.Array:
    """``x if x > 0 else alpha * (exp(x) - 1)`` (Clevert et al., 2016)."""
    return jnp.where(x > 0, x, alpha * jnp.expm1(jnp.minimum(x, 0)))


def softplus(x: jax.Array) -> jax.Array:
    """``log(1 + exp(x))``, computed as ``max(x, 0) + log1p(exp(-|x|))``."""
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
    is reduced by its max, giving ``(..., k)``."""
    if num_pieces < 1 or x.shape[-1] % num_pieces:
        raise ValueError(f"maxout: expected the last axis ({x.shape[-1]}) to be a "
                         f"multiple of num_pieces={num_pieces}")
    return jnp.max(x.reshape(x.shape[:-1] + (x.shape[-1] // num_pieces, num_pieces)), axis=-1)
