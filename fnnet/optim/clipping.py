"""Gradient clipping: by value (``clip``) and by global norm (``clip_by_global_norm``).

Imports: jax, fnnet.optim.base.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet.optim.base import GradientTransformation, init_empty_state

__all__ = ["global_norm", "clip", "clip_by_global_norm"]


def global_norm(tree) -> jax.Array:
    """The L2 norm of all the leaves of ``tree`` seen as one vector: ``sqrt(sum_i ||x_i||^2)``."""
    squares = [jnp.sum(jnp.square(x.real) + jnp.square(x.imag)) for x in jax.tree.leaves(tree)]
    return jnp.sqrt(sum(squares)) if squares else jnp.zeros([])


def clip(max_delta: float) -> GradientTransformation:
    """Clip each element to ``[-max_delta, max_delta]``: ``u = min(max(g, -c), c)``."""

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: jnp.clip(g, -max_delta, max_delta), updates), state

    return GradientTransformation(init_empty_state, update)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Rescale the whole update when its global norm exceeds ``max_norm`` (Pascanu et al. 2013).

    ``u = g`` if ``||g|| < c``, else ``u = (g / ||g||) c``, with ``||g||`` the norm of all
    leaves together (:func:`global_norm`), so the direction is kept.
    """

    def update(updates, state, params=None):
        del params
        norm = global_norm(updates)
        keep = jnp.squeeze(norm < max_norm)
        if keep.ndim != 0:
            raise ValueError(f"clip_by_global_norm: max_norm must be a scalar, got shape {jnp.shape(max_norm)}")
        updates = jax.tree.map(lambda g: jax.lax.select(keep, g, (g / norm.astype(g.dtype)) * max_norm), updates)
        return updates, state

    return GradientTransformation(init_empty_state, update)
