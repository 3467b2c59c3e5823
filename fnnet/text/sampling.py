"""Sampling from a language model, and the bits-per-character measure.

``sample_logits`` draws one token from ``softmax(logits / T)``; ``sample_sequence``
runs any one-step model ``step(carry, token) -> (carry, logits)`` for a fixed number
of steps inside one ``lax.scan`` (compiled once), with an optional end token after
which every position repeats the end token.

Imports: jax.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["sample_logits", "sample_sequence", "bits_per_character", "cross_entropy_nats"]


def sample_logits(key, logits, temperature: float = 1.0):
    """Draw token ids from ``p = softmax(logits / temperature)`` over the last axis.

    ``temperature -> 0`` approaches the argmax; ``temperature == 0`` returns the argmax
    exactly (greedy decoding). ``temperature`` must be a Python float >= 0.

    Args:
        key: a ``jax.random.key``.
        logits: (..., V) unnormalised log-probabilities.
        temperature: T in ``softmax(logits / T)``; 1 samples the model's distribution.

    Returns:
        int32 ids of shape ``logits.shape[:-1]``.
    """
    logits = jnp.asarray(logits)
    if logits.ndim < 1:
        raise ValueError(f"sample_logits: expected logits of shape (..., V), got shape {logits.shape}")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"sample_logits: temperature must be a float >= 0, got {temperature!r}")
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)


def sample_sequence(step: Callable, carry, first_token, key, length: int, *, temperature: float = 1.0,
                    end_token: int | None = None):
    """Sample ``length`` tokens from a one-step model, in one compiled ``lax.scan``.

    ``step(carry, token) -> (carry, logits)`` feeds one token (an int32 array, any
    batch shape) and returns the logits of the next one. Step ``t`` draws with
    ``fold_in(key, t)``. With ``end_token``, once a sequence has produced the end
    token, every later position of that sequence holds ``end_token`` too.

    Returns:
        int32 ids of shape ``(length,) + first_token.shape`` (time first).
    """
    first_token = jnp.asarray(first_token, jnp.int32)

    def body(c, t):
        carry, token, done = c
        carry, logits = step(carry, token)
        nxt = sample_logits(jax.random.fold_in(key, t), logits, temperature)
        if end_token is not None:
            nxt = jnp.where(done, end_token, nxt)
            done = done | (nxt == end_token)
        return (carry, nxt, done), nxt

    done = jnp.zeros(first_token.shape, bool)
    _, tokens = jax.lax.scan(body, (carry, first_token, done), jnp.arange(length))
    return tokens


def _nll_and_softmax(logits, targets):
    """``-log softmax(z)[y] = log s - (z_y - m)`` per position, with ``m = max_k z_k`` and
    ``s = sum_k exp(z_k - m)``; and ``softmax(z) = exp(z - m) / s`` from the same pieces."""
    shifted = logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    e = jnp.exp(shifted)
    s = jnp.sum(e, axis=-1, keepdims=True)
    nll = jnp.log(s[..., 0]) - jnp.take_along_axis(shifted, targets[..., None], axis=-1)[..., 0]
    return nll, e / s


@jax.custom_jvp
def _nll(logits, targets):
    return _nll_and_softmax(logits, targets)[0]


@_nll.defjvp
def _nll_jvp(primals, tangents):
    """``d nll = sum_k (softmax(z)_k - [k = y]) dz_k``: its transpose is one elementwise
    ``softmax(z) - onehot(y)``, where autodiff of the gather would scatter into zeros."""
    logits, targets = primals
    nll, p = _nll_and_softmax(logits, targets)
    onehot = jax.nn.one_hot(targets, logits.shape[-1], dtype=logits.dtype)
    return nll, jnp.sum((p - onehot) * tangents[0], axis=-1)


def cross_entropy_nats(logits, targets, mask=None):
    """Mean of ``-log softmax(logits)[target]`` in nats over all positions (or the masked ones).

    Per position, the gradient with respect to the logits is ``softmax(logits) -
    onehot(target)`` (times the position's weight in the mean), written out as a custom
    JVP so that it compiles to one elementwise pass.

    Args:
        logits: (..., V).
        targets: int ids of shape ``logits.shape[:-1]``.
        mask: optional 0/1 weights of shape ``targets.shape``.
    """
    logits = jnp.asarray(logits)
    targets = jnp.asarray(targets)
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy_nats: targets of shape {logits.shape[:-1]} expected for logits "
                         f"{logits.shape}, got {targets.shape}")
    nll = _nll(logits, targets.astype(jnp.int32))
    if mask is None:
        return jnp.mean(nll)
    mask = jnp.asarray(mask, nll.dtype)
    return jnp.sum(nll * mask) / jnp.maximum(jnp.sum(mask), 1)


def bits_per_character(logits, targets, mask=None):
    """Bits per character: ``mean(-log2 p(target))`` = cross-entropy in nats / ln 2."""
    return cross_entropy_nats(logits, targets, mask) / math.log(2.0)
