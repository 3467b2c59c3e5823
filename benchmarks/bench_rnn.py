"""LSTM and GRU train steps: fnnet against a straightforward JAX scan and PyTorch.

One train step: a one-layer LSTM (or GRU) over a batch-major sequence (N=32, T=64,
F=64, hidden 256), the mean squared error of all outputs against a fixed target, the
gradient of every weight, and an SGD update. Variants, all in one process:

- ``jax_scan``: a straightforward JAX model, ``lax.scan`` of the whole cell (``x_t W_ih``
  inside the loop), differentiated by JAX.
- ``jax_hoisted``: the same with the input projection ``x W_ih`` of all steps hoisted
  out of the loop as one big matmul (what Flax's ``OptimizedLSTMCell`` does).
- ``fnnet_scan``: ``fnnet.functional.lstm_sequence(..., implementation="scan")``, the
  scan differentiated by JAX.
- ``fnnet``: the default ``implementation="fused"``: the same forward, and a custom VJP
  whose backward loop carries only ``dh`` (``dc``) and computes the weight gradients as
  matmuls over all time steps.
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
the median of the per-round ratios to torch, torch_1t and jax_scan, the load average,
and CPU ms per step (the JAX variants: this process, all threads; torch: its child).
CPU time hardly depends on the load; a single-threaded step (torch_1t) has wall time =
CPU time on a quiet machine, and two-thread torch's CPU time includes its OpenMP
threads' spin-waiting.
``--unroll`` sets ``lax.scan``'s unroll.
"""
from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import functional as F

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
        return F.gru_sequence(p, z, xs, implementation=implementation, unroll=unroll)[1]
    return forward


def make_runs(kind, unroll, rng):
    gates = 4 if kind == "lstm" else 3
    xs = jnp.asarray(rng.normal(size=(N, T, FIN)), jnp.float32)
    target = jnp.asarray(rng.normal(size=(N, T, H)), jnp.float32)
    runs = {}
    forwards = {"jax_scan": plain_lstm if kind == "lstm" else plain_gru,
                "jax_hoisted": hoisted_lstm if kind == "lstm" else hoisted_gru,
                "fnnet_scan": fnnet_forward(kind, "scan", unroll),
                "fnnet": fnnet_forward(kind, "fused", unroll)}
    if kind == "lstm":
        forwards["matmul_floor"] = matmul_floor
    for name, fwd in forwards.items():
        step = jax_step(fwd)
        box = [init_params(np.random.default_rng(0), gates)]

        def run(step=step, box=box):
            box[0], loss = step(box[0], xs, target)
            jax.block_until_ready(loss)
        runs[name] = run
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
net = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(data["x"].shape[2], int(data["h"]), batch_first=True)
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
    parser.add_argument("--kinds", default="lstm,gru")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, N={N} T={T} F={FIN} H={H}, unroll={args.unroll}, "
          f"rounds={args.rounds} x {args.reps}")
    for kind in args.kinds.split(","):
        runs = make_runs(kind, args.unroll, np.random.default_rng(1))
        times, cpus = measure(runs, args.rounds, args.reps)
        refs = [r for r in ("torch", "torch_1t", "jax_scan") if r in times]
        print(f"\n{kind}: median ms per train step, and median per-round ratios "
              f"(load average {open('/proc/loadavg').read().split()[0]})")
        print(f"  {'':11s} {'ms':>8s}   " + "  ".join(f"/{r:9s}" for r in refs) + "   CPU ms")
        for name, ts in times.items():
            ratios = [statistics.median(a / b for a, b in zip(ts, times[r])) for r in refs]
            print(f"  {name:11s} {1e3 * statistics.median(ts):8.1f}   " + "  ".join(f"{q:10.2f}" for q in ratios)
                  + f"   {1e3 * statistics.median(cpus[name]):6.1f}")


if __name__ == "__main__":
    main()
