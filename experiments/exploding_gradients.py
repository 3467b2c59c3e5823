"""exploding_gradients: a tanh RNN with large recurrent weights, with and without clipping.

The recurrent matrix starts as ``gain * Q`` with ``Q`` a random orthogonal matrix and
``gain = 1.5``; the largest singular value of the step Jacobian ``diag(1 - h^2) W_hh``
can then exceed 1, and the gradient through 20 steps can blow up (Pascanu, Mikolov &
Bengio, 2013, "On the difficulty of training recurrent neural networks"). The same
network, data and learning rate are trained on the adding problem (length 20) with
plain SGD, once as is and once with the gradient rescaled to global norm at most
``clip_norm`` (Pascanu et al.'s remedy, ``fnnet.optim.clip_by_global_norm``).

Shows (full run, 2,000 SGD steps with lr 0.05, 15 s): both runs start from a gradient
norm of 18.3; without clipping the gradient norm reaches 3.3e3 by step 20 and 9.4e18
before the loss turns NaN at step 64; with the norm clipped to 1 training is stable and
reaches test MSE 0.105 (predicting 1 always: 0.183).

The loop is the subject, so it is written here rather than run by ``fnnet.train.fit``:
it records the gradient norm of every step and keeps going through the overflow to show
the step at which the loss turns NaN.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import optim
from fnnet.data import sequences
from fnnet.train.config import check_config

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vanishing_gradients as vg  # noqa: E402  (the shared cell/forward helpers)


CPU_SECONDS = 15  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                # seed of the initialisation, the training batches and the test set
    length: int = 20             # time steps of the adding problem (>= 2)
    hidden: int = 32             # units of the tanh RNN
    recurrent_gain: float = 1.5  # the recurrent matrix starts as gain times a random orthogonal matrix
    batch_size: int = 50         # fresh sequences per step
    steps: int = 2000            # SGD steps of each run
    learning_rate: float = 0.05  # SGD learning rate, the same for both runs
    clip_norm: float = 1.0       # the clipped run's global-norm threshold
    test_size: int = 500         # test sequences
    record_every: int = 20       # steps between two points of the history

    def __post_init__(self):
        check_config(self, positive=("hidden", "recurrent_gain", "batch_size", "steps", "learning_rate",
                                     "clip_norm", "test_size", "record_every"),
                     ranges={"length": "[2, inf)"})


def init_params(config: Config, key):
    cfg = vg.Config(hidden=config.hidden, batch_size=config.batch_size)
    cell, params = vg.init_model("rnn", key, cfg)
    w_hh = params["cell"]["w_hh"]
    q = jax.random.orthogonal(jax.random.fold_in(key, 7), w_hh.shape[0])
    params["cell"]["w_hh"] = (config.recurrent_gain * q).astype(w_hh.dtype)
    return cell, params


def train(config: Config, clip: bool, x_test, y_test):
    key = jax.random.key(config.seed)
    cell, params = init_params(config, jax.random.fold_in(key, 0))
    sgd = optim.sgd(config.learning_rate)
    opt = optim.chain(optim.clip_by_global_norm(config.clip_norm), sgd) if clip else sgd

    def step(carry, i):
        params, opt_state = carry
        x, y = sequences.adding_problem(jax.random.fold_in(jax.random.fold_in(key, 1), i),
                                        config.batch_size, config.length)
        loss, grads = jax.value_and_grad(lambda p: vg.mse(vg.forward("rnn", cell, p, x), y))(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optim.apply_updates(params, updates), opt_state), (loss, optim.global_norm(grads))

    @jax.jit
    def run_all(params):
        (params, _), (loss, norm) = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(config.steps))
        return params, loss, norm, vg.mse(vg.forward("rnn", cell, params, x_test), y_test)

    params, loss, norm, test_mse = run_all(params)
    return np.asarray(loss), np.asarray(norm), float(test_mse)


def run(config: Config) -> dict:
    x_test, y_test = sequences.adding_problem(np.random.default_rng(config.seed + 1), config.test_size, config.length)
    x_test, y_test = jnp.asarray(x_test), jnp.asarray(y_test)
    out, history = {}, []
    curves = {}
    for clip in (False, True):
        name = "clipped" if clip else "unclipped"
        loss, norm, test_mse = train(config, clip, x_test, y_test)
        finite = np.isfinite(loss)
        curves[name] = (loss, norm)
        bad = np.flatnonzero(~finite | ~np.isfinite(norm))
        stop = int(bad[0]) if len(bad) else len(loss)          # statistics over the finite prefix
        ok_norm, ok_loss = norm[:stop], loss[:stop]
        out[name] = {"first_nonfinite_step": int(bad[0]) if len(bad) else None,
                     "diverged": bool(len(bad) or not np.isfinite(test_mse)),
                     "test_mse": test_mse if np.isfinite(test_mse) else None,
                     "max_grad_norm_before_divergence": float(ok_norm.max()),
                     "median_grad_norm_before_divergence": float(np.median(ok_norm)),
                     "max_loss_before_divergence": float(ok_loss.max()),
                     "final_train_loss_mean_last_100": (float(np.mean(loss[-100:])) if finite[-100:].all()
                                                        else None)}
    for i in range(0, config.steps, config.record_every):
        row = {"step": i}
        for name, (loss, norm) in curves.items():
            row[f"{name}_loss"] = float(loss[i]) if np.isfinite(loss[i]) else None
            row[f"{name}_grad_norm"] = float(norm[i]) if np.isfinite(norm[i]) else None
        history.append(row)
    out["baseline_mse"] = float(np.mean((np.asarray(y_test) - 1.0) ** 2))
    out["history"] = history
    return out


def plot(result: dict, out_dir: str) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = [h["step"] for h in result["history"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in ("unclipped", "clipped"):
        nan = float("nan")
        axes[0].semilogy(steps, [h[f"{name}_loss"] if h[f"{name}_loss"] is not None else nan
                                 for h in result["history"]], label=name)
        axes[1].semilogy(steps, [h[f"{name}_grad_norm"] if h[f"{name}_grad_norm"] is not None else nan
                                 for h in result["history"]], label=name)
    axes[0].axhline(result["baseline_mse"], color="k", ls="--", label="predict 1")
    axes[0].set_title("training MSE (adding problem)")
    axes[1].set_title("global gradient norm before clipping")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend()
    path = os.path.join(out_dir, "exploding_gradients.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return [path]
