"""random_search: hyperparameter random search on a log scale, all configurations in one program.

The course's recipe: sample the learning rate on a log scale, r ~ U[-4, 0] and
lr = 10^r, and the momentum through 1 - beta on a log scale, s ~ U[-3, -1] and
beta = 1 - 10^s (so beta in [0.9, 0.999], where the effect of beta is most sensitive
near 1). Each of the N configurations trains the same 64-100-10 ReLU MLP on the 8x8
digits (60/20/20 split, pixels / 16) with SGD + momentum, mini-batches of 64, its own
initialisation and shuffling seed, and is scored by dev accuracy.

"Caviar" vs "panda": all N configurations train as ONE population
(``fnnet.train.fit_population``, every epoch one ``jax.vmap``-ed ``lax.scan`` over the
sampled (lr, beta, seed): the rate and the momentum are arrays in each member's
optimizer state, ``searched_sgd``), against ``fnnet.train.fit`` called N times one
after another on the same key streams (``compile_epochs=True``, the program
``fit_population`` vmaps). Both give the same numbers (checked); the result reports the
best configuration, both wall times and the speedup, and plots dev accuracy over the
(lr, 1 - beta) plane. A configuration whose numbers become non-finite scores 0.

Reaches (default: 64 configurations, 10 epochs, 2 shared CPU cores; docs/experiments.md):
best dev accuracy 95.5% at lr 0.083, beta 0.921; slow configurations (lr < 1e-3) stay
near chance in 10 epochs and 2 diverge. Measured under a load of about 10 (other jobs on
the 2 cores), the population took 8.7 s and the 64 ``fit`` calls one after another 13.4 s
(speedup 1.5x, compile excluded); at low load the earlier hand-written version of both
ways ran 1.2-1.9 s and 1.07x apart: a 64-100-10 MLP already keeps two cores busy, so
batching the configurations saves dispatch (and ``fit``'s per-period work), not
arithmetic; the caviar strategy pays on an accelerator, where one small model leaves most
of the device idle. 53 of the 64 dev curves agree to 0.02 between the two ways; the others
are large-step runs whose float rounding (batched vs single matmuls) leads them apart.
"""
from __future__ import annotations

import dataclasses
import os
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from typing import Any, NamedTuple

from fnnet import data, losses, metrics, nn, optim, train
from fnnet.train.config import check_config, require


CPU_SECONDS = 46  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                  # seed of the split, the sampled configurations and their runs
    num_configs: int = 64          # configurations sampled and trained
    log10_lr_range: tuple[float, float] = (-4.0, 0.0)  # lr = 10^r with r ~ U[low, high]
    log10_one_minus_beta_range: tuple[float, float] = (-3.0, -1.0)  # beta = 1 - 10^s with s ~ U[low, high], high <= 0
    hidden: int = 100              # width of the hidden layer
    epochs: int = 10               # passes over the training set per configuration
    batch_size: int = 64           # digits per step (the last partial batch is dropped)
    dev_fraction: float = 0.2      # share of the digits for dev, in (0, 1)
    test_fraction: float = 0.2     # share of the digits kept out for test (dev + test < 1)
    compare_sequential: bool = True  # also train the configurations one after another and compare
    timing_repeats: int = 3        # timed repetitions of each way (the median is reported)

    def __post_init__(self):
        check_config(self, positive=("num_configs", "hidden", "epochs", "batch_size", "timing_repeats"),
                     ranges={"dev_fraction": "(0, 1)", "test_fraction": "(0, 1)"})
        require(self, "test_fraction", self.dev_fraction + self.test_fraction < 1,
                f"< {1 - self.dev_fraction:g} (dev_fraction + test_fraction < 1)")
        for field in ("log10_lr_range", "log10_one_minus_beta_range"):
            low, high = getattr(self, field)
            require(self, field, low <= high, "as (low, high) with low <= high")
        require(self, "log10_one_minus_beta_range", self.log10_one_minus_beta_range[1] <= 0,
                "with high <= 0 (so that beta = 1 - 10^s >= 0)")


