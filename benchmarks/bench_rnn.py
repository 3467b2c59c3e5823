"""LSTM, GRU and Elman RNN train steps: fnnet against a straightforward JAX scan and PyTorch.

One train step: a one-layer LSTM (or GRU, or tanh RNN) over a batch-major sequence (N=32, T=64,
F=64, hidden 256), the mean squared error of all outputs against a fixed target, the
gradient of every weight, and an SGD update. Variants, all in one process:

- ``jax_scan``: a straightforward JAX model, ``lax.scan`` of the whole cell (``x_t W_ih``
  inside the loop), differentiated by JAX.
- ``jax_hoisted`` (LSTM, GRU): the same with the input projection ``x W_ih`` of all steps
  hoisted out of the loop as one big matmul (what Flax's ``OptimizedLSTMCell`` does).
- ``fnnet_scan``: ``fnnet.functional.lstm_sequence(..., implementation="scan")``, the
  scan differentiated by JAX.
- ``fnnet``: the default ``implementation="fused"`` (``fnnet/functional/recurrent_fused.py``):
  the same forward, in a ``custom_jvp`` whose tangent map JAX transposes into a backward
  loop that carries only ``dh`` (``dc``), with the weight gradients as matmuls over all
  time steps; forward mode (jvp, jacfwd, hessian) works through it.
- ``fnnet_vjp``: the "before" row, the fused kernels as they were until they became
  ``custom_jvp`` functions: a ``custom_vjp`` with a hand-written backward pass (no
  forward mode), copied below verbatim. The ``/fnnet_vjp`` column is the ratio new/old.
- ``matmul_floor`` (LSTM only): not an LSTM, a lower bound for any XLA program of the
  fused kernel's shape: only its matmuls, in the same order and with the same
  dependencies (per step ``[x_t, h] @ [W_ih; W_hh]`` forward and ``da @ W_hh^T``
  backward, then the weight and input gradients over all steps), with the gates
  replaced by the cheapest glue that keeps each step waiting for the previous one.
- ``torch``: ``torch.nn.LSTM/GRU(batch_first=True)`` with ``loss.backward()`` and
  ``torch.optim.SGD``, in a child process that never imports JAX (in one process
  XLA's and torch's thread pools fight and torch's step is 2-5x slower); the
  parent times each step round trip, so torch pays a pipe round trip (~0.1 ms).
- ``torch_1t``: the same with ``torch.set_num_threads(1)``. On this shared 2-core machine
  torch's two OpenMP threads collapse (10-100x slower steps) whenever other processes
  hold a core; one thread does not, so this is the torch figure that stays meaningful
  under load (alone and quiet it is ~1.9x the two-thread step).

Rounds interleave the variants (rotating the order); reported: the median time of each,
the median of the per-round ratios to torch, torch_1t, jax_scan and fnnet_vjp, the load average,
and CPU ms per step (the JAX variants: this process, all threads; torch: its child).
CPU time hardly depends on the load; a single-threaded step (torch_1t) has wall time =
CPU time on a quiet machine, and two-thread torch's CPU time includes its OpenMP
threads' spin-waiting.
``--unroll`` sets ``lax.scan``'s unroll; ``--kinds`` picks among ``lstm,gru,rnn``;
``--only`` restricts the variants (e.g. ``--only fnnet,fnnet_vjp``); ``--no-torch`` skips
PyTorch.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import functional as F
from fnnet.functional.recurrent import _ACTIVATIONS

N, T, FIN, H = 32, 64, 64, 256
LR = 0.01


def init_params(rng, gates):
    s = 1.0 / np.sqrt(H)
    return {"w_ih": jnp.asarray(rng.uniform(-s, s, (FIN, gates * H)), jnp.float32),
            "w_hh": jnp.asarray(rng.uniform(-s, s, (H, gates * H)), jnp.float32),
            "b_ih": jnp.asarray(rng.uniform(-s, s, (gates * H,)), jnp.float32),
            "b_hh": jnp.asarray(rng.uniform(-s, s, (gates * H,)), jnp.float32)}


def plain_lstm(p, xs):
    """The straightforward JAX LSTM: the whole cell inside ``lax.scan``."""
    def cell(carry, x):
        h, c = carry
        g = x @ p["w_ih"] + p["b_ih"][None] + h @ p["w_hh"] + p["b_hh"][None]
        i, f, gg, o = jnp.split(g, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(gg)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h
    z = jnp.zeros((xs.shape[0], H), xs.dtype)
    _, ys = jax.lax.scan(cell, (z, z), jnp.swapaxes(xs, 0, 1))
    return jnp.swapaxes(ys, 0, 1)


def hoisted_lstm(p, xs):
    """Flax-style: ``x W_ih + b`` for every step as one matmul, then the recurrent half."""
    xp = jnp.einsum("ntf,fg->tng", xs, p["w_ih"]) + (p["b_ih"] + p["b_hh"])[None, None]

    def cell(carry, x):
        h, c = carry
        g = x + h @ p["w_hh"]
        i, f, gg, o = jnp.split(g, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(gg)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h
    z = jnp.zeros((xs.shape[0], H), xs.dtype)
    _, ys = jax.lax.scan(cell, (z, z), xp)
    return jnp.swapaxes(ys, 0, 1)


def hoisted_gru(p, xs):
    xp = jnp.einsum("ntf,fg->tng", xs, p["w_ih"]) + p["b_ih"][None, None]

    def cell(h, gi):
        gh = h @ p["w_hh"] + p["b_hh"][None]
        ir, iz, i_n = jnp.split(gi, 3, axis=-1)
        hr, hz, hn = jnp.split(gh, 3, axis=-1)
        r, z = jax.nn.sigmoid(ir + hr), jax.nn.sigmoid(iz + hz)
        h = (1 - z) * jnp.tanh(i_n + r * hn) + z * h
        return h, h
    _, ys = jax.lax.scan(cell, jnp.zeros((xs.shape[0], H), xs.dtype), xp)
    return jnp.swapaxes(ys, 0, 1)


def plain_gru(p, xs):
    def cell(h, x):
        gi = x @ p["w_ih"] + p["b_ih"][None]
        gh = h @ p["w_hh"] + p["b_hh"][None]
        ir, iz, i_n = jnp.split(gi, 3, axis=-1)
        hr, hz, hn = jnp.split(gh, 3, axis=-1)
        r, z = jax.nn.sigmoid(ir + hr), jax.nn.sigmoid(iz + hz)
        h = (1 - z) * jnp.tanh(i_n + r * hn) + z * h
        return h, h
    _, ys = jax.lax.scan(cell, jnp.zeros((xs.shape[0], H), xs.dtype), jnp.swapaxes(xs, 0, 1))
    return jnp.swapaxes(ys, 0, 1)


def matmul_floor(p, xs):
    """The LSTM step's matmuls alone (see the module docstring), with a custom VJP."""
    w = jnp.concatenate([p["w_ih"], p["w_hh"]], axis=0)      # (F + H, 4H)
    xs_tm = jnp.swapaxes(xs, 0, 1)

    def forward(w, xs_tm):
        def step(h, x):
            z = jnp.concatenate([x, h], axis=-1)
            g = z @ w
            return g[:, :H], (z, g)
        h, (zs, gs) = jax.lax.scan(step, jnp.zeros((xs_tm.shape[1], H), xs.dtype), xs_tm)
        return h, (w, zs, gs)

    def backward(res, dh):
        w, zs, gs = res
        w_hh_t = w[FIN:].T

        def step(d, g):
            da = g * jnp.tile(d, (1, 4))
            return da @ w_hh_t, da
        _, das = jax.lax.scan(step, dh, gs, reverse=True)
        da2 = das.reshape(-1, 4 * H)
        d_w = zs.reshape(-1, FIN + H).T @ da2
        d_xs = (da2 @ w[:FIN].T).reshape(xs_tm.shape)
        return d_w, d_xs

    run = jax.custom_vjp(lambda w, x: forward(w, x)[0])
    run.defvjp(forward, backward)
    h = run(w, xs_tm)
    return jnp.broadcast_to(h[:, None, :], xs.shape[:2] + (H,))


