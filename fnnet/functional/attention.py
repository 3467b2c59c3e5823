"""Attention kernels: scaled dot-product attention with masks, and the additive
(Bahdanau) and multiplicative (Luong) scores of recurrent encoder-decoders.

Layout as ``jax.nn.dot_product_attention``: queries ``[batch, q_len, heads, head_dim]``,
keys and values ``[batch, kv_len, kv_heads, head_dim]`` (the batch axis may be left
out). Boolean masks are True where attention is allowed and broadcast to
``[batch, heads, q_len, kv_len]``. A fully masked row gives zeros and zero gradients,
never NaN: the softmax is taken over the allowed entries only,

    w_ts = m_ts exp(l_ts - M_t) / sum_s' m_ts' exp(l_ts' - M_t),   M_t = max_{s: m_ts} l_ts,

with ``0 / 0`` read as 0.

Imports: jax only.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from fnnet.functional._checks import as_int, check_floating, check_rank

__all__ = ["dot_product_attention", "masked_softmax", "causal_mask", "padding_mask",
           "combine_masks", "additive_attention", "multiplicative_attention"]


def masked_softmax(logits, mask=None, axis: int = -1):
    """``softmax`` over ``axis`` restricted to the entries where ``mask`` is True.

    ``w_i = m_i exp(l_i - M) / sum_j m_j exp(l_j - M)`` with ``M`` the largest allowed
    logit; a slice with no allowed entry gives zeros (and zero gradients). ``mask`` is
    a bool array of the shape of ``logits`` (broadcast explicitly by the caller).
    """
    if mask is None:
        return jax.nn.softmax(logits, axis=axis)
    masked = jnp.where(mask, logits, -jnp.inf)
    top = jax.lax.stop_gradient(jnp.max(masked, axis=axis, keepdims=True))
    top = jnp.where(jnp.isfinite(top), top, jnp.zeros_like(top))
    # the double where keeps exp() of a masked (possibly huge) logit out of the gradient
    e = jnp.where(mask, jnp.exp(jnp.where(mask, logits - top, jnp.zeros_like(logits))), 0)
    total = jnp.sum(e, axis=axis, keepdims=True)
    return e / jnp.where(total > 0, total, jnp.ones_like(total))


def causal_mask(q_len: int, kv_len: int | None = None, *, offset: int = 0):
    """``[1, 1, q_len, kv_len]`` bool mask, True where ``s <= t + offset``.

    ``offset = 0`` is the top-left aligned mask of ``is_causal``; a query block that
    continues ``offset`` earlier positions (a prompt after a cache of ``offset``
    tokens) uses ``kv_len = offset + q_len``.
    """
    q_len = as_int("causal_mask", "q_len", q_len, minimum=1)
    kv_len = q_len if kv_len is None else as_int("causal_mask", "kv_len", kv_len, minimum=1)
    offset = as_int("causal_mask", "offset", offset)
    t = jnp.arange(q_len)[:, None]
    s = jnp.arange(kv_len)[None, :]
    return (s <= t + offset)[None, None]


def padding_mask(lengths, length: int):
    """``[batch, 1, 1, length]`` bool mask, True where key position ``s < lengths[b]``."""
    length = as_int("padding_mask", "length", length, minimum=1)
    lengths = jnp.asarray(lengths)
    check_rank("padding_mask", "lengths", lengths, 1)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"padding_mask: expected integer lengths, got {lengths.dtype}")
    return (jnp.arange(length)[None, :] < lengths[:, None])[:, None, None, :]


def combine_masks(*masks):
    """Logical AND of the masks that are not None, broadcast; None if all are None."""
    present = [jnp.asarray(m) for m in masks if m is not None]
    if not present:
        return None
    for m in present:
        if m.dtype != jnp.bool_:
            raise TypeError(f"combine_masks: expected bool masks, got {m.dtype}")
    try:
        shape = jnp.broadcast_shapes(*(m.shape for m in present))
    except ValueError:
        raise ValueError(f"combine_masks: masks of shapes {[m.shape for m in present]} do not "
                         "broadcast together") from None
    out = jnp.broadcast_to(present[0], shape)
    for m in present[1:]:
        out = out & jnp.broadcast_to(m, shape)
    return out


def _broadcast_to_logits(name: str, what: str, x, shape: tuple[int, ...]):
    """``x`` broadcast to the logits' ``[batch, heads, q_len, kv_len]`` shape, or a clear error."""
    x = jnp.asarray(x)
    ok = x.ndim <= len(shape) and all(a in (1, b) for a, b in zip(x.shape[::-1], shape[::-1]))
    if not ok:
        raise ValueError(f"{name}: expected {what} broadcastable to [batch, heads, q_len, kv_len] = "
                         f"{list(shape)}, got shape {x.shape}")
    return jnp.broadcast_to(x, shape)


