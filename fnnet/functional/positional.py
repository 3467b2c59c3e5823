"""Positional encodings: the sinusoid table and rotary position embedding.

``sinusoidal_positions`` builds the fixed table of Vaswani et al. (2017), added to the
token embeddings; ``apply_rotary`` rotates queries and keys by their positions (Su et
al. 2021, RoFormer), so that attention scores depend on relative positions only.

Both compute their angles in at least float32 (float64 when asked for), since
``p * theta`` loses precision at large positions in a narrower type.

Imports: jax.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet.functional._checks import as_int, check_floating, check_rank

__all__ = ["sinusoidal_positions", "apply_rotary"]


def _check_base(name: str, base) -> float:
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 0:
        raise ValueError(f"{name}: expected base as a float > 0, got {base!r}")
    return float(base)


def sinusoidal_positions(length: int, dim: int, *, base: float = 10000.0,
                         dtype=jnp.float32) -> jax.Array:
    """The sinusoid table of "Attention Is All You Need" (Vaswani et al. 2017)::

        PE[p, 2i]     = sin(p / base^(2i / dim))
        PE[p, 2i + 1] = cos(p / base^(2i / dim))

    sine and cosine interleaved as in the paper (column ``j`` has frequency
    ``base^(-2 floor(j/2) / dim)``). An odd ``dim`` is allowed: the formula defines every
    column, and the last one is a sine.

    Args:
      length: number of positions ``p = 0 .. length-1``.
      dim: model width ``d``.
      base: the wavelength scale (10000 in the paper).
      dtype: dtype of the table.

    Returns:
      ``(length, dim)``.
    """
    length = as_int("sinusoidal_positions", "length", length, minimum=1)
    dim = as_int("sinusoidal_positions", "dim", dim, minimum=1)
    base = _check_base("sinusoidal_positions", base)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"sinusoidal_positions: expected a floating dtype, got {jnp.dtype(dtype)}")
    compute = jnp.promote_types(dtype, jnp.float32)
    j = jnp.arange(dim)
    inv_freq = base ** (-(2 * (j // 2)).astype(compute) / dim)                  # (dim,)
    angle = jnp.arange(length, dtype=compute)[:, None] * inv_freq[None, :]      # (length, dim)
    return jnp.where(j[None, :] % 2 == 0, jnp.sin(angle), jnp.cos(angle)).astype(dtype)


def apply_rotary(x: jax.Array, positions: jax.Array, *, base: float = 10000.0) -> jax.Array:
    """Rotary position embedding (Su et al. 2021, "RoFormer"), paper convention.

    Each consecutive pair ``(x_2i, x_2i+1)`` of the head dimension turns by the angle
    ``p theta_i``, ``theta_i = base^(-2i / head_dim)``::

        y_2i   = x_2i cos(p theta_i) - x_2i+1 sin(p theta_i)
        y_2i+1 = x_2i sin(p theta_i) + x_2i+1 cos(p theta_i)

    so ``<R_m q, R_n k>`` depends on ``m - n`` only. GPT-NeoX and Llama (Hugging Face)
    rotate halves instead, pairing ``x_i`` with ``x_{i + head_dim/2}``; their weights
    map onto this convention by permuting the head dimension of the query and key
    projections. A cached decoder passes the positions of the new tokens
    (``offset + arange(seq)``), per sequence as ``[batch, seq]`` if offsets differ.

    Args:
      x: ``[batch, seq, heads, head_dim]`` or ``[seq, heads, head_dim]``, floating,
        ``head_dim`` even.
      positions: integer ``[seq]`` (shared by the batch) or ``[batch, seq]`` (batched
        ``x`` only).
      base: the wavelength scale (10000 in the paper).

    Returns:
      ``x`` rotated, same shape and dtype.
    """
    check_rank("apply_rotary", "x [batch, seq, heads, head_dim] or [seq, heads, head_dim]", x, (3, 4))
    check_floating("apply_rotary", "x", x)
    base = _check_base("apply_rotary", base)
    if not jnp.issubdtype(jnp.result_type(positions), jnp.integer):
        raise TypeError(f"apply_rotary: expected integer positions, got dtype {jnp.result_type(positions)}")
    positions = jnp.asarray(positions)
    batched = x.ndim == 4
    seq, head_dim = x.shape[-3], x.shape[-1]
    allowed = [(seq,)] + ([(x.shape[0], seq)] if batched else [])
    if positions.shape not in allowed:
        want = " or ".join(str(s) for s in allowed)
        raise ValueError(f"apply_rotary: expected positions of shape {want} for x of shape "
                         f"{x.shape}, got {positions.shape}")
    if head_dim % 2:
        raise ValueError(f"apply_rotary: expected an even head_dim, got x of shape {x.shape}")
    compute = jnp.promote_types(x.dtype, jnp.float32)
    theta = base ** (-jnp.arange(0, head_dim, 2, dtype=compute) / head_dim)      # (head_dim/2,)
    theta = theta.reshape((1,) * positions.ndim + theta.shape)
    angle = positions.astype(compute)[..., None] * theta                         # (..., seq, head_dim/2)
    angle = angle[..., None, :]                                                  # heads axis
    if batched and positions.ndim == 1:
        angle = angle[None]
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    pairs = x.astype(compute).reshape(x.shape[:-1] + (head_dim // 2, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return rotated.reshape(x.shape).astype(x.dtype)