def sample_configs(config: Config):
    """(lr, beta, seed) arrays of length num_configs, log-uniform in lr and in 1 - beta."""
    rng = np.random.default_rng(config.seed)
    r = rng.uniform(*config.log10_lr_range, size=config.num_configs)
    s = rng.uniform(*config.log10_one_minus_beta_range, size=config.num_configs)
    return 10.0 ** r, 1.0 - 10.0 ** s, config.seed * 100_003 + np.arange(config.num_configs)


class SearchedState(NamedTuple):
    learning_rate: jax.Array  # lr, a scalar per configuration
    momentum: jax.Array       # beta
    inner: Any                # the state of optim.sgd(lr, momentum=beta): its momentum buffer


def searched_sgd() -> optim.GradientTransformation:
    """``optim.sgd(lr, momentum=beta)`` with ``lr`` and ``beta`` read from the state, so
    that a population's members each carry their own (``m_t = g_t + beta m_{t-1}``,
    ``u_t = -lr m_t``). ``init`` leaves both 0: set them with :func:`searched_state`."""
    def init(params):
        zero = jnp.zeros((), jnp.float32)
        return SearchedState(zero, zero, optim.sgd(0.0, momentum=0.0).init(params))

    def update(grads, state, params=None):
        inner = optim.sgd(state.learning_rate, momentum=state.momentum)
        updates, new_inner = inner.update(grads, state.inner, params)
        return updates, state._replace(inner=new_inner)

    return optim.GradientTransformation(init, update)


SEARCHED_SGD = searched_sgd()  # one object, so that fit's compiled programs are reused


def searched_state(params, learning_rate, momentum) -> SearchedState:
    return SEARCHED_SGD.init(params)._replace(learning_rate=learning_rate, momentum=momentum)


def finite_accuracy(logits, labels):
    """Accuracy, or 0 where the logits are not all finite (a diverged configuration)."""
    return jnp.where(jnp.all(jnp.isfinite(logits)), metrics.accuracy(logits, labels), 0.0)


