"""batchnorm_depth: a deep MLP with and without batch norm on MNIST-1D.

A ReLU MLP with ``depth`` hidden layers of ``width`` units (He-normal weights) is
trained with SGD + momentum 0.9 on 3,000 MNIST-1D sequences at two learning rates,
once plain (``dense -> relu``) and once with batch norm (``dense (no bias) ->
batch_norm -> relu``, Ioffe & Szegedy 2015). Every ``eval_every`` steps the dev
accuracy (1,000 other training sequences, batch norm in evaluation mode with its
running statistics) is measured; the result is the number of steps each network needs
to reach ``target_accuracy`` on dev, and the loss curves.

Each network trains through ``fnnet.train.fit`` with ``on_nonfinite="stop"``: a network
whose numbers become non-finite ends its curve there (``diverged``).

With the default config (depth 10, width 64, seed 0, target 50% dev accuracy, 3,000
steps): at lr 0.01 both reach the target (plain 1,400 steps, batch norm 1,500); at lr
0.05 batch norm gets there first (600 vs 1,300 steps) and ends higher (best 65.2% vs
59.4%); at lr 0.2 the plain network collapses to chance (about 10% dev accuracy from
step 250 on, never the target) while batch norm reaches the target in 900 steps and 63.1%.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import data, losses, metrics, nn, optim, train
from fnnet.train.config import check_config, require


CPU_SECONDS = 121  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                       # seed of the data split, initialisation and shuffling
    depth: int = 10                     # hidden layers of the MLP
    width: int = 64                     # units per hidden layer
    learning_rates: tuple[float, ...] = (0.01, 0.05, 0.2)  # SGD rates, each for a plain and a batch-norm net
    momentum: float = 0.9               # SGD momentum, in [0, 1)
    steps: int = 3000                   # training steps per network
    batch_size: int = 64                # sequences per step (at most n_train)
    eval_every: int = 50                # steps between two dev evaluations (at most steps)
    target_accuracy: float = 0.5        # dev accuracy whose first crossing is reported, in [0, 1]
    n_train: int = 3000                 # training sequences; the rest of MNIST-1D's 4,000 is the dev set

    def __post_init__(self):
        check_config(self, positive=("depth", "width", "learning_rates", "steps", "batch_size", "eval_every",
                                     "n_train"),
                     ranges={"momentum": "[0, 1)", "target_accuracy": "[0, 1]"}, nonempty=("learning_rates",))
        require(self, "eval_every", self.eval_every <= self.steps, f"<= steps ({self.steps})")
        require(self, "n_train", self.n_train < 4000, "< 4000 (MNIST-1D's training sequences; the rest is dev)")
        require(self, "batch_size", self.batch_size <= self.n_train, f"<= n_train ({self.n_train})")


def make_model(config: Config, batch_norm: bool) -> nn.Module:
    layers = []
    for _ in range(config.depth):
        if batch_norm:
            layers += [nn.dense(config.width, use_bias=False), nn.batch_norm(), nn.relu]
        else:
            layers += [nn.dense(config.width), nn.relu]
    return nn.serial(*layers, nn.dense(10))


def load(config: Config):
    (x, y), _ = data.load_mnist1d()
    x, y = np.asarray(x), np.asarray(y)
    order = np.random.default_rng(config.seed).permutation(len(x))
    tr, dv = order[:config.n_train], order[config.n_train:]
    mean, std = data.fit_standardizer(x[tr])
    standardise = lambda a: jnp.asarray(data.apply_standardizer(a, mean, std), jnp.float32)  # noqa: E731
    return (standardise(x[tr]), jnp.asarray(y[tr])), (standardise(x[dv]), jnp.asarray(y[dv]))


def train_one(config: Config, batch_norm: bool, learning_rate: float, train_data, dev_data) -> dict:
    """Train one network; returns its eval curve and the steps to the target accuracy.

    A network whose loss or parameters become non-finite stops there (``diverged``); its
    last curve point has the non-finite training loss and no dev numbers (nan).
    """
    x_train, _ = train_data
    model = make_model(config, batch_norm)
    key = jax.random.key(config.seed)
    params, state = model.init(jax.random.fold_in(key, 0), x_train[:1])
    fitted = train.fit(model, losses.softmax_cross_entropy_with_integer_labels,
                       optim.sgd(learning_rate, momentum=config.momentum), params, state, train_data,
                       key=jax.random.fold_in(key, 1), steps=config.steps, eval_every=config.eval_every,
                       batch_size=config.batch_size, drop_last=True, dev_data=dev_data,
                       metrics={"accuracy": metrics.accuracy}, train_metrics=False, on_nonfinite="stop")
    curve = [{"step": h["step"], "train_loss": h["train_loss"], "dev_loss": h.get("dev_loss", float("nan")),
              "dev_accuracy": h.get("dev_accuracy", float("nan"))} for h in fitted.history]
    reached = next((c["step"] for c in curve if c["dev_accuracy"] >= config.target_accuracy), None)
    finite = [c["dev_accuracy"] for c in curve if np.isfinite(c["dev_accuracy"])]
    return {"curve": curve, "steps_to_target": reached, "diverged": fitted.diverged,
            "best_dev_accuracy": max(finite) if finite else float("nan"),
            "final_dev_accuracy": curve[-1]["dev_accuracy"]}


def run(config: Config) -> dict:
    train_data, dev_data = load(config)
    runs = {}
    for lr in config.learning_rates:
        for bn in (False, True):
            runs[f"{'batch_norm' if bn else 'plain'} lr={lr:g}"] = train_one(config, bn, lr, train_data, dev_data)
    history = []
    for label, r in runs.items():
        history += [{"run": label, **c} for c in r["curve"]]
    return {"runs": {label: {k: v for k, v in r.items() if k != "curve"} for label, r in runs.items()},
            "target_accuracy": config.target_accuracy, "history": history}


def plot(result: dict, out_dir) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label in result["runs"]:
        pts = [h for h in result["history"] if h["run"] == label]
        style = "-" if label.startswith("batch_norm") else "--"
        ax1.plot([h["step"] for h in pts], [h["train_loss"] for h in pts], style, label=label)
        ax2.plot([h["step"] for h in pts], [h["dev_accuracy"] for h in pts], style, label=label)
    ax2.axhline(result["target_accuracy"], color="gray", lw=0.8)
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss")
    ax1.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_ylabel("dev accuracy")
    ax1.legend()
    ax2.legend()
    fig.tight_layout()
    path = f"{out_dir}/batchnorm_depth.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


if __name__ == "__main__":
    res = run(Config())
    for label, r in res["runs"].items():
        print(f"{label:<22} steps to target: {r['steps_to_target']}  best dev acc {r['best_dev_accuracy']:.3f} "
              f"final {r['final_dev_accuracy']:.3f} diverged {r['diverged']}")