# ``fnnet_vjp``: the fused kernels as they were before they became custom_jvp functions
# (fnnet/functional/recurrent.py at commit 3c2e9a9), kept here verbatim as the "before"
# row: a custom VJP with a hand-written backward pass, which has no forward mode.
#
# Autodiff of ``lax.scan`` accumulates dW_hh inside the backward loop: every step adds
# an (h, N) x (N, G*h) product into a (h, G*h) carry, so the weight gradient is read and
# written T times. The custom VJPs below let the backward loop carry only (dh[, dc])
# and emit the pre-activation gradients of every step; the weight gradients are then
# one (h, T*N) x (T*N, G*h) matmul each, after the loop. Inputs are time-major here.

def _mask3(mask_tm, like):
    return None if mask_tm is None else mask_tm.astype(like.dtype).reshape(mask_tm.shape + (1,))


def _masked(m, new, old):
    return new if m is None else m * new + (1 - m) * old


def _rnn_forward(w_hh, h0, xp, mask, unroll, activation, keep):
    """The recurrence over time-major ``xp``: ``(h_T, ys, hs)``, where ``hs`` (with ``keep``)
    are the carried states, which differ from the outputs ``ys`` only in a masked run."""
    act = _ACTIVATIONS[activation]
    m3 = _mask3(mask, xp)

    def step(h, inp):
        xp_t, m_t = inp
        h_new = act(xp_t + h @ w_hh)
        y = h_new if m_t is None else m_t * h_new
        h = _masked(m_t, h_new, h)
        return h, (y, h if keep and m_t is not None else None)

    h, (ys, hs) = jax.lax.scan(step, h0, (xp, m3), unroll=unroll)
    return h, ys, ys if hs is None else hs


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _vjp_rnn(w_hh, h0, xp, mask, unroll, activation):
    return _rnn_forward(w_hh, h0, xp, mask, unroll, activation, False)[:2]


