"""Optimizer step: fnnet.optim against optax on a 1M-parameter pytree, side by side.

The params are a dict of four 500x500 dense layers with biases (1,002,000 float32
numbers). One step is ``updates, state = opt.update(grads, state, params)`` followed by
``apply_updates``, jitted, with a fixed gradient tree. Each pair's steps run in
interleaved rounds; the result is the median of the per-round ratios fnnet / optax
(goal <= 1.0 for adam). Both compile to the same XLA program (same fusions and flop
count), so the expected ratio is 1 up to the machine's noise. Also measured: sgd with momentum, rmsprop, adamw.
"""
from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fnnet import optim

WIDTH, LAYERS = 500, 4
ROUNDS, REPS = 21, 50


def make_tree(seed):
    rng = np.random.default_rng(seed)
    return {f"layer{i}": {"kernel": jnp.asarray(rng.normal(size=(WIDTH, WIDTH)), jnp.float32),
                          "bias": jnp.asarray(rng.normal(size=(WIDTH,)), jnp.float32)}
            for i in range(LAYERS)}


def runner(opt, apply_updates, params, grads):
    @jax.jit
    def step(p, s):
        u, s = opt.update(grads, s, p)
        return apply_updates(p, u), s

    carry = [params, opt.init(params)]

    def run():
        carry[0], carry[1] = step(carry[0], carry[1])
        return carry[0]
    return run


def measure(fnnet_run, optax_run) -> tuple[float, float, float]:
    """Median fnnet time, median optax time and the median of the per-round ratios.

    Rounds alternate which library goes first; the per-round ratio cancels the slow
    drifts of a shared machine's load.
    """
    runs = {"fnnet": fnnet_run, "optax": optax_run}
    for run in runs.values():  # compile and warm up
        for _ in range(5):
            jax.block_until_ready(run())
    times = {name: [] for name in runs}
    for r in range(ROUNDS):
        for name in (("fnnet", "optax") if r % 2 == 0 else ("optax", "fnnet")):
            start = time.perf_counter()
            for _ in range(REPS):
                out = runs[name]()
            jax.block_until_ready(out)
            times[name].append((time.perf_counter() - start) / REPS)
    ratio = statistics.median(f / o for f, o in zip(times["fnnet"], times["optax"]))
    return statistics.median(times["fnnet"]), statistics.median(times["optax"]), ratio


OPTIMIZERS = {
    "adam": lambda lib: lib.adam(1e-3),
    "sgd momentum": lambda lib: lib.sgd(1e-2, momentum=0.9),
    "rmsprop": lambda lib: lib.rmsprop(1e-3),
    "adamw": lambda lib: lib.adamw(1e-3, weight_decay=1e-2),
}


def main() -> dict:
    params, grads = make_tree(0), make_tree(1)
    n = sum(x.size for x in jax.tree.leaves(params))
    ratios = {}
    print(f"optimizer step on a {n:,}-parameter pytree ({LAYERS} x {WIDTH}x{WIDTH} + biases), "
          f"median of {ROUNDS} rounds x {REPS}:")
    for name, make in OPTIMIZERS.items():
        t_fnnet, t_optax, ratios[name] = measure(runner(make(optim), optim.apply_updates, params, grads),
                                                 runner(make(optax), optax.apply_updates, params, grads))
        print(f"  {name:<13} fnnet {t_fnnet * 1e6:8.1f} us   optax {t_optax * 1e6:8.1f} us"
              f"   fnnet / optax = {ratios[name]:.3f} (median of per-round ratios)")
    return ratios


if __name__ == "__main__":
    main()
