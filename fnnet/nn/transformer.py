"""Transformer blocks as Modules: the encoder block (self attention + MLP) and the
decoder block (masked self attention + cross attention + MLP), as PyTorch's
``nn.TransformerEncoderLayer`` and ``nn.TransformerDecoderLayer``.

Each sublayer is a residual branch, with the layer norm before it (``norm_first``,
pre-LN, GPT-2) or after the sum (post-LN, Vaswani et al. 2017)::

    pre-LN:   x <- x + dropout(f(LN(x)))
    post-LN:  x <- LN(x + dropout(f(x)))

with ``f`` the attention or the MLP ``W_2 dropout(act(W_1 x + b_1)) + b_2``. The layer
norms are :func:`fnnet.functional.layer_norm` (its derivative written out, a faster
reverse mode on the CPU).

Input: an array ``(B, T, F)``, or a dict as for
:func:`fnnet.nn.attention.multi_head_attention` whose entries reach the self
attention (``"mask"``, ``"lengths"``, ``"positions"``, ``"cache"``); the decoder block
also takes ``"context"`` (the encoder's output, required), ``"context_mask"`` and
``"context_lengths"`` for its cross attention. A dict comes back with ``"inputs"``
replaced by the output (and ``"cache"`` updated), so ``serial(block, block, ...)``
carries the masks through a stack.

Params: encoder ``{"attention", "norm1", "mlp": {"hidden", "output"}, "norm2"}``;
decoder ``{"self_attention", "norm1", "cross_attention", "norm2", "mlp", "norm3"}``
(PyTorch's ``self_attn``, ``multihead_attn``, ``linear1``/``linear2``, ``norm1..3``;
see :mod:`fnnet.interop`).

Imports: fnnet.functional, fnnet.init, fnnet.nn.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet import functional as F
from fnnet import init as initializers
from fnnet.functional._checks import as_int
from fnnet.nn.attention import _KEYS, _as_dict, _rate, multi_head_attention
from fnnet.nn.module import Module, call, require_key, spec_of

__all__ = ["transformer_encoder_block", "transformer_decoder_block"]

_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}
_SELF_KEYS = ("mask", "lengths", "positions", "cache")


class _Parts:
    """The settings and sublayers shared by both blocks (no arrays)."""

    def __init__(self, name, num_heads, mlp_features, *, norm_first, activation, dropout_rate,
                 attention_dropout_rate, mlp_dropout_rate, use_bias, eps, kernel_init,
                 output_kernel_init, dtype, attention_kwargs):
        self.name = name
        self.mlp_features = as_int(name, "mlp_features", mlp_features, minimum=1)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"{name}: expected activation 'gelu' or 'relu', got {activation!r}")
        self.act = _ACTIVATIONS[activation]
        self.norm_first = bool(norm_first)
        self.drop = _rate(name, "dropout_rate", dropout_rate)
        attn_drop = self.drop if attention_dropout_rate is None else attention_dropout_rate
        self.mlp_drop = _rate(name, "mlp_dropout_rate",
                              self.drop if mlp_dropout_rate is None else mlp_dropout_rate)
        self.use_bias, self.eps, self.dtype = use_bias, eps, dtype
        self.kernel_init = kernel_init or initializers.xavier_uniform()
        self.output_kernel_init = output_kernel_init or self.kernel_init

        def attention(causal, rotary, what):
            return multi_head_attention(
                num_heads, use_bias=use_bias, dropout_rate=attn_drop, causal=causal,
                rotary=rotary, kernel_init=self.kernel_init, out_kernel_init=self.output_kernel_init,
                dtype=dtype, name=f"{name}/{what}", **attention_kwargs)

        self.attention = attention
        self.uses_key = bool(self.drop or attn_drop or self.mlp_drop)

    def norm_params(self, features):
        params = {"scale": jnp.ones((features,), self.dtype)}
        if self.use_bias:
            params["bias"] = jnp.zeros((features,), self.dtype)
        return params

    def mlp_params(self, key, features):
        def dense(k, shape, init):
            p = {"kernel": init(jax.random.fold_in(k, 0), shape, self.dtype)}
            if self.use_bias:
                p["bias"] = jnp.zeros(shape[1:], self.dtype)
            return p
        return {"hidden": dense(jax.random.fold_in(key, 0), (features, self.mlp_features), self.kernel_init),
                "output": dense(jax.random.fold_in(key, 1), (self.mlp_features, features),
                                self.output_kernel_init)}

    def norm(self, params, h):
        return F.layer_norm(h, params["scale"], params.get("bias"), eps=self.eps)

    def dropout(self, h, rate, key, i, train):
        if not (train and rate):
            return h
        return F.dropout(h, rate, jax.random.fold_in(key, i))

    def sublayer(self, norm_params, h, branch, key, i, train):
        """``h + dropout(branch(LN(h)))`` (pre-LN) or ``LN(h + dropout(branch(h)))``."""
        if self.norm_first:
            return h + self.dropout(branch(self.norm(norm_params, h)), self.drop, key, i, train)
        return self.norm(norm_params, h + self.dropout(branch(h), self.drop, key, i, train))

    def mlp(self, params, h, key, i, train):
        p = params["mlp"]
        hidden = self.act(F.dense(h, p["hidden"]["kernel"], p["hidden"].get("bias")))
        hidden = self.dropout(hidden, self.mlp_drop, key, i, train)
        return F.dense(hidden, p["output"]["kernel"], p["output"].get("bias"))

    def child_key(self, key, i, train):
        return jax.random.fold_in(key, i) if (train and key is not None) else None

    def inputs(self, x, allowed):
        entries = _as_dict(self.name, x, allowed)
        h = entries["inputs"]
        if jnp.ndim(h) not in (2, 3):
            raise ValueError(f"{self.name}: expected inputs (B, T, F) or (T, F), got shape {jnp.shape(h)}")
        return entries, h

    @staticmethod
    def output(x, h, cache):
        if not isinstance(x, dict):
            return h
        out = dict(x, inputs=h)
        if cache is not None:
            out["cache"] = cache
        return out


def _self_attention(parts, module, where, params, entries, h, key, train, slot):
    """Run ``module`` on ``h`` with the self-attention entries; returns ``(y, cache)``."""
    sub = {k: entries[k] for k in _SELF_KEYS if entries.get(k) is not None}
    if not sub:
        y, _ = call(module, where, params, {}, h, key=parts.child_key(key, slot, train), train=train)
        return y, None
    out, _ = call(module, where, params, {}, dict(sub, inputs=h), key=parts.child_key(key, slot, train),
                  train=train)
    return out["inputs"], out.get("cache")


def transformer_encoder_block(num_heads: int, mlp_features: int, *, norm_first: bool = True,
                              activation: str = "gelu", dropout_rate: float = 0.0,
                              attention_dropout_rate: float | None = None,
                              mlp_dropout_rate: float | None = None, causal: bool = False,
                              use_bias: bool = True, fused_qkv: bool = False,
                              num_kv_heads: int | None = None, rotary: bool = False,
                              eps: float = 1e-5, kernel_init=None, output_kernel_init=None,
                              dtype=jnp.float32, name: str = "transformer_encoder_block") -> Module:
    """Self attention and an MLP, each a residual branch (``nn.TransformerEncoderLayer``)::

        pre-LN:   x <- x + A(LN_1(x));   x <- x + M(LN_2(x))
        post-LN:  x <- LN_1(x + A(x));   x <- LN_2(x + M(x))

    Args:
      num_heads: attention heads.
      mlp_features: hidden width of the MLP (PyTorch's ``dim_feedforward``).
      norm_first: pre-LN (default; PyTorch's default is ``False``, post-LN).
      activation: ``"gelu"`` (exact, default) or ``"relu"`` (PyTorch's default).
      dropout_rate: after each branch, and (by default) on the attention weights and
        the MLP's hidden units, as PyTorch's single ``dropout``.
      attention_dropout_rate, mlp_dropout_rate: override those two.
      causal: position ``t`` attends to ``s <= t`` only (a decoder-only model).
      use_bias: biases in every projection and in the layer norms.
      fused_qkv, num_kv_heads, rotary: as :func:`fnnet.nn.attention.multi_head_attention`.
      eps: the layer norms' epsilon (PyTorch's ``layer_norm_eps``).
      kernel_init: initialiser of the input-side kernels (attention ``query/key/value``
        and the MLP's ``hidden``; default Xavier uniform).
      output_kernel_init: initialiser of the kernels that feed the residual stream
        (attention ``out`` and MLP ``output``; default ``kernel_init``).
      dtype: dtype of the params.
    """
    parts = _Parts(name, num_heads, mlp_features, norm_first=norm_first, activation=activation,
                   dropout_rate=dropout_rate, attention_dropout_rate=attention_dropout_rate,
                   mlp_dropout_rate=mlp_dropout_rate, use_bias=use_bias, eps=eps,
                   kernel_init=kernel_init, output_kernel_init=output_kernel_init, dtype=dtype,
                   attention_kwargs={"fused_qkv": fused_qkv, "num_kv_heads": num_kv_heads})
    attention = parts.attention(causal, rotary, "attention")
    allowed = frozenset({"inputs", *_SELF_KEYS})

    def init(key, x):
        entries = _as_dict(name, x, allowed)
        spec = spec_of(entries["inputs"])
        features = spec.shape[-1]
        params = {"attention": attention.init(jax.random.fold_in(key, 0), spec)[0],
                  "norm1": parts.norm_params(features),
                  "mlp": parts.mlp_params(jax.random.fold_in(key, 1), features),
                  "norm2": parts.norm_params(features)}
        return params, {}

    def apply(params, state, x, *, key=None, train=False):
        entries, h = parts.inputs(x, allowed)
        if parts.uses_key:
            require_key(name, key, train)
        cache = []

        def attend(v):
            y, c = _self_attention(parts, attention, "attention", params["attention"], entries, v,
                                   key, train, 0)
            cache.append(c)
            return y

        h = parts.sublayer(params["norm1"], h, attend, key, 1, train)
        h = parts.sublayer(params["norm2"], h, lambda v: parts.mlp(params, v, key, 2, train), key, 3, train)
        return parts.output(x, h, cache[0]), state

    return Module(init, apply, name)


def transformer_decoder_block(num_heads: int, mlp_features: int, *, norm_first: bool = True,
                              activation: str = "gelu", dropout_rate: float = 0.0,
                              attention_dropout_rate: float | None = None,
                              mlp_dropout_rate: float | None = None, causal: bool = True,
                              use_bias: bool = True, fused_qkv: bool = False,
                              num_kv_heads: int | None = None, rotary: bool = False,
                              eps: float = 1e-5, kernel_init=None, output_kernel_init=None,
                              dtype=jnp.float32, name: str = "transformer_decoder_block") -> Module:
    """Masked self attention, cross attention to ``context`` and an MLP, each a residual
    branch (``nn.TransformerDecoderLayer``)::

        pre-LN:   x <- x + A(LN_1(x));   x <- x + C(LN_2(x), context);   x <- x + M(LN_3(x))
        post-LN:  x <- LN_1(x + A(x));   x <- LN_2(x + C(x, context));   x <- LN_3(x + M(x))

    The input is a dict with ``"inputs"`` and ``"context"`` (see the module docstring).
    ``causal`` (default True) masks the future in the self attention; the cross
    attention sees every context position but those masked by ``"context_mask"`` or
    ``"context_lengths"``. Arguments as :func:`transformer_encoder_block` (``rotary``
    applies to the self attention only).
    """
    parts = _Parts(name, num_heads, mlp_features, norm_first=norm_first, activation=activation,
                   dropout_rate=dropout_rate, attention_dropout_rate=attention_dropout_rate,
                   mlp_dropout_rate=mlp_dropout_rate, use_bias=use_bias, eps=eps,
                   kernel_init=kernel_init, output_kernel_init=output_kernel_init, dtype=dtype,
                   attention_kwargs={"fused_qkv": fused_qkv, "num_kv_heads": num_kv_heads})
    self_attention = parts.attention(causal, rotary, "self_attention")
    cross_attention = parts.attention(False, False, "cross_attention")
    allowed = _KEYS | {"context_mask"}

    def split(x):
        entries = _as_dict(name, x, allowed)
        if entries.get("context") is None:
            raise ValueError(f"{name}: expected a dict input with 'inputs' and 'context' (the encoder's "
                             f"output), got {'keys ' + str(sorted(x)) if isinstance(x, dict) else 'an array'}")
        return entries

    def init(key, x):
        entries = split(x)
        spec, ctx = spec_of(entries["inputs"]), spec_of(entries["context"])
        features = spec.shape[-1]
        params = {"self_attention": self_attention.init(jax.random.fold_in(key, 0), spec)[0],
                  "norm1": parts.norm_params(features),
                  "cross_attention": cross_attention.init(jax.random.fold_in(key, 1),
                                                          {"inputs": spec, "context": ctx})[0],
                  "norm2": parts.norm_params(features),
                  "mlp": parts.mlp_params(jax.random.fold_in(key, 2), features),
                  "norm3": parts.norm_params(features)}
        return params, {}

    def apply(params, state, x, *, key=None, train=False):
        entries = split(x)
        _, h = parts.inputs(entries, allowed)
        if parts.uses_key:
            require_key(name, key, train)
        cache = []

        def attend(v):
            y, c = _self_attention(parts, self_attention, "self_attention", params["self_attention"],
                                   entries, v, key, train, 0)
            cache.append(c)
            return y

        def cross(v):
            sub = {"inputs": v, "context": entries["context"]}
            for ours, theirs in (("context_mask", "mask"), ("context_lengths", "context_lengths")):
                if entries.get(ours) is not None:
                    sub[theirs] = entries[ours]
            out, _ = call(cross_attention, "cross_attention", params["cross_attention"], {}, sub,
                          key=parts.child_key(key, 2, train), train=train)
            return out["inputs"]

        h = parts.sublayer(params["norm1"], h, attend, key, 1, train)
        h = parts.sublayer(params["norm2"], h, cross, key, 3, train)
        h = parts.sublayer(params["norm3"], h, lambda v: parts.mlp(params, v, key, 4, train), key, 5, train)
        return parts.output(x, h, cache[0]), state

    return Module(init, apply, name)