def _vjp_rnn_fwd(w_hh, h0, xp, mask, unroll, activation):
    h, ys, hs = _rnn_forward(w_hh, h0, xp, mask, unroll, activation, True)
    return (h, ys), (w_hh, h0, mask, ys, hs)


def _vjp_rnn_bwd(unroll, activation, res, cts):
    # act'(a_t) from the outputs: tanh' = 1 - y^2, relu' = [y > 0]. At a masked step the
    # output is 0, but dh = 0 enters there, so da = 0 all the same.
    w_hh, h0, mask, ys, hs = res
    dh_T, dys = cts
    m3 = _mask3(mask, dys)
    w_hh_t = w_hh.T

    def step(dh, inp):
        dy, y, m_t = inp
        d = dh + dy if m_t is None else m_t * (dh + dy)
        da = d * (1 - y * y) if activation == "tanh" else d * (y > 0).astype(d.dtype)
        dh_prev = da @ w_hh_t
        if m_t is not None:
            dh_prev = dh_prev + (1 - m_t) * dh
        return dh_prev, da

    dh0, da = jax.lax.scan(step, dh_T, (dys, ys, m3), reverse=True, unroll=unroll)
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
    hid = h0.shape[-1]
    d_w_hh = h_prev.reshape(-1, hid).T @ da.reshape(-1, hid)
    d_mask = None if mask is None else np.zeros(mask.shape, jax.dtypes.float0)
    return d_w_hh, dh0, da, d_mask


_vjp_rnn.defvjp(_vjp_rnn_fwd, _vjp_rnn_bwd)


def _lstm_forward(w_ih, w_hh, b_ih, b_hh, h0, c0, xs, mask, unroll, keep):
    """The LSTM over time-major ``xs``; with ``keep``, also the residuals of the backward
    pass: every step's pre-activations ``a_t``, carried cell state ``c_t`` and (masked
    runs only; unmasked, they are the outputs) carried hidden state ``h_t``."""
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
            res = (a, c) if m_t is None else (a, c, h)
        return (h, c), (y, res)

    (h, c), (ys, res) = jax.lax.scan(step, (h0, c0), (xs, m3), unroll=unroll)
    return (h, c), ys, res


def _lstm_gates(a, hid):
    """``i, f, g, o`` from the pre-activations ``a = [x, h] W + b`` (PyTorch's order)."""
    return (jax.nn.sigmoid(a[:, :hid]), jax.nn.sigmoid(a[:, hid:2 * hid]),
            jnp.tanh(a[:, 2 * hid:3 * hid]), jax.nn.sigmoid(a[:, 3 * hid:]))


@functools.partial(jax.custom_vjp, nondiff_argnums=(8,))
def _vjp_lstm(w_ih, w_hh, b_ih, b_hh, h0, c0, xs, mask, unroll):
    (h, c), ys, _ = _lstm_forward(w_ih, w_hh, b_ih, b_hh, h0, c0, xs, mask, unroll, False)
    return (h, c), ys


