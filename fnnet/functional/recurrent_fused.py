"""Fused whole-sequence kernels of the Elman RNN, GRU and LSTM, safe under every transform.

The public functions of :mod:`fnnet.functional.recurrent` (``rnn_sequence``,
``gru_sequence``, ``lstm_sequence`` with ``implementation="fused"``, ``rnn_recurrence``)
run these kernels; the readable cells and their plain scan there are what the tests
compare them with. Inputs are time-major here: ``xs (T, N, F)``, ``mask (T, N)`` bool.

Autodiff of a ``lax.scan`` of a cell accumulates the weight gradients inside the
backward loop: every step adds an ``(h, N) x (N, G*h)`` product into an ``(h, G*h)``
carry. Each kernel here is a ``jax.custom_jvp`` whose primal is the forward loop,
keeping what the backward needs (pre-activations or gates, carried states), and whose
tangent map is plain JAX written so that JAX's own transpose of it is the fast
backward pass:

- the tangent terms that do not depend on the recurrence,
  ``A = X dW_ih + H_prev dW_hh + db + dX W_ih`` (``H_prev`` the carried states shifted by
  one step), are computed outside the loop, one ``(T*N, .)`` matmul each, so their
  transposes are ``dW_ih = X^T dA``, ``dW_hh = H_prev^T dA``, ``db = sum dA`` and
  ``dX = dA W_ih^T``, one matmul each over all time steps;
- the tangent loop carries only ``dh`` (LSTM: ``dh, dc``): ``da_t = A_t + dh_{t-1} W_hh``
  and the gates' derivatives; its transpose is a reverse loop carrying only the
  cotangents of ``dh`` (``dc``) and emitting every step's ``dA``;
- the gates' derivatives are functions of stored primal values; they sit under
  ``jax.checkpoint`` so that the backward loop recomputes them per step rather than
  the forward storing them;
- every matmul is spelt so that its transpose is a plain ``(M, K) x (K, P)`` dot:
  ``dh W`` as ``dot_general(dh, W^T)`` contracting both second axes (its transpose is
  ``ct W^T`` with ``W^T`` transposed once), ``H_prev dW`` as ``dot_general(H_prev^T, dW)``
  (its transpose is ``H_prev^T ct``); XLA:CPU ran the other spellings of these dots
  1.3-4x slower (docs/recurrent.md).

So ``jit``, ``vmap``, ``grad``, grad-of-grad, ``jvp``, ``jacfwd``, ``linearize``,
``hessian`` and ``checkpoint`` all work; the rules take symbolic zeros, so an input
that is not differentiated (the mask, frozen weights, an initial state) costs
nothing. At a masked step the carry and its tangent stay as they were and the output
and its tangent are zero.

Imports: jax.
"""
from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

__all__ = ["rnn_fused", "gru_fused", "lstm_fused"]

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


# ---------------------------------------------------------------------------
# Helpers

def _mask3(mask, like):
    """``mask (T, N)`` bool as ``(T, N, 1)`` floats of ``like``'s dtype (or None)."""
    return None if mask is None else mask.astype(like.dtype).reshape(mask.shape + (1,))


def _masked(m, new, old):
    return new if m is None else m * new + (1 - m) * old


def _nonzero(t):
    """A tangent, or None for a symbolic zero."""
    return None if type(t) is SymbolicZero else t


def _total(*terms):
    """The sum of the terms that are not None (None if all are)."""
    terms = [t for t in terms if t is not None]
    return functools.reduce(operator.add, terms) if terms else None


def _zero_tangents(out):
    return jax.tree.map(SymbolicZero.from_primal_value, out)


def _times_transposed(x, w_t):
    """``x @ w_t.T`` as one dot; its transpose with respect to ``x`` is ``ct @ w_t``."""
    return lax.dot_general(x, w_t, (((x.ndim - 1,), (1,)), ((), ())))


def _rows_times(rows, d_w):
    """``rows @ d_w`` for ``rows (T, N, k)`` (or ``(T, k)``) as a dot of ``rows``' transpose,
    so its transpose with respect to ``d_w`` is the plain matmul ``rows^T @ ct``."""
    if d_w is None:
        return None
    rows_t = rows.reshape(-1, rows.shape[-1]).T
    out = lax.dot_general(rows_t, d_w, (((0,), (0,)), ((), ())))
    return out.reshape(rows.shape[:-1] + d_w.shape[-1:])


