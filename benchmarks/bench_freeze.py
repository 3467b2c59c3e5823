"""Frozen features: what ``fnnet.optim.freeze.stop_gradient`` saves in a training step.

A LeNet-5 (classic) on 32x32 digits, batch 128, Adam; its C1, C3, C5 and F6 frozen, the
output layer trained. Variants of the compiled training step, in one process:

- ``full``: every layer trained (the cost of fine-tuning);
- ``mask_only``: ``freeze.freeze_layers(adam, frozen)``; the backward pass still runs through
  the frozen layers (their gradients are computed, then replaced by -0.0);
- ``stop_gradient``: the same optimizer, and ``freeze.stop_gradient`` on the frozen
  params inside the loss, so XLA drops the backward pass below the output layer.

``mask_only`` and ``stop_gradient`` give bit-identical params (checked before timing).
Rounds interleave the variants; reported: the median step time of each and the median
per-round ratios to ``mask_only``, with the load average.

    python benchmarks/bench_freeze.py [--batch 128] [--rounds 7] [--steps 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import losses, optim
from fnnet.models import lenet5
from fnnet.optim import freeze

FROZEN = ["0", "3", "7", "9"]


def make_step(model, opt, cut):
    def loss(p, state, x, y):
        p = freeze.stop_gradient(p, FROZEN) if cut else p
        logits, _ = model.apply(p, state, x)
        return losses.softmax_cross_entropy_with_integer_labels(logits, y)

    @jax.jit
    def steps(params, opt_state, state, x, y):
        def body(carry, _):
            params, opt_state = carry
            g = jax.grad(loss)(params, state, x, y)
            u, opt_state = opt.update(g, opt_state, params)
            return (optim.apply_updates(params, u), opt_state), None
        return jax.lax.scan(body, (params, opt_state), None, length=STEPS)[0]

    return steps


STEPS = 20


def main():
    global STEPS
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    STEPS = args.steps
    model = lenet5(10)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(args.batch, 32, 32, 1)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, size=args.batch))
    params, state = model.init(jax.random.key(0), x[:1])
    variants = {"full": (optim.adam(1e-3), False),
                "mask_only": (freeze.freeze_layers(optim.adam(1e-3), FROZEN), False),
                "stop_gradient": (freeze.freeze_layers(optim.adam(1e-3), FROZEN), True)}
    runs = {}
    for name, (opt, cut) in variants.items():
        step = make_step(model, opt, cut)
        s0 = opt.init(params)
        out = step(params, s0, state, x, y)
        jax.block_until_ready(out)
        runs[name] = (step, s0, out[0])
    a, b = runs["mask_only"][2], runs["stop_gradient"][2]
    for la, lb in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(la), np.asarray(lb), rtol=1e-5, atol=1e-6)
    for name in FROZEN:
        for la, lb in zip(jax.tree.leaves(b[name]), jax.tree.leaves(params[name])):
            assert np.array_equal(np.asarray(la), np.asarray(lb))
    times = {n: [] for n in runs}
    for _ in range(args.rounds):
        for name, (step, s0, _) in runs.items():
            t = time.perf_counter()
            jax.block_until_ready(step(params, s0, state, x, y))
            times[name].append((time.perf_counter() - t) / STEPS)
    base = times["mask_only"]
    print(f"LeNet-5, batch {args.batch}, {STEPS} steps per call, {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, ts in times.items():
        ratio = statistics.median(t / b_ for t, b_ in zip(ts, base))
        print(f"{name:>14}: {1e3 * statistics.median(ts):7.2f} ms/step   / mask_only {ratio:.2f}")


if __name__ == "__main__":
    main()
