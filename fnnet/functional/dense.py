"""The dense (fully connected) kernel.

Imports: jax only.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet.functional._checks import bias_add, check_floating

__all__ = ["dense"]


def dense(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None) -> jax.Array:
    """``y = x W + b`` over the last axis of ``x``.

    Args:
      x: ``(..., in)``.
      kernel: ``(in, out)``.
      bias: ``(out,)`` or None.

    Returns:
      ``(..., out)``.
    """
    check_floating("dense", "input x", x)
    if kernel.ndim != 2:
        raise ValueError(f"dense: expected kernel of shape (in, out), got {kernel.shape}")
    if x.ndim < 1 or x.shape[-1] != kernel.shape[0]:
        raise ValueError(f"dense: expected input with last axis {kernel.shape[0]} "
                         f"(kernel {kernel.shape}), got input of shape {x.shape}")
    return bias_add("dense", jnp.matmul(x, kernel), bias)
