"""char_rnn: iterations per second of fnnet's compiled min-char-rnn against the same
model in plain NumPy (Karpathy's ``min-char-rnn.py`` loop), side by side in one process.

Both run the identical algorithm on the Python reference manual text: hidden 100,
25-character chunks, summed cross-entropy, gradients clipped to [-5, 5], Adagrad with
learning rate 0.1. The NumPy side is the original loop (forward and backward written
by hand, one Python iteration per chunk); the fnnet side is ``experiments/char_rnn.py``:
a ``lax.scan`` over ``CHUNK`` iterations with ``jax.value_and_grad`` and
``fnnet.optim``. Rounds alternate between the two; the result is the median of the
per-round ratios of iterations per second, fnnet / NumPy (the goal is at least 20),
in wall-clock time and in process CPU time (``time.process_time``, all threads).

On this shared 2-core machine the wall-clock ratio swings with the load (16-28x in
back-to-back runs at load 6-7: the NumPy loop's wall-clock rate falls further under
contention than its CPU-time rate). Both loops are essentially single-threaded, so the
CPU-time ratio is the load-independent figure; it counts every XLA thread against
fnnet, so it does not flatter it.

A third row, ``before``, is the same fnnet step compiled with the recurrence as it was
before it became a ``custom_jvp`` (the custom VJP with a hand-written backward pass,
``bench_rnn._vjp_rnn``, patched in for ``F.rnn_recurrence`` while the step is traced);
the script also prints the median per-round ratio of the current step's time to it.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import unittest.mock

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from experiments import char_rnn  # noqa: E402
from fnnet import functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rnn import _vjp_rnn  # noqa: E402

ROUNDS, NUMPY_ITERS, CHUNK = 7, 300, 2000


class NumpyMinCharRNN:
    """Karpathy's min-char-rnn (2015), kept as close to the original as a class allows."""

    def __init__(self, data, vocab_size, hidden=100, seq_length=25, learning_rate=0.1, seed=0):
        rng = np.random.default_rng(seed)
        self.data, self.V, self.H, self.S, self.lr = data, vocab_size, hidden, seq_length, learning_rate
        self.Wxh = rng.standard_normal((hidden, vocab_size)) * 0.01
        self.Whh = rng.standard_normal((hidden, hidden)) * 0.01
        self.Why = rng.standard_normal((vocab_size, hidden)) * 0.01
        self.bh, self.by = np.zeros((hidden, 1)), np.zeros((vocab_size, 1))
        self.mem = [np.zeros_like(a) for a in (self.Wxh, self.Whh, self.Why, self.bh, self.by)]
        self.p, self.n, self.hprev = 0, 0, np.zeros((hidden, 1))
        self.smooth_loss = -np.log(1.0 / vocab_size) * seq_length

    def loss_fun(self, inputs, targets, hprev):
        Wxh, Whh, Why, bh, by = self.Wxh, self.Whh, self.Why, self.bh, self.by
        xs, hs, ps = {}, {}, {}
        hs[-1] = np.copy(hprev)
        loss = 0.0
        for t in range(len(inputs)):
            xs[t] = np.zeros((self.V, 1))
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
            ys = Why @ hs[t] + by
            ps[t] = np.exp(ys) / np.sum(np.exp(ys))
            loss += -np.log(ps[t][targets[t], 0])
        dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
        dbh, dby = np.zeros_like(bh), np.zeros_like(by)
        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(len(inputs))):
            dy = np.copy(ps[t])
            dy[targets[t]] -= 1
            dWhy += dy @ hs[t].T
            dby += dy
            dh = Why.T @ dy + dhnext
            dhraw = (1 - hs[t] * hs[t]) * dh
            dbh += dhraw
            dWxh += dhraw @ xs[t].T
            dWhh += dhraw @ hs[t - 1].T
            dhnext = Whh.T @ dhraw
        for d in (dWxh, dWhh, dWhy, dbh, dby):
            np.clip(d, -5, 5, out=d)
        return loss, (dWxh, dWhh, dWhy, dbh, dby), hs[len(inputs) - 1]

    def iterate(self, iterations):
        S = self.S
        for _ in range(iterations):
            if self.p + S + 1 >= len(self.data) or self.n == 0:
                self.hprev, self.p = np.zeros((self.H, 1)), 0
            inputs, targets = self.data[self.p:self.p + S], self.data[self.p + 1:self.p + S + 1]
            loss, grads, self.hprev = self.loss_fun(inputs, targets, self.hprev)
            self.smooth_loss = self.smooth_loss * 0.999 + loss * 0.001
            for param, dparam, mem in zip((self.Wxh, self.Whh, self.Why, self.bh, self.by), grads, self.mem):
                mem += dparam * dparam
                param += -self.lr * dparam / np.sqrt(mem + 1e-8)
            self.p += S
            self.n += 1
        return self.smooth_loss


