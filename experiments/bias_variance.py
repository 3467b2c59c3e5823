"""bias_variance: overfit an MLP on a small subset of the 8x8 digits, then regularise it
with L2 and with dropout, and diagnose each run from its train and dev error.

A 64-256-256-10 ReLU MLP is trained with SGD + momentum 0.9 (lr 0.02, batches of 50)
on 300 of the 1,797 digits (drawn from the seed, standardised with the training
statistics) for long enough to drive the training error to zero; the dev set is 600
other digits. Each row of the table is one run: no regularisation, an L2 penalty
``lambda/2 sum w^2`` on the weights (not biases) for a sweep of ``lambda``, and inverted
dropout after each hidden layer for a sweep of keep-probabilities. Each row is
diagnosed as in the course notes, against a base (optimal) error of 0 and a tolerance:

- high bias:     train error - base error > tolerance;
- high variance: dev error - train error  > tolerance;
- both, or fine.

With the default config (seed 0, 100 epochs), the unregularised MLP reaches train
error 0.000 and dev error 0.060 (high variance); L2 with lambda 0.01 brings the dev
error to 0.048 and dropout with keep 0.5 to 0.055, while too much of either (lambda 0.3,
keep 0.2) opens a training error (see docs/experiments.md for the measured table).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import data, losses, metrics, nn, optim, train
from fnnet.train.config import check_config, require


CPU_SECONDS = 43  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                          # seed of the data split, initialisation, dropout and shuffling
    n_train: int = 300                     # training digits
    n_dev: int = 600                       # dev digits, others than the training ones (n_train + n_dev <= 1797)
    hidden: tuple[int, ...] = (256, 256)   # widths of the hidden layers
    learning_rate: float = 0.02            # SGD learning rate
    momentum: float = 0.9                  # SGD momentum, in [0, 1)
    epochs: int = 100                      # passes over the training set per run
    batch_size: int = 50                   # digits per step
    l2_lambdas: tuple[float, ...] = (1e-3, 1e-2, 3e-2, 1e-1, 3e-1)  # L2 coefficients lambda, one run each
    keep_probs: tuple[float, ...] = (0.8, 0.5, 0.3, 0.2)  # dropout keep-probabilities, one run each, in (0, 1]
    base_error: float = 0.0                # the optimal (Bayes) error of the diagnosis, in [0, 1]
    tolerance: float = 0.05                # an error gap above this counts as high bias or variance

    def __post_init__(self):
        check_config(self, positive=("n_train", "n_dev", "hidden", "learning_rate", "epochs", "batch_size",
                                     "l2_lambdas"),
                     nonnegative=("tolerance",),
                     ranges={"momentum": "[0, 1)", "keep_probs": "(0, 1]", "base_error": "[0, 1]"})
        require(self, "n_dev", self.n_train + self.n_dev <= 1797,
                f"<= {1797 - self.n_train} (n_train + n_dev at most the 1,797 digits)")


def diagnose(train_error: float, dev_error: float, base_error: float, tolerance: float) -> str:
    """The notes' diagnosis from train and dev error: high bias (avoidable bias =
    train - base > tolerance), high variance (dev - train > tolerance), both, or fine."""
    bias = train_error - base_error > tolerance
    variance = dev_error - train_error > tolerance
    if bias and variance:
        return "high bias and high variance"
    if bias:
        return "high bias"
    if variance:
        return "high variance"
    return "fine"


def make_model(config: Config, dropout_rate: float = 0.0) -> nn.Module:
    layers = []
    for h in config.hidden:
        layers += [nn.dense(h), nn.relu]
        if dropout_rate > 0:
            layers.append(nn.dropout(dropout_rate))
    return nn.serial(*layers, nn.dense(10))


def load(config: Config):
    x, y = data.load_digits()
    x, y = np.asarray(x), np.asarray(y)
    order = np.random.default_rng(config.seed).permutation(len(x))
    tr, dv = order[:config.n_train], order[config.n_train:config.n_train + config.n_dev]
    mean, std = data.fit_standardizer(x[tr])
    standardise = lambda a: np.asarray(data.apply_standardizer(a, mean, std), np.float32)  # noqa: E731
    return (standardise(x[tr]), y[tr]), (standardise(x[dv]), y[dv])


def run(config: Config) -> dict:
    (x_train, y_train), (x_dev, y_dev) = load(config)
    runs = [("none", 0.0, 1.0)]
    runs += [(f"l2 lambda={lam:g}", lam, 1.0) for lam in config.l2_lambdas]
    runs += [(f"dropout keep={p:g}", 0.0, p) for p in config.keep_probs]
    key = jax.random.key(config.seed)
    rows, curves = [], {}
    for label, lam, keep in runs:
        model = make_model(config, 1.0 - keep)
        params, state = model.init(jax.random.fold_in(key, 0), jnp.asarray(x_train[:1]))
        penalty = None if lam == 0 else (lambda p, lam=lam: losses.l2_penalty(p, coefficient=lam))
        fitted = train.fit(model, losses.softmax_cross_entropy_with_integer_labels,
                           optim.sgd(config.learning_rate, momentum=config.momentum),
                           params, state, (x_train, y_train), key=jax.random.fold_in(key, 1),
                           epochs=config.epochs, batch_size=config.batch_size,
                           dev_data=(x_dev, y_dev), metrics={"accuracy": metrics.accuracy},
                           penalty=penalty)
        last = fitted.history[-1]
        train_error, dev_error = 1.0 - last["train_accuracy"], 1.0 - last["dev_accuracy"]
        rows.append({"run": label, "l2_lambda": lam, "keep_prob": keep,
                     "train_error": train_error, "dev_error": dev_error,
                     "diagnosis": diagnose(train_error, dev_error, config.base_error, config.tolerance)})
        curves[label] = [(1.0 - h["train_accuracy"], 1.0 - h["dev_accuracy"]) for h in fitted.history]
    history = [{"epoch": e + 1, **{f"{label}/{part}": curves[label][e][i]
                                   for label in curves for i, part in enumerate(("train_error", "dev_error"))}}
               for e in range(config.epochs)]
    best = min(rows, key=lambda r: r["dev_error"])
    return {"rows": rows, "best_run": best["run"], "best_dev_error": best["dev_error"],
            "unregularised_dev_error": rows[0]["dev_error"], "history": history}


def format_table(result: dict) -> str:
    lines = [f"{'run':<22} {'train error':>11} {'dev error':>10}  diagnosis", "-" * 70]
    for r in result["rows"]:
        lines.append(f"{r['run']:<22} {r['train_error']:>11.3f} {r['dev_error']:>10.3f}  {r['diagnosis']}")
    return "\n".join(lines)


def plot(result: dict, out_dir) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = result["rows"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    idx = np.arange(len(rows))
    ax1.bar(idx - 0.2, [r["train_error"] for r in rows], 0.4, label="train error")
    ax1.bar(idx + 0.2, [r["dev_error"] for r in rows], 0.4, label="dev error")
    ax1.set_xticks(idx, [r["run"] for r in rows], rotation=45, ha="right", fontsize=8)
    ax1.set_ylabel("error")
    ax1.legend()
    epochs = [h["epoch"] for h in result["history"]]
    for r in rows:
        if r["run"] in ("none", result["best_run"]) or r is rows[-1]:
            ax2.plot(epochs, [h[f"{r['run']}/dev_error"] for h in result["history"]], label=f"{r['run']} dev")
            ax2.plot(epochs, [h[f"{r['run']}/train_error"] for h in result["history"]], "--",
                     label=f"{r['run']} train")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("error")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path = f"{out_dir}/bias_variance.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


if __name__ == "__main__":
    import sys
    cfg = Config(epochs=int(sys.argv[1])) if len(sys.argv) > 1 else Config()
    res = run(cfg)
    print(format_table(res))