def _bias(d_b, lead):
    return None if d_b is None else jnp.broadcast_to(d_b, lead + d_b.shape)


def _shifted(first, stacked):
    """``[first, stacked[0], ..., stacked[T-2]]``: the state before each step."""
    return jnp.concatenate([first[None], stacked[:-1]], axis=0)


def _recompute(f):
    """``f`` under ``jax.checkpoint``: a backward loop recomputes its primal parts per step."""
    return jax.checkpoint(f, prevent_cse=False, policy=jax.checkpoint_policies.nothing_saveable)


def _plus(a, b):
    return a if b is None else a + b


# ---------------------------------------------------------------------------
# Elman RNN: h_t = act(xp_t + h_{t-1} W_hh)

def _rnn_forward(w_hh, h0, xp, mask, unroll, activation, keep):
    """``(h_T, ys, hs)``; ``hs`` (with ``keep``) are the carried states, which differ from
    the outputs ``ys`` only in a masked run."""
    act = _ACTIVATIONS[activation]
    m3 = _mask3(mask, xp)

    def step(h, inp):
        xp_t, m_t = inp
        h_new = act(xp_t + h @ w_hh)
        if m_t is None:
            return h_new, (h_new, None)
        h = _masked(m_t, h_new, h)
        return h, (m_t * h_new, h if keep else None)

    h, (ys, hs) = lax.scan(step, h0, (xp, m3), unroll=unroll)
    return h, ys, ys if hs is None else hs


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5))
def rnn_fused(w_hh, h0, xp, mask, unroll, activation):
    """The Elman recurrence over time-major ``xp (T, N, h)`` (or ``(T, h)``) from ``h0``:
    ``h_t = act(xp_t + h_{t-1} W_hh)``. Returns ``(h_T, ys)``."""
    h, ys, _ = _rnn_forward(w_hh, h0, xp, mask, unroll, activation, False)
    return h, ys


def _rnn_derivative(activation, y, da):
    """``act'(a) da`` from the output ``y = act(a)``: tanh' = 1 - y^2, relu' = [y > 0]."""
    if activation == "tanh":
        return (1 - y * y) * da
    return (y > 0).astype(da.dtype) * da


@functools.partial(rnn_fused.defjvp, symbolic_zeros=True)
def _rnn_fused_jvp(unroll, activation, primals, tangents):
    w_hh, h0, xp, mask = primals
    d_w_hh, d_h0, d_xp = (_nonzero(t) for t in tangents[:3])
    h, ys, hs = _rnn_forward(w_hh, h0, xp, mask, unroll, activation, True)
    if d_w_hh is None and d_h0 is None and d_xp is None:
        return (h, ys), _zero_tangents((h, ys))
    a = _total(d_xp, _rows_times(_shifted(h0, hs), d_w_hh))
    w_hh_t = w_hh.T
    derivative = _recompute(functools.partial(_rnn_derivative, activation))

    def step(dh, inp):
        a_t, y_t, m_t = inp
        d_new = derivative(y_t, _plus(_times_transposed(dh, w_hh_t), a_t))
        if m_t is None:
            return d_new, d_new
        return _masked(m_t, d_new, dh), m_t * d_new

    dh0 = jnp.zeros_like(h0) if d_h0 is None else d_h0
    dh, dys = lax.scan(step, dh0, (a, ys, _mask3(mask, xp)), unroll=unroll)
    return (h, ys), (dh, dys)


# ---------------------------------------------------------------------------
# LSTM (PyTorch's gates i, f, g, o)

def _lstm_gates(a, hid):
    """``i, f, g, o`` from the pre-activations ``a = [x, h] W + b``."""
    return (jax.nn.sigmoid(a[..., :hid]), jax.nn.sigmoid(a[..., hid:2 * hid]),
            jnp.tanh(a[..., 2 * hid:3 * hid]), jax.nn.sigmoid(a[..., 3 * hid:]))


