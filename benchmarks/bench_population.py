"""A population of small models trained as one program against a Python loop of jitted steps.

32 MLPs (64-32-10, ReLU, softmax cross-entropy, Adam 1e-3) on the 1,797 8x8 digits, 10
epochs of batches of 64, one seed each:

- ``population``: ``fnnet.train.fit_population``, every epoch one ``jax.vmap``-ed
  ``lax.scan`` over the 32 members;
- ``loop``: a Python loop over members and batches calling one jitted train step
  (``fnnet.train.make_train_step``, compiled once), on the same key stream.

Both measure a whole training run (initialisation included) after a warm-up run of
each variant (whose programs stay compiled), in interleaved rounds with alternating order; the result is the median over
rounds of the per-round ratio. Run: ``python benchmarks/bench_population.py [--rounds 3]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from sklearn.datasets import load_digits

from fnnet import losses, nn, optim, train

MEMBERS, EPOCHS, BATCH = 32, 10, 64


def setup():
    digits = load_digits()
    x = jnp.asarray(digits.data / 16.0, jnp.float32)
    y = jnp.asarray(digits.target, jnp.int32)
    model = nn.serial(nn.dense(32), nn.relu, nn.dense(10))
    key_data = jax.random.key_data(jax.random.split(jax.random.key(0), MEMBERS))
    return model, x, y, key_data


def population(model, x, y, key_data):
    def run():
        keys = jax.random.wrap_key_data(key_data)
        params, state = jax.vmap(lambda k: model.init(k, x))(jax.random.wrap_key_data(key_data))
        result = train.fit_population(model, losses.softmax_cross_entropy_with_integer_labels,
                                      optim.adam(1e-3), params, state, (x, y), keys=keys,
                                      epochs=EPOCHS, batch_size=BATCH, progress=False)
        jax.block_until_ready(result.params)
    return run


def loop(model, x, y, key_data):
    """One jitted step (compiled once), called for every batch of every member in turn,
    on the same key stream as fit's."""
    step = train.make_train_step(model, losses.softmax_cross_entropy_with_integer_labels, optim.adam(1e-3))
    inits = [model.init(jax.random.wrap_key_data(k), x) for k in key_data]
    n = len(x)

    def run():
        for k, (params, state) in zip(key_data, inits):
            key = jax.random.wrap_key_data(k)
            opt_state = optim.adam(1e-3).init(params)
            for epoch in range(EPOCHS):
                perm = jax.random.permutation(jax.random.fold_in(key, 2 * epoch), n)
                step_key = jax.random.fold_in(key, 2 * epoch + 1)
                for i, start in enumerate(range(0, n, BATCH)):
                    idx = perm[start:start + BATCH]
                    params, state, opt_state, _ = step(params, state, opt_state, x[idx], y[idx],
                                                       jax.random.fold_in(step_key, i))
            jax.block_until_ready(params)
    return run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model, x, y, key_data = setup()
    runs = {"population": population(model, x, y, key_data), "loop": loop(model, x, y, key_data)}
    for fn in runs.values():  # compile
        fn()
    times = {k: [] for k in runs}
    names = list(runs)
    for r in range(args.rounds):
        for k in (names if r % 2 == 0 else names[::-1]):
            t = time.perf_counter()
            runs[k]()
            times[k].append(time.perf_counter() - t)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"{MEMBERS} members, {EPOCHS} epochs of batches of {BATCH}; load average {load}")
    for k in names:
        ratio = statistics.median(o / p for o, p in zip(times[k], times["population"]))
        print(f"  {k:<15} {statistics.median(times[k]):7.2f} s   {ratio:5.1f}x the population's time")


if __name__ == "__main__":
    main()
