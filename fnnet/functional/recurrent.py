"""Recurrent cells (Elman RNN, GRU, LSTM) and their scan over time.

A cell is a pure function of one time step::

    cell(params, carry, x_t) -> (carry, y_t)

with ``x_t`` of shape ``(N, F)`` (any leading batch axes work) and params leaves
``w_ih (F, G*h)``, ``w_hh (h, G*h)``, ``b_ih (G*h,)``, ``b_hh (G*h,)`` (two biases, as
in PyTorch; ``G`` = 1, 3, 4 gates for RNN, GRU, LSTM). Gates are fused along the last
axis in PyTorch's order (GRU ``r, z, n``; LSTM ``i, f, g, o``), so a PyTorch
checkpoint's ``weight_ih_l0`` is ``w_ih.T``.

Sequences are **batch-major**: ``xs`` has shape ``(N, T, F)`` and outputs ``(N, T, h)``
(PyTorch's ``batch_first=True``). Internally the scan runs time-major.

:func:`scan` runs any cell (yours too), one call per step. :func:`rnn_sequence`,
:func:`gru_sequence` and :func:`lstm_sequence` run the built-in cells; they default to a
fused kernel (:mod:`fnnet.functional.recurrent_fused`) whose backward loop carries only
``dh`` (``dc``) and whose weight gradients are matmuls over all time steps, and which
works under every transform, forward mode included. :func:`rnn_recurrence` is the
Elman kernel on precomputed input projections (e.g. an embedding lookup).

Padded variable-length sequences: ``lengths (N,)`` freezes each sequence's carry after
its last valid step and zeroes its outputs there, so the final carry is the state at
``t = lengths[n] - 1``. ``reverse=True`` with lengths reverses each sequence *within its
length* (PyTorch's packed sequences): the backward direction starts at the last valid
step, not at the padding.

Imports: jax, fnnet.functional.recurrent_fused.
"""
from __future__ import annotations

from typing import Any, Callable


import jax
import jax.numpy as jnp

from fnnet.functional._checks import as_int, bias_add, check_floating, check_rank
from fnnet.functional.recurrent_fused import gru_fused, lstm_fused, rnn_fused

__all__ = ["rnn_cell", "gru_cell", "lstm_cell", "rnn_sequence", "gru_sequence", "lstm_sequence",
           "rnn_recurrence", "scan", "sequence_mask", "reverse_padded", "last_valid"]

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def _row(v: jax.Array, like: jax.Array) -> jax.Array:
    """``v (h,)`` reshaped to broadcast against ``like (..., h)`` without rank promotion."""
    return v.reshape((1,) * (like.ndim - 1) + v.shape)


def _check_params(name: str, params: dict, gates: int, extra: tuple = ()) -> int:
    """Check the four fused weights; return the hidden size ``h``."""
    for leaf in ("w_ih", "w_hh", "b_ih", "b_hh"):
        if leaf not in params:
            raise ValueError(f"{name}: params need leaves w_ih, w_hh, b_ih, b_hh; missing {leaf!r} "
                             f"(got {sorted(params)})")
    w_hh = params["w_hh"]
    h = w_hh.shape[0]
    want = {"w_hh": (h, gates * h), "b_ih": (gates * h,), "b_hh": (gates * h,)}
    for leaf, shape in want.items():
        if params[leaf].shape != shape:
            raise ValueError(f"{name}: expected {leaf} of shape {shape} ({gates} gates x hidden {h}), "
                             f"got {params[leaf].shape}")
    w_ih = params["w_ih"]
    if w_ih.ndim != 2 or w_ih.shape[1] != gates * h:
        raise ValueError(f"{name}: expected w_ih of shape (in, {gates * h}), got {w_ih.shape}")
    for leaf, shape in extra:
        if leaf in params and params[leaf].shape != shape(h):
            raise ValueError(f"{name}: expected {leaf} of shape {shape(h)}, got {params[leaf].shape}")
    return h


def _describe(value) -> str:
    """How a carry looks, for an error message: an array's shape or a tuple's leaves."""
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_describe(v) for v in value)
        return f"a {type(value).__name__} of {len(value)} ({inner})"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"an array of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def _is_array(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, (tuple, list))