def dot_product_attention(q, k, v, *, mask=None, bias=None, scale: float | None = None,
                          is_causal: bool = False, dropout_rate: float = 0.0, key=None,
                          return_weights: bool = False):
    """Scaled dot-product attention (Vaswani et al., 2017)::

        l_hts = scale * q_th . k_sh + bias_hts,   w = masked_softmax(l, mask),
        out_th = sum_s w_hts v_sh

    with ``scale = 1 / sqrt(head_dim)`` by default. With fewer key/value heads than
    query heads (grouped-query attention), query head ``h`` reads key/value head
    ``h // (heads / kv_heads)``.

    Args:
      q: queries ``[batch, q_len, heads, head_dim]`` (or without the batch axis).
      k: keys ``[batch, kv_len, kv_heads, head_dim]``; ``heads % kv_heads == 0``.
      v: values ``[batch, kv_len, kv_heads, value_dim]``.
      mask: bool, True where attention is allowed, broadcastable to
        ``[batch, heads, q_len, kv_len]``.
      bias: float added to the logits, broadcastable likewise.
      scale: the logit scale (default ``1 / sqrt(head_dim)``).
      is_causal: also mask ``s > t`` (top-left aligned, as ``torch`` and ``jax.nn``;
        with a key-value cache pass an explicit :func:`causal_mask` with ``offset``).
      dropout_rate: drop probability of each attention weight (inverted dropout);
        needs ``key`` when positive.
      key: a ``jax.random.key`` for the dropout.
      return_weights: also return the weights ``[batch, heads, q_len, kv_len]``.

    Returns:
      ``out [batch, q_len, heads, value_dim]``, and the weights if asked for.
    """
    name = "dot_product_attention"
    for what, x in (("q", q), ("k", k), ("v", v)):
        check_floating(name, what, x)
        check_rank(name, what, x, (3, 4))
    if not q.ndim == k.ndim == v.ndim:
        raise ValueError(f"{name}: expected q, k, v of one rank, got shapes {q.shape}, {k.shape}, {v.shape}")
    unbatched = q.ndim == 3
    if unbatched:
        q, k, v = q[None], k[None], v[None]
    b, t, h, d = q.shape
    if k.shape[0] != b or v.shape[0] != b:
        raise ValueError(f"{name}: batch sizes differ: q {q.shape}, k {k.shape}, v {v.shape}")
    if k.shape[3] != d:
        raise ValueError(f"{name}: expected k with head_dim {d} (q's), got k of shape {k.shape}")
    if v.shape[1:3] != k.shape[1:3]:
        raise ValueError(f"{name}: expected v with kv_len and kv_heads {k.shape[1:3]} (k's), "
                         f"got v of shape {v.shape}")
    s, hk = k.shape[1], k.shape[2]
    if h % hk:
        raise ValueError(f"{name}: q's {h} heads are not a multiple of k's {hk} heads")
    if isinstance(dropout_rate, (int, float)) and not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"{name}: expected dropout_rate in [0, 1), got {dropout_rate}")
    if dropout_rate and key is None:
        raise ValueError(f"{name}: dropout_rate={dropout_rate} needs a random key, got None")
    shape = (b, h, t, s)
    if unbatched:  # masks and biases were written for [heads, q_len, kv_len]
        mask = None if mask is None else jnp.asarray(mask)[None]
        bias = None if bias is None else jnp.asarray(bias)[None]
    if mask is not None:
        if jnp.result_type(mask) != jnp.bool_:
            raise TypeError(f"{name}: expected a bool mask (True = attend), got {jnp.result_type(mask)}; "
                            "pass additive float masks as bias")
        mask = _broadcast_to_logits(name, "mask", mask, shape)
    # is_causal alone never masks a whole row (key 0 is open to every query): a plain
    # softmax after -inf logits is exact there, and cheaper than the guarded masked_softmax
    causal_only = is_causal and mask is None and bias is None
    if is_causal:
        mask = combine_masks(mask, jnp.broadcast_to(causal_mask(t, s), shape))
    scale = 1.0 / math.sqrt(d) if scale is None else scale

    g = h // hk  # query heads per key/value head
    qg = q.reshape(b, t, hk, g, d)
    logits = jnp.einsum("btkgd,bskd->bkgts", qg, k).reshape(shape) * jnp.asarray(scale, q.dtype)
    if bias is not None:
        logits = logits + _broadcast_to_logits(name, "bias", bias, shape).astype(logits.dtype)
    if causal_only:
        weights = jax.nn.softmax(jnp.where(mask, logits, -jnp.inf), axis=-1)
    else:
        weights = masked_softmax(logits, mask)
    used = weights
    if dropout_rate:
        keep = jax.random.bernoulli(key, 1.0 - dropout_rate, shape)
        used = jnp.where(keep, weights / jnp.asarray(1.0 - dropout_rate, weights.dtype), 0)
    out = jnp.einsum("bkgts,bskd->btkgd", used.reshape(b, hk, g, t, s), v).reshape(b, t, h, v.shape[3])
    if unbatched:
        out, weights = out[0], weights[0]
    return (out, weights) if return_weights else out


