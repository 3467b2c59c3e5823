"""optimizers_digits: one MLP on the 8x8 digits under every optimizer, batch size and decay.

The 1,797 digits (pixels / 16) are split 60/20/20 (stratified, from the seed) into
train / dev / test; the model is a 64-100-10 ReLU MLP with softmax cross-entropy, every
run starting from the same initial weights and seeing the same shuffles
(``fnnet.train.fit``). Three studies, dev accuracy after every epoch:

1. optimizers, mini-batch 64: GD, momentum, Nesterov, RMSprop, Adam, AdamW, NAdam,
   AdaMax, Adagrad, Adadelta, each at a usual learning rate (``Config.learning_rates``);
2. batch (the whole training set per step) vs mini-batch (64) vs stochastic (1) gradient
   descent, plain SGD, one learning rate each (``Config.batch_learning_rates``);
3. learning-rate decay for SGD with momentum 0.9 from lr 0.05: constant, inverse-time
   ``lr0 / (1 + k epoch)``, ``lr0 / sqrt(epoch)``, exponential 0.9^epoch, cosine, and the
   triangular cyclical rate.

What it shows (default config, 20 epochs, seed 0; test accuracy in docs/experiments.md):
every optimizer at its usual rate ends at 96.4-97.5% dev accuracy (95.0-96.4% test) on
this easy problem, the momentum and adaptive methods getting there in fewer epochs than
plain GD; batch GD (one step per epoch, 20 steps in all) reaches only 92.2% dev while
mini-batch (96.9%) and stochastic GD (96.9%, noisier) converge within a few epochs;
the decays (inverse-time, 1/sqrt(epoch), exponential, cosine, cyclical) end at
96.4-97.8% dev against 96.9% for the constant rate: they smooth the last epochs rather
than change the result here.
"""
from __future__ import annotations

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import data, losses, metrics, nn, optim, train
from fnnet.train.config import check_config, require


CPU_SECONDS = 88  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it
OPTIMIZERS = ("gd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "nadam", "adamax", "adagrad",
              "adadelta")
BATCH_MODES = ("batch", "minibatch", "stochastic")  # the whole training set, batch_size, 1
DECAYS = ("constant", "inverse_time", "inverse_sqrt", "exponential", "cosine", "cyclical")
STUDIES = ("optimizers", "batch_size", "decay")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                   # seed of the split, the initialisation and the shuffling
    hidden: int = 100               # width of the hidden layer
    epochs: int = 20                # passes over the training set per run
    batch_size: int = 64            # mini-batch size of the optimizer and decay studies
    dev_fraction: float = 0.2       # share of the digits for dev, in (0, 1)
    test_fraction: float = 0.2      # share of the digits for test (dev + test < 1)
    stratify: bool = True           # keep the class proportions in every split
    learning_rates: tuple[tuple[str, float], ...] = (  # study 1: (optimizer, learning rate) pairs,
        ("gd", 0.1), ("momentum", 0.05), ("nesterov", 0.05), ("rmsprop", 1e-3),   # the optimizers: gd,
        ("adam", 1e-3), ("adamw", 1e-3), ("nadam", 1e-3), ("adamax", 2e-3),       # momentum, nesterov, rmsprop,
        ("adagrad", 0.05), ("adadelta", 1.0))  # adam, adamw, nadam, adamax, adagrad, adadelta
    batch_learning_rates: tuple[tuple[str, float], ...] = (  # study 2: (batch size, learning rate) pairs,
        ("batch", 0.3), ("minibatch", 0.1), ("stochastic", 0.01))  # sizes "batch", "minibatch", "stochastic"
    decay_base_lr: float = 0.05     # study 3: the initial learning rate of every decay
    decays: tuple[str, ...] = DECAYS    # study 3: constant, inverse_time, inverse_sqrt, exponential, cosine, cyclical
    studies: tuple[str, ...] = STUDIES  # the studies to run: optimizers, batch_size, decay

    def __post_init__(self):
        check_config(self, positive=("hidden", "epochs", "batch_size", "decay_base_lr"),
                     ranges={"dev_fraction": "(0, 1)", "test_fraction": "(0, 1)"},
                     choices={"decays": DECAYS, "studies": STUDIES})
        require(self, "test_fraction", self.dev_fraction + self.test_fraction < 1,
                f"< {1 - self.dev_fraction:g} (dev_fraction + test_fraction < 1)")
        for field, names in (("learning_rates", OPTIMIZERS), ("batch_learning_rates", BATCH_MODES)):
            for name, lr in getattr(self, field):
                require(self, field, name in names and lr > 0,
                        f"to pair a name of {', '.join(names)} with a learning rate > 0 (bad: {(name, lr)!r})")


def make_optimizer(name: str, lr):
    if name == "gd":
        return optim.sgd(lr)
    if name == "momentum":
        return optim.sgd(lr, momentum=0.9)
    if name == "nesterov":
        return optim.sgd(lr, momentum=0.9, nesterov=True)
    if name in ("rmsprop", "adam", "adamw", "nadam", "adamax", "adagrad", "adadelta"):
        return getattr(optim, name)(lr)
    raise ValueError(f"optimizers_digits: unknown optimizer {name!r}")