def _lstm_forward(w_ih, w_hh, b_ih, b_hh, h0, c0, xs, mask, unroll, keep):
    """The LSTM over time-major ``xs``; with ``keep``, also what the tangent map needs:
    every step's pre-activations ``a_t``, carried cell state ``c_t`` and (masked runs
    only; unmasked, they are the outputs) carried hidden state ``h_t``."""
    hid = h0.shape[-1]
    b = (b_ih + b_hh).reshape(1, -1)
    w = jnp.concatenate([w_ih, w_hh], axis=0)       # (F + h, 4h): one dot per step
    m3 = _mask3(mask, xs)

    def step(carry, inp):
        h, c = carry
        x_t, m_t = inp
        a = jnp.concatenate([x_t, h], axis=-1) @ w + b
        i, f, gg, o = _lstm_gates(a, hid)
        c_new = f * c + i * gg
        h_new = o * jnp.tanh(c_new)
        y = h_new if m_t is None else m_t * h_new
        h, c = _masked(m_t, h_new, h), _masked(m_t, c_new, c)
        res = None
        if keep:
            res = (a, c, None if m_t is None else h)
        return (h, c), (y, res)

    (h, c), (ys, res) = lax.scan(step, (h0, c0), (xs, m3), unroll=unroll)
    return (h, c), ys, res


@functools.partial(jax.custom_jvp, nondiff_argnums=(8,))
def lstm_fused(w_ih, w_hh, b_ih, b_hh, h0, c0, xs, mask, unroll):
    """The LSTM over time-major ``xs (T, N, F)``. Returns ``((h_T, c_T), ys)``."""
    carry, ys, _ = _lstm_forward(w_ih, w_hh, b_ih, b_hh, h0, c0, xs, mask, unroll, False)
    return carry, ys


def _lstm_derivative(a, c_prev, c, da, dc):
    """``(dh, dc)`` after a step, from its pre-activations ``a``, cell states ``c_prev``
    and ``c``, and the tangents ``da`` of ``a`` and ``dc`` of ``c_prev``."""
    i, f, gg, o = _lstm_gates(a, c.shape[-1])
    da_i, da_f, da_g, da_o = jnp.split(da, 4, axis=-1)     # transposes to one concatenation
    tc = jnp.tanh(c)
    dc_new = f * dc + c_prev * f * (1 - f) * da_f + gg * i * (1 - i) * da_i + i * (1 - gg * gg) * da_g
    dh_new = tc * o * (1 - o) * da_o + o * (1 - tc * tc) * dc_new
    return dh_new, dc_new


@functools.partial(lstm_fused.defjvp, symbolic_zeros=True)
def _lstm_fused_jvp(unroll, primals, tangents):
    w_ih, w_hh, b_ih, b_hh, h0, c0, xs, mask = primals
    d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_h0, d_c0, d_xs = (_nonzero(t) for t in tangents[:7])
    (h, c), ys, (pre, cs, hs) = _lstm_forward(w_ih, w_hh, b_ih, b_hh, h0, c0, xs, mask, unroll, True)
    out = ((h, c), ys)
    if all(t is None for t in (d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_h0, d_c0, d_xs)):
        return out, _zero_tangents(out)
    hs = ys if mask is None else hs
    a = _total(_rows_times(xs, d_w_ih), _rows_times(_shifted(h0, hs), d_w_hh),
               None if d_xs is None else _times_transposed(d_xs, w_ih.T),
               _bias(_total(d_b_ih, d_b_hh), xs.shape[:-1]))
    w_hh_t = w_hh.T
    derivative = _recompute(_lstm_derivative)

    def step(carry, inp):
        dh, dc = carry
        a_t, pre_t, c_prev_t, c_t, m_t = inp
        dh_new, dc_new = derivative(pre_t, c_prev_t, c_t, _plus(_times_transposed(dh, w_hh_t), a_t), dc)
        if m_t is None:
            return (dh_new, dc_new), dh_new
        return (_masked(m_t, dh_new, dh), _masked(m_t, dc_new, dc)), m_t * dh_new

    dh0 = jnp.zeros_like(h0) if d_h0 is None else d_h0
    dc0 = jnp.zeros_like(c0) if d_c0 is None else d_c0
    (dh, dc), dys = lax.scan(step, (dh0, dc0), (a, pre, _shifted(c0, cs), cs, _mask3(mask, xs)),
                             unroll=unroll)
    return out, ((dh, dc), dys)


# ---------------------------------------------------------------------------
# GRU (PyTorch's form, reset gate after the recurrent matmul; gates r, z, n)

