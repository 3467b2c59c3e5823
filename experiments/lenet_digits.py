"""lenet_digits: LeNet-5 on the 8x8 digits upsampled to 32x32, scikit-learn's writer split.

LeCun et al. (1998) trained LeNet-5 on 32x32 inputs (MNIST's 28x28 padded). Here the
1,797 UCI 8x8 digits bundled with scikit-learn are scaled to [0, 1], upsampled 4x
bilinearly to 32x32 (``fnnet.functional.upsample(..., "bilinear")``, PyTorch's
``align_corners=False``) and standardised with the training half's mean and standard
deviation (LeCun's advice for tanh units: inputs of zero mean and unit variance). The
first half (898) trains and the second half (899, other writers) tests, the split of
scikit-learn's "Recognizing hand-written digits" example, on which ``SVC(gamma=0.001)``
gets 96.9%.

Model: ``fnnet.models.lenet5(num_classes=10, variant="classic")`` (tanh, average
pooling, 61,706 params). Training: Adam with a cosine-decayed learning rate from 2e-3,
batches of 32, 100 epochs; every batch is augmented with a random translation of up to
3 pixels (of 32) and a random rotation of up to 10 degrees (``fnnet.data.augment``, a
``batch_hook`` of ``fnnet.train.fit``, inside the compiled step), which is what carries
the net past the writers' shift: without augmentation the same net stops at 94.4%
(``--set max_shift=0 --set max_degrees=0``) with a training loss of 3e-4.

Reaches 98.1% test accuracy (seed 0; seeds 0-4: 98.1, 98.3, 98.6, 98.7, 98.3, mean
98.4), against the SVC's 96.9% on the same split; the training set is fitted to 100%.
18 s per seed on 2 CPU cores at low load (45-65 s under a load of 6; 81 s under a
load of ~10.6 when re-run after C5, a 5x5 conv over a 5x5 map, became a matmul on CPU:
98.1% again, best epoch 98.3%). Until 1 December
2026 the experiment had its own loop, whose batch order and augmentation keys differ
from ``fit``'s: 98.3% (seeds 0-4 mean 98.5), 94.0% without augmentation.
"""
from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import data, losses, metrics, nn, optim, train
from fnnet import functional as F
from fnnet.data import augment
from fnnet.models import lenet5
from fnnet.train.config import check_config, require

SVC_REFERENCE = 96.89  # scikit-learn SVC(gamma=0.001) on the same split (see the docstring)


CPU_SECONDS = 18  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                   # seed of the initialisation, shuffling and augmentation
    upsample: str = "bilinear"      # 8x8 -> 32x32: "bilinear" or "nearest" (4x each pixel)
    standardize: bool = True        # standardise with the training half's mean and standard deviation
    learning_rate: float = 2e-3     # peak Adam learning rate, cosine-decayed to 0
    batch_size: int = 32            # images per step (the last partial batch is dropped)
    epochs: int = 100               # passes over the training images
    max_shift: int = 3              # random translation, pixels of the 32x32 image (0: none)
    max_degrees: float = 10.0       # random rotation (0: none)
    max_train: int | None = None    # use only the first max_train training images (tests)

    def __post_init__(self):
        check_config(self, positive=("learning_rate", "batch_size", "epochs", "max_train"),
                     nonnegative=("max_shift", "max_degrees"), choices={"upsample": ("bilinear", "nearest")})
        if self.max_train is not None:
            require(self, "batch_size", self.batch_size <= self.max_train,
                    f"<= max_train ({self.max_train}), or no full batch is left")


def load(config: Config):
    """Digits as (N, 32, 32, 1): the first half trains, the second half tests."""
    x, y = data.load_digits(images=True)
    x = np.asarray(F.upsample(jnp.asarray(x / 16.0), 4, config.upsample))
    n = len(x) // 2
    x_train, y_train, x_test, y_test = x[:n], y[:n], x[n:], y[n:]
    if config.standardize:
        mean, std = x_train.mean(), x_train.std()
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if config.max_train is not None:
        x_train, y_train = x_train[:config.max_train], y_train[:config.max_train]
    return tuple(map(jnp.asarray, (x_train, y_train, x_test, y_test)))


def train_lenet(config: Config, progress: bool | None = None):
    """LeNet-5 trained on the digits as ``config`` says: ``(model, fitted, (x_train,
    y_train, x_test, y_test))`` with ``fitted`` the ``fnnet.train.FitResult``."""
    x_train, y_train, x_test, y_test = load(config)
    model = lenet5(num_classes=10, variant="classic")
    key = jax.random.key(config.seed)
    params, state = model.init(jax.random.fold_in(key, 0), x_train[:1])
    n, b = x_train.shape[0], config.batch_size
    steps_per_epoch = n // b  # the last partial batch is dropped (a new permutation every epoch)
    opt = optim.adam(optim.cosine_decay_schedule(config.learning_rate, config.epochs * steps_per_epoch))
    augs = []
    if config.max_shift:
        augs.append(lambda k, x: augment.random_translate(k, x, config.max_shift))
    if config.max_degrees:
        augs.append(lambda k, x: augment.random_rotate(k, x, config.max_degrees))
    augmentation = augment.compose(*augs)

    def hook(xb, yb, k):  # every batch is augmented inside the compiled step, from the step's key
        return augmentation(k, xb), yb

    fitted = train.fit(model, losses.softmax_cross_entropy_with_integer_labels, opt, params, state,
                       (x_train, y_train), key=jax.random.fold_in(key, 1), epochs=config.epochs,
                       batch_size=b, drop_last=True, batch_hook=hook if augs else None,
                       dev_data=(x_test, y_test), metrics={"accuracy": metrics.accuracy},
                       train_metrics=False, progress=progress)
    return model, fitted, (x_train, y_train, x_test, y_test)


def run(config: Config) -> dict:
    model, fitted, (x_train, y_train, x_test, y_test) = train_lenet(config)
    state, n = fitted.state, x_train.shape[0]
    history = [{"epoch": h["epoch"], "train_loss": h["train_loss"], "test_loss": h["dev_loss"],
                "test_accuracy": 100 * h["dev_accuracy"]} for h in fitted.history]
    params = fitted.params
    logits, _ = model.apply(params, state, x_train)
    return {"test_accuracy": history[-1]["test_accuracy"],
            "best_test_accuracy": max(h["test_accuracy"] for h in history),
            "train_accuracy": float(100 * metrics.accuracy(logits, y_train)),
            "svc_reference": SVC_REFERENCE, "params": nn.count_params(params),
            "n_train": int(n), "n_test": int(x_test.shape[0]), "history": history}


def plot(result: dict, out_dir) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in result["history"]]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(epochs, [h["test_accuracy"] for h in result["history"]],
            label=f"LeNet-5 test accuracy (final {result['test_accuracy']:.1f}%)")
    ax.axhline(result["svc_reference"], color="k", linestyle=":", label=f"SVC {result['svc_reference']:.1f}%")
    ax.axhline(98, color="C3", linestyle="--", linewidth=0.8, label="98%")
    ax.set_ylim(90, 100)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("LeNet-5 on digits upsampled to 32x32 (second half = other writers)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out_dir, "lenet_digits.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
