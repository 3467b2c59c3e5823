"""Shared input checks and small helpers for the kernels.

Every check runs on static shapes at trace time and raises an error that names the
kernel, what it expected and what it got.

Imports: jax only.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def check_rank(name: str, what: str, x, ranks) -> None:
    """Raise unless ``x.ndim`` is in ``ranks`` (an int or a collection of ints)."""
    ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    if jnp.ndim(x) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ValueError(f"{name}: expected {what} of rank {want}, got shape {jnp.shape(x)}")


def check_floating(name: str, what: str, x) -> None:
    """Raise a ``TypeError`` unless ``x`` has a floating-point dtype."""
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise TypeError(f"{name}: expected {what} of a floating dtype, got {jnp.result_type(x)}")


def bias_add(name: str, y: jax.Array, bias: jax.Array | None) -> jax.Array:
    """``y + bias`` over the last axis, with an explicit (not promoted) broadcast."""
    if bias is None:
        return y
    if bias.shape != y.shape[-1:]:
        raise ValueError(f"{name}: expected bias of shape {y.shape[-1:]}, got {bias.shape}")
    return y + bias.reshape((1,) * (y.ndim - 1) + bias.shape)
