"""init_comparison: zeros vs large random vs He initialisation of a 3-layer ReLU net.

The course's experiment: LINEAR->RELU->LINEAR->RELU->LINEAR->SIGMOID with layer sizes
2-10-5-1 on two noisy concentric circles (300 train / 100 test points), full-batch
gradient descent, learning rate 0.01, 15,000 iterations (``fnnet.train.fit`` with the
whole training set as one batch).

What it shows:
- zeros: every hidden unit of a layer stays identical for the whole run (symmetry is
  never broken; the measured spread between units is exactly 0) and the net predicts
  one class: train accuracy 50%.
- large random (N(0, 10^2)): activations 10x too large, a huge initial loss and a
  slow start: 67% train / 63% test at seed 1 (the course reports 83% / 86%).
- He (N(0, 2 / fan_in)): trains best, 97.3% train / 95% test at seed 1 (the course
  reports 99.3% / 96%).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import init, losses, nn, optim, train
from fnnet.train.config import check_config

SCHEMES = ("zeros", "random", "he")


CPU_SECONDS = 7  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 1                      # seed of the data and the initialisations
    n_train: int = 300                 # training points on the two circles
    n_test: int = 100                  # test points
    noise: float = 0.05                # standard deviation of the Gaussian noise on the points
    hidden: tuple[int, ...] = (10, 5)  # widths of the hidden ReLU layers
    learning_rate: float = 0.01        # gradient-descent learning rate
    iterations: int = 15_000           # full-batch gradient-descent steps per scheme
    random_scale: float = 10.0         # standard deviation of the "large random" initialisation
    log_every: int = 1000              # iterations between two points of the loss history

    def __post_init__(self):
        check_config(self, positive=("n_train", "n_test", "hidden", "learning_rate", "iterations", "random_scale",
                                     "log_every"),
                     nonnegative=("noise",))


def circles(n: int, noise: float, seed: int):
    """Two concentric circles (scikit-learn's make_circles, factor 0.5): x (n, 2), y (n,)."""
    from sklearn.datasets import make_circles
    x, y = make_circles(n_samples=n, noise=noise, random_state=seed)
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)


def make_model(scheme: str, hidden: tuple, random_scale: float) -> nn.Module:
    kernel_init = {"zeros": init.zeros(), "random": init.normal(stddev=random_scale),
                   "he": init.he_normal()}[scheme]
    layers = []
    for h in hidden:
        layers += [nn.dense(h, kernel_init=kernel_init), nn.relu]
    return nn.serial(*layers, nn.dense(1, kernel_init=kernel_init), nn.reshape(()))


def hidden_activations(model_params, x, hidden):
    """Post-ReLU activations of each hidden layer, computed layer by layer."""
    acts, h = [], x
    for i in range(len(hidden)):
        p = model_params[str(2 * i)]
        h = jnp.maximum(h @ p["kernel"] + p["bias"][None, :], 0)
        acts.append(h)
    return acts


def train_scheme(config: Config, scheme: str, data):
    (x, y), (x_test, y_test) = data
    model = make_model(scheme, config.hidden, config.random_scale)
    params, state = model.init(jax.random.key(config.seed), x)
    init_acts = hidden_activations(params, x, config.hidden)
    # full-batch gradient descent: the whole training set as one batch per step
    fitted = train.fit(model, losses.binary_cross_entropy_with_logits, optim.sgd(config.learning_rate),
                       params, state, (x, y), key=jax.random.fold_in(jax.random.key(config.seed), 1),
                       batch_size=len(x),
                       shuffle=False, steps=config.iterations, eval_every=config.log_every,
                       compile_epochs=True, eval_at_start=True)
    params = fitted.params

    def accuracy(xs, ys):
        logits, _ = model.apply(params, state, xs)
        return float(jnp.mean((logits > 0) == (ys > 0.5)))

    first = params["0"]["kernel"]
    spread = float(jnp.max(jnp.abs(first - first[:, :1])))  # 0 iff all hidden units identical
    return {
        "train_accuracy": accuracy(x, y),
        "test_accuracy": accuracy(x_test, y_test),
        "final_loss": float(losses.binary_cross_entropy_with_logits(model.apply(params, state, x)[0], y)),
        "hidden_unit_spread": spread,
        "loss_curve": [h["train_loss"] for h in fitted.history],
        "activation_stats": [{"layer": i + 1, "mean": float(a.mean()), "std": float(a.std()),
                              "fraction_zero": float(jnp.mean(a == 0))}
                             for i, a in enumerate(init_acts)],
    }


def run(config: Config) -> dict:
    data = (circles(config.n_train, config.noise, config.seed),
            circles(config.n_test, config.noise, config.seed + 1))
    results = {scheme: train_scheme(config, scheme, data) for scheme in SCHEMES}
    # the initial loss, then the mean loss of every log_every iterations
    steps = [min(i * config.log_every, config.iterations) for i in range(len(results["he"]["loss_curve"]))]
    history = [{"step": step, **{f"{s}_loss": results[s]["loss_curve"][i] for s in SCHEMES}}
               for i, step in enumerate(steps)]
    out = {f"{s}_{k}": results[s][k] for s in SCHEMES
           for k in ("train_accuracy", "test_accuracy", "final_loss", "hidden_unit_spread")}
    out["activation_stats"] = {s: results[s]["activation_stats"] for s in SCHEMES}
    out["history"] = history
    return out


def plot(result: dict, out_dir) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [h["step"] for h in result["history"]]
    for s in SCHEMES:
        ax1.plot(steps, [h[f"{s}_loss"] for h in result["history"]],
                 label=f"{s} (test acc {result[f'{s}_test_accuracy']:.2f})")
    ax1.set_yscale("log")
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("training loss")
    ax1.legend()
    width = 0.25
    for j, s in enumerate(SCHEMES):
        stats = result["activation_stats"][s]
        ax2.bar(np.arange(len(stats)) + j * width, [st["std"] for st in stats], width, label=s)
    ax2.set_yscale("symlog", linthresh=1e-3)
    ax2.set_xticks(np.arange(len(stats)) + width, [f"hidden {st['layer']}" for st in stats])
    ax2.set_ylabel("std of activations at initialisation")
    ax2.legend()
    fig.tight_layout()
    path = f"{out_dir}/init_comparison.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
