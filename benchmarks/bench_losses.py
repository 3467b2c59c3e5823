"""Loss kernels: fnnet.losses against optax, side by side in one process.

Each case is ``jax.jit(jax.value_and_grad(loss))`` on float32 inputs of a typical
classifier head (batch 512, 1,000 classes, or 512 x 100 binary logits). Interleaved
rounds; the result is the median of per-round ratios fnnet / optax, plus the flop
counts of both compiled programs from ``cost_analysis()``.
"""
from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fnnet import losses

ROUNDS, REPS = 21, 30


def _cases():
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(size=(512, 1000)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 1000, 512), jnp.int32)
    soft = jax.nn.softmax(jnp.asarray(rng.normal(size=(512, 1000)), jnp.float32))
    zb = jnp.asarray(rng.normal(size=(512, 100)), jnp.float32)
    yb = jnp.asarray(rng.random(size=(512, 100)), jnp.float32)
    return {
        "softmax CE, integer labels (512x1000)": (
            lambda q: losses.softmax_cross_entropy_with_integer_labels(q, y),
            lambda q: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(q, y)), z),
        "softmax CE, soft labels (512x1000)": (
            lambda q: losses.softmax_cross_entropy(q, soft),
            lambda q: jnp.mean(optax.softmax_cross_entropy(q, soft)), z),
        "sigmoid BCE with logits (512x100)": (
            lambda q: losses.binary_cross_entropy_with_logits(q, yb),
            lambda q: jnp.mean(optax.sigmoid_binary_cross_entropy(q, yb)), zb),
        "multiclass hinge, max (512x1000)": (
            lambda q: losses.multiclass_hinge(q, y, aggregate="max"),
            lambda q: jnp.mean(optax.losses.multiclass_hinge_loss(q, y)), z),
    }


def _time(fn, arg):
    t = time.perf_counter()
    for _ in range(REPS):
        out = fn(arg)
    jax.block_until_ready(out)
    return (time.perf_counter() - t) / REPS


def _flops(fn, arg):
    cost = fn.lower(arg).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return int(cost.get("flops", -1)) if cost else -1


def main():
    print(f"| case | fnnet / optax (median of {ROUNDS} rounds) | flops fnnet | flops optax |")
    print("|---|---|---|---|")
    for name, (ours, theirs, arg) in _cases().items():
        f1 = jax.jit(jax.value_and_grad(ours))
        f2 = jax.jit(jax.value_and_grad(theirs))
        jax.block_until_ready((f1(arg), f2(arg)))
        ratios = []
        for r in range(ROUNDS):
            if r % 2:
                a = _time(f1, arg); b = _time(f2, arg)
            else:
                b = _time(f2, arg); a = _time(f1, arg)
            ratios.append(a / b)
        print(f"| {name} | {statistics.median(ratios):.3f} | {_flops(f1, arg)} | {_flops(f2, arg)} |")


if __name__ == "__main__":
    main()