def make_schedule(name: str, lr0: float, steps_per_epoch: int, total_steps: int):
    """The decays of study 3, per step, changing once per epoch where the course does."""
    if name == "constant":
        return optim.constant_schedule(lr0)
    if name == "inverse_time":  # lr0 / (1 + 0.5 epoch)
        return optim.inverse_time_decay(lr0, 0.5, transition_steps=steps_per_epoch, staircase=True)
    if name == "inverse_sqrt":  # lr0 / sqrt(epoch), epochs counted from 1
        return optim.inverse_sqrt_decay(lr0, transition_steps=steps_per_epoch, staircase=True)
    if name == "exponential":  # lr0 0.9^epoch
        return optim.exponential_decay(lr0, steps_per_epoch, 0.9, staircase=True)
    if name == "cosine":
        return optim.cosine_decay_schedule(lr0, total_steps)
    if name == "cyclical":  # Smith's triangular policy, a cycle every 4 epochs
        return optim.cyclical_schedule(lr0 / 10, 2 * lr0, 2 * steps_per_epoch)
    raise ValueError(f"optimizers_digits: unknown decay {name!r}")


def runs(config: Config, n_train: int):
    """(study, run name, optimizer, batch size) for every run of the config."""
    out = []
    if "optimizers" in config.studies:
        for name, lr in config.learning_rates:
            out.append(("optimizers", name, make_optimizer(name, lr), config.batch_size))
    if "batch_size" in config.studies:
        sizes = {"batch": n_train, "minibatch": config.batch_size, "stochastic": 1}
        for name, lr in config.batch_learning_rates:
            out.append(("batch_size", name, optim.sgd(lr), sizes[name]))
    if "decay" in config.studies:
        per_epoch = math.ceil(n_train / config.batch_size)
        for name in config.decays:
            schedule = make_schedule(name, config.decay_base_lr, per_epoch, per_epoch * config.epochs)
            out.append(("decay", name, optim.sgd(schedule, momentum=0.9), config.batch_size))
    return out


def run(config: Config) -> dict:
    key = jax.random.key(config.seed)
    x, y = data.load_digits()
    x = np.asarray(x, np.float32) / 16.0
    (x_train, y_train), (x_dev, y_dev), (x_test, y_test) = data.train_dev_test_split(
        jax.random.fold_in(key, 0), x, y, config.dev_fraction, config.test_fraction, stratify=config.stratify)
    model = nn.serial(nn.dense(config.hidden), nn.relu, nn.dense(10))
    params, state = model.init(jax.random.fold_in(key, 1), jnp.asarray(x_train[:1]))
    loss_fn = losses.softmax_cross_entropy_with_integer_labels
    evaluate = train.make_eval_step(model, loss_fn, {"accuracy": metrics.accuracy})

    results, history = {}, [{"epoch": e + 1} for e in range(config.epochs)]
    for study, name, opt, batch_size in runs(config, len(x_train)):
        fitted = train.fit(model, loss_fn, opt, params, state, (x_train, y_train), key=jax.random.fold_in(key, 2),
                           epochs=config.epochs, batch_size=batch_size, dev_data=(x_dev, y_dev),
                           metrics={"accuracy": metrics.accuracy})
        test = evaluate(fitted.params, fitted.state, jnp.asarray(x_test), jnp.asarray(y_test))
        tag = f"{study}/{name}"
        results[tag] = {"dev_accuracy": float(fitted.history[-1]["dev_accuracy"]),
                        "test_accuracy": float(test["accuracy"]),
                        "train_loss": float(fitted.history[-1]["train_loss"]),
                        "batch_size": int(batch_size)}
        for h, entry in zip(history, fitted.history):
            h[f"{tag}_dev_accuracy"] = float(entry["dev_accuracy"])
    table = {tag: r["test_accuracy"] for tag, r in results.items()}
    return {"runs": results, "test_accuracy": table,
            "best": max(table, key=table.get) if table else None,
            "n_train": int(len(x_train)), "n_dev": int(len(x_dev)), "n_test": int(len(x_test)),
            "history": history}


def plot(result: dict, out_dir) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    studies = sorted({tag.split("/")[0] for tag in result["runs"]},
                     key=["optimizers", "batch_size", "decay"].index)
    fig, axes = plt.subplots(1, len(studies), figsize=(6 * len(studies), 4.5), squeeze=False)
    epochs = [h["epoch"] for h in result["history"]]
    titles = {"optimizers": "optimizers (mini-batch 64)", "batch_size": "batch vs mini-batch vs stochastic SGD",
              "decay": "SGD + momentum: learning-rate decay"}
    for ax, study in zip(axes[0], studies):
        for tag, r in result["runs"].items():
            if tag.startswith(study + "/"):
                ax.plot(epochs, [h[f"{tag}_dev_accuracy"] for h in result["history"]],
                        label=f"{tag.split('/')[1]} (test {100 * r['test_accuracy']:.1f}%)")
        ax.set_title(titles[study])
        ax.set_xlabel("epoch")
        ax.set_ylabel("dev accuracy")
        ax.set_ylim(0.5, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = os.path.join(out_dir, "optimizers_digits.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