def run(config: Config) -> dict:
    key = jax.random.key(config.seed)
    x, y = data.load_digits()
    x = np.asarray(x, np.float32) / 16.0
    (x_train, y_train), (x_dev, y_dev), _ = data.train_dev_test_split(
        jax.random.fold_in(key, 0), x, y, config.dev_fraction, config.test_fraction, stratify=False)
    train_set = (jnp.asarray(x_train), jnp.asarray(y_train))
    dev_set = (jnp.asarray(x_dev), jnp.asarray(y_dev))
    model = nn.serial(nn.dense(config.hidden), nn.relu, nn.dense(10))
    lrs, betas, seeds = sample_configs(config)
    seeds_j = jnp.asarray(seeds, jnp.uint32)
    spec = jax.ShapeDtypeStruct((1, x_train.shape[1]), jnp.float32)
    params, state = jax.jit(jax.vmap(lambda s: model.init(jax.random.fold_in(jax.random.key(s), 0), spec)))(seeds_j)
    opt_state = jax.vmap(searched_state)(params, jnp.asarray(lrs, jnp.float32), jnp.asarray(betas, jnp.float32))
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), 1))(seeds_j)
    common = dict(batch_size=config.batch_size, epochs=config.epochs, drop_last=True, dev_data=dev_set,
                  metrics={"accuracy": finite_accuracy}, train_metrics=False, progress=False)
    loss_fn = losses.softmax_cross_entropy_with_integer_labels

    def run_caviar():  # all configurations as one population
        fitted = train.fit_population(model, loss_fn, SEARCHED_SGD, params, state, train_set, keys=keys,
                                      opt_state=opt_state, on_nonfinite="continue", **common)
        return np.array([h["dev_accuracy"] for h in fitted.history]).T

    one = [jax.tree.map(lambda a: a[i], (params, state, opt_state, keys)) for i in range(config.num_configs)]

    def run_panda():  # the same key streams and programs, one configuration after another
        curves = np.zeros((config.num_configs, config.epochs))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # fit's warning on a growing loss
            for i, (p, s, o, k) in enumerate(one):
                fitted = train.fit(model, loss_fn, SEARCHED_SGD, p, s, train_set, key=k, opt_state=o,
                                   compile_epochs=True, on_nonfinite="stop", **common)
                done = [h.get("dev_accuracy", 0.0) for h in fitted.history]
                curves[i, :len(done)] = done  # a diverged run scores 0 from there on
        return curves

    start = time.perf_counter()
    curves = run_caviar()  # also the warm-up run (compiles)
    first_calls = {"caviar": time.perf_counter() - start}
    result, times = {}, {"caviar": []}
    if config.compare_sequential:
        start = time.perf_counter()
        sequential = run_panda()  # warm-up
        first_calls["panda"] = time.perf_counter() - start
        times["panda"] = []
    for _ in range(config.timing_repeats):  # interleaved repetitions, medians
        for name, fn in (("caviar", run_caviar), ("panda", run_panda if config.compare_sequential else None)):
            if fn is not None:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    caviar_time = float(np.median(times["caviar"]))
    if config.compare_sequential:
        panda_time = float(np.median(times["panda"]))
        result.update({"sequential_seconds": panda_time,
                       "sequential_compile_seconds": first_calls["panda"] - panda_time,
                       "speedup": panda_time / caviar_time,
                       "max_abs_difference_vmap_vs_sequential": float(np.abs(sequential - curves).max()),
                       "configs_agreeing": int(np.sum(np.all(np.abs(sequential - curves) < 0.02, axis=1)))})

    final = curves[:, -1]
    best = int(np.argmax(final))
    configs = [{"learning_rate": float(lrs[i]), "momentum": float(betas[i]), "seed": int(seeds[i]),
                "dev_accuracy": float(final[i])} for i in range(config.num_configs)]
    history = [{"epoch": e + 1, "best_dev_accuracy": float(curves[best, e]),
                "median_dev_accuracy": float(np.median(curves[:, e]))} for e in range(config.epochs)]
    return {"best_learning_rate": float(lrs[best]), "best_momentum": float(betas[best]),
            "best_dev_accuracy": float(final[best]), "best_index": best,
            "vmapped_seconds": caviar_time, "vmapped_compile_seconds": first_calls["caviar"] - caviar_time,
            **result, "diverged": int(np.sum(final < 0.2)), "configs": configs, "history": history}


def plot(result: dict, out_dir) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lr = np.array([c["learning_rate"] for c in result["configs"]])
    one_minus_beta = 1 - np.array([c["momentum"] for c in result["configs"]])
    acc = np.array([c["dev_accuracy"] for c in result["configs"]])
    panels = 2 if "sequential_seconds" in result else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 4.6), squeeze=False,
                             gridspec_kw={"width_ratios": [1.6, 1][:panels]})
    ax = axes[0, 0]
    sc = ax.scatter(lr, one_minus_beta, c=acc, cmap="viridis", vmin=0, vmax=1, s=36, edgecolors="k",
                    linewidths=0.3)
    b = result["best_index"]
    ax.scatter(lr[b], one_minus_beta[b], marker="*", s=260, c="red", edgecolors="k",
               label=f"best: lr={lr[b]:.3g}, beta={1 - one_minus_beta[b]:.4f}, dev {100 * acc[b]:.1f}%")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate (10^r, r ~ U[-4, 0])")
    ax.set_ylabel("1 - beta (log-uniform)")
    ax.legend(fontsize=8, loc="lower left")
    fig.colorbar(sc, ax=ax, label="dev accuracy")
    ax.set_title(f"random search, {len(acc)} configurations")
    if panels == 2:
        ax = axes[0, 1]
        names = ["one after another", "vmapped (one program)"]
        ax.bar(names, [result["sequential_seconds"], result["vmapped_seconds"]], color=["C1", "C0"])
        ax.set_ylabel("training time (s, compile excluded)")
        ax.set_title(f"speedup {result['speedup']:.1f}x")
    fig.tight_layout()
    path = os.path.join(out_dir, "random_search.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