def _gru_forward(w_ih, w_hh, b_ih, b_hh, h0, xs, mask, unroll, keep):
    """``(h_T, ys, h_prev, gates)``: with ``keep``, the state before every step and the
    activations ``r, z, n`` with ``h W_hn + b_hn``, concatenated as ``(T, N, 4h)``."""
    hid = h0.shape[-1]
    m3 = _mask3(mask, xs)
    b = b_hh.reshape(1, -1)
    bi = b_ih.reshape(1, -1)

    def step(h, inp):
        x_t, m_t = inp
        xp_t = x_t @ w_ih + bi
        gh = h @ w_hh + b
        r = jax.nn.sigmoid(xp_t[:, :hid] + gh[:, :hid])
        z = jax.nn.sigmoid(xp_t[:, hid:2 * hid] + gh[:, hid:2 * hid])
        n = jnp.tanh(xp_t[:, 2 * hid:] + r * gh[:, 2 * hid:])
        h_new = (1 - z) * n + z * h
        y = h_new if m_t is None else m_t * h_new
        res = (h, jnp.concatenate([r, z, n, gh[:, 2 * hid:]], axis=-1)) if keep else None
        return _masked(m_t, h_new, h), (y, res)

    h, (ys, res) = lax.scan(step, h0, (xs, m3), unroll=unroll)
    return (h, ys) + (res if keep else (None, None))


@functools.partial(jax.custom_jvp, nondiff_argnums=(7,))
def gru_fused(w_ih, w_hh, b_ih, b_hh, h0, xs, mask, unroll):
    """The GRU over time-major ``xs (T, N, F)``. Returns ``(h_T, ys)``."""
    h, ys, _, _ = _gru_forward(w_ih, w_hh, b_ih, b_hh, h0, xs, mask, unroll, False)
    return h, ys


def _gru_derivative(gates, h_prev, d_xp, d_gh, dh):
    """The tangent of ``h' = (1 - z) n + z h`` from the step's activations and the
    tangents of its input projection ``d_xp``, recurrent projection ``d_gh`` and ``h``."""
    hid = h_prev.shape[-1]
    r, z, n, ghn = (gates[..., k * hid:(k + 1) * hid] for k in range(4))
    # jnp.split, not slices: its transpose is one concatenation, a slice's is a pad.
    d_x = (None,) * 3 if d_xp is None else jnp.split(d_xp, 3, axis=-1)
    d_gr, d_gz, d_gn = jnp.split(d_gh, 3, axis=-1)
    dr = r * (1 - r) * _plus(d_gr, d_x[0])
    dz = z * (1 - z) * _plus(d_gz, d_x[1])
    dn = (1 - n * n) * _plus(dr * ghn + r * d_gn, d_x[2])
    return (1 - z) * dn + dz * (h_prev - n) + z * dh


@functools.partial(gru_fused.defjvp, symbolic_zeros=True)
def _gru_fused_jvp(unroll, primals, tangents):
    w_ih, w_hh, b_ih, b_hh, h0, xs, mask = primals
    d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_h0, d_xs = (_nonzero(t) for t in tangents[:6])
    h, ys, h_prev, gates = _gru_forward(w_ih, w_hh, b_ih, b_hh, h0, xs, mask, unroll, True)
    if all(t is None for t in (d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_h0, d_xs)):
        return (h, ys), _zero_tangents((h, ys))
    lead = xs.shape[:-1]
    d_xp = _total(_rows_times(xs, d_w_ih), None if d_xs is None else _times_transposed(d_xs, w_ih.T),
                  _bias(d_b_ih, lead))
    d_hp = _total(_rows_times(h_prev, d_w_hh), _bias(d_b_hh, lead))
    w_hh_t = w_hh.T
    derivative = _recompute(_gru_derivative)

    def step(dh, inp):
        d_xp_t, d_hp_t, g_t, h_prev_t, m_t = inp
        d_new = derivative(g_t, h_prev_t, d_xp_t, _plus(_times_transposed(dh, w_hh_t), d_hp_t), dh)
        if m_t is None:
            return d_new, d_new
        return _masked(m_t, d_new, dh), m_t * d_new

    dh0 = jnp.zeros_like(h0) if d_h0 is None else d_h0
    dh, dys = lax.scan(step, dh0, (d_xp, d_hp, gates, h_prev, _mask3(mask, xs)), unroll=unroll)
    return (h, ys), (dh, dys)
