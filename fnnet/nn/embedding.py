"""Token embeddings and additive position encodings as Modules.

``embedding`` maps integer ids to vectors; ``sinusoidal_position_encoding`` (no params)
and ``learned_position_embedding`` add a position vector to each step of a sequence.
A cached decoder that feeds tokens at an offset does not use the position Modules: it
calls the kernels with explicit positions (``embed(offset + arange(T), P)`` for learned
positions, rows ``offset ..`` of ``sinusoidal_positions``, or ``apply_rotary``).

Imports: fnnet.functional, fnnet.init.
"""
from __future__ import annotations

import jax.numpy as jnp

from fnnet import init as initializers
from fnnet.functional._checks import as_int, check_floating
from fnnet.functional.embedding import embed
from fnnet.functional.positional import sinusoidal_positions
from fnnet.nn.module import Module, spec_of

__all__ = ["embedding", "sinusoidal_position_encoding", "learned_position_embedding"]


def embedding(num_embeddings: int, features: int, *, init: initializers.Initializer | None = None,
              dtype=jnp.float32, name: str = "embedding") -> Module:
    """Lookup table ``y[..., :] = E[ids[...], :]`` (see :func:`fnnet.functional.embedding.embed`).

    Params: ``embedding (num_embeddings, features)`` drawn from ``init``, default
    ``N(0, 1)`` as PyTorch's ``nn.Embedding``; GPT-2 and nanoGPT use
    ``init=fnnet.init.normal(0.02)``. The example input is an integer array (or
    ``ShapeDtypeStruct``) of ids of any shape; the output has shape ``ids.shape +
    (features,)``. For a tied output layer, call
    ``fnnet.functional.embedding.attend(h, params["embedding"])``.
    """
    num_embeddings = as_int(name, "num_embeddings", num_embeddings, minimum=1)
    features = as_int(name, "features", features, minimum=1)
    initializer = init or initializers.normal(1.0)

    def _check_ids(x):
        if not jnp.issubdtype(x.dtype, jnp.integer):
            raise TypeError(f"{name}: expected integer ids, got dtype {x.dtype}")

    def init_fn(key, x):
        _check_ids(spec_of(x))
        return {"embedding": initializer(key, (num_embeddings, features), dtype)}, {}

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        _check_ids(jnp.asarray(x) if not hasattr(x, "dtype") else x)
        return embed(x, params["embedding"]), state

    return Module(init_fn, apply, name)


def _check_sequence(name: str, x, max_len: int) -> int:
    """The length ``T`` of ``x`` ``[batch, T, d]`` or ``[T, d]``, at most ``max_len``."""
    check_floating(name, "input x", x)
    if len(x.shape) not in (2, 3):
        raise ValueError(f"{name}: expected input of shape [batch, T, d] or [T, d], got {x.shape}")
    length = x.shape[-2]
    if length > max_len:
        raise ValueError(f"{name}: sequence length {length} exceeds max_len {max_len} "
                         f"(input of shape {x.shape})")
    return length


def _add_positions(x, table):
    """``x + table`` with ``table (T, d)`` broadcast over a leading batch axis."""
    return x + (table[None] if x.ndim == 3 else table)


def sinusoidal_position_encoding(max_len: int, *, base: float = 10000.0,
                                 name: str = "sinusoidal_position_encoding") -> Module:
    """``y = x + PE[:T]`` with the fixed sinusoid table of Vaswani et al. (2017)
    (:func:`fnnet.functional.positional.sinusoidal_positions`), no params.

    ``x`` is ``[batch, T, d]`` or ``[T, d]``, ``T <= max_len``. A cached decoder adds
    ``sinusoidal_positions(offset + T, d)[offset:]`` itself.
    """
    max_len = as_int(name, "max_len", max_len, minimum=1)

    def init(key, x):
        del key
        _check_sequence(name, spec_of(x), max_len)
        return {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params, key, train
        length = _check_sequence(name, x, max_len)
        return _add_positions(x, sinusoidal_positions(length, x.shape[-1], base=base, dtype=x.dtype)), state

    return Module(init, apply, name)


def learned_position_embedding(max_len: int, *, init: initializers.Initializer | None = None,
                               dtype=jnp.float32, name: str = "learned_position_embedding") -> Module:
    """``y = x + P[:T]`` with a trained table ``P`` (GPT, BERT).

    Params: ``embedding (max_len, d)``, ``d`` the last axis of the example input, drawn
    from ``init`` (default ``N(0, 1)`` as PyTorch's ``nn.Embedding``; GPT-2 uses
    ``fnnet.init.normal(0.01)``). ``x`` is ``[batch, T, d]`` or ``[T, d]``, ``T <=
    max_len``. A cached decoder adds ``embed(offset + arange(T), params["embedding"])``.
    """
    max_len = as_int(name, "max_len", max_len, minimum=1)
    initializer = init or initializers.normal(1.0)

    def init_fn(key, x):
        spec = spec_of(x)
        _check_sequence(name, spec, max_len)
        return {"embedding": initializer(key, (max_len, spec.shape[-1]), dtype)}, {}

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        length = _check_sequence(name, x, max_len)
        table = params["embedding"]
        if table.shape[-1] != x.shape[-1]:
            raise ValueError(f"{name}: expected input with last axis {table.shape[-1]}, "
                             f"got input of shape {x.shape}")
        return _add_positions(x, table[:length]), state

    return Module(init_fn, apply, name)