def _vjp_lstm_fwd(w_ih, w_hh, b_ih, b_hh, h0, c0, xs, mask, unroll):
    (h, c), ys, res = _lstm_forward(w_ih, w_hh, b_ih, b_hh, h0, c0, xs, mask, unroll, True)
    hs = ys if mask is None else res[2]
    return ((h, c), ys), (w_ih, w_hh, h0, c0, xs, mask, res[0], res[1], hs)


def _vjp_lstm_bwd(unroll, res, cts):
    # The forward stores three arrays per step (pre-activations, carried c and the
    # outputs); the gates are recomputed here, and c_{t-1} and h_{t-1} are the stored
    # states shifted by one step. At a masked step dh = dc = 0 enter, so da = 0 whatever
    # the carried c there holds.
    w_ih, w_hh, h0, c0, xs, mask, pre, cs, hs = res
    (dh_T, dc_T), dys = cts
    hid = dh_T.shape[-1]
    m3 = _mask3(mask, dys)
    w_hh_t = w_hh.T
    c_prev = jnp.concatenate([c0[None], cs[:-1]], axis=0)

    def step(carry, inp):
        dh, dc = carry
        dy, a, c, cp, m_t = inp
        i, f, gg, o = _lstm_gates(a, hid)
        if m_t is None:
            dh_new, dc_new = dh + dy, dc
        else:
            dh_new, dc_new = m_t * (dh + dy), m_t * dc
        tc = jnp.tanh(c)
        dc_tot = dc_new + dh_new * o * (1 - tc * tc)
        da = jnp.concatenate([dc_tot * gg * i * (1 - i), dc_tot * cp * f * (1 - f),
                              dc_tot * i * (1 - gg * gg), dh_new * tc * o * (1 - o)], axis=-1)
        dh_prev = da @ w_hh_t
        dc_prev = dc_tot * f
        if m_t is not None:
            dh_prev = dh_prev + (1 - m_t) * dh
            dc_prev = dc_prev + (1 - m_t) * dc
        return (dh_prev, dc_prev), da

    (dh0, dc0), da = jax.lax.scan(step, (dh_T, dc_T), (dys, pre, cs, c_prev, m3), reverse=True,
                                  unroll=unroll)
    fin = w_ih.shape[0]
    da2 = da.reshape(-1, 4 * hid)
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
    d_w_ih = xs.reshape(-1, fin).T @ da2
    d_w_hh = h_prev.reshape(-1, hid).T @ da2
    d_b = jnp.sum(da2, axis=0)
    d_xs = (da2 @ w_ih.T).reshape(da.shape[:2] + (fin,))
    d_mask = None if mask is None else np.zeros(mask.shape, jax.dtypes.float0)
    return d_w_ih, d_w_hh, d_b, d_b, dh0, dc0, d_xs, d_mask


_vjp_lstm.defvjp(_vjp_lstm_fwd, _vjp_lstm_bwd)


def _gru_forward(w_ih, w_hh, b_ih, b_hh, h0, xs, mask, unroll, keep):
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
        res = jnp.concatenate([r, z, n, gh[:, 2 * hid:]], axis=-1) if keep else None
        return _masked(m_t, h_new, h), (y, h, res)

    h, (ys, h_prev, res) = jax.lax.scan(step, h0, (xs, m3), unroll=unroll)
    return h, ys, h_prev, res


@functools.partial(jax.custom_vjp, nondiff_argnums=(7,))
def _vjp_gru(w_ih, w_hh, b_ih, b_hh, h0, xs, mask, unroll):
    h, ys, _, _ = _gru_forward(w_ih, w_hh, b_ih, b_hh, h0, xs, mask, unroll, False)
    return h, ys


def _vjp_gru_fwd(w_ih, w_hh, b_ih, b_hh, h0, xs, mask, unroll):
    h, ys, h_prev, res = _gru_forward(w_ih, w_hh, b_ih, b_hh, h0, xs, mask, unroll, True)
    return (h, ys), (w_ih, w_hh, xs, mask, h_prev, res)


