"""Embedding lookup and the tied output layer.

``embed(ids, table)`` gathers rows of a ``(V, d)`` table; ``attend(h, table)`` scores a
hidden state against every row, ``h @ table^T``, the output layer of a model whose
input and output embeddings share one matrix (Press & Wolf 2017).

Imports: jax, numpy.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.functional._checks import check_floating, check_rank

__all__ = ["embed", "attend"]


def _check_table(name: str, table) -> None:
    check_rank(name, "table (V, d)", table, 2)
    check_floating(name, "table", table)


def embed(ids: jax.Array, table: jax.Array) -> jax.Array:
    """Rows of ``table`` at ``ids``: ``y[..., :] = table[ids[...], :]``.

    Out-of-range ids (``id < 0`` or ``id >= V``; negative ids do not wrap around) raise a
    ValueError naming the first offending index when ``ids`` is concrete. Under ``jit``
    (a tracer) they cannot raise: their rows are filled with NaN, so the error surfaces
    in the loss instead of silently reading another token's row (PyTorch raises; JAX's
    own indexing clamps). The gradient with respect to ``table`` is zero for them.

    Args:
      ids: integer token ids of any shape.
      table: ``(V, d)`` floating embedding matrix.

    Returns:
      ``ids.shape + (d,)``, of ``table``'s dtype.

    >>> embed(jnp.array([[2, 0]]), jnp.arange(6.0).reshape(3, 2)).tolist()
    [[[4.0, 5.0], [0.0, 1.0]]]
    """
    _check_table("embed", table)
    if not jnp.issubdtype(jnp.result_type(ids), jnp.integer):
        raise TypeError(f"embed: expected integer ids, got dtype {jnp.result_type(ids)}")
    vocab = table.shape[0]
    if not isinstance(ids, jax.core.Tracer):
        concrete = np.asarray(ids)
        bad = np.argwhere((concrete < 0) | (concrete >= vocab))
        if bad.size:
            where = tuple(int(i) for i in bad[0])
            raise ValueError(f"embed: expected ids in [0, {vocab}) for a table of shape "
                             f"{table.shape}, got ids{list(where)} = {concrete[where]}")
    ids = jnp.asarray(ids)
    rows = jnp.take(table, jnp.clip(ids, 0, vocab - 1), axis=0)
    valid = ((ids >= 0) & (ids < vocab))[..., None]
    return jnp.where(valid, rows, jnp.asarray(jnp.nan, table.dtype))


def attend(h: jax.Array, table: jax.Array) -> jax.Array:
    """Logits against every embedding row: ``z = h E^T``, ``z[..., v] = <h, E[v]>``.

    Weight tying (Press & Wolf 2017, "Using the Output Embedding to Improve Language
    Models"): the output layer reuses the input embedding ``E``, so ``attend(h, E)`` and
    ``embed(ids, E)`` share one parameter.

    Args:
      h: ``(..., d)`` hidden states.
      table: ``(V, d)`` embedding matrix.

    Returns:
      ``(..., V)`` logits.
    """
    _check_table("attend", table)
    check_floating("attend", "input h", h)
    if jnp.ndim(h) < 1 or h.shape[-1] != table.shape[1]:
        raise ValueError(f"attend: expected h with last axis {table.shape[1]} (table "
                         f"{table.shape}), got h of shape {jnp.shape(h)}")
    return jnp.einsum("...d,vd->...v", h, table)
