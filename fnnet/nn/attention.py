"""Multi-head attention as a Module, with an optional key-value cache.

:func:`multi_head_attention` projects its input to queries, keys and values, attends
with :func:`fnnet.functional.attention.dot_product_attention`, and projects back.

**Input.** ``apply(params, state, x, *, key=None, train=False)`` takes one ``x``:

- an array ``(B, T, F)`` (or ``(T, F)``): self attention, nothing masked but the
  future when the layer is built with ``causal=True``;
- a dict with ``"inputs"`` (the queries' source, required) and any of
  ``"context"`` (``(B, S, Fc)``, the keys' and values' source: cross attention),
  ``"mask"`` (bool, True = may attend, broadcastable to ``[B, H, T, S]``),
  ``"lengths"`` (int ``(B,)``: the inputs are right padded, only their first
  ``lengths[b]`` positions are real; in self attention the padded keys are masked),
  ``"context_lengths"`` (int ``(B,)``: likewise for the context's keys),
  ``"positions"`` (int ``(T,)`` or ``(B, T)``: positions of the inputs for ``rotary``;
  default ``arange(T)``, after a cache ``length + arange(T)``) and ``"cache"``.
  Any other key is an error (no silently ignored entry). Without a batch axis every
  entry drops it (``mask`` written for ``[H, T, S]``, ``lengths`` a scalar).

**Output.** An array for an array; for a dict, the same dict with ``"inputs"``
replaced by the output (and ``"cache"`` by the updated cache), so that a chain of
blocks carries its masks and lengths along, as the recurrent layers carry ``lengths``.

**Key-value cache** (causal self attention only): ``{"key": [B, L, Hk, D],
"value": [B, L, Hk, D], "length": int32 [B]}``, built by :func:`init_cache`.
``length[b]`` positions of sequence ``b`` are filled. A call with ``T`` new inputs
writes their keys and values at positions ``length[b] + t`` and lets query ``t`` see
the keys ``s <= length[b] + t``: the mask is built from positions, never from
``is_causal`` (whose top-left alignment is wrong once a cache holds earlier tokens).
The new length is ``length + lengths`` (``+ T`` without ``"lengths"``), so a batch
of right-padded prompts of different lengths fills each cache to its own length;
writes past ``L`` are dropped (a caller checks room first, see ``fnnet.models.gpt``).

Params: ``query``, ``key``, ``value`` (each ``{"kernel" (in, out), "bias"}``) or
one fused ``qkv`` (``kernel (F, (H + 2 Hk) D)``, queries then keys then values, as
PyTorch's ``in_proj_weight.T``), and ``out`` (``kernel (H D, out)``). The heads are
the ``D``-wide column blocks of each projection, head-major, as in PyTorch.

Imports: fnnet.functional, fnnet.init, fnnet.nn.module.
"""
from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import init as initializers
from fnnet.functional._checks import as_int, bias_add
from fnnet.functional.attention import combine_masks, dot_product_attention, padding_mask
from fnnet.functional.positional import apply_rotary
from fnnet.nn.module import Module, require_key, spec_of

__all__ = ["multi_head_attention", "init_cache"]

_KEYS = frozenset({"inputs", "context", "mask", "lengths", "context_lengths", "positions", "cache"})


def _rate(name, what, rate):
    if (isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real)
            or not 0.0 <= rate < 1.0):
        raise ValueError(f"{name}: expected {what} in [0, 1), got {rate!r}")
    return float(rate)


def _as_dict(name, x, allowed=_KEYS):
    """``x`` as a dict of entries (an array is ``{"inputs": x}``), unknown keys refused."""
    if not isinstance(x, dict):
        return {"inputs": x}
    if "inputs" not in x:
        raise ValueError(f"{name}: a dict input needs the entry 'inputs', got keys {sorted(x)}")
    unknown = set(x) - allowed
    if unknown:
        raise ValueError(f"{name}: unknown input entries {sorted(unknown)}; expected some of "
                         f"{sorted(allowed)}")
    return x


