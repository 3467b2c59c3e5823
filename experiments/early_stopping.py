"""early_stopping: where the dev error turns up, and the epoch early stopping restores.

A 40-256-256-10 ReLU MLP is trained with Adam on 1,000 MNIST-1D sequences, which it
overfits within a few epochs; the dev set is 1,000 other training sequences and the
test set is MNIST-1D's own 1,000. The same run (same key, so the same trajectory) is
done twice: for all ``epochs`` without stopping, to see the whole U of the dev loss,
and with ``fnnet.train.EarlyStopping(monitor="dev_loss", patience=...,
restore_best=True)``, which stops ``patience`` epochs after the last improvement and
hands back the params of the best epoch.

A third run stops on ``dev_accuracy`` (mode ``"max"``) instead of the loss.

With the default config (seed 0): the dev loss is lowest at epoch 11 and then climbs
while the training loss keeps falling to zero, but the dev *error* keeps falling until
epoch 24 (the network grows over-confident on the examples it gets wrong, which the
loss punishes and the error does not see). Early stopping on the dev loss stops at epoch
17 and restores epoch 11 (test error 60.0%, worse than the 57.6% of all 60 epochs);
stopping on dev accuracy instead stops at epoch 30 and restores epoch 24 (test error
59.2%). On 1,000 test sequences these test errors differ by less than their standard
error (about 1.6 points).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import data, losses, metrics, nn, optim, train
from fnnet.train.config import check_config, require


CPU_SECONDS = 11  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                          # seed of the data split, initialisation and shuffling
    n_train: int = 1000                    # training sequences from MNIST-1D's training split
    n_dev: int = 1000                      # dev sequences, others of the training split (n_train + n_dev <= 4000)
    hidden: tuple[int, ...] = (256, 256)   # widths of the hidden layers
    learning_rate: float = 1e-3            # Adam learning rate
    epochs: int = 60                       # epochs of the run without stopping (the most for the others)
    batch_size: int = 50                   # sequences per step
    patience: int = 5                      # epochs without improvement before early stopping stops

    def __post_init__(self):
        check_config(self, positive=("n_train", "n_dev", "hidden", "learning_rate", "epochs", "batch_size"),
                     nonnegative=("patience",))
        require(self, "n_dev", self.n_train + self.n_dev <= 4000,
                f"<= {4000 - self.n_train} (n_train + n_dev at most MNIST-1D's 4,000 training sequences)")


def make_model(config: Config) -> nn.Module:
    layers = []
    for h in config.hidden:
        layers += [nn.dense(h), nn.relu]
    return nn.serial(*layers, nn.dense(10))


def load(config: Config):
    (x, y), (x_test, y_test) = data.load_mnist1d()
    x, y = np.asarray(x), np.asarray(y)
    order = np.random.default_rng(config.seed).permutation(len(x))
    tr, dv = order[:config.n_train], order[config.n_train:config.n_train + config.n_dev]
    mean, std = data.fit_standardizer(x[tr])
    standardise = lambda a: np.asarray(data.apply_standardizer(a, mean, std), np.float32)  # noqa: E731
    return ((standardise(x[tr]), y[tr]), (standardise(x[dv]), y[dv]),
            (standardise(np.asarray(x_test)), np.asarray(y_test)))


def run(config: Config) -> dict:
    train_data, dev_data, (x_test, y_test) = load(config)
    model = make_model(config)
    key = jax.random.key(config.seed)
    loss_fn = losses.softmax_cross_entropy_with_integer_labels

    def fit(early_stopping):
        params, state = model.init(jax.random.fold_in(key, 0), jnp.asarray(train_data[0][:1]))
        return train.fit(model, loss_fn, optim.adam(config.learning_rate), params, state, train_data,
                         key=jax.random.fold_in(key, 1), epochs=config.epochs,
                         batch_size=config.batch_size, dev_data=dev_data,
                         metrics={"accuracy": metrics.accuracy}, early_stopping=early_stopping)

    def test_error(fitted):
        logits, _ = model.apply(fitted.params, fitted.state, jnp.asarray(x_test))
        return 1.0 - float(metrics.accuracy(logits, jnp.asarray(y_test)))

    full = fit(None)
    dev_losses = [h["dev_loss"] for h in full.history]
    history = [{"epoch": h["epoch"], "train_loss": h["train_loss"], "dev_loss": h["dev_loss"],
                "train_error": 1.0 - h["train_accuracy"], "dev_error": 1.0 - h["dev_accuracy"]}
               for h in full.history]
    stopping = {}
    for monitor, mode in (("dev_loss", "min"), ("dev_accuracy", "max")):
        stopped = fit(train.EarlyStopping(monitor=monitor, mode=mode, patience=config.patience,
                                          restore_best=True))
        restored = model.apply(stopped.params, stopped.state, jnp.asarray(dev_data[0]))[0]
        stopping[monitor] = {
            "best_epoch": stopped.best_epoch,
            "stopped_at_epoch": len(stopped.history),
            "stopped_early": stopped.stopped_early,
            "restored_dev_loss": float(loss_fn(restored, jnp.asarray(dev_data[1]))),
            "restored_dev_error": 1.0 - float(metrics.accuracy(restored, jnp.asarray(dev_data[1]))),
            "test_error": test_error(stopped),
        }
    return {
        "dev_loss_minimum_epoch": int(np.argmin(dev_losses)) + 1,
        "dev_error_minimum_epoch": int(np.argmin([h["dev_error"] for h in history])) + 1,
        "best_epoch": stopping["dev_loss"]["best_epoch"],
        "stopped_at_epoch": stopping["dev_loss"]["stopped_at_epoch"],
        "early_stopping": stopping,
        "final_dev_loss": dev_losses[-1],
        "test_error_full_run": test_error(full),
        "history": history,
    }


def plot(result: dict, out_dir) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    h = result["history"]
    epochs = [e["epoch"] for e in h]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax1.plot(epochs, [e["train_loss"] for e in h], label="train loss")
    ax1.plot(epochs, [e["dev_loss"] for e in h], label="dev loss")
    ax2.plot(epochs, [e["train_error"] for e in h], label="train error")
    ax2.plot(epochs, [e["dev_error"] for e in h], label="dev error")
    for ax in (ax1, ax2):
        ax.axvline(result["best_epoch"], color="gray", ls="--", lw=0.8,
                   label=f"restored epoch {result['best_epoch']}")
        ax.axvline(result["stopped_at_epoch"], color="red", ls=":", lw=0.8,
                   label=f"stopped at {result['stopped_at_epoch']}")
        ax.set_xlabel("epoch")
        ax.legend()
    ax1.set_ylabel("cross-entropy")
    ax2.set_ylabel("error")
    fig.tight_layout()
    path = f"{out_dir}/early_stopping.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


if __name__ == "__main__":
    res = run(Config())
    print({k: v for k, v in res.items() if k != "history"})