def _vjp_gru_bwd(unroll, res, cts):
    w_ih, w_hh, xs, mask, h_prev, gates = res
    dh_T, dys = cts
    hid = dh_T.shape[-1]
    m3 = _mask3(mask, xs)
    w_hh_t = w_hh.T

    def step(dh, inp):
        dy, g, hp, m_t = inp
        r, z, n, ghn = g[:, :hid], g[:, hid:2 * hid], g[:, 2 * hid:3 * hid], g[:, 3 * hid:]
        d = dh + dy if m_t is None else m_t * (dh + dy)
        dan = d * (1 - z) * (1 - n * n)
        daz = d * (hp - n) * z * (1 - z)
        dar = dan * ghn * r * (1 - r)
        dgh = jnp.concatenate([dar, daz, dan * r], axis=-1)
        dxp = jnp.concatenate([dar, daz, dan], axis=-1)
        dh_prev = d * z + dgh @ w_hh_t
        if m_t is not None:
            dh_prev = dh_prev + (1 - m_t) * dh
        return dh_prev, (dgh, dxp)

    dh0, (dgh, dxp) = jax.lax.scan(step, dh_T, (dys, gates, h_prev, m3), reverse=True, unroll=unroll)
    d_w_hh = jnp.einsum("tnh,tng->hg", h_prev, dgh)
    d_w_ih = jnp.einsum("tnf,tng->fg", xs, dxp)
    d_xs = jnp.einsum("tng,fg->tnf", dxp, w_ih)
    d_mask = None if mask is None else np.zeros(mask.shape, jax.dtypes.float0)
    return d_w_ih, d_w_hh, jnp.sum(dxp, axis=(0, 1)), jnp.sum(dgh, axis=(0, 1)), dh0, d_xs, d_mask


_vjp_gru.defvjp(_vjp_gru_fwd, _vjp_gru_bwd)


def jax_step(forward):
    @jax.jit
    def step(p, xs, target):
        loss, g = jax.value_and_grad(lambda q: jnp.mean((forward(q, xs) - target) ** 2))(p)
        return jax.tree.map(lambda a, b: a - LR * b, p, g), loss
    return step


def fnnet_forward(kind, implementation, unroll):
    def forward(p, xs):
        z = jnp.zeros((xs.shape[0], H), xs.dtype)
        if kind == "lstm":
            return F.lstm_sequence(p, (z, z), xs, implementation=implementation, unroll=unroll)[1]
        if kind == "gru":
            return F.gru_sequence(p, z, xs, implementation=implementation, unroll=unroll)[1]
        return F.rnn_sequence(p, z, xs, implementation=implementation, unroll=unroll)[1]
    return forward


def vjp_forward(kind, unroll):
    """The "before" row: the custom-VJP kernels above, called as the library called them."""
    def forward(p, xs):
        z = jnp.zeros((xs.shape[0], H), xs.dtype)
        xs_tm = jnp.swapaxes(xs, 0, 1)
        if kind == "lstm":
            ys = _vjp_lstm(p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], z, z, xs_tm, None, unroll)[1]
        elif kind == "gru":
            ys = _vjp_gru(p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], z, xs_tm, None, unroll)[1]
        else:
            xp = xs_tm @ p["w_ih"] + (p["b_ih"] + p["b_hh"]).reshape(1, 1, -1)
            ys = _vjp_rnn(p["w_hh"], z, xp, None, unroll, "tanh")[1]
        return jnp.swapaxes(ys, 0, 1)
    return forward


def plain_rnn(p, xs):
    """The straightforward JAX Elman RNN: the whole cell inside ``lax.scan``."""
    def cell(h, x):
        h = jnp.tanh(x @ p["w_ih"] + p["b_ih"][None] + h @ p["w_hh"] + p["b_hh"][None])
        return h, h
    _, ys = jax.lax.scan(cell, jnp.zeros((xs.shape[0], H), xs.dtype), jnp.swapaxes(xs, 0, 1))
    return jnp.swapaxes(ys, 0, 1)


GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def make_runs(kind, unroll, rng, with_torch=True, only=None):
    gates = GATES[kind]
    xs = jnp.asarray(rng.normal(size=(N, T, FIN)), jnp.float32)
    target = jnp.asarray(rng.normal(size=(N, T, H)), jnp.float32)
    runs = {}
    forwards = {"jax_scan": {"lstm": plain_lstm, "gru": plain_gru, "rnn": plain_rnn}[kind]}
    if kind != "rnn":
        forwards["jax_hoisted"] = hoisted_lstm if kind == "lstm" else hoisted_gru
    forwards.update({"fnnet_scan": fnnet_forward(kind, "scan", unroll),
                     "fnnet": fnnet_forward(kind, "fused", unroll),
                     "fnnet_vjp": vjp_forward(kind, unroll)})
    if kind == "lstm":
        forwards["matmul_floor"] = matmul_floor
    if only:
        forwards = {k: v for k, v in forwards.items() if k in only}
    for name, fwd in forwards.items():
        step = jax_step(fwd)
        box = [init_params(np.random.default_rng(0), gates)]

        def run(step=step, box=box):
            box[0], loss = step(box[0], xs, target)
            jax.block_until_ready(loss)
        runs[name] = run
    if not with_torch:
        return runs
    try:
        import torch  # noqa: F401  (only to know it is installed; it runs in a child process)
    except ImportError:
        return runs
    runs["torch"] = torch_worker(kind, np.asarray(xs), np.asarray(target))
    runs["torch_1t"] = torch_worker(kind, np.asarray(xs), np.asarray(target), threads=1)
    return runs


_WORKER = r"""
import sys, time, numpy as np, torch
kind, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
if threads:
    torch.set_num_threads(threads)
data = np.load(path)
torch.manual_seed(0)
net = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind](data["x"].shape[2], int(data["h"]), batch_first=True)
opt = torch.optim.SGD(net.parameters(), lr=float(data["lr"]))
x, t = torch.tensor(data["x"]), torch.tensor(data["t"])
for line in sys.stdin:
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(int(line)):
        opt.zero_grad()
        loss = ((net(x)[0] - t) ** 2).mean()
        loss.backward()
        opt.step()
    print(time.perf_counter() - start, time.process_time() - cpu, flush=True)
"""


def torch_worker(kind, xs, target, threads=0):
    """PyTorch's step in a child process that never loads JAX: in one process, XLA's CPU
    thread pool and torch's OpenMP threads fight, and torch's step was measured 2-5x
    slower there than alone. ``run()`` runs one step in the child; ``threads`` (0: torch's
    default) sets ``torch.set_num_threads``."""
    import atexit
    import os
    import subprocess
    import sys
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), "data.npz")
    np.savez(path, x=xs, t=target, h=H, lr=LR)
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, kind, path, str(threads)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    atexit.register(proc.kill)

    def run():
        """One step; returns the child's CPU seconds for it."""
        proc.stdin.write("1\n")
        proc.stdin.flush()
        return float(proc.stdout.readline().split()[1])
    return run


def measure(runs, rounds, reps):
    """Interleaved rounds: per variant, wall seconds and CPU seconds per step (the JAX
    variants: this process's CPU time, all threads; torch: its child's CPU time)."""
    for run in runs.values():
        for _ in range(3):
            run()
    times = {k: [] for k in runs}
    cpus = {k: [] for k in runs}
    names = list(runs)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            start, cpu, child = time.perf_counter(), time.process_time(), 0.0
            for _ in range(reps):
                child += runs[name]() or 0.0
            times[name].append((time.perf_counter() - start) / reps)
            cpus[name].append((child or time.process_time() - cpu) / reps)
    return times, cpus


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--unroll", type=int, default=1)
    parser.add_argument("--kinds", default="lstm,gru,rnn")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
    parser.add_argument("--only", default="", help="comma-separated variants to run (default: all)")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, N={N} T={T} F={FIN} H={H}, unroll={args.unroll}, "
          f"rounds={args.rounds} x {args.reps}")
    for kind in args.kinds.split(","):
        runs = make_runs(kind, args.unroll, np.random.default_rng(1), not args.no_torch,
                         [v for v in args.only.split(",") if v])
        times, cpus = measure(runs, args.rounds, args.reps)
        refs = [r for r in ("torch", "torch_1t", "jax_scan", "fnnet_vjp") if r in times]
        print(f"\n{kind}: median ms per train step, and median per-round ratios "
              f"(load average {open('/proc/loadavg').read().split()[0]})")
        print(f"  {'':11s} {'ms':>8s}   " + "  ".join(f"/{r:9s}" for r in refs) + "   CPU ms")
        for name, ts in times.items():
            ratios = [statistics.median(a / b for a, b in zip(ts, times[r])) for r in refs]
            print(f"  {name:11s} {1e3 * statistics.median(ts):8.1f}   " + "  ".join(f"{q:10.2f}" for q in ratios)
                  + f"   {1e3 * statistics.median(cpus[name]):6.1f}")


if __name__ == "__main__":
    main()
