"""Dropout kernel (inverted dropout).

Imports: jax only.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet.functional._checks import check_floating

__all__ = ["dropout"]


def dropout(x, rate: float, key):
    """Inverted dropout (Srivastava et al., 2014, JMLR 15): zero each entry with
    probability ``rate`` and scale the survivors by ``1 / (1 - rate)``::

        m_i ~ Bernoulli(1 - rate),    y_i = m_i * x_i / (1 - rate)

    so ``E[y] = x`` and evaluation needs no rescaling (identity). This kernel always
    drops; the Module :func:`fnnet.nn.dropout` calls it only when ``train=True``.

    Args:
      x: input of any shape and floating dtype.
      rate: drop probability in [0, 1) (not the keep probability, unlike stax).
      key: a ``jax.random.key``; the same key gives the same mask.

    Returns:
      ``y`` with the shape and dtype of ``x``.
    """
    name = "dropout"
    check_floating(name, "input", x)
    if isinstance(rate, (int, float)) and not 0.0 <= rate < 1.0:
        raise ValueError(f"{name}: expected rate in [0, 1), got {rate}")
    if key is None:
        raise ValueError(f"{name}: needs a random key, got None")
    if isinstance(rate, (int, float)) and rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / jnp.asarray(1.0 - rate, x.dtype), jnp.zeros((), x.dtype))
