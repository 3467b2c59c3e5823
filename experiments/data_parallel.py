"""data_parallel: one training run on 1 device and on N devices, data parallel and fully sharded.

``fnnet.train.fit`` trains the same model three times from the same initialisation and
key: on one device; with ``policy=data_parallel(mesh)`` (batches split over N devices,
params and optimizer state replicated, gradients all-reduced by XLA); and with
``policy=fully_sharded(mesh)`` (params and Adam moments split over the devices too).
The global-batch semantics make the three runs the same computation: batch norm
normalises with the statistics of the whole global batch and dropout draws the same
masks, so the runs differ only by the order of floating-point sums. On a machine with
one CPU, ``fnnet run data_parallel --devices N`` simulates N CPU devices.

Model: the 8x8 digits (first half trains, second half tests), 64-256-BN-256-BN-10 with
ReLU and dropout 0.2, Adam, 20 epochs of global batches of 64.

Full run (4 simulated devices on 2 shared CPU cores, 23 s): the three test accuracies
are equal (95.1%); the largest relative difference of a parameter from the one-device
run is 2.8e-7 data parallel and 3.1e-5 fully sharded (float32 rounding of sums taken
in another order, carried through 280 Adam steps and two batch norms), the training
losses agree to 5e-7. Simulated devices share the same two cores, so here the sharded
runs take 1.2x (data parallel) and 1.7x (fully sharded) the one-device time; on real
devices the batch work divides.
"""
from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import data, losses, metrics, nn, optim, parallel, train
from fnnet.train.config import check_config


CPU_SECONDS = 23  # a default run on 2 CPU cores, 4 simulated devices; `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                    # seed of the initialisation, dropout and shuffling
    devices: int = 4                 # devices of the data axis (simulated CPU devices with one CPU)
    hidden: int = 256                # width of the two hidden layers
    dropout: float = 0.2             # dropout rate after each hidden layer, in [0, 1)
    learning_rate: float = 1e-3      # Adam's learning rate
    epochs: int = 20                 # passes over the training half
    batch_size: int = 64             # the global batch, split over the devices

    def __post_init__(self):
        check_config(self, positive=("devices", "hidden", "learning_rate", "epochs", "batch_size"),
                     ranges={"dropout": "[0, 1)"})
        if self.batch_size % self.devices:
            raise ValueError(f"expected batch_size divisible by devices = {self.devices}, "
                             f"got {self.batch_size}")


def make_model(config: Config) -> nn.Module:
    def block():
        return [nn.dense(config.hidden, use_bias=False), nn.batch_norm(), nn.relu, nn.dropout(config.dropout)]
    return nn.serial(*block(), *block(), nn.dense(10))


def run(config: Config) -> dict:
    if jax.device_count() < config.devices:
        raise ValueError(f"data_parallel: expected {config.devices} devices, found {jax.device_count()}; "
                         f"run it as `fnnet run data_parallel --devices {config.devices}` (simulated "
                         "CPU devices) or on a machine with that many")
    x, y = data.load_digits()
    x = np.asarray(x, np.float32) / 16.0
    n = len(x) // 2
    train_data, test_data = (x[:n], y[:n]), (x[n:], y[n:])
    model = make_model(config)
    key = jax.random.key(config.seed)
    params, state = model.init(jax.random.fold_in(key, 0), jnp.asarray(x[:1]))
    mesh = parallel.make_mesh(config.devices)
    policies = {"one device": None, "data parallel": parallel.data_parallel(mesh),
                "fully sharded": parallel.fully_sharded(mesh)}
    runs, reference = {}, None
    for name, policy in policies.items():
        start = time.perf_counter()
        fitted = train.fit(model, losses.softmax_cross_entropy_with_integer_labels,
                           optim.adam(config.learning_rate), params, state, train_data,
                           key=jax.random.fold_in(key, 1), epochs=config.epochs,
                           batch_size=config.batch_size, drop_last=True, dev_data=test_data,
                           metrics={"accuracy": metrics.accuracy}, train_metrics=False,
                           policy=policy)
        seconds = time.perf_counter() - start
        final = jax.device_get(fitted.params)
        reference = final if reference is None else reference
        deviation = max(float(np.linalg.norm(a - b) / np.linalg.norm(b))
                        for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(reference)))
        specs = sorted({str(getattr(leaf.sharding, "spec", "one device")) for leaf in jax.tree.leaves(fitted.params)})
        runs[name] = {"test_accuracy": 100 * fitted.history[-1]["dev_accuracy"],
                      "train_loss": [h["train_loss"] for h in fitted.history],
                      "max_param_deviation": deviation, "param_shardings": specs,
                      "wall_seconds": seconds}
    one = np.asarray(runs["one device"]["train_loss"])
    for r in runs.values():
        r["max_loss_deviation"] = float(np.max(np.abs(np.asarray(r["train_loss"]) - one) / one))
        r["time_ratio"] = r["wall_seconds"] / runs["one device"]["wall_seconds"]
    return {"devices": config.devices, "backend": jax.default_backend(),
            "runs": runs, "params": nn.count_params(params),
            "history": [{"epoch": i + 1, **{f"{k}_train_loss": r["train_loss"][i] for k, r in
                                            (("one_device", runs["one device"]),
                                             ("data_parallel", runs["data parallel"]),
                                             ("fully_sharded", runs["fully sharded"]))}}
                        for i in range(config.epochs)]}


def plot(result: dict, out_dir) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for (name, r), style in zip(result["runs"].items(), ("-", "--", ":")):
        epochs = np.arange(1, len(r["train_loss"]) + 1)
        ax.plot(epochs, r["train_loss"], style, linewidth=2,
                label=f"{name}: test {r['test_accuracy']:.1f}%, max param dev {r['max_param_deviation']:.1e}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(f"fit on 1 device and on {result['devices']} {result['backend']} devices: one curve")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out_dir, "data_parallel.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
