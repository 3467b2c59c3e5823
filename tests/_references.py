"""Plain-JAX references for tests/test_transforms.py: the textbook form of each kernel,
written from its equation with jnp ops only (no fnnet import), so that every JAX
transform of a reference is JAX's own transform of obviously-correct code.

Channels last; conv kernels ``(*window, in / groups, out)``; recurrent weights fused
in PyTorch's gate order (GRU ``r, z, n``; LSTM ``i, f, g, o``) with two biases.
"""
import itertools
import math

import jax
import jax.numpy as jnp


def _row(v, like):
    """``v (C,)`` shaped to broadcast against ``like (..., C)`` (rank promotion raises)."""
    return v.reshape((1,) * (like.ndim - 1) + v.shape)


# ---------------------------------------------------------------------------
# Dense, convolution, pooling

def dense(x, w, b):
    """``y = x W + b``."""
    y = x @ w
    return y + _row(b, y)


def same_pads(spatial, window, stride, dilation):
    """TensorFlow's SAME: output ``ceil(n / s)``, the odd pixel of padding on the high side."""
    pads = []
    for n, f, s, d in zip(spatial, window, stride, dilation):
        total = max((-(-n // s) - 1) * s + d * (f - 1) + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def _window_views(xp, window, stride, dilation):
    """For every window offset ``k`` (row-major): ``xp[:, s o + d k, :]`` over all outputs ``o``."""
    nd = xp.ndim - 2
    out = [(xp.shape[1 + i] - dilation[i] * (window[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    for k in itertools.product(*(range(f) for f in window)):
        idx = tuple(slice(k[i] * dilation[i], k[i] * dilation[i] + (out[i] - 1) * stride[i] + 1, stride[i])
                    for i in range(nd))
        yield k, xp[(slice(None),) + idx + (slice(None),)]


def conv(x, w, b=None, *, stride, pads, dilation, groups=1):
    """``y[n, o, f] = b[f] + sum_{k, c} x_pad[n, s o + d k, g(f) Cg + c] w[k, c, f]``
    over window offsets ``k`` and the ``Cg`` input channels of the group ``g(f)`` of
    output channel ``f``: the window views stacked, then one einsum."""
    nd = x.ndim - 2
    window, (cg, fout) = w.shape[:nd], w.shape[nd:]
    xp = jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),))
    views = jnp.stack([v for _, v in _window_views(xp, window, stride, dilation)], axis=-2)
    views = views.reshape(views.shape[:-1] + (groups, cg))              # (N, *out, K, G, Cg)
    y = jnp.einsum("...kgc,kcgf->...gf", views, w.reshape(-1, cg, groups, fout // groups))
    y = y.reshape(y.shape[:-2] + (fout,))
    return y if b is None else y + _row(b, y)


def conv_transpose(x, w, b, *, stride, pads, dilation):
    """By definition: the input gradient of ``conv`` with the kernel's (in, out) swapped,
    at cotangent ``x``, on the input size that ``conv`` maps to ``x``'s size."""
    nd = x.ndim - 2
    window = w.shape[:nd]
    size = [(n - 1) * s - lo - hi + d * (f - 1) + 1
            for n, s, (lo, hi), d, f in zip(x.shape[1:-1], stride, pads, dilation, window)]
    zero = jnp.zeros((x.shape[0], *size, w.shape[-1]), x.dtype)
    w_forward = jnp.swapaxes(w, -1, -2)
    _, vjp = jax.vjp(lambda v: conv(v, w_forward, stride=stride, pads=pads, dilation=dilation), zero)
    (y,) = vjp(x)
    return y + _row(b, y)


def pool(x, window, stride, pads, kind):
    """Max (padding ``-inf``) or average (zero padding, divided by the window size) of
    every window: a reduction over the stacked window views."""
    fill = -jnp.inf if kind == "max" else 0.0
    xp = jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),), constant_values=fill)
    views = jnp.stack([v for _, v in _window_views(xp, window, stride, (1,) * len(window))])
    return jnp.max(views, axis=0) if kind == "max" else jnp.sum(views, axis=0) / math.prod(window)


# ---------------------------------------------------------------------------
# Normalisation

def _normalise(x, axes, eps):
    mu = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean((x - mu) ** 2, axis=axes, keepdims=True)
    return (x - mu) / jnp.sqrt(var + eps), mu, var


def batch_norm_train(x, scale, bias, mean, var, *, momentum=0.1, eps=1e-5):
    """Batch statistics over every axis but the last; running statistics updated with
    the unbiased variance (PyTorch) and not differentiated (they are buffers)."""
    axes = tuple(range(x.ndim - 1))
    xhat, mu, v = _normalise(x, axes, eps)
    n = math.prod(x.shape[:-1])
    mu, v = jax.lax.stop_gradient(mu.reshape(-1)), jax.lax.stop_gradient(v.reshape(-1))
    y = xhat * _row(scale, x) + _row(bias, x)
    return y, (1 - momentum) * mean + momentum * mu, (1 - momentum) * var + momentum * v * n / (n - 1)


def batch_norm_eval(x, scale, bias, mean, var, *, eps=1e-5):
    return (x - _row(mean, x)) / jnp.sqrt(_row(var, x) + eps) * _row(scale, x) + _row(bias, x)


def layer_norm(x, scale, bias, *, eps=1e-5):
    return _normalise(x, (-1,), eps)[0] * _row(scale, x) + _row(bias, x)


def group_norm(x, scale, bias, *, num_groups, eps=1e-5):
    c = x.shape[-1]
    xg = x.reshape(x.shape[:-1] + (num_groups, c // num_groups))
    axes = tuple(range(1, x.ndim - 1)) + (x.ndim,)
    return _normalise(xg, axes, eps)[0].reshape(x.shape) * _row(scale, x) + _row(bias, x)


# ---------------------------------------------------------------------------
# Recurrent: a Python loop over time of PyTorch's equations

def _sigmoid(a):
    return jax.nn.sigmoid(a)


def _sequence(step, carry, xs, lengths):
    """Run ``step(carry, x_t) -> (carry, h_t)`` over ``xs (N, T, F)``. With ``lengths``,
    sequence ``n`` keeps its carry and outputs zeros at ``t >= lengths[n]``."""
    ys = []
    for t in range(xs.shape[1]):
        new, h = step(carry, xs[:, t])
        if lengths is None:
            carry, y = new, h
        else:
            valid = (t < lengths).reshape(-1, 1)
            carry = jax.tree.map(lambda a, b: jnp.where(valid, a, b), new, carry)
            y = jnp.where(valid, h, 0.0)
        ys.append(y)
    return carry, jnp.stack(ys, axis=1)


def _gates(a, hid, count):
    return [a[:, k * hid:(k + 1) * hid] for k in range(count)]


def rnn_sequence(p, h0, xs, lengths=None):
    """``h_t = tanh(x_t W_ih + b_ih + h_{t-1} W_hh + b_hh)``."""
    def step(h, x):
        h = jnp.tanh(x @ p["w_ih"] + _row(p["b_ih"], h) + h @ p["w_hh"] + _row(p["b_hh"], h))
        return h, h
    return _sequence(step, h0, xs, lengths)


def rnn_recurrence(w_hh, h0, xp, lengths=None):
    """``h_t = tanh(xp_t + h_{t-1} W_hh)``."""
    def step(h, x):
        h = jnp.tanh(x + h @ w_hh)
        return h, h
    return _sequence(step, h0, xp, lengths)


def gru_sequence(p, h0, xs, lengths=None):
    """PyTorch's GRU, gates ``r, z, n`` fused along the last axis::

        r = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
        z = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
        n = tanh(x W_in + b_in + r * (h W_hn + b_hn))
        h' = (1 - z) * n + z * h
    """
    hid = h0.shape[-1]

    def step(h, x):
        xr, xz, xn = _gates(x @ p["w_ih"] + _row(p["b_ih"], x), hid, 3)
        hr, hz, hn = _gates(h @ p["w_hh"] + _row(p["b_hh"], h), hid, 3)
        r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        return h, h
    return _sequence(step, h0, xs, lengths)


def lstm_sequence(p, carry, xs, lengths=None):
    """PyTorch's LSTM, gates ``i, f, g, o`` fused along the last axis::

        i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (x W_i* + b_i* + h W_h* + b_h*)
        c' = f * c + i * g
        h' = o * tanh(c')
    """
    hid = carry[0].shape[-1]

    def step(hc, x):
        h, c = hc
        a = x @ p["w_ih"] + h @ p["w_hh"] + _row(p["b_ih"] + p["b_hh"], h)
        i, f, g, o = _gates(a, hid, 4)
        i, f, g, o = _sigmoid(i), _sigmoid(f), jnp.tanh(g), _sigmoid(o)
        c = f * c + i * g
        h = o * jnp.tanh(c)
        return (h, c), h
    return _sequence(step, carry, xs, lengths)


# ---------------------------------------------------------------------------
# Losses and penalties

def softmax_cross_entropy_with_integer_labels(logits, labels):
    """``mean_n(log sum_k exp z_nk - z_{n, y_n})``."""
    picked = jnp.take_along_axis(logits, labels.reshape(-1, 1), axis=-1)[:, 0]
    return jnp.mean(jnp.log(jnp.sum(jnp.exp(logits), axis=-1)) - picked)


def binary_cross_entropy(probs, labels):
    """``mean(-[y log p + (1 - y) log(1 - p)])``."""
    return jnp.mean(-(labels * jnp.log(probs) + (1 - labels) * jnp.log(1 - probs)))


def mse(pred, target):
    return jnp.mean((pred - target) ** 2)


def dot_product_attention(q, k, v, allowed, bias, scale):
    """``softmax(scale q k^T + bias)`` over the allowed keys, one head per key head."""
    logits = jnp.einsum("bthd,bshd->bhts", q, k) * scale + bias
    weights = jax.nn.softmax(jnp.where(allowed, logits, -1e30), axis=-1)
    return jnp.einsum("bhts,bshd->bthd", weights, v)


def additive_attention(query, keys, values, w_query, w_key, v, allowed):
    """Bahdanau: ``e_s = v . tanh(W_q q + W_k k_s)``, softmax over the allowed ``s``."""
    scores = jnp.tanh((query @ w_query)[:, None, :] + keys @ w_key) @ v
    weights = jax.nn.softmax(jnp.where(allowed, scores, -1e30), axis=-1)
    return jnp.einsum("bs,bsd->bd", weights, values)