def multi_head_attention(num_heads: int, *, qkv_features: int | None = None,
                         out_features: int | None = None, fused_qkv: bool = False,
                         use_bias: bool = True, output_projection: bool = True,
                         dropout_rate: float = 0.0, num_kv_heads: int | None = None,
                         rotary: bool = False, causal: bool = False,
                         kernel_init: initializers.Initializer | None = None,
                         out_kernel_init: initializers.Initializer | None = None,
                         bias_init: initializers.Initializer | None = None,
                         dtype=jnp.float32, name: str = "multi_head_attention") -> Module:
    """Multi-head attention (Vaswani et al., 2017, "Attention is all you need")::

        Q = x W_q + b_q,   K = c W_k + b_k,   V = c W_v + b_v      (c = x in self attention)
        head_h = softmax(Q_h K_g^T / sqrt(D) + masks) V_g,         g = h // (H / Hk)
        y = [head_1, ..., head_H] W_o + b_o

    ``Hk < H`` key/value heads give grouped-query attention (Ainslie et al., 2023);
    ``rotary`` rotates ``Q`` and ``K`` by their positions (Su et al., 2021). See the
    module docstring for the input forms, the masks and the cache.

    Args:
      num_heads: ``H``.
      qkv_features: ``H D``, the width of the queries (default: the input's width).
      out_features: width of the output (default: the input's width).
      fused_qkv: one ``qkv`` kernel (one matmul in self attention; in cross attention
        its query and key/value columns apply to the input and the context, so both
        must have one width, as PyTorch's ``in_proj_weight``).
      use_bias: biases on every projection.
      output_projection: ``False`` returns the concatenated heads ``(B, T, H D)``.
      dropout_rate: drop probability of the attention weights in training.
      num_kv_heads: ``Hk`` (default ``H``); must divide ``H``.
      rotary: rotary position embedding of queries and keys (self attention only).
      causal: query ``t`` sees keys ``s <= t`` only (and a cache may be used).
      kernel_init: initialiser of the ``query/key/value`` (or ``qkv``) kernels, each
        ``(in, H D)`` or ``(in, Hk D)`` block drawn on its own (default Xavier uniform,
        as PyTorch's ``in_proj_weight``).
      out_kernel_init: initialiser of the ``out`` kernel (default ``kernel_init``).
      bias_init: initialiser of the biases (default zeros).
      dtype: dtype of the params.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> mha = multi_head_attention(2, causal=True)
      >>> x = jnp.ones((1, 3, 4))
      >>> params, state = mha.init(jax.random.key(0), x)
      >>> query = params["query"]
      >>> sorted(params), query["kernel"].shape
      (['key', 'out', 'query', 'value'], (4, 4))
      >>> mha.apply(params, state, x)[0].shape
      (1, 3, 4)
    """
    num_heads = as_int(name, "num_heads", num_heads, minimum=1)
    kv_heads = num_heads if num_kv_heads is None else as_int(name, "num_kv_heads", num_kv_heads, minimum=1)
    if num_heads % kv_heads:
        raise ValueError(f"{name}: num_kv_heads={kv_heads} does not divide num_heads={num_heads}")
    if qkv_features is not None:
        qkv_features = as_int(name, "qkv_features", qkv_features, minimum=1)
        if qkv_features % num_heads:
            raise ValueError(f"{name}: qkv_features={qkv_features} is not a multiple of "
                             f"num_heads={num_heads}")
    if out_features is not None:
        out_features = as_int(name, "out_features", out_features, minimum=1)
        if not output_projection:
            raise ValueError(f"{name}: out_features={out_features} needs output_projection=True")
    dropout_rate = _rate(name, "dropout_rate", dropout_rate)
    kernel_init = kernel_init or initializers.xavier_uniform()
    out_kernel_init = out_kernel_init or kernel_init
    bias_init = bias_init or initializers.zeros()

    def dense_params(key, shape, init):
        params = {"kernel": init(jax.random.fold_in(key, 0), shape, dtype)}
        if use_bias:
            params["bias"] = bias_init(jax.random.fold_in(key, 1), shape[1:], dtype)
        return params

    def init(key, x):
        x = _as_dict(name, x)
        spec = spec_of(x["inputs"])
        ctx = None if x.get("context") is None else spec_of(x["context"])
        if len(spec.shape) not in (2, 3) or (ctx is not None and len(ctx.shape) != len(spec.shape)):
            raise ValueError(f"{name}: expected inputs (B, T, F) or (T, F) and a context of the same "
                             f"rank, got {spec.shape} and {None if ctx is None else ctx.shape}")
        f_in = spec.shape[-1]
        f_ctx = f_in if ctx is None else ctx.shape[-1]
        width = qkv_features or f_in
        if width % num_heads:
            raise ValueError(f"{name}: the query width {width} (qkv_features, or the input's width) "
                             f"is not a multiple of num_heads={num_heads}")
        head_dim = width // num_heads
        widths = {"query": (f_in, width), "key": (f_ctx, kv_heads * head_dim),
                  "value": (f_ctx, kv_heads * head_dim)}
        blocks = {k: dense_params(jax.random.fold_in(key, i), shape, kernel_init)
                  for i, (k, shape) in enumerate(widths.items())}
        if fused_qkv:
            if f_ctx != f_in:
                raise ValueError(f"{name}: fused_qkv needs inputs and context of one width, got "
                                 f"{f_in} and {f_ctx}")
            params = {"qkv": {k: jnp.concatenate([blocks[b][k] for b in widths], axis=-1)
                              for k in blocks["query"]}}
        else:
            params = blocks
        if output_projection:
            params["out"] = dense_params(jax.random.fold_in(key, 3), (width, out_features or f_in),
                                         out_kernel_init)
        return params, {}

    def apply(params, state, x, *, key=None, train=False):
        entries = _as_dict(name, x)
        inputs = entries["inputs"]
        if jnp.ndim(inputs) == 2:  # unbatched: every entry gains a batch axis of 1
            batched = {k: (None if v is None else jax.tree.map(lambda a: jnp.asarray(a)[None], v))
                       for k, v in entries.items() if k != "positions"}
            if "positions" in entries:
                batched["positions"] = entries["positions"]
            y, cache = _attend(params, batched, key, train)
            y = y[0]
            cache = None if cache is None else jax.tree.map(lambda a: a[0], cache)
        elif jnp.ndim(inputs) == 3:
            y, cache = _attend(params, entries, key, train)
        else:
            raise ValueError(f"{name}: expected inputs (B, T, F) or (T, F), got shape {jnp.shape(inputs)}")
        if not isinstance(x, dict):
            return y, state
        out = dict(x, inputs=y)
        if cache is not None:
            out["cache"] = cache
        return out, state

    def _attend(params, entries, key, train):
        inputs, context = entries["inputs"], entries.get("context")
        cache = entries.get("cache")
        if context is not None and (cache is not None or rotary):
            raise ValueError(f"{name}: {'a cache' if cache is not None else 'rotary'} serves self "
                             "attention only, but the input has a 'context'")
        if cache is not None and not causal:
            raise ValueError(f"{name}: a key-value cache serves causal self attention; build the "
                             "layer with causal=True")
        drop = dropout_rate if train else 0.0
        if drop:
            require_key(name, key, train)
        q, k, v = _project(name, params, inputs, context, num_heads, kv_heads)
        b, t = q.shape[:2]
        lengths = entries.get("lengths")
        if lengths is not None:
            lengths = _check_lengths(name, "lengths", lengths, b)
        positions = entries.get("positions")
        if cache is not None:
            _check_cache(name, cache, k, v)
            start = cache["length"].astype(jnp.int32)
            new_positions = start[:, None] + jnp.arange(t, dtype=jnp.int32)[None, :]   # (B, T)
            if positions is None:
                positions = new_positions
        elif positions is None:
            positions = jnp.arange(t, dtype=jnp.int32)
        if rotary:
            q, k = apply_rotary(q, positions), apply_rotary(k, positions)
        if cache is None:
            kv_len = k.shape[1]
            pad = None
            if context is None and lengths is not None:
                pad = padding_mask(lengths, kv_len)
            ctx_lengths = entries.get("context_lengths")
            if ctx_lengths is not None:
                if context is None:
                    raise ValueError(f"{name}: 'context_lengths' given without a 'context'")
                pad = padding_mask(_check_lengths(name, "context_lengths", ctx_lengths, b), kv_len)
            mask = combine_masks(entries.get("mask"), pad)
            o = dot_product_attention(q, k, v, mask=mask, is_causal=causal, dropout_rate=drop,
                                      key=key if drop else None)
            new_cache = None
        else:
            kv_len = cache["key"].shape[1]
            rows = jnp.arange(b)[:, None]
            keys = cache["key"].at[rows, new_positions].set(k, mode="drop")
            values = cache["value"].at[rows, new_positions].set(v, mode="drop")
            seen = jnp.arange(kv_len)[None, None, :] <= new_positions[:, :, None]     # (B, T, L)
            mask = combine_masks(entries.get("mask"), seen[:, None])
            o = dot_product_attention(q, keys, values, mask=mask, dropout_rate=drop,
                                      key=key if drop else None)
            advance = jnp.full((b,), t, jnp.int32) if lengths is None else lengths.astype(jnp.int32)
            new_cache = {"key": keys, "value": values, "length": start + advance}
        y = o.reshape(o.shape[:2] + (o.shape[2] * o.shape[3],))
        if "out" in params:
            y = _dense(name, "out", y, params["out"])
        return y, new_cache

    return Module(init, apply, name)


