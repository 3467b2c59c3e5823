"""mnist1d_baselines: the MNIST-1D paper's logistic-regression and MLP baselines.

Greydanus & Kobak, "Scaling down deep learning with MNIST-1D" (ICML 2024), README table:
logistic regression 32% and MLP 68% test accuracy, the same on the spatially shuffled
variant. The authors' protocol (notebooks/train.py, models.py): Adam, lr 1e-2, batch 100
taken in order without shuffling (``bix = step * 100 % 4000``), steps 0..6000 (6,001
updates), cross-entropy, seed 42, test accuracy every 250 steps; PyTorch's default
``nn.Linear`` initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
Models: linear 40 -> 10 (410 params); MLP 40 -> 100, ReLU, residual h + ReLU(W h + b)
100 -> 100, 100 -> 10 (15,210 params). The shuffled variant permutes the 40 positions
with ``np.random.seed(42); np.random.permutation(40)``.

Eight seeds (42..49) train as one population (``fnnet.train.fit_population`` with
``shuffle=False``: every 250 Adam steps are one ``jax.vmap``-ed ``lax.scan``); seed 42
is the headline. The test set is evaluated before the first step, after every 250
updates and after the last (6,001st) one; the final numbers are those of the authors'
last evaluation, after step 6000.

Reaches (seed 42; mean +- std over seeds 42..49): logistic 31.7% (31.5 +- 0.1),
shuffled 31.3% (31.5 +- 0.1); MLP 61.9% (64.3 +- 1.6), shuffled 63.8% (65.2 +- 1.1).
The paper's table: 32 / 32 and 68 / 68; the authors' notebook's own saved output with
this protocol 31.5 / 31.5 and 65.1 / 66.0; a PyTorch rerun on the same regenerated data
31.7 / 31.6 and 63.3 / 66.1. So logistic regression is within 1 point of the table and
the MLP's mean within 1 point of the notebook but 3-4 points under the table's 68% (the
table's MLP number is not reproduced by the published protocol in PyTorch either). The
MLP's 6,001 Adam steps amplify rounding: ``fit_population``'s step rounds differently
from the in-order loop used before 1 December 2026, which gave the same logistic numbers
(the same test predictions) and MLP 64.1% (65.1 +- 1.1), shuffled 63.8% (64.9 +- 1.4).
"""
from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import data, losses, metrics, nn, optim, train
from fnnet.train.in_order import seed_summary, torch_default_init
from fnnet.train.config import check_config, require

PAPER = {"linear": 32.0, "mlp": 68.0}


CPU_SECONDS = 47  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 42                  # seed of the headline run (the others: seed + 1, ...)
    learning_rate: float = 1e-2     # Adam learning rate
    batch_size: int = 100           # sequences per step, in order (a divisor of the 4,000)
    steps: int = 6000  # the loop runs steps 0..steps inclusive, as the authors' range(total_steps + 1)
    eval_every: int = 250           # steps between two test evaluations (steps is a multiple)
    hidden: int = 100               # width of the MLP's hidden layers
    num_seeds: int = 8  # seeds seed, seed + 1, ...: one vmapped program; seed is the headline run
    models: tuple[str, ...] = ("linear", "mlp")           # models to train: "linear", "mlp"
    variants: tuple[str, ...] = ("original", "shuffled")  # data: "original", "shuffled" (positions permuted)

    def __post_init__(self):
        check_config(self, positive=("learning_rate", "batch_size", "steps", "eval_every", "hidden", "num_seeds"),
                     choices={"models": ("linear", "mlp"), "variants": ("original", "shuffled")},
                     nonempty=("models", "variants"))
        require(self, "steps", self.steps % self.eval_every == 0, f"a multiple of eval_every ({self.eval_every})")
        require(self, "batch_size", 4000 % self.batch_size == 0, "a divisor of the 4,000 training sequences")


def torch_linear(features: int) -> nn.Module:
    """A dense layer initialised like PyTorch's nn.Linear: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return torch_default_init(nn.dense(features))


def make_model(name: str, hidden: int) -> nn.Module:
    if name == "linear":
        return torch_linear(10)
    if name == "mlp":
        return nn.serial(torch_linear(hidden), nn.relu, nn.residual(nn.serial(torch_linear(hidden), nn.relu)),
                         torch_linear(10))
    raise ValueError(f"mnist1d_baselines: unknown model {name!r}, expected 'linear' or 'mlp'")


def train_seeds(model: nn.Module, config: Config, x, y, x_test, y_test):
    """The authors' loop for ``num_seeds`` seeds as one population (``fnnet.train.fit_population``):
    batches in order (``shuffle=False``), steps 0..steps (``steps + 1`` updates), the test
    set before the first step, after every ``eval_every`` updates and at the end.

    Returns the parameter count of one model and the population's history.
    """
    seeds = jnp.asarray(config.seed + np.arange(config.num_seeds))
    spec = jax.ShapeDtypeStruct((1,) + tuple(x.shape[1:]), x.dtype)
    params, state = jax.jit(jax.vmap(lambda s: model.init(jax.random.key(s), spec)))(seeds)
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), 1))(seeds)  # unused: no shuffling or dropout
    fitted = train.fit_population(model, losses.softmax_cross_entropy_with_integer_labels,
                                  optim.adam(config.learning_rate), params, state, (x, y),
                                  keys=keys, batch_size=config.batch_size,
                                  steps=config.steps + 1, eval_every=config.eval_every, shuffle=False,
                                  dev_data=(x_test, y_test), metrics={"accuracy": metrics.accuracy},
                                  train_metrics=False, eval_at_start=True, progress=False)
    return nn.count_params(jax.tree.map(lambda a: a[0], params)), fitted.history


def run(config: Config) -> dict:
    result, history = {}, []
    for variant in config.variants:
        (x, y), (x_test, y_test) = data.load_mnist1d(shuffle_seq=(variant == "shuffled"))
        x, y, x_test, y_test = map(jnp.asarray, (x, y, x_test, y_test))
        for name in config.models:
            n_params, fitted = train_seeds(make_model(name, config.hidden), config, x, y, x_test, y_test)
            summary, history = seed_summary(fitted, f"{name}_{variant}", history)
            result.update(summary, **{f"{name}_{variant}_paper": PAPER[name], f"{name}_params": n_params})
    result["seed"], result["num_seeds"] = config.seed, config.num_seeds
    result["history"] = history
    return result


def plot(result: dict, out_dir) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    steps = [h["step"] for h in result["history"]]
    for key in result["history"][0]:
        if key.endswith("_test_accuracy") and "_mean_" not in key:
            tag = key[: -len("_test_accuracy")]
            name = tag.split("_")[0]
            color = "C0" if name == "linear" else "C1"
            style = "-" if tag.endswith("original") else "--"
            ax.plot(steps, [h[key] for h in result["history"]], style, color=color,
                    label=f"{tag}, seed {result.get('seed', '')}: {result[key]:.1f}% "
                          f"(mean of seeds {result[tag + '_mean_test_accuracy']:.1f})")
            ax.axhline(PAPER[name], color=color, linestyle=":", linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("MNIST-1D baselines (dotted: the paper's 32% and 68%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out_dir, "mnist1d_baselines.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
