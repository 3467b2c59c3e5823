"""char_rnn: the compiled loop follows Karpathy's NumPy min-char-rnn step for step,
and a short run learns (loss and held-out bits per character fall)."""
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import char_rnn  # noqa: E402


def numpy_min_char_rnn(params, data, iterations, hidden, seq=25, lr=0.1):
    """min-char-rnn.py's loop (column-vector convention), returning the per-iteration losses."""
    Wxh, Whh, Why = params["w_ih"].T.copy(), params["w_hh"].T.copy(), params["w_out"].T.copy()
    bh, by = params["b_h"][:, None].copy(), params["b_out"][:, None].copy()
    V = Wxh.shape[1]
    mem = [np.zeros_like(a) for a in (Wxh, Whh, Why, bh, by)]
    p, hprev, losses = 0, np.zeros((hidden, 1)), []
    for n in range(iterations):
        if p + seq + 1 >= len(data) or n == 0:
            hprev, p = np.zeros((hidden, 1)), 0
        inputs, targets = data[p:p + seq], data[p + 1:p + seq + 1]
        xs, hs, ps, loss = {}, {-1: hprev}, {}, 0.0
        for t in range(seq):
            xs[t] = np.zeros((V, 1)); xs[t][inputs[t]] = 1
            hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
            y = Why @ hs[t] + by
            ps[t] = np.exp(y) / np.exp(y).sum()
            loss -= np.log(ps[t][targets[t], 0])
        grads = [np.zeros_like(a) for a in (Wxh, Whh, Why, bh, by)]
        dhnext = np.zeros((hidden, 1))
        for t in reversed(range(seq)):
            dy = ps[t].copy(); dy[targets[t]] -= 1
            grads[2] += dy @ hs[t].T; grads[4] += dy
            dhraw = (1 - hs[t] ** 2) * (Why.T @ dy + dhnext)
            grads[3] += dhraw; grads[0] += dhraw @ xs[t].T; grads[1] += dhraw @ hs[t - 1].T
            dhnext = Whh.T @ dhraw
        for param, d, m in zip((Wxh, Whh, Why, bh, by), grads, mem):
            np.clip(d, -5, 5, out=d)
            m += d * d
            param -= lr * d / np.sqrt(m + 1e-8)
        hprev = hs[seq - 1]
        p += seq
        losses.append(loss)
    return np.array(losses)


def test_matches_numpy_min_char_rnn(x64):
    config = char_rnn.Config(hidden=8, iterations=6)
    data = np.random.default_rng(0).integers(0, 5, 90).astype(np.int32)   # wraps around once in 6 steps
    carry = char_rnn.initial_carry(config, 5, jax.random.key(0))
    carry = jax.tree.map(lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, carry)
    ref = numpy_min_char_rnn(jax.tree.map(np.asarray, carry[0]), data.tolist(), 6, hidden=8)
    step, _ = char_rnn.make_train_chunk(config, jnp.asarray(data), 6)
    _, (losses, smooth) = step(carry)
    np.testing.assert_allclose(losses, ref, rtol=1e-9)
    expected_smooth = -math.log(1 / 5) * 25
    for loss in ref:
        expected_smooth = 0.999 * expected_smooth + 0.001 * loss
    np.testing.assert_allclose(smooth[-1], expected_smooth, rtol=1e-6)   # initial value is float32


def test_reduced_run_learns():
    config = char_rnn.Config(hidden=32, iterations=600, log_every=200, max_chars=20_000,
                             sample_length=40, temperatures=(0.5,))
    result = char_rnn.run(config)
    assert result["history"][-1]["smooth_loss"] < result["history"][0]["smooth_loss"] < result["initial_smooth_loss"]
    assert result["heldout_bpc"] < result["uniform_bpc"] - 1.0
    assert 3.3 < result["heldout_bpc"] < 4.4           # measured on CPU 3.81 (uniform 6.43)
    sample = result["samples"]["0.5"]
    assert len(sample) == 41 and set(sample) <= set(char_rnn.text.load_text()[:20_000])


def test_chunk_loss_passes_float64_gradient_check(x64):
    """The loss through the gather, the recurrence's written-out backward
    (``F.rnn_recurrence``) and the output layer, against central differences."""
    from fnnet.gradcheck import check_gradients

    rng = np.random.default_rng(3)
    params = {k: jnp.asarray(v) for k, v in {
        "w_ih": rng.normal(scale=0.5, size=(5, 4)), "w_hh": rng.normal(scale=0.5, size=(4, 4)),
        "b_h": rng.normal(size=4), "w_out": rng.normal(scale=0.5, size=(4, 5)), "b_out": rng.normal(size=5)}.items()}
    tokens = jnp.asarray(rng.integers(0, 5, 7))
    h0 = jnp.asarray(rng.normal(size=4))
    check_gradients(lambda p: char_rnn.chunk_loss(p, h0, tokens[:-1], tokens[1:])[0], params)