def _dense(name, what, x, p):
    w = p["kernel"]
    if w.ndim != 2 or x.shape[-1] != w.shape[0]:
        raise ValueError(f"{name}: expected the {what} kernel of shape ({x.shape[-1]}, ...) for an "
                         f"input of shape {x.shape}, got {w.shape}")
    return bias_add(name, x @ w, p.get("bias"))


def _project(name, params, inputs, context, heads, kv_heads):
    """Queries ``[B, T, H, D]``, keys and values ``[B, S, Hk, D]``."""
    if "qkv" in params:
        width = params["qkv"]["kernel"].shape[-1]
        head_dim, rem = divmod(width, heads + 2 * kv_heads)
    else:
        width = params["query"]["kernel"].shape[-1]
        head_dim, rem = divmod(width, heads)
        kv_width = params["key"]["kernel"].shape[-1]
        if not rem and kv_width != kv_heads * head_dim:
            raise ValueError(f"{name}: expected key/value kernels of width {kv_heads} heads x "
                             f"{head_dim} = {kv_heads * head_dim}, got {kv_width}")
    if rem or head_dim == 0:
        raise ValueError(f"{name}: projection width {width} does not split into {heads} query heads"
                         f" and {kv_heads} key/value heads of one size")

    def split(y, n):
        return y.reshape(y.shape[:-1] + (n, head_dim))

    if "qkv" in params:
        p = params["qkv"]
        if context is None:
            qkv = split(_dense(name, "qkv", inputs, p), heads + 2 * kv_heads)
            # one split (its gradient is one concatenate; three slices would be three pads)
            return tuple(jnp.split(qkv, [heads, heads + kv_heads], axis=2))
        cut = heads * head_dim
        bias = p.get("bias")
        q = _dense(name, "qkv", inputs, {"kernel": p["kernel"][:, :cut],
                                         "bias": None if bias is None else bias[:cut]})
        kv = _dense(name, "qkv", context, {"kernel": p["kernel"][:, cut:],
                                           "bias": None if bias is None else bias[cut:]})
        kv = split(kv, 2 * kv_heads)
        return split(q, heads), kv[:, :, :kv_heads], kv[:, :, kv_heads:]
    source = inputs if context is None else context
    return (split(_dense(name, "query", inputs, params["query"]), heads),
            split(_dense(name, "key", source, params["key"]), kv_heads),
            split(_dense(name, "value", source, params["value"]), kv_heads))


