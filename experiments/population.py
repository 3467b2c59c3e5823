"""population: random_search's population of configurations, split over devices.

``random_search`` trains N sampled (learning rate, momentum, seed) configurations of a
64-100-10 MLP on the digits as one program (``fnnet.train.fit_population``: the
members are a leading axis of params, optimizer state and keys). Here the same
population is trained twice: on one device, and with its member axis split over
``devices`` devices (``fnnet.parallel.shard_population`` over ``make_mesh(devices)``),
so each device trains N / devices members and no data moves between devices during
training. The two must give the same dev curves (the members' programs are the same;
only their placement differs); the result reports the largest difference, the best
configuration of each, and the time of each (a second, warm call). With one CPU,
``fnnet run population --devices 8`` simulates 8 CPU devices.

Full run (64 configurations, 10 epochs, 8 simulated CPU devices on 2 shared cores,
7 s): both placements pick the same best configuration (dev accuracy 95.5% at lr
0.083, momentum 0.921, as random_search); 54 of the 64 dev curves agree to 0.02, the
others are large-step runs that rounding leads apart (a member's matmuls are batched
8 at a time instead of 64, as random_search sees between vmapped and one-by-one
runs). The sharded population trained in 0.63x the one-device time (41,100 against
25,700 member-steps per second): its 8 device threads keep both cores busier than one
device's program does.
"""
from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import data, losses, nn, parallel, train
from fnnet.train.config import check_config


CPU_SECONDS = 8  # a default run on 2 CPU cores, 8 simulated devices; `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                  # seed of the split, the sampled configurations and their runs
    devices: int = 8               # devices the members are split over (simulated on a CPU)
    num_configs: int = 64          # configurations sampled and trained (a multiple of devices)
    hidden: int = 100              # width of the hidden layer
    epochs: int = 10               # passes over the training set per configuration
    batch_size: int = 64           # digits per step (the last partial batch is dropped)

    def __post_init__(self):
        check_config(self, positive=("devices", "num_configs", "hidden", "epochs", "batch_size"))
        if self.num_configs % self.devices:
            raise ValueError(f"expected num_configs divisible by devices = {self.devices}, "
                             f"got {self.num_configs}")


def _random_search():
    from fnnet.cli import load_experiment
    return load_experiment("random_search")


def run(config: Config) -> dict:
    if jax.device_count() < config.devices:
        raise ValueError(f"population: expected {config.devices} devices, found {jax.device_count()}; "
                         f"run it as `fnnet run population --devices {config.devices}`")
    rs = _random_search()
    rs_config = rs.Config(seed=config.seed, num_configs=config.num_configs, hidden=config.hidden,
                          epochs=config.epochs, batch_size=config.batch_size)
    key = jax.random.key(config.seed)
    x, y = data.load_digits()
    x = np.asarray(x, np.float32) / 16.0
    (x_train, y_train), (x_dev, y_dev), _ = data.train_dev_test_split(
        jax.random.fold_in(key, 0), x, y, rs_config.dev_fraction, rs_config.test_fraction, stratify=False)
    model = nn.serial(nn.dense(config.hidden), nn.relu, nn.dense(10))
    lrs, betas, seeds = rs.sample_configs(rs_config)
    seeds_j = jnp.asarray(seeds, jnp.uint32)
    spec = jax.ShapeDtypeStruct((1, x_train.shape[1]), jnp.float32)
    params, state = jax.jit(jax.vmap(lambda s: model.init(jax.random.fold_in(jax.random.key(s), 0), spec)))(seeds_j)
    opt_state = jax.vmap(rs.searched_state)(params, jnp.asarray(lrs, jnp.float32), jnp.asarray(betas, jnp.float32))
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), 1))(seeds_j)
    policy = parallel.data_parallel(parallel.make_mesh(config.devices))
    placements = {"one device": (params, state, opt_state, keys),
                  f"{config.devices} devices": parallel.shard_population(policy, params, state, opt_state, keys)}

    def train_population(p, s, o, k):
        fitted = train.fit_population(
            model, losses.softmax_cross_entropy_with_integer_labels, rs.SEARCHED_SGD, p, s,
            (x_train, y_train), keys=k, opt_state=o, batch_size=config.batch_size, epochs=config.epochs,
            drop_last=True, dev_data=(x_dev, y_dev), metrics={"accuracy": rs.finite_accuracy},
            train_metrics=False, on_nonfinite="continue", progress=False)
        return np.array([h["dev_accuracy"] for h in fitted.history]).T, fitted.params

    runs = {}
    for name, trees in placements.items():
        train_population(*trees)  # compiles
        start = time.perf_counter()
        curves, final = train_population(*trees)
        seconds = time.perf_counter() - start
        leaf = jax.tree.leaves(final)[0]
        best = int(np.argmax(curves[:, -1]))
        runs[name] = {"curves": curves, "seconds": seconds,
                      "member_steps_per_second": config.num_configs * config.epochs
                      * (len(x_train) // config.batch_size) / seconds,
                      "member_axis_sharding": str(getattr(leaf.sharding, "spec", "one device")),
                      "best_index": best, "best_dev_accuracy": float(curves[best, -1]),
                      "best_learning_rate": float(lrs[best]), "best_momentum": float(betas[best])}
    one, split = runs.values()
    difference = float(np.abs(one["curves"] - split["curves"]).max())
    agreeing = int(np.sum(np.all(np.abs(one["curves"] - split["curves"]) < 0.02, axis=1)))
    history = [{"epoch": e + 1, **{f"{n.replace(' ', '_')}_best_dev_accuracy": float(r["curves"][:, e].max())
                                   for n, r in runs.items()}} for e in range(config.epochs)]
    for r in runs.values():
        r["final_dev_accuracy"] = r.pop("curves")[:, -1].tolist()
    return {"devices": config.devices, "num_configs": config.num_configs, "runs": runs,
            "max_abs_difference": difference, "configs_agreeing": agreeing,
            "time_ratio": split["seconds"] / one["seconds"], "history": history}


def plot(result: dict, out_dir) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    one, split = result["runs"].values()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(one["final_dev_accuracy"], split["final_dev_accuracy"], s=14)
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    ax.set_xlabel("final dev accuracy, one device")
    ax.set_ylabel(f"final dev accuracy, members split over {result['devices']} devices")
    ax.set_title(f"{result['num_configs']} configurations: {result['configs_agreeing']} agree to 0.02")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out_dir, "population.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