def _check_structure(name: str, arg: str, carry, pair: bool) -> None:
    """An LSTM's carry is a pair ``(h, c)`` of arrays; a GRU's or an RNN's one array ``h``."""
    if pair:
        ok = isinstance(carry, (tuple, list)) and len(carry) == 2 and all(_is_array(c) for c in carry)
        want = "a pair (h, c) of arrays"
    else:
        ok = _is_array(carry)
        want = "one array h"
    if not ok:
        raise ValueError(f"{name}: expected {arg} as {want}, got {_describe(carry)}")


def _check_carry(name: str, carry, xs, hid: int) -> None:
    """Every leaf of a sequence's initial carry is ``(N, h)`` for ``xs (N, T, F)``."""
    check_rank(name, "a batch-major input sequence (N, T, F)", xs, 3)
    want = (jnp.shape(xs)[0], hid)
    for leaf in jax.tree.leaves(carry):
        if jnp.shape(leaf) != want:
            raise ValueError(f"{name}: expected an initial state of shape {want} for input "
                             f"{jnp.shape(xs)} and hidden size {hid}, got {jnp.shape(leaf)}")


def _check_input(name: str, params: dict, x: jax.Array) -> None:
    check_floating(name, "input", x)
    if x.ndim < 1 or x.shape[-1] != params["w_ih"].shape[0]:
        raise ValueError(f"{name}: expected input with last axis {params['w_ih'].shape[0]} "
                         f"(w_ih is {params['w_ih'].shape}), got shape {jnp.shape(x)}")


def _project(params: dict, x: jax.Array) -> jax.Array:
    """The input projection of every gate, ``x W_ih + b_ih``."""
    return bias_add("recurrent input projection", x @ params["w_ih"], params["b_ih"])


# ---------------------------------------------------------------------------
# The recurrent halves: carry and projected input -> (carry, y)

def _rnn_recur(params, h, xp, activation="tanh"):
    h = _ACTIVATIONS[activation](xp + bias_add("rnn_cell", h @ params["w_hh"], params["b_hh"]))
    return h, h


def _gru_recur(params, h, xp, reset_after=True):
    hid = h.shape[-1]
    x_r, x_z, x_n = xp[..., :hid], xp[..., hid:2 * hid], xp[..., 2 * hid:]
    w_hh, b_hh = params["w_hh"], params["b_hh"]
    if reset_after:
        gh = bias_add("gru_cell", h @ w_hh, b_hh)
        r = jax.nn.sigmoid(x_r + gh[..., :hid])
        z = jax.nn.sigmoid(x_z + gh[..., hid:2 * hid])
        n = jnp.tanh(x_n + r * gh[..., 2 * hid:])
    else:
        gh = bias_add("gru_cell", h @ w_hh[:, :2 * hid], b_hh[:2 * hid])
        r = jax.nn.sigmoid(x_r + gh[..., :hid])
        z = jax.nn.sigmoid(x_z + gh[..., hid:])
        n = jnp.tanh(x_n + bias_add("gru_cell", (r * h) @ w_hh[:, 2 * hid:], b_hh[2 * hid:]))
    h = (1.0 - z) * n + z * h
    return h, h


def _lstm_recur(params, carry, xp):
    h, c = carry
    hid = h.shape[-1]
    g = xp + bias_add("lstm_cell", h @ params["w_hh"], params["b_hh"])
    i, f, gg, o = (g[..., k * hid:(k + 1) * hid] for k in range(4))
    peep = params.get("w_peephole")
    if peep is not None:
        i = i + _row(peep[0], c) * c
        f = f + _row(peep[1], c) * c
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(gg)
    if peep is not None:
        o = o + _row(peep[2], c) * c
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


# ---------------------------------------------------------------------------
# Cells: one time step

