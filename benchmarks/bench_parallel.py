"""Data-parallel and population training on 8 simulated CPU devices against one device.

Run: ``python benchmarks/bench_parallel.py [--rounds 5]`` (it sets up 8 CPU devices
itself, before JAX starts). Three measurements:

1. Overhead of the data-parallel step (``fnnet.parallel.make_sharded_train_step``,
   ``data_parallel`` over 8 devices) over the single-device step
   (``fnnet.train.make_train_step``) at the same global batch, for the digits MLP
   (64-256-256-10, batch norm, dropout, batch 512, Adam) and the gpt_shakespeare GPT
   (4 layers, 4 heads, width 128, context 64, batch 16, AdamW). Median over
   interleaved rounds of the per-round ratio of step times. The 8 simulated devices
   share this machine's 2 cores, so the ratio measures what partitioning adds (the
   collectives, smaller kernels), not a speed-up.
2. Collective bytes per step, read from the compiled HLO of each sharded step
   (``all-reduce``, ``all-gather``, ``reduce-scatter`` result shapes), for data
   parallel and fully sharded, beside the parameter bytes; and the FLOPs per step
   from XLA's cost analysis of the single-device step (used in
   ``docs/howto/multi-device.md`` for the scaling on paper), also for the
   data_parallel experiment's ResNet-20 (cost analysis only, not run).
3. A population of 32 MLPs (64-32-10, Adam) trained as one vmapped ``lax.scan`` of 50
   steps (batch 64 each, the ``fit_population`` program shape), on one device against
   the population axis split over 8 devices: member-steps per second.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax

jax.config.update("jax_num_cpu_devices", 8)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from fnnet import losses, nn, optim, train  # noqa: E402
from fnnet import parallel as par  # noqa: E402
from fnnet.models.gpt import gpt  # noqa: E402

LOSS = losses.softmax_cross_entropy_with_integer_labels
def mlp_case():
    model = nn.serial(nn.dense(256, use_bias=False), nn.batch_norm(), nn.relu, nn.dropout(0.1),
                      nn.dense(256), nn.relu, nn.dense(10))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 64)).astype(np.float32)
    y = rng.integers(0, 10, size=(512,)).astype(np.int32)
    return "digits MLP 64-256-256-10, batch 512", model, optim.adam(1e-3), x, y


def gpt_case():
    model = gpt(vocab_size=65, context_length=64, num_layers=4, num_heads=4, embed_dim=128, use_bias=False)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 65, size=(16, 64)).astype(np.int32)
    y = rng.integers(0, 65, size=(16, 64)).astype(np.int32)
    return "GPT 4x128, context 64, batch 16", model, optim.adamw(1e-3, weight_decay=0.1), x, y


def resnet_paper_numbers(batch=128):
    """Params and FLOPs per step of the data_parallel experiment's ResNet-20 (digits
    upsampled to 32x32x1, batch 128): XLA's cost analysis of the lowered step, no run."""
    from fnnet.models.resnet import cifar_resnet
    model, optimizer = cifar_resnet(20), optim.sgd(0.1, momentum=0.9)
    x = jax.ShapeDtypeStruct((batch, 32, 32, 1), jnp.float32)
    y = jax.ShapeDtypeStruct((batch,), jnp.int32)
    params, state = model.init(jax.random.key(1), x)
    opt_state = optimizer.init(params)
    one = train.make_train_step(model, LOSS, optimizer)
    flops = one.lower(params, state, opt_state, x, y, jax.random.key(0)).cost_analysis()["flops"]
    return {"case": f"ResNet-20 on 32x32x1, batch {batch}", "flops": flops,
            "param_bytes": sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(params))}


def time_steps(step, args, reps):
    params, state, opt_state, x, y = args
    key = jax.random.key(0)
    start = time.perf_counter()
    for i in range(reps):
        params, state, opt_state, loss = step(params, state, opt_state, x, y, jax.random.fold_in(key, i))
    jax.block_until_ready(loss)
    return (time.perf_counter() - start) / reps


def step_overhead(case, rounds, reps):
    name, model, optimizer, x, y = case
    params, state = model.init(jax.random.key(1), x)
    opt_state = optimizer.init(params)
    one = train.make_train_step(model, LOSS, optimizer)
    single_args = jax.device_put((params, state, opt_state, x, y), jax.devices()[0])
    row = {"case": name, "param_bytes": sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(params))}
    row["flops"] = one.lower(*single_args, jax.random.key(0)).cost_analysis()["flops"]
    steps = {}
    for policy in (par.data_parallel(par.make_mesh(8)), par.fully_sharded(par.make_mesh(8))):
        step = par.make_sharded_train_step(model, LOSS, optimizer, policy, params, state, opt_state)
        args = (*par.shard_state(policy, params, state, opt_state), *par.shard_batch(policy, x, y))
        hlo = step.jitted.lower(*args, jax.random.key(0)).compile().as_text()
        row[policy.name] = par.collective_bytes(hlo)
        steps[policy.name] = (step, args)
    dp_step, dp_args = steps["data_parallel"]
    time_steps(one, single_args, 2), time_steps(dp_step, dp_args, 2)  # compile, warm up
    ratios, t_one, t_dp = [], [], []
    for r in range(rounds):
        order = [("one", one, single_args), ("dp", dp_step, dp_args)]
        times = {}
        for label, step, args in (order if r % 2 == 0 else order[::-1]):
            times[label] = time_steps(step, args, reps)
        ratios.append(times["dp"] / times["one"])
        t_one.append(times["one"])
        t_dp.append(times["dp"])
    row.update(ratio=statistics.median(ratios), ms_one=1e3 * statistics.median(t_one),
               ms_dp=1e3 * statistics.median(t_dp))
    return row


