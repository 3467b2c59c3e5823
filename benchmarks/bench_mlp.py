"""The mlp_digits train step: fnnet against the same network by hand in plain JAX
(and PyTorch when installed), side by side in one process.

The network is 64-512-512-10 with ReLU, softmax cross-entropy and SGD, batch 64
(the mlp_digits experiment without dropout). Each framework's step runs in
interleaved rounds; the result is the ratio of medians, fnnet / other.

The fnnet step is ``fnnet.train.make_train_step(model, loss, fnnet.optim.sgd(lr))``;
the plain-JAX step is a hand-written ``jax.jit`` of ``value_and_grad`` over a dict of
weights with the SGD update inlined.
"""
from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import losses, nn, optim, train

BATCH, SIZES, LR = 64, (64, 512, 512, 10), 0.05
ROUNDS, REPS = 21, 50


def fnnet_step(x, y):
    model = nn.serial(nn.dense(SIZES[1]), nn.relu, nn.dense(SIZES[2]), nn.relu, nn.dense(SIZES[3]))
    params, state = model.init(jax.random.key(0), x)
    opt = optim.sgd(LR)
    step = train.make_train_step(model, losses.softmax_cross_entropy_with_integer_labels, opt)
    carry = [params, state, opt.init(params)]
    key = jax.random.key(1)

    def run():
        carry[0], carry[1], carry[2], loss = step(carry[0], carry[1], carry[2], x, y, key)
        return loss
    run.flops = flops(step, *carry, x, y, key)
    return run


def plain_jax_step(x, y):
    keys = jax.random.split(jax.random.key(0), 3)
    params = {f"w{i}": jax.random.normal(keys[i], (SIZES[i], SIZES[i + 1])) * np.sqrt(2 / SIZES[i])
              for i in range(3)}
    params.update({f"b{i}": jnp.zeros(SIZES[i + 1]) for i in range(3)})

    def loss_fn(p, x, y):
        h = jax.nn.relu(x @ p["w0"] + p["b0"][None])
        h = jax.nn.relu(h @ p["w1"] + p["b1"][None])
        logits = h @ p["w2"] + p["b2"][None]
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def step(p, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        return jax.tree.map(lambda a, b: a - LR * b, p, g), loss

    carry = [params]

    def run():
        carry[0], loss = step(carry[0], x, y)
        return loss
    run.flops = flops(step, params, x, y)
    return run


def torch_step(x, y):
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                                torch.nn.ReLU(), torch.nn.Linear(512, 10))
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    xt, yt = torch.tensor(np.asarray(x)), torch.tensor(np.asarray(y)).long()
    loss_fn = torch.nn.CrossEntropyLoss()

    def run():
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
        return loss
    return run


def block(x):
    return x.block_until_ready() if hasattr(x, "block_until_ready") else x


def measure(runners: dict) -> tuple[dict, dict]:
    """Median time per step of each runner, and the median over rounds of each runner's
    time divided by fnnet's in the same round (the order alternates between rounds, so
    a slow spell of the shared machine hits every runner of a round alike)."""
    for run in runners.values():  # compile and warm up
        for _ in range(5):
            block(run())
    times = {name: [] for name in runners}
    names = list(runners)
    for r in range(ROUNDS):
        for name in (names if r % 2 == 0 else names[::-1]):
            run = runners[name]
            start = time.perf_counter()
            for _ in range(REPS):
                out = run()
            block(out)
            times[name].append((time.perf_counter() - start) / REPS)
    medians = {name: statistics.median(t) for name, t in times.items()}
    ratios = {name: statistics.median(f / o for f, o in zip(times["fnnet"], t))
              for name, t in times.items()}
    return medians, ratios


def flops(step, *args) -> float:
    """XLA's flop count of the compiled ``step``."""
    cost = step.lower(*args).compile().cost_analysis()
    return (cost if isinstance(cost, dict) else cost[0])["flops"]


def main():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(BATCH, SIZES[0])), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, BATCH), jnp.int32)
    runners = {"fnnet": fnnet_step(x, y), "plain JAX": plain_jax_step(x, y)}
    try:
        runners["PyTorch"] = torch_step(x, y)
    except ImportError:
        pass
    medians, ratios = measure(runners)
    print(f"mlp_digits train step (batch {BATCH}, {'-'.join(map(str, SIZES))}), {ROUNDS} rounds x {REPS}; "
          f"load average {open('/proc/loadavg').read().split()[0]}:")
    for name, t in medians.items():
        print(f"  {name:<10} {t * 1e6:8.1f} us   fnnet / {name} = {ratios[name]:.3f} (median of per-round ratios)")
    print(f"  XLA flops per step: fnnet {runners['fnnet'].flops:,.0f}, plain JAX {runners['plain JAX'].flops:,.0f}")


if __name__ == "__main__":
    main()