def _scores_to_context(name: str, scores, values, mask):
    """Softmax of ``scores [..., S]`` (masked) and the weighted sum of ``values [..., S, Dv]``."""
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.dtype != jnp.bool_ or mask.shape != scores.shape:
            raise ValueError(f"{name}: expected a bool mask of shape {scores.shape}, got "
                             f"{mask.dtype} {mask.shape}")
    weights = masked_softmax(scores, mask)
    return jnp.einsum("...s,...sd->...d", weights, values), weights


def _check_memory(name: str, query, keys, values) -> None:
    for what, x in (("query", query), ("keys", keys), ("values", values)):
        check_floating(name, what, x)
    if keys.ndim != query.ndim + 1 or keys.shape[:-2] != query.shape[:-1]:
        raise ValueError(f"{name}: expected keys [..., S, Dk] with the leading axes of query "
                         f"{query.shape[:-1]}, got query {query.shape} and keys {keys.shape}")
    if values.shape[:-1] != keys.shape[:-1]:
        raise ValueError(f"{name}: expected values of shape {keys.shape[:-1]} + (Dv,), got {values.shape}")


def additive_attention(query, keys, values, w_query, w_key, v, *, mask=None):
    """Additive attention of Bahdanau et al. (2015)::

        e_s = v . tanh(W_q q + W_k k_s),   a = masked_softmax(e, mask),   c = sum_s a_s values_s

    Args:
      query: the decoder state ``[..., Dq]``.
      keys: the encoder outputs ``[..., S, Dk]``; ``values`` ``[..., S, Dv]`` (often the keys).
      w_query: ``(Dq, A)``; ``w_key``: ``(Dk, A)``; ``v``: ``(A,)``.
      mask: bool ``[..., S]``, True at real (not padded) encoder positions.

    Returns:
      ``(context [..., Dv], weights [..., S])``.
    """
    name = "additive_attention"
    _check_memory(name, query, keys, values)
    a = v.shape[0] if jnp.ndim(v) == 1 else None
    if a is None or w_query.shape != (query.shape[-1], a) or w_key.shape != (keys.shape[-1], a):
        raise ValueError(f"{name}: expected w_query ({query.shape[-1]}, A), w_key ({keys.shape[-1]}, A) "
                         f"and v (A,), got {w_query.shape}, {w_key.shape}, {jnp.shape(v)}")
    hidden = jnp.tanh((query @ w_query)[..., None, :] + keys @ w_key)
    return _scores_to_context(name, hidden @ v, values, mask)


def multiplicative_attention(query, keys, values, w=None, *, mask=None):
    """Multiplicative attention of Luong et al. (2015): ``e_s = q . k_s`` ("dot") or,
    with ``w (Dq, Dk)``, ``e_s = q W k_s`` ("general"); then
    ``a = masked_softmax(e, mask)`` and ``c = sum_s a_s values_s``.

    Shapes as :func:`additive_attention`. Returns ``(context [..., Dv], weights [..., S])``.
    """
    name = "multiplicative_attention"
    _check_memory(name, query, keys, values)
    if w is None:
        if query.shape[-1] != keys.shape[-1]:
            raise ValueError(f"{name}: the dot score needs query and keys of one width, got "
                             f"{query.shape[-1]} and {keys.shape[-1]}; pass w for the general score")
        projected = query
    else:
        if w.shape != (query.shape[-1], keys.shape[-1]):
            raise ValueError(f"{name}: expected w of shape {(query.shape[-1], keys.shape[-1])}, "
                             f"got {w.shape}")
        projected = query @ w
    scores = jnp.einsum("...d,...sd->...s", projected, keys)
    return _scores_to_context(name, scores, values, mask)