def population(rounds, members=32, steps=50, batch=64):
    model = nn.serial(nn.dense(32), nn.relu, nn.dense(10))
    optimizer = optim.adam(1e-3)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(steps, batch, 64)).astype(np.float32)
    ys = rng.integers(0, 10, size=(steps, batch)).astype(np.int32)
    keys = jax.random.split(jax.random.key(0), members)
    params, state = jax.vmap(lambda k: model.init(k, xs[0]))(keys)
    opt_state = jax.vmap(optimizer.init)(params)
    step = jax.vmap(train.make_train_step(model, LOSS, optimizer, jit=False), in_axes=(0, 0, 0, None, None, 0))

    def run(params, state, opt_state, keys, xs, ys):
        def body(carry, batch):
            params, state, opt_state, i = carry
            step_keys = jax.vmap(lambda k: jax.random.fold_in(k, i))(keys)
            params, state, opt_state, loss = step(params, state, opt_state, batch[0], batch[1], step_keys)
            return (params, state, opt_state, i + 1), loss
        (params, state, opt_state, _), losses_ = jax.lax.scan(body, (params, state, opt_state, 0), (xs, ys))
        return params, losses_

    mesh = par.make_mesh(8)
    members_split = NamedSharding(mesh, P("data"))
    everywhere = NamedSharding(mesh, P())
    one_device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    programs = {
        "one": (jax.jit(run), jax.device_put((params, state, opt_state, keys, xs, ys), one_device)),
        "eight": (jax.jit(run, in_shardings=(members_split,) * 4 + (everywhere,) * 2,
                          out_shardings=(members_split, NamedSharding(mesh, P(None, "data")))),
                  (*jax.device_put((params, state, opt_state, keys), members_split),
                   *jax.device_put((xs, ys), everywhere))),
    }
    results = {}
    for label, (f, args) in programs.items():
        results[label] = f(*args)[0]
        jax.block_until_ready(results[label])
    difference = max(float(jnp.max(jnp.abs(a - b))) for a, b in
                     zip(jax.tree.leaves(results["one"]), jax.tree.leaves(jax.device_get(results["eight"]))))
    times = {"one": [], "eight": []}
    for r in range(rounds):
        for label in (["one", "eight"] if r % 2 == 0 else ["eight", "one"]):
            f, args = programs[label]
            start = time.perf_counter()
            jax.block_until_ready(f(*args))
            times[label].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"members": members, "steps": steps,
            "member_steps_per_s": {k: members * steps / v for k, v in med.items()},
            "ratio_eight_over_one_time": statistics.median(
                [e / o for e, o in zip(times["eight"], times["one"])]),
            "max_param_difference": difference}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    print(f"devices: {jax.device_count()} ({jax.devices()[0].platform}), load {os.getloadavg()[0]:.1f}")
    for case in (mlp_case(), gpt_case()):
        row = step_overhead(case, args.rounds, args.reps)
        print(f"\n{row['case']}: params {row['param_bytes'] / 1e6:.3f} MB, "
              f"{row['flops'] / 1e9:.3f} GFLOP per step (one device)")
        print(f"  step: one device {row['ms_one']:.2f} ms, data parallel x8 {row['ms_dp']:.2f} ms, "
              f"ratio {row['ratio']:.2f} (median of per-round ratios)")
        for policy in ("data_parallel", "fully_sharded"):
            coll = ", ".join(f"{k} {v / 1e6:.3f} MB" for k, v in sorted(row[policy].items())) or "none"
            print(f"  {policy} collectives per step (per device, result bytes): {coll}")
    row = resnet_paper_numbers()
    print(f"\n{row['case']}: params {row['param_bytes'] / 1e6:.3f} MB, {row['flops'] / 1e9:.3f} GFLOP "
          "per step (one device; cost analysis only)")
    pop = population(args.rounds)
    print(f"\npopulation {pop['members']} MLPs x {pop['steps']} steps: member-steps/s one device "
          f"{pop['member_steps_per_s']['one']:.0f}, 8 devices {pop['member_steps_per_s']['eight']:.0f}; "
          f"time ratio 8/1 {pop['ratio_eight_over_one_time']:.2f}; max |params 8 - params 1| "
          f"{pop['max_param_difference']:.2e}")
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
