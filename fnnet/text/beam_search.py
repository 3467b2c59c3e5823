"""Greedy decoding and beam search over any one-step model, with static shapes.

A one-step model is ``step(carry, token) -> (carry, logits)`` (the protocol of
:func:`fnnet.text.sampling.sample_sequence`): it feeds one int32 token per sequence,
``token (N,)``, and returns the logits ``(N, V)`` of the next one. Every leaf of
``carry`` has the batch axis ``N`` first (beam search repeats each leaf ``beam_width``
times along it and reorders the beams with a gather).

Beam search keeps, at each step, the ``K`` best hypotheses among the ``K V``
one-token extensions of the current ones, ranked by the length-normalised score::

    score(y) = log P(y) / lp(T),    lp(T) = 1                   ("none")
                                    lp(T) = T^alpha             ("average", the notes' 1/T^alpha)
                                    lp(T) = ((5 + T) / 6)^alpha ("gnmt", Wu et al. 2016)

with ``T`` the number of generated tokens (the end token included). A hypothesis that
has produced ``end_token`` is finished: it is frozen (its only extension is the end
token again, at no cost and no length), so it competes with the live ones at its
final score and keeps its place until better hypotheses push it out. With a width at
least the number of distinct hypotheses nothing is pruned and the result is the
exhaustive search's. ``beam_width`` may exceed the vocabulary (from the second step
on there are ``V^t`` hypotheses); beams that no hypothesis fills come back with score
``-inf``.

Both decoders are one ``lax.while_loop`` that stops when every sequence has finished
(or after ``max_len`` steps), so they compile once for given shapes; call them inside
``jax.jit`` with the model's params as arguments::

    @jax.jit
    def translate(params, x):
        step, carry, start = model.decoder(params, x)
        return beam_search(step, carry, start, beam_width=5, max_len=10, end_token=eos)

Imports: jax.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["DecodeResult", "greedy_decode", "beam_search", "length_penalty_factor"]

_PENALTIES = ("none", "average", "gnmt")


class DecodeResult(NamedTuple):
    """Decoded token ids and their scores.

    ``sequences`` int32 ``(N, max_len)`` (greedy) or ``(N, K, max_len)`` (beam search,
    best first), padded with ``end_token`` after each sequence's end; ``lengths`` int32,
    the generated tokens counting the end token; ``log_probs`` the summed
    log-probability ``log P(y)``; ``scores`` the ranking score ``log P(y) / lp(T)``.
    """
    sequences: jax.Array
    lengths: jax.Array
    log_probs: jax.Array
    scores: jax.Array


def length_penalty_factor(length, penalty: str = "none", alpha: float = 0.6):
    """``lp(T)``: 1 (``"none"``), ``T^alpha`` (``"average"``) or ``((5 + T) / 6)^alpha`` (``"gnmt"``)."""
    length = jnp.asarray(length, jnp.float32)
    if penalty == "none":
        return jnp.ones_like(length)
    if penalty == "average":
        return jnp.maximum(length, 1.0) ** alpha
    if penalty == "gnmt":
        return ((5.0 + length) / 6.0) ** alpha
    raise ValueError(f"length_penalty_factor: penalty must be one of {_PENALTIES}, got {penalty!r}")


def _check(name: str, step, carry, start_token, max_len, end_token, beam_width=1):
    """Static checks; returns ``(start_token int32 (N,), V)``."""
    if not callable(step):
        raise TypeError(f"{name}: step must be a function (carry, token) -> (carry, logits), "
                        f"got {type(step).__name__}")
    for what, v in (("max_len", max_len), ("beam_width", beam_width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: {what} must be an int >= 1, got {v!r}")
    start_token = jnp.asarray(start_token)
    if start_token.ndim != 1 or not jnp.issubdtype(start_token.dtype, jnp.integer):
        raise ValueError(f"{name}: expected start_token as integer ids of shape (N,), got "
                         f"{start_token.dtype} {start_token.shape}")
    n = start_token.shape[0]
    for leaf in jax.tree.leaves(carry):
        if jnp.ndim(leaf) < 1 or jnp.shape(leaf)[0] != n:
            raise ValueError(f"{name}: every carry leaf must have the batch axis {n} first (the "
                             f"start tokens'), got a leaf of shape {jnp.shape(leaf)}")
    start_token = start_token.astype(jnp.int32)
    out = jax.eval_shape(step, carry, start_token)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise ValueError(f"{name}: step must return (carry, logits), got {out}")
    logits = out[1]
    if logits.ndim != 2 or logits.shape[0] != n or not jnp.issubdtype(logits.dtype, jnp.floating):
        raise ValueError(f"{name}: step must return floating logits of shape ({n}, V), got "
                         f"{logits.dtype} {logits.shape}")
    if jax.tree.structure(out[0]) != jax.tree.structure(carry):
        raise ValueError(f"{name}: step must return a carry structured like its input carry")
    vocab = logits.shape[1]
    if end_token is not None and (isinstance(end_token, bool) or not isinstance(end_token, int)
                                  or not 0 <= end_token < vocab):
        raise ValueError(f"{name}: end_token must be an int in [0, {vocab}) (the vocabulary of the "
                         f"step's logits), got {end_token!r}")
    return start_token, vocab


def greedy_decode(step: Callable, carry, start_token, *, max_len: int, end_token: int | None = None
                  ) -> DecodeResult:
    """Feed back the most likely token, ``y_t = argmax_v log softmax(logits_t)_v``, for up
    to ``max_len`` steps; after ``end_token`` a sequence is frozen (padded with it).

    Args:
      step: the one-step model ``(carry, token (N,)) -> (carry, logits (N, V))``.
      carry: its initial carry, every leaf with the batch axis first.
      start_token: int ids ``(N,)`` fed at the first step.
      max_len: the number of generated tokens at most (static).
      end_token: the end-of-sequence id, or None.

    Returns:
      :class:`DecodeResult` with ``sequences (N, max_len)``, ``lengths``, ``log_probs`` and
      ``scores`` (equal to ``log_probs``) of shape ``(N,)``.
    """
    start_token, _ = _check("greedy_decode", step, carry, start_token, max_len, end_token)
    n = start_token.shape[0]
    fill = 0 if end_token is None else end_token

    def cond(state):
        t, _, _, _, _, done, _ = state
        return (t < max_len) & ~jnp.all(done)

    def body(state):
        t, carry, token, seqs, logp, done, lengths = state
        carry, logits = step(carry, token)
        log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        nxt = jnp.argmax(log_p, axis=-1).astype(jnp.int32)
        gain = jnp.take_along_axis(log_p, nxt[:, None], axis=-1)[:, 0]
        nxt = jnp.where(done, fill, nxt)
        logp = logp + jnp.where(done, 0.0, gain)
        lengths = lengths + (~done).astype(jnp.int32)
        if end_token is not None:
            done = done | (nxt == end_token)
        seqs = jax.lax.dynamic_update_index_in_dim(seqs, nxt, t, axis=1)
        return t + 1, carry, nxt, seqs, logp, done, lengths

    state = (jnp.int32(0), carry, start_token, jnp.full((n, max_len), fill, jnp.int32),
             jnp.zeros((n,), jnp.float32), jnp.zeros((n,), bool), jnp.zeros((n,), jnp.int32))
    _, _, _, seqs, logp, _, lengths = jax.lax.while_loop(cond, body, state)
    return DecodeResult(seqs, lengths, logp, logp)


def beam_search(step: Callable, carry, start_token, *, beam_width: int, max_len: int,
                end_token: int | None = None, length_penalty: str = "none", alpha: float = 0.6
                ) -> DecodeResult:
    """The ``beam_width`` best continuations of each start token (module docstring).

    Args:
      step: the one-step model ``(carry, token (M,)) -> (carry, logits (M, V))``; it is
        called with ``M = N * beam_width`` (beam ``k`` of sequence ``n`` at row ``n K + k``).
      carry: the initial carry, every leaf with the batch axis ``N`` first.
      start_token: int ids ``(N,)`` fed at the first step.
      beam_width: ``K``, the hypotheses kept per sequence (at most ``V^max_len``).
      max_len: the number of generated tokens at most (static).
      end_token: the end-of-sequence id (in ``[0, V)``), or None.
      length_penalty: ``"none"``, ``"average"`` (``T^alpha``) or ``"gnmt"``.
      alpha: the length-penalty exponent.

    Returns:
      :class:`DecodeResult` with ``sequences (N, K, max_len)`` and ``lengths``,
      ``log_probs``, ``scores`` of shape ``(N, K)``, best first by ``scores``.
    """
    name = "beam_search"
    if length_penalty not in _PENALTIES:
        raise ValueError(f"{name}: length_penalty must be one of {_PENALTIES}, got {length_penalty!r}")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha < 0:
        raise ValueError(f"{name}: alpha must be a float >= 0, got {alpha!r}")
    start_token, vocab = _check(name, step, carry, start_token, max_len, end_token, beam_width)
    k = beam_width
    if k > vocab ** max_len:
        raise ValueError(f"{name}: beam_width {k} exceeds the {vocab}^{max_len} = {vocab ** max_len} "
                         f"sequences of max_len {max_len} over a vocabulary of {vocab}")
    n = start_token.shape[0]
    fill = 0 if end_token is None else end_token
    lp = lambda length: length_penalty_factor(length, length_penalty, alpha)  # noqa: E731

    carry = jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), carry)
    tokens = jnp.repeat(start_token, k)
    # only beam 0 is live at the start: the others would repeat its extensions
    log_probs = jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf)[None, :].repeat(n, axis=0)

    def cond(state):
        t, _, _, _, _, done, _ = state
        return (t < max_len) & ~jnp.all(done)

    def body(state):
        t, carry, tokens, seqs, log_probs, done, lengths = state
        carry, logits = step(carry, tokens)
        log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1).reshape(n, k, vocab)
        frozen = jnp.where(jnp.arange(vocab) == fill, 0.0, -jnp.inf)             # end again, free
        log_p = jnp.where(done[..., None], frozen[None, None, :], log_p)
        cand_logp = (log_probs[..., None] + log_p).reshape(n, k * vocab)
        cand_len = (lengths + (~done).astype(jnp.int32))[..., None].repeat(vocab, axis=-1).reshape(n, k * vocab)
        _, idx = jax.lax.top_k(cand_logp / lp(cand_len), k)                       # (n, k)
        parent, token = idx // vocab, (idx % vocab).astype(jnp.int32)
        log_probs = jnp.take_along_axis(cand_logp, idx, axis=1)
        lengths = jnp.take_along_axis(cand_len, idx, axis=1)
        was_done = jnp.take_along_axis(done, parent, axis=1)
        done = was_done | (token == end_token) if end_token is not None else was_done
        seqs = jnp.take_along_axis(seqs, parent[..., None], axis=1)
        seqs = jax.lax.dynamic_update_index_in_dim(seqs, token, t, axis=2)
        rows = (parent + k * jnp.arange(n)[:, None]).reshape(-1)
        carry = jax.tree.map(lambda x: x[rows], carry)
        return t + 1, carry, token.reshape(-1), seqs, log_probs, done, lengths

    state = (jnp.int32(0), carry, tokens, jnp.full((n, k, max_len), fill, jnp.int32), log_probs,
             jnp.zeros((n, k), bool), jnp.zeros((n, k), jnp.int32))
    _, _, _, seqs, log_probs, _, lengths = jax.lax.while_loop(cond, body, state)
    scores = log_probs / lp(lengths)
    order = jnp.argsort(-scores, axis=1, stable=True)
    pick = lambda x: jnp.take_along_axis(x, order if x.ndim == 2 else order[..., None], axis=1)  # noqa: E731
    return DecodeResult(pick(seqs), pick(lengths), pick(log_probs), pick(scores))
