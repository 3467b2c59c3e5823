"""mlp_digits: a two-hidden-layer ReLU MLP with softmax on the 8x8 digits.

scikit-learn's own split: the first half of the 1,797 digits trains, the second half
(other writers) tests. The MLP is 64-512-512-10 with ReLU, inverted dropout (rate 0.3)
after each hidden layer and softmax cross-entropy, trained with SGD + momentum 0.9 and a
cosine-decayed learning rate for 40 epochs of mini-batches of 64. The training set is
augmented with the eight one-pixel translations of every image (9x the data), which is
what carries the MLP past the writers' shift in position.

Reaches 96.9% test accuracy (seed 0; 96.6-97.3% over seeds 0-4); scikit-learn's SVC(gamma=0.001) gets 96.9%
and its MLPClassifier(100) 94.5% on this split.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import data, losses, metrics, nn, optim, train
from fnnet.train.config import check_config


CPU_SECONDS = 16  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                          # seed of the initialisation, dropout and shuffling
    hidden: tuple[int, ...] = (512, 512)   # widths of the hidden layers (() for softmax regression)
    dropout: float = 0.3                   # inverted-dropout rate after each hidden layer, in [0, 1)
    learning_rate: float = 0.05            # peak SGD learning rate, cosine-decayed to 0
    momentum: float = 0.9                  # SGD momentum, in [0, 1)
    epochs: int = 40                       # passes over the (augmented) training set
    batch_size: int = 64                   # images per step (the last partial batch is dropped)
    shift_augment: bool = True             # add the 8 one-pixel translations of every training image

    def __post_init__(self):
        check_config(self, positive=("hidden", "learning_rate", "epochs", "batch_size"),
                     ranges={"dropout": "[0, 1)", "momentum": "[0, 1)"})


def shifted_copies(images: np.ndarray) -> np.ndarray:
    """The 9 translations by (dy, dx) in {-1, 0, 1}^2 of (n, 8, 8) images, zero-filled:
    (9 n, 8, 8), grouped by shift."""
    out = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            s = np.zeros_like(images)
            s[:, max(dy, 0):8 + min(dy, 0), max(dx, 0):8 + min(dx, 0)] = \
                images[:, max(-dy, 0):8 + min(-dy, 0), max(-dx, 0):8 + min(-dx, 0)]
            out.append(s)
    return np.concatenate(out)


def make_model(config: Config) -> nn.Module:
    layers = []
    for h in config.hidden:
        layers += [nn.dense(h), nn.relu, nn.dropout(config.dropout)]
    return nn.serial(*layers, nn.dense(10))


def run(config: Config) -> dict:
    x, y = data.load_digits()
    x = x / 16.0
    n = len(x) // 2
    x_train, y_train, x_test, y_test = x[:n], y[:n], x[n:], y[n:]
    if config.shift_augment:
        x_train = shifted_copies(np.asarray(x_train).reshape(-1, 8, 8)).reshape(-1, 64)
        y_train = np.tile(np.asarray(y_train), 9)
    model = make_model(config)
    key = jax.random.key(config.seed)
    params, state = model.init(jax.random.fold_in(key, 0), jnp.asarray(x_train[:1]))
    steps = config.epochs * (len(x_train) // config.batch_size)
    schedule = optim.cosine_decay_schedule(config.learning_rate, steps)
    opt = optim.sgd(schedule, momentum=config.momentum)
    result = train.fit(model, losses.softmax_cross_entropy_with_integer_labels, opt, params, state,
                       (x_train, y_train), key=jax.random.fold_in(key, 1), epochs=config.epochs,
                       batch_size=config.batch_size, drop_last=True, dev_data=(x_test, y_test),
                       metrics={"accuracy": metrics.accuracy})
    logits, _ = model.apply(result.params, result.state, jnp.asarray(x_test))
    return {"test_accuracy": float(metrics.accuracy(logits, jnp.asarray(y_test))),
            "final_train_loss": result.history[-1]["train_loss"],
            "n_train": int(len(x_train)), "n_test": int(len(x_test)),
            "params": nn.count_params(result.params), "history": result.history}