def _check_lengths(name, what, lengths, batch):
    lengths = jnp.asarray(lengths)
    if lengths.shape != (batch,) or not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise ValueError(f"{name}: expected {what} of integer dtype and shape ({batch},), got "
                         f"{lengths.dtype} {lengths.shape}")
    return lengths


def _check_cache(name, cache, k, v):
    if not isinstance(cache, dict) or set(cache) != {"key", "value", "length"}:
        raise ValueError(f"{name}: expected a cache dict with 'key', 'value' and 'length' "
                         f"(see init_cache), got {type(cache).__name__} "
                         f"{sorted(cache) if isinstance(cache, dict) else ''}")
    b, t, hk, d = k.shape
    ck, cv, cl = cache["key"], cache["value"], cache["length"]
    want = f"[{b}, L, {hk}, {d}] (batch, length, kv heads, head dim)"
    if ck.ndim != 4 or ck.shape[0] != b or ck.shape[2:] != (hk, d) or cv.shape != ck.shape[:3] + v.shape[3:]:
        raise ValueError(f"{name}: expected cache keys and values of shape {want}, got "
                         f"{ck.shape} and {cv.shape}")
    if ck.dtype != k.dtype or cv.dtype != v.dtype:
        raise TypeError(f"{name}: expected a cache of dtype {k.dtype} (the keys'), got {ck.dtype}")
    if cl.shape != (b,) or not jnp.issubdtype(cl.dtype, jnp.integer):
        raise ValueError(f"{name}: expected cache length of integer dtype and shape ({b},), got "
                         f"{cl.dtype} {cl.shape}")
    if t > ck.shape[1]:
        raise ValueError(f"{name}: {t} new positions do not fit a cache of length {ck.shape[1]}")


def init_cache(batch_size: int, max_len: int, num_kv_heads: int, head_dim: int, *,
               dtype=jnp.float32) -> dict:
    """An empty key-value cache: ``{"key", "value": zeros [B, L, Hk, D], "length": zeros (B,) int32}``."""
    name = "init_cache"
    shape = tuple(as_int(name, what, v, minimum=1) for what, v in
                  (("batch_size", batch_size), ("max_len", max_len), ("num_kv_heads", num_kv_heads),
                   ("head_dim", head_dim)))
    return {"key": jnp.zeros(shape, dtype), "value": jnp.zeros(shape, dtype),
            "length": jnp.zeros(shape[:1], jnp.int32)}
