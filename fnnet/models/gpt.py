"""A decoder-only GPT (Radford et al., 2019, GPT-2) as in nanoGPT's ``model.py``, with
incremental decoding from an explicit key-value cache.

:func:`gpt` returns a :class:`GPT`, a Module whose ``apply`` is the full causal pass
(token ids ``(B, T)`` -> logits ``(B, T, V)``), and whose methods decode with a cache:

    model = gpt(vocab_size=65, context_length=64, num_layers=4, num_heads=4, embed_dim=128)
    params, state = model.init(key, tokens)
    logits, _ = model.apply(params, state, tokens)                  # training, evaluation
    cache = model.init_cache(batch_size)                             # empty, explicit state
    logits, cache = model.prefill(params, cache, prompt, lengths)   # (B, T, V)
    logits, cache = model.decode_step(params, cache, next_tokens)   # (B, V)
    ids = model.generate(params, prompt, key, steps=100, top_k=10)  # one lax.scan

**Cache** ``{"layers": {"0": {"key", "value"}, ...}, "length": int32 (B,)}``, keys and
values ``[B, L, Hk, D]`` per layer; ``length[b]`` positions of sequence ``b`` are
filled. New tokens go to positions ``length[b] + t`` (their learned position
embeddings too), and each attends to the positions up to its own: the mask comes from
the positions, never from ``is_causal``. The logits equal those of the full causal
pass at every position (to float32 rounding; 1e-12 in float64).

**Prompts of different lengths: right padding.** A batch of prompts is one ``(B, T)``
array with prompt ``b`` in its first ``lengths[b]`` columns; the padding (any ids) is
never seen by a real position (causal order in the full pass; the cache advances by
``lengths[b]`` only and the next token overwrites the padding). Left padding would
shift the learned positions; right padding needs no position ids and no mask.

A step that would run past the cache's ``L`` positions cannot raise inside ``jit`` (the
lengths are data): that sequence's logits come back NaN. Every static misfit (a
sequence longer than the context or the cache, a cache of another model) raises
before any compute.

Params: ``token_embedding`` and ``position_embedding`` (``{"embedding": (V or
context, d)}``), ``blocks`` (``{"0": ..., "L-1"}``, each a pre-LN
:func:`fnnet.nn.transformer.transformer_encoder_block` with fused ``qkv``), ``norm``,
and ``head`` (``{"kernel": (d, V)}``) only when the embeddings are not tied.

Imports: jax, fnnet.functional, fnnet.nn, fnnet.text.sampling.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from fnnet import functional as F
from fnnet.functional._checks import as_int
from fnnet.functional.embedding import attend, embed
from fnnet.nn.attention import _rate
from fnnet.nn.module import Module, call, require_key, spec_of
from fnnet.nn.transformer import transformer_encoder_block
from fnnet.text.sampling import sample_sequence

__all__ = ["GPTConfig", "GPT", "gpt", "generate"]


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    """The hyperparameters of a :func:`gpt` (hashable: a static argument of ``jit``)."""
    vocab_size: int
    context_length: int
    num_layers: int
    num_heads: int
    embed_dim: int
    dropout_rate: float = 0.0
    use_bias: bool = True
    tie_embeddings: bool = True
    num_kv_heads: int | None = None
    dtype: object = jnp.float32

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def kv_heads(self) -> int:
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads


@dataclasses.dataclass(frozen=True)
class GPT(Module):
    """A :func:`gpt` Module (``apply`` is the full causal pass) with the cached decoder."""
    config: GPTConfig | None = None

    def init_cache(self, batch_size: int, max_len: int | None = None, *, dtype=None) -> dict:
        """An empty cache for ``batch_size`` sequences of up to ``max_len`` positions
        (default and at most the context length), of ``dtype`` (default the params')."""
        c = self.config
        batch_size = as_int("gpt.init_cache", "batch_size", batch_size, minimum=1)
        max_len = c.context_length if max_len is None else as_int("gpt.init_cache", "max_len", max_len,
                                                                  minimum=1)
        if max_len > c.context_length:
            raise ValueError(f"gpt.init_cache: max_len={max_len} exceeds the context length "
                             f"{c.context_length} (no position embedding beyond it)")
        shape = (batch_size, max_len, c.kv_heads, c.head_dim)
        dtype = dtype or c.dtype
        return {"layers": {str(i): {"key": jnp.zeros(shape, dtype), "value": jnp.zeros(shape, dtype)}
                           for i in range(c.num_layers)},
                "length": jnp.zeros((batch_size,), jnp.int32)}

    def prefill(self, params, cache, tokens, lengths=None):
        """Feed ``tokens (B, T)`` (right padded; ``lengths (B,)`` real tokens, default
        ``T``) after the cache's contents: ``(logits (B, T, V), cache)``, compiled."""
        _check_cached_call("gpt.prefill", self.config, cache, tokens, 2)
        return _extend(self, params, cache, jnp.asarray(tokens), lengths)

    def decode_step(self, params, cache, tokens):
        """Feed one token per sequence, ``tokens (B,)``: ``(logits (B, V), cache)``, compiled."""
        tokens = jnp.asarray(tokens)
        _check_cached_call("gpt.decode_step", self.config, cache, tokens, 1)
        logits, cache = _extend(self, params, cache, tokens[:, None], None)
        return logits[:, 0], cache

    def generate(self, params, prompt, key, *, steps: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, lengths=None):
        """Sample ``steps`` tokens after each prompt, in one compiled program: a prefill
        then one ``lax.scan`` of :meth:`decode_step` and
        :func:`fnnet.text.sampling.sample_logits` (temperature, then top-k, then top-p;
        ``temperature=0`` is greedy). Step ``t`` draws with ``fold_in(key, t)``.

        Args:
          prompt: ``(B, T)`` int ids, right padded when ``lengths`` is given.
          lengths: ``(B,)`` prompt lengths, each >= 1 (default ``T``).

        Returns:
          ``(B, steps)`` int32 ids.
        """
        prompt = jnp.asarray(prompt)
        name = "gpt.generate"
        steps = as_int(name, "steps", steps, minimum=1)
        if prompt.ndim != 2 or not jnp.issubdtype(prompt.dtype, jnp.integer):
            raise ValueError(f"{name}: expected an int prompt of shape (B, T), got {prompt.dtype} {prompt.shape}")
        b, t = prompt.shape
        needed = t + steps - 1  # positions fed: the prompt and every sampled token but the last
        if needed > self.config.context_length:
            raise ValueError(f"{name}: a prompt of {t} tokens and steps={steps} need {needed} positions, "
                             f"more than the context length {self.config.context_length}")
        if lengths is not None:
            lengths = jnp.asarray(lengths)
            if lengths.shape != (b,) or not jnp.issubdtype(lengths.dtype, jnp.integer):
                raise ValueError(f"{name}: expected int lengths of shape ({b},), got {lengths.dtype} "
                                 f"{lengths.shape}")
        return _generate(self, params, prompt, key, lengths, steps, float(temperature), top_k, top_p)


def generate(model: GPT, params, state, prompt, steps: int, *, key, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, lengths=None):
    """:meth:`GPT.generate` spelt as a function of the Module, its params and (empty) state."""
    if not isinstance(model, GPT):
        raise TypeError(f"generate: expected a Module built by gpt(), got {type(model).__name__}")
    if state:
        raise ValueError(f"generate: a gpt has no state, got {sorted(state)}")
    return model.generate(params, prompt, key, steps=steps, temperature=temperature, top_k=top_k,
                          top_p=top_p, lengths=lengths)


def gpt(vocab_size: int, context_length: int, num_layers: int, num_heads: int, embed_dim: int, *,
        dropout_rate: float = 0.0, use_bias: bool = True, tie_embeddings: bool = True,
        num_kv_heads: int | None = None, dtype=jnp.float32, name: str = "gpt") -> GPT:
    """nanoGPT's GPT: token + learned position embeddings, ``num_layers`` pre-LN blocks
    with causal self attention and a GELU MLP of ``4 d``, a final layer norm, and the
    output layer tied to the token embedding::

        h_0 = dropout(E[x_t] + P[t]);   h_l = block_l(h_{l-1});   logits = LN(h_L) E^T

    Init as nanoGPT: every kernel and embedding ``N(0, 0.02^2)``, the two projections
    into the residual stream of every block (attention ``out``, MLP ``output``)
    ``N(0, (0.02 / sqrt(2 L))^2)``, biases 0, layer norms 1 and 0. Dropout as nanoGPT:
    after the embeddings, on the attention weights, after each residual branch.

    Args:
      vocab_size: ``V``.
      context_length: the longest sequence (rows of the position embedding).
      num_layers: ``L``.
      num_heads: attention heads; ``embed_dim`` must be a multiple.
      embed_dim: ``d``.
      dropout_rate: nanoGPT's ``dropout``.
      use_bias: biases in the projections and layer norms (nanoGPT's ``bias``).
      tie_embeddings: the output layer is ``E^T``; otherwise a ``head`` kernel ``(d, V)``.
      num_kv_heads: grouped-query attention with fewer key/value heads (default
        ``num_heads``); the cache holds ``num_kv_heads`` heads.
      dtype: dtype of the params (and default of the cache).
    """
    config = GPTConfig(
        vocab_size=as_int(name, "vocab_size", vocab_size, minimum=1),
        context_length=as_int(name, "context_length", context_length, minimum=1),
        num_layers=as_int(name, "num_layers", num_layers, minimum=1),
        num_heads=as_int(name, "num_heads", num_heads, minimum=1),
        embed_dim=as_int(name, "embed_dim", embed_dim, minimum=1),
        dropout_rate=_rate(name, "dropout_rate", dropout_rate), use_bias=bool(use_bias),
        tie_embeddings=bool(tie_embeddings),
        num_kv_heads=None if num_kv_heads is None else as_int(name, "num_kv_heads", num_kv_heads, minimum=1),
        dtype=dtype)
    if config.embed_dim % config.num_heads:
        raise ValueError(f"{name}: embed_dim={config.embed_dim} is not a multiple of num_heads={config.num_heads}")
    std = 0.02
    block = transformer_encoder_block(
        config.num_heads, 4 * config.embed_dim, norm_first=True, activation="gelu",
        dropout_rate=config.dropout_rate, mlp_dropout_rate=0.0, causal=True, use_bias=config.use_bias,
        fused_qkv=True, num_kv_heads=config.num_kv_heads, kernel_init=_normal(std),
        output_kernel_init=_normal(std / math.sqrt(2 * config.num_layers)), dtype=dtype,
        name=f"{name}/block")
    normal = _normal(std)
    allowed = {"inputs", "lengths", "cache"}

    def entries_of(x):
        entries = x if isinstance(x, dict) else {"inputs": x}
        if "inputs" not in entries or set(entries) - allowed:
            raise ValueError(f"{name}: expected token ids (B, T) or a dict with 'inputs' and optional "
                             f"'lengths', 'cache', got keys {sorted(entries)}")
        return entries

    def check_tokens(tokens):
        if len(tokens.shape) != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ValueError(f"{name}: expected int token ids of shape (B, T), got {tokens.dtype} "
                             f"{tuple(tokens.shape)}")
        if tokens.shape[1] > config.context_length:
            raise ValueError(f"{name}: a sequence of {tokens.shape[1]} tokens is longer than the context "
                             f"length {config.context_length}")

    def init(key, x):
        spec = spec_of(entries_of(x)["inputs"])
        check_tokens(spec)
        d = config.embed_dim
        h = jax.ShapeDtypeStruct(tuple(spec.shape) + (d,), dtype)
        params = {"token_embedding": {"embedding": normal(jax.random.fold_in(key, 0), (config.vocab_size, d), dtype)},
                  "position_embedding": {"embedding": normal(jax.random.fold_in(key, 1),
                                                             (config.context_length, d), dtype)},
                  "blocks": {str(i): block.init(jax.random.fold_in(key, 2 + i), h)[0]
                             for i in range(config.num_layers)},
                  "norm": {"scale": jnp.ones((d,), dtype)}}
        if config.use_bias:
            params["norm"]["bias"] = jnp.zeros((d,), dtype)
        if not config.tie_embeddings:
            params["head"] = {"kernel": normal(jax.random.fold_in(key, 1 + 2 + config.num_layers),
                                               (d, config.vocab_size), dtype)}
        return params, {}

    def apply(params, state, x, *, key=None, train=False):
        entries = entries_of(x)
        tokens = entries["inputs"]
        check_tokens(tokens)
        cache, lengths = entries.get("cache"), entries.get("lengths")
        drop = train and config.dropout_rate > 0
        if drop:
            require_key(name, key, train)
        t = tokens.shape[1]
        table = params["token_embedding"]["embedding"]
        positions_table = params["position_embedding"]["embedding"]
        if cache is None:
            h = embed(tokens, table) + positions_table[None, :t]
        else:
            _check_cache(name, config, cache, tokens.shape[0], t)
            positions = cache["length"][:, None] + jnp.arange(t, dtype=jnp.int32)[None, :]
            h = embed(tokens, table) + embed(positions, positions_table)   # NaN past the context
        if drop:
            h = F.dropout(h, config.dropout_rate, jax.random.fold_in(key, 0))
        new_layers = {}
        for i in range(config.num_layers):
            k = str(i)
            sub = None if not train or key is None else jax.random.fold_in(key, 1 + i)
            if cache is None and lengths is None:
                h, _ = call(block, f"blocks/{k}", params["blocks"][k], {}, h, key=sub, train=train)
                continue
            inp = {"inputs": h}
            if lengths is not None:
                inp["lengths"] = lengths
            if cache is not None:
                inp["cache"] = dict(cache["layers"][k], length=cache["length"])
            out, _ = call(block, f"blocks/{k}", params["blocks"][k], {}, inp, key=sub, train=train)
            h = out["inputs"]
            if cache is not None:
                new_layers[k] = {"key": out["cache"]["key"], "value": out["cache"]["value"]}
        h = F.layer_norm(h, params["norm"]["scale"], params["norm"].get("bias"))
        logits = attend(h, table) if config.tie_embeddings else h @ params["head"]["kernel"]
        if not isinstance(x, dict):
            return logits, state
        out = dict(x, inputs=logits)
        if cache is not None:
            advance = jnp.full_like(cache["length"], t) if lengths is None else lengths.astype(jnp.int32)
            length = cache["length"] + advance
            overflow = length > cache["layers"]["0"]["key"].shape[1]
            out["inputs"] = jnp.where(overflow[:, None, None], jnp.asarray(jnp.nan, logits.dtype), logits)
            out["cache"] = {"layers": new_layers, "length": length}
        return out, state

    return GPT(init, apply, name, config)


def _normal(stddev: float):
    """``N(0, stddev^2)`` draws, as ``fnnet.init.normal`` (behind the same optimisation
    barrier, so the compiled and the eager init agree bitwise); the model zoo imports
    only fnnet.nn and fnnet.functional."""
    def init(key, shape, dtype=jnp.float32):
        return stddev * jax.lax.optimization_barrier(jax.random.normal(key, shape, dtype))
    return init


def _check_cache(name, config, cache, batch, t):
    """The cache must be this model's: its layers, batch, heads, head size and room for ``t``."""
    want = (batch, None, config.kv_heads, config.head_dim)
    ok = (isinstance(cache, dict) and set(cache) == {"layers", "length"}
          and isinstance(cache["layers"], dict)
          and set(cache["layers"]) == {str(i) for i in range(config.num_layers)})
    if not ok:
        raise ValueError(f"{name}: expected a cache from init_cache with {config.num_layers} layers, got "
                         f"{jax.tree.map(jnp.shape, cache) if isinstance(cache, dict) else type(cache).__name__}")
    for k, layer in cache["layers"].items():
        for part in ("key", "value"):
            shape = jnp.shape(layer.get(part)) if isinstance(layer, dict) else None
            if (shape is None or len(shape) != 4 or shape[0] != batch or shape[2:] != want[2:]
                    or shape[1] > config.context_length):
                raise ValueError(f"{name}: expected cache layer {k} {part} of shape [{batch}, L <= "
                                 f"{config.context_length}, {config.kv_heads}, {config.head_dim}] "
                                 f"(batch, positions, kv heads, head size), got {shape}")
    if jnp.shape(cache["length"]) != (batch,):
        raise ValueError(f"{name}: expected cache length of shape ({batch},), got {jnp.shape(cache['length'])}")
    capacity = cache["layers"]["0"]["key"].shape[1]
    if t > capacity:
        raise ValueError(f"{name}: {t} new tokens do not fit a cache of {capacity} positions")


def _check_cached_call(name, config, cache, tokens, rank):
    tokens = jnp.asarray(tokens)
    if tokens.ndim != rank or not jnp.issubdtype(tokens.dtype, jnp.integer):
        want = "(B,)" if rank == 1 else "(B, T)"
        raise ValueError(f"{name}: expected int tokens of shape {want}, got {tokens.dtype} {tokens.shape}")
    _check_cache(name, config, cache, tokens.shape[0], 1 if rank == 1 else tokens.shape[1])


@functools.partial(jax.jit, static_argnums=0)
def _extend(model, params, cache, tokens, lengths):
    x = {"inputs": tokens, "cache": cache}
    if lengths is not None:
        x["lengths"] = jnp.asarray(lengths)
    out, _ = model.apply(params, {}, x)
    return out["inputs"], out["cache"]


@functools.partial(jax.jit, static_argnums=(0, 5, 6, 7, 8))
def _generate(model, params, prompt, key, lengths, steps, temperature, top_k, top_p):
    b, t = prompt.shape
    lengths = jnp.full((b,), t, jnp.int32) if lengths is None else lengths.astype(jnp.int32)
    cache = model.init_cache(b, t + steps - 1, dtype=params["token_embedding"]["embedding"].dtype)
    if t > 1:  # every prompt token but the last; the last is the scan's first input
        _, cache = _extend(model, params, cache, prompt[:, :-1], lengths - 1)
    last = jnp.take_along_axis(prompt, (lengths - 1)[:, None], axis=1)[:, 0]

    def step(cache, token):
        logits, cache = _extend(model, params, cache, token[:, None], None)
        return cache, logits[:, 0]

    tokens = sample_sequence(step, cache, last, key, steps, temperature=temperature, top_k=top_k,
                             top_p=top_p)
    return tokens.T