def rnn_cell(params: dict, carry: jax.Array, x: jax.Array, *, activation: str = "tanh"):
    """Elman RNN step: ``h' = act(x W_ih + b_ih + h W_hh + b_hh)``, ``act`` tanh or relu.

    Args:
      params: ``w_ih (F, h)``, ``w_hh (h, h)``, ``b_ih (h,)``, ``b_hh (h,)``.
      carry: ``h (..., h)``.
      x: ``(..., F)``.
      activation: ``"tanh"`` (Elman, 1990) or ``"relu"``.

    Returns:
      ``(h', h')``.
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"rnn_cell: expected activation 'tanh' or 'relu', got {activation!r}")
    _check_structure("rnn_cell", "carry", carry, pair=False)
    _check_params("rnn_cell", params, 1)
    _check_input("rnn_cell", params, x)
    return _rnn_recur(params, carry, _project(params, x), activation)


def gru_cell(params: dict, carry: jax.Array, x: jax.Array, *, reset_after: bool = True):
    """GRU step (Cho et al., 2014) in PyTorch's form and gate order ``r, z, n``::

        r = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
        z = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
        n = tanh(x W_in + b_in + r * (h W_hn + b_hn))          # reset_after=True (PyTorch, cuDNN)
        n = tanh(x W_in + b_in + (r * h) W_hn + b_hn)          # reset_after=False (Cho et al.)
        h' = (1 - z) * n + z * h

    Args:
      params: ``w_ih (F, 3h)``, ``w_hh (h, 3h)``, ``b_ih (3h,)``, ``b_hh (3h,)``.
      carry: ``h (..., h)``.
      x: ``(..., F)``.
      reset_after: apply the reset gate after the recurrent matmul (PyTorch) or before
        it (the original paper).

    Returns:
      ``(h', h')``.
    """
    _check_structure("gru_cell", "carry", carry, pair=False)
    _check_params("gru_cell", params, 3)
    _check_input("gru_cell", params, x)
    return _gru_recur(params, carry, _project(params, x), reset_after)


def lstm_cell(params: dict, carry: tuple, x: jax.Array):
    """LSTM step (Hochreiter & Schmidhuber, 1997) in PyTorch's form, gates ``i, f, g, o``::

        i = sigmoid(x W_ii + b_ii + h W_hi + b_hi [+ p_i * c])
        f = sigmoid(x W_if + b_if + h W_hf + b_hf [+ p_f * c])
        g = tanh(x W_ig + b_ig + h W_hg + b_hg)
        c' = f * c + i * g
        o = sigmoid(x W_io + b_io + h W_ho + b_ho [+ p_o * c'])
        h' = o * tanh(c')

    The bracketed peephole terms (Gers & Schmidhuber, 2000) are used when params holds
    ``w_peephole (3, h)`` (rows ``p_i, p_f, p_o``; diagonal peephole weights).

    Args:
      params: ``w_ih (F, 4h)``, ``w_hh (h, 4h)``, ``b_ih (4h,)``, ``b_hh (4h,)``,
        optional ``w_peephole (3, h)``.
      carry: ``(h, c)``, each ``(..., h)``.
      x: ``(..., F)``.

    Returns:
      ``((h', c'), h')``.
    """
    _check_structure("lstm_cell", "carry", carry, pair=True)
    _check_params("lstm_cell", params, 4, (("w_peephole", lambda h: (3, h)),))
    _check_input("lstm_cell", params, x)
    return _lstm_recur(params, carry, _project(params, x))


# ---------------------------------------------------------------------------
# Masks and padded sequences

def sequence_mask(lengths: jax.Array, max_length: int) -> jax.Array:
    """Boolean ``(N, T)`` mask, ``mask[n, t] = t < lengths[n]``."""
    return jnp.arange(max_length)[None, :] < lengths[:, None]


def reverse_padded(xs: jax.Array, lengths: jax.Array | None) -> jax.Array:
    """Reverse each sequence of ``xs (N, T, ...)`` within its length; padding stays put.

    ``out[n, t] = xs[n, lengths[n] - 1 - t]`` for ``t < lengths[n]``, else ``xs[n, t]``.
    With ``lengths=None`` the whole time axis is reversed.
    """
    if lengths is None:
        return jnp.flip(xs, axis=1)
    t = jnp.arange(xs.shape[1])[None, :]
    idx = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    idx = jnp.broadcast_to(idx.reshape(idx.shape + (1,) * (xs.ndim - 2)), xs.shape)
    return jnp.take_along_axis(xs, idx, axis=1)


def last_valid(ys: jax.Array, lengths: jax.Array | None) -> jax.Array:
    """``ys[n, lengths[n] - 1]`` for ``ys (N, T, ...)`` (the last step without lengths)."""
    if lengths is None:
        return ys[:, -1]
    idx = jnp.clip(lengths - 1, 0, ys.shape[1] - 1).reshape((-1, 1) + (1,) * (ys.ndim - 2))
    idx = jnp.broadcast_to(idx, (ys.shape[0], 1) + ys.shape[2:])
    return jnp.take_along_axis(ys, idx, axis=1)[:, 0]


def _check_sequence(name: str, xs, lengths) -> None:
    check_rank(name, "a batch-major input sequence (N, T, F)", xs, 3)
    check_floating(name, "input", xs)
    if lengths is not None:
        if jnp.shape(lengths) != xs.shape[:1]:
            raise ValueError(f"{name}: expected lengths of shape ({xs.shape[0]},) for input {xs.shape}, "
                             f"got {jnp.shape(lengths)}")
        if not jnp.issubdtype(jnp.result_type(lengths), jnp.integer):
            raise TypeError(f"{name}: expected integer lengths, got {jnp.result_type(lengths)}")


def _freeze(mask_t, new, old):
    """Per batch row: ``new`` where ``mask_t``, else ``old`` (for every leaf of a carry)."""
    return jax.tree.map(lambda a, b: jnp.where(mask_t.reshape(mask_t.shape + (1,) * (a.ndim - 1)), a, b),
                        new, old)


def _run(step: Callable, carry, xs_tm, mask_tm, reverse: bool, unroll: int):
    """``lax.scan`` of ``step(carry, x_t) -> (carry, y_t)`` over time-major inputs, masked."""
    if mask_tm is None:
        return jax.lax.scan(step, carry, xs_tm, reverse=reverse, unroll=unroll)

    def masked(c, inp):
        x_t, m_t = inp
        new, y = step(c, x_t)
        y = jax.tree.map(lambda a: jnp.where(m_t.reshape(m_t.shape + (1,) * (a.ndim - 1)), a, 0), y)
        return _freeze(m_t, new, c), y

    return jax.lax.scan(masked, carry, (xs_tm, mask_tm), reverse=reverse, unroll=unroll)


def scan(cell: Callable, params: Any, carry: Any, xs: jax.Array, *, lengths: jax.Array | None = None,
         reverse: bool = False, unroll: int = 1, key: jax.Array | None = None):
    """Run ``cell(params, carry, x_t) -> (carry, y_t)`` over a batch-major sequence.

    Args:
      cell: any step function (e.g. :func:`lstm_cell`, or a ``functools.partial`` of
        one); with ``key`` it is called as ``cell(params, carry, x_t, key=k_t)`` with
        ``k_t = fold_in(key, t)``, a fresh key per time step.
      params: the cell's params.
      carry: the initial carry (batch axis first).
      xs: ``(N, T, F)``.
      lengths: optional ``(N,)`` valid lengths: the carry freezes and outputs are zero
        at ``t >= lengths[n]``.
      reverse: run from the last (valid) step to the first; outputs stay aligned with
        their inputs.
      unroll: ``lax.scan``'s unroll factor.
      key: optional key, folded with the time index for every step.

    Returns:
      ``(final_carry, ys)`` with ``ys (N, T, ...)``.
    """
    _check_sequence("scan", xs, lengths)
    unroll = as_int("scan", "unroll", unroll, minimum=1)
    padded_reverse = reverse and lengths is not None
    if padded_reverse:
        xs = reverse_padded(xs, lengths)
    xs_tm = jnp.swapaxes(xs, 0, 1)
    T = xs.shape[1]
    mask_tm = None if lengths is None else sequence_mask(lengths, T).T
    steps = jnp.arange(T)

    def step(c, inp):
        x_t, t = inp
        if key is None:
            return cell(params, c, x_t)
        return cell(params, c, x_t, key=jax.random.fold_in(key, t))

    if mask_tm is None:
        carry, ys = jax.lax.scan(step, carry, (xs_tm, steps), reverse=reverse, unroll=unroll)
    else:
        carry, ys = _run(step, carry, (xs_tm, steps), mask_tm, False, unroll)
    ys = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), ys)
    if padded_reverse:
        ys = jax.tree.map(lambda a: reverse_padded(a, lengths), ys)
    return carry, ys


def _sequence(name, recur, params, carry, xs, lengths, reverse, unroll):
    """The built-in cell under ``lax.scan`` (time-major inside), masked and reversed as asked."""
    _check_input(name, params, xs)
    _check_sequence(name, xs, lengths)
    padded_reverse = reverse and lengths is not None
    if padded_reverse:
        xs = reverse_padded(xs, lengths)
    mask_tm = None if lengths is None else sequence_mask(lengths, xs.shape[1]).T
    # The input projection stays inside the loop: hoisting it out as one (T*N, F) matmul
    # was measured slower on CPU (docs/recurrent.md).
    carry, ys = _run(lambda c, x_t: recur(params, c, _project(params, x_t)), carry,
                     jnp.swapaxes(xs, 0, 1), mask_tm,
                     reverse and not padded_reverse, unroll)
    ys = jnp.swapaxes(ys, 0, 1)
    if padded_reverse:
        ys = reverse_padded(ys, lengths)
    return carry, ys


def rnn_sequence(params: dict, carry: jax.Array, xs: jax.Array, *, lengths=None, reverse: bool = False,
                 unroll: int = 1, activation: str = "tanh", implementation: str = "fused"):
    """:func:`rnn_cell` over ``xs (N, T, F)``; same result as ``scan(rnn_cell, ...)``.

    ``implementation="fused"`` computes ``x W_ih + b`` for all steps as one matmul and
    runs :func:`rnn_recurrence` (fused kernel); ``"scan"`` lets JAX
    differentiate the scan of the cell.

    Returns ``(h_final, ys (N, T, h))``.
    """
    _check_activation("rnn_sequence", activation)
    _check_impl("rnn_sequence", implementation)
    _check_structure("rnn_sequence", "carry", carry, pair=False)
    unroll = as_int("rnn_sequence", "unroll", unroll, minimum=1)
    hid = _check_params("rnn_sequence", params, 1)
    _check_carry("rnn_sequence", carry, xs, hid)
    if implementation == "fused":
        _check_input("rnn_sequence", params, xs)
        b = (params["b_ih"] + params["b_hh"]).reshape(1, 1, -1)
        return _fused_sequence("rnn_sequence", lambda x, m: rnn_fused(
            params["w_hh"], carry, x @ params["w_ih"] + b, m, unroll, activation), xs, lengths, reverse)
    return _sequence("rnn_sequence", lambda p, c, x: _rnn_recur(p, c, x, activation),
                     params, carry, xs, lengths, reverse, unroll)


def rnn_recurrence(w_hh: jax.Array, h0: jax.Array, xp: jax.Array, *, lengths=None, unroll: int = 1,
                   activation: str = "tanh"):
    """The Elman recurrence on precomputed input projections ``xp (N, T, h)``:
    ``h_t = act(xp_t + h_{t-1} W_hh)`` from ``h0 (N, h)``.

    For inputs whose projection is not a matmul, e.g. an embedding lookup
    ``xp = W_xh[tokens] + b`` (a character language model). The backward loop carries
    only ``dh``, with ``da_t = (dy_t + dh) * act'(a_t)`` and ``dh <- da_t W_hh^T``, and
    ``dW_hh = H_{prev}^T dA`` is one matmul after the loop (min-char-rnn's backward pass,
    obtained as the transpose of a ``custom_jvp``, so forward mode works too).
    ``lengths`` masks padded steps as in :func:`rnn_sequence`. A single unbatched
    sequence, ``h0 (h,)`` and ``xp (T, h)``, runs as matrix-vector products (no lengths).

    Returns ``(h_final, hs)``, ``hs`` shaped like ``xp``.
    """
    name = "rnn_recurrence"
    _check_activation(name, activation)
    _check_structure(name, "h0", h0, pair=False)
    unroll = as_int(name, "unroll", unroll, minimum=1)
    check_rank(name, "hidden-to-hidden weights (h, h)", w_hh, 2)
    hid = h0.shape[-1] if h0.ndim else 0
    batched = h0.ndim == 2
    if (h0.ndim not in (1, 2) or w_hh.shape != (hid, hid) or xp.ndim != h0.ndim + 1
            or xp.shape[-1] != hid or (batched and xp.shape[0] != h0.shape[0])):
        want = f"({h0.shape[0]}, T, {hid})" if batched else f"(T, {hid})"
        raise ValueError(f"{name}: expected h0 (N, h) or (h,), w_hh (h, h) and xp {want}; got h0 {h0.shape}, "
                         f"w_hh {w_hh.shape} and xp {xp.shape}")
    if not batched:
        if lengths is not None:
            raise ValueError(f"{name}: lengths need a batch: h0 (N, h) and xp (N, T, h), got h0 {h0.shape}")
        check_floating(name, "input", xp)
        return rnn_fused(w_hh, h0, xp, None, unroll, activation)
    _check_sequence(name, xp, lengths)
    return _fused_sequence(name, lambda x, m: rnn_fused(w_hh, h0, x, m, unroll, activation),
                           xp, lengths, False)


def _check_activation(name, activation):
    if activation not in _ACTIVATIONS:
        raise ValueError(f"{name}: expected activation 'tanh' or 'relu', got {activation!r}")


def gru_sequence(params: dict, carry: jax.Array, xs: jax.Array, *, lengths=None, reverse: bool = False,
                 unroll: int = 1, reset_after: bool = True, implementation: str = "fused"):
    """:func:`gru_cell` over ``xs (N, T, F)``; same result as ``scan(gru_cell, ...)``.

    ``implementation="fused"`` (``reset_after=True`` only; otherwise ``"scan"`` is used)
    runs the fused kernel, whose backward pass computes the weight gradients as one
    matmul over all time steps; ``"scan"`` lets JAX differentiate the scan.

    Returns ``(h_final, ys (N, T, h))``.
    """
    _check_impl("gru_sequence", implementation)
    _check_structure("gru_sequence", "carry", carry, pair=False)
    unroll = as_int("gru_sequence", "unroll", unroll, minimum=1)
    hid = _check_params("gru_sequence", params, 3)
    _check_carry("gru_sequence", carry, xs, hid)
    if implementation == "fused" and reset_after:
        _check_input("gru_sequence", params, xs)
        return _fused_sequence("gru_sequence", lambda x, m: gru_fused(
            params["w_ih"], params["w_hh"], params["b_ih"], params["b_hh"], carry, x, m, unroll),
            xs, lengths, reverse)
    return _sequence("gru_sequence", lambda p, c, x: _gru_recur(p, c, x, reset_after),
                     params, carry, xs, lengths, reverse, unroll)


def lstm_sequence(params: dict, carry: tuple, xs: jax.Array, *, lengths=None, reverse: bool = False,
                  unroll: int = 1, implementation: str = "fused"):
    """:func:`lstm_cell` over ``xs (N, T, F)``; same result as ``scan(lstm_cell, ...)``.

    ``implementation="fused"`` (without peepholes; otherwise ``"scan"`` is used) runs a
    the fused kernel, whose backward pass computes the weight gradients as one matmul
    over all time steps; ``"scan"`` lets JAX differentiate the scan.

    Returns ``((h_final, c_final), ys (N, T, h))``.
    """
    _check_impl("lstm_sequence", implementation)
    _check_structure("lstm_sequence", "carry", carry, pair=True)
    carry = tuple(carry)
    unroll = as_int("lstm_sequence", "unroll", unroll, minimum=1)
    hid = _check_params("lstm_sequence", params, 4, (("w_peephole", lambda h: (3, h)),))
    _check_carry("lstm_sequence", carry, xs, hid)
    if implementation == "fused" and "w_peephole" not in params:
        _check_input("lstm_sequence", params, xs)
        return _fused_sequence("lstm_sequence", lambda x, m: lstm_fused(
            params["w_ih"], params["w_hh"], params["b_ih"], params["b_hh"], carry[0], carry[1], x, m, unroll),
            xs, lengths, reverse)
    return _sequence("lstm_sequence", _lstm_recur, params, carry, xs, lengths, reverse, unroll)


def _check_impl(name, implementation):
    if implementation not in ("fused", "scan"):
        raise ValueError(f"{name}: expected implementation 'fused' or 'scan', got {implementation!r}")


def _fused_sequence(name, run, xs, lengths, reverse):
    """Time-major plumbing of a fused kernel: ``run(xs_tm, mask_tm) -> (carry, ys_tm)``."""
    _check_sequence(name, xs, lengths)
    if reverse:
        xs = reverse_padded(xs, lengths)
    mask = None if lengths is None else sequence_mask(lengths, xs.shape[1]).T
    carry, ys = run(jnp.swapaxes(xs, 0, 1), mask)
    ys = jnp.swapaxes(ys, 0, 1)
    if reverse:
        ys = reverse_padded(ys, lengths)
    return carry, ys