def before_recurrence(w_hh, h0, xp, *, lengths=None, unroll=1, activation="tanh"):
    """``F.rnn_recurrence`` as it was: one unbatched sequence through the custom VJP."""
    assert lengths is None and xp.ndim == 2
    return _vjp_rnn(w_hh, h0, xp, None, unroll, activation)


def compiled_step(config, train_ids, carry, recurrence=None):
    step, _ = char_rnn.make_train_chunk(config, jax.numpy.asarray(train_ids), CHUNK)
    if recurrence is None:
        return step.lower(carry).compile()
    with unittest.mock.patch.object(char_rnn.F, "rnn_recurrence", recurrence):
        return step.lower(carry).compile()


def main():
    config = char_rnn.Config()
    vocab, train_ids, _, _ = char_rnn.load_corpus(config)
    V = len(vocab)
    numpy_model = NumpyMinCharRNN(train_ids.tolist(), V)
    carry0 = char_rnn.initial_carry(config, V, jax.random.key(0))
    steps = {"fnnet": compiled_step(config, train_ids, carry0),
             "before": compiled_step(config, train_ids, carry0, before_recurrence)}
    assert F.rnn_recurrence is not before_recurrence
    carries = {}
    for name, step in steps.items():
        carries[name], out = step(carry0)            # warm-up
        jax.block_until_ready(out)
    numpy_model.iterate(20)
    np_rate, np_cpu = [], []
    rate = {k: [] for k in steps}
    cpu = {k: [] for k in steps}
    for r in range(ROUNDS):
        t, c = time.perf_counter(), time.process_time()
        numpy_model.iterate(NUMPY_ITERS)
        np_rate.append(NUMPY_ITERS / (time.perf_counter() - t))
        np_cpu.append(NUMPY_ITERS / (time.process_time() - c))
        for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            t, c = time.perf_counter(), time.process_time()
            carries[name], out = steps[name](carries[name])
            jax.block_until_ready(out)
            rate[name].append(CHUNK / (time.perf_counter() - t))
            cpu[name].append(CHUNK / (time.process_time() - c))
    med = statistics.median
    n, f = med(np_rate), med(rate["fnnet"])
    ratio = med(b / a for a, b in zip(np_rate, rate["fnnet"]))
    cpu_ratio = med(b / a for a, b in zip(np_cpu, cpu["fnnet"]))
    before = med(b / a for a, b in zip(np_rate, rate["before"]))
    new_over_old = med(b / a for a, b in zip(rate["fnnet"], rate["before"]))     # time ratio new / before
    cpu_new_over_old = med(b / a for a, b in zip(cpu["fnnet"], cpu["before"]))
    print(f"load average {open('/proc/loadavg').read().split()[0]}")
    print(f"numpy min-char-rnn: {n:,.0f} it/s wall, {med(np_cpu):,.0f} it/s CPU (median of {ROUNDS})")
    print(f"fnnet char_rnn:     {f:,.0f} it/s wall, {med(cpu['fnnet']):,.0f} it/s CPU")
    print(f"before (custom VJP): {med(rate['before']):,.0f} it/s wall, {med(cpu['before']):,.0f} it/s CPU")
    print(f"ratio fnnet / numpy (median of per-round ratios): {ratio:.1f}x wall, {cpu_ratio:.1f}x CPU time "
          f"(before: {before:.1f}x wall)")
    print(f"time per iteration, fnnet / before (median of per-round ratios): {new_over_old:.3f} wall, "
          f"{cpu_new_over_old:.3f} CPU")
    print(f"smoothed loss after the runs: numpy {numpy_model.smooth_loss:.1f}, fnnet {float(carries['fnnet'][4]):.1f}")
    return {"numpy_its": n, "fnnet_its": f, "ratio": ratio, "cpu_ratio": cpu_ratio,
            "new_over_before": new_over_old, "cpu_new_over_before": cpu_new_over_old}


if __name__ == "__main__":
    main()
