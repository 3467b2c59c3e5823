"""Sampling from a language model, and the bits-per-character measure.

``sample_logits`` draws one token from ``softmax(logits / T)``, optionally restricted
to the ``top_k`` most likely tokens and to the nucleus of mass ``top_p``
(``filter_logits``); ``sample_sequence`` runs any one-step model ``step(carry, token)
-> (carry, logits)`` for a fixed number of steps inside one ``lax.scan`` (compiled
once), with an optional end token after which every position repeats the end token.

Imports: jax, fnnet.functional.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from fnnet.functional._checks import as_int, check_floating

__all__ = ["filter_logits", "sample_logits", "sample_sequence", "bits_per_character",
           "cross_entropy_nats"]


def _check_filter(name: str, top_k, top_p):
    """``top_k`` as an int >= 1 or None; ``top_p`` as a float in (0, 1] or None."""
    if top_k is not None:
        top_k = as_int(name, "top_k", top_k, minimum=1)
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
            raise ValueError(f"{name}: expected top_p as a float in (0, 1], got {top_p!r}")
        top_p = float(top_p)
    return top_k, top_p


def _check_temperature(name: str, temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"{name}: temperature must be a float >= 0, got {temperature!r}")


def _check_logits(name: str, logits):
    if logits.ndim < 1:
        raise ValueError(f"{name}: expected logits of shape (..., V), got shape {logits.shape}")


def filter_logits(logits, *, top_k: int | None = None, top_p: float | None = None):
    """``logits`` with ``-inf`` outside the kept set: top-k, then the top-p nucleus.

    Top-k keeps the ``k`` largest logits of the last axis (Fan et al. 2018); ``k >= V``
    keeps all. Top-p keeps the nucleus (Holtzman et al. 2020, "The Curious Case of
    Neural Text Degeneration"): the smallest set of most likely tokens whose
    probability under ``softmax`` of the (top-k filtered) logits sums to ``>= p``; the
    top token is always kept and ``p = 1`` keeps all. Ties: a token whose logit equals
    the smallest kept logit is kept too (as Hugging Face's ``TopKLogitsWarper``), so
    tied tokens at the boundary are all in the set, which may hold more than ``k``
    tokens or more than the smallest mass; the set never depends on sort order.

    ``top_k`` and ``top_p`` are static Python numbers (``jit`` them as closure
    constants or static arguments).

    Args:
        logits: (..., V) floating.
        top_k: an int >= 1, or None.
        top_p: a float in (0, 1], or None.

    Returns:
        logits of the same shape and dtype.
    """
    top_k, top_p = _check_filter("filter_logits", top_k, top_p)
    logits = jnp.asarray(logits)
    _check_logits("filter_logits", logits)
    check_floating("filter_logits", "logits", logits)
    vocab = logits.shape[-1]
    if top_k is not None and top_k < vocab:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits >= kth, logits, -jnp.inf)
    if top_p is not None and top_p < 1:
        ordered = jnp.flip(jnp.sort(logits, axis=-1), axis=-1)                 # descending
        probs = jax.nn.softmax(ordered, axis=-1)
        mass_before = jnp.cumsum(probs, axis=-1) - probs                       # exclusive
        count = jnp.sum(mass_before < top_p, axis=-1, keepdims=True)           # >= 1
        cutoff = jnp.take_along_axis(ordered, count - 1, axis=-1)
        logits = jnp.where(logits >= cutoff, logits, -jnp.inf)
    return logits


def sample_logits(key, logits, temperature: float = 1.0, *, top_k: int | None = None,
                  top_p: float | None = None):
    """Draw token ids from ``p = softmax(filter(logits / temperature))`` over the last axis.

    ``temperature -> 0`` approaches the argmax; ``temperature == 0`` returns the argmax
    exactly (greedy decoding). ``temperature`` must be a Python float >= 0. The order
    is that of Hugging Face ``generate``: temperature, then top-k, then top-p
    (:func:`filter_logits`; the nucleus depends on the temperature, top-k does not).

    Args:
        key: a ``jax.random.key``.
        logits: (..., V) unnormalised log-probabilities.
        temperature: T in ``softmax(logits / T)``; 1 samples the model's distribution.
        top_k: keep the k most likely tokens (an int >= 1), or None.
        top_p: keep the nucleus of probability mass ``top_p`` in (0, 1], or None.

    Returns:
        int32 ids of shape ``logits.shape[:-1]``.
    """
    logits = jnp.asarray(logits)
    _check_logits("sample_logits", logits)
    _check_temperature("sample_logits", temperature)
    top_k, top_p = _check_filter("sample_logits", top_k, top_p)
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)       # the top token is always kept
    logits = logits / temperature
    if top_k is not None or top_p is not None:
        logits = filter_logits(logits, top_k=top_k, top_p=top_p)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def sample_sequence(step: Callable, carry, first_token, key, length: int, *, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None,
                    end_token: int | None = None):
    """Sample ``length`` tokens from a one-step model, in one compiled ``lax.scan``.

    ``step(carry, token) -> (carry, logits)`` feeds one token (an int32 array, any
    batch shape) and returns the logits of the next one. Step ``t`` draws with
    ``fold_in(key, t)``, through :func:`sample_logits` with ``temperature``, ``top_k``
    and ``top_p``. With ``end_token``, once a sequence has produced the end token,
    every later position of that sequence holds ``end_token`` too.

    Returns:
        int32 ids of shape ``(length,) + first_token.shape`` (time first).
    """
    _check_temperature("sample_sequence", temperature)
    top_k, top_p = _check_filter("sample_sequence", top_k, top_p)
    first_token = jnp.asarray(first_token, jnp.int32)

    def body(c, t):
        carry, token, done = c
        carry, logits = step(carry, token)
        nxt = sample_logits(jax.random.fold_in(key, t), logits, temperature, top_k=top_k, top_p=top_p)
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
