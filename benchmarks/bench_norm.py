"""Batch norm training step (forward + backward + running statistics): fnnet's kernel
against the same computation written in plain JAX, and PyTorch's BatchNorm2d (CPU).

Side by side in one process, interleaved repetitions, median; ratios reported.
Run: .venv/bin/python benchmarks/bench_norm.py
"""
from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import functional as F

SHAPE = (64, 16, 16, 64)  # NHWC
REPS, ROUNDS = 50, 7


def plain_jax(x, scale, bias, mean, var):
    mu = jnp.mean(x, axis=(0, 1, 2))
    v = jnp.var(x, axis=(0, 1, 2))
    y = (x - mu) / jnp.sqrt(v + 1e-5) * scale + bias
    n = x.shape[0] * x.shape[1] * x.shape[2]
    return y, 0.9 * mean + 0.1 * jax.lax.stop_gradient(mu), 0.9 * var + 0.1 * jax.lax.stop_gradient(v) * n / (n - 1)


def fnnet_bn(x, scale, bias, mean, var):
    return F.batch_norm_train(x, scale, bias, mean, var)


def make_step(bn):
    def loss(params, x, mean, var):
        y, m, v = bn(x, params["scale"], params["bias"], mean, var)
        return jnp.sum(y * y * 0.5), (m, v)

    @jax.jit
    def step(params, x, mean, var):
        (l, (m, v)), g = jax.value_and_grad(loss, has_aux=True, argnums=(0, 1))(params, x, mean, var)
        return l, g, m, v
    return step


def time_jax(step, args):
    t = time.perf_counter()
    for _ in range(REPS):
        out = step(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t) / REPS


def main():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=SHAPE), jnp.float32)
    c = SHAPE[-1]
    args = ({"scale": jnp.ones(c), "bias": jnp.zeros(c)}, x, jnp.zeros(c), jnp.ones(c))
    steps = {"fnnet": make_step(fnnet_bn), "plain_jax": make_step(plain_jax)}
    a, b = steps["fnnet"](*args), steps["plain_jax"](*args)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-4)
    timers = {name: (lambda s=s: time_jax(s, args)) for name, s in steps.items()}
    try:
        import torch
        torch.set_num_threads(2)
        bn = torch.nn.BatchNorm2d(c)
        xt = torch.tensor(np.asarray(x).transpose(0, 3, 1, 2)).contiguous().requires_grad_(True)

        def torch_time():
            t = time.perf_counter()
            for _ in range(REPS):
                bn.zero_grad()
                xt.grad = None
                y = bn(xt)
                (0.5 * (y * y).sum()).backward()
            return (time.perf_counter() - t) / REPS
        timers["torch"] = torch_time
    except ImportError:
        pass
    for f in timers.values():
        f()  # warm up
    samples = {k: [] for k in timers}
    for _ in range(ROUNDS):
        for k, f in timers.items():
            samples[k].append(f())
    med = {k: statistics.median(v) for k, v in samples.items()}
    for k, v in med.items():
        print(f"{k:<10} median {v * 1e3:8.3f} ms   ratio to fnnet {v / med['fnnet']:.2f}")


if __name__ == "__main__":
    main()
