"""optimizer_paths: eight optimizers on the ill-conditioned bowl C(w) = (w1 - 2)^2 + 9 (w2 - 3)^2.

The Hessian is diag(2, 18) (condition number 9), the minimum w* = (2, 3). From one
start, w0 = (-4, -1), full-batch runs of GD, momentum, Nesterov, RMSprop, Adam, AdaMax,
Adagrad and Adadelta (fnnet.optim, optax's defaults except the learning rate; momentum
0.9). For a fair race each optimizer gets its best constant learning rate from a log
grid (every rate of the grid runs in one vmapped, compiled program per optimizer); the
result is the number of steps to reach ||w - w*|| < 1e-3, the paths over the contours
and the steps-vs-learning-rate curves.

What it shows (default config, float32; steps until the iterate stays within 1e-3):
- GD's best rate is 2 / (2 + 18) = 0.1, where both error components shrink by 0.8 per
  step, so ||w_t - w*|| = 0.8^t ||w_0 - w*||: 40 steps, the closed form (the test checks it).
- momentum, tuned jointly over beta in {0.25, 0.5, 0.75, 0.9}: 20 steps at beta = 0.25 and
  lr 0.11, the textbook optimum for heavy ball (beta = ((sqrt k - 1)/(sqrt k + 1))^2 = 0.25,
  lr = 4 / (sqrt 2 + sqrt 18)^2 = 0.125); Nesterov 19 steps (beta 0.5). The course's
  beta = 0.9 is too much momentum for this small bowl: 157 steps for momentum, 67 for Nesterov.
- per-coordinate scaling undoes the conditioning: RMSprop 9 steps (lr 1.12), Adagrad 6
  (lr 5.0) go almost straight to w*; Adam (159 steps, lr 0.40) and AdaMax (146, lr 2.5)
  spiral in, their momentum b1 = 0.9 overshooting; Adadelta creeps (280 steps at lr 10,
  the top of the grid; its steps start at sqrt(eps) = 1e-3).

The loop is the subject, so it is written here rather than run by ``fnnet.train.fit``:
it records every iterate of each optimizer on a 2-D surface that is a formula, not a
data set.
"""
from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import optim
from fnnet.train.config import check_config, require

W_STAR = (2.0, 3.0)


CPU_SECONDS = 4  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it
OPTIMIZERS = ("gd", "momentum", "nesterov", "rmsprop", "adam", "adamax", "adagrad", "adadelta")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0  # the experiment is deterministic; kept for the run protocol
    start: tuple[float, float] = (-4.0, -1.0)  # the starting point w0
    tolerance: float = 1e-3  # converged once ||w - w*|| stays below this
    max_steps: int = 2000  # steps of every run
    momentum_values: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)  # tuned jointly with the rate
    lr_log10_min: float = -3.0  # log10 of the smallest learning rate of the grid
    lr_log10_max: float = 1.0  # log10 of the largest learning rate of the grid (>= lr_log10_min)
    lr_grid_points: int = 81  # step 0.05 in log10, so 0.1 is on the grid
    optimizers: tuple[str, ...] = OPTIMIZERS  # of gd, momentum, nesterov, rmsprop, adam, adamax, adagrad, adadelta

    def __post_init__(self):
        check_config(self, positive=("tolerance", "max_steps", "lr_grid_points"),
                     ranges={"momentum_values": "[0, 1)"}, choices={"optimizers": OPTIMIZERS},
                     nonempty=("momentum_values", "optimizers"))
        require(self, "lr_log10_max", self.lr_log10_max >= self.lr_log10_min,
                f">= lr_log10_min ({self.lr_log10_min})")


MOMENTUM = ("momentum", "nesterov")


def make_optimizer(name: str, lr, beta=None):
    """The optimizer ``name`` with learning rate ``lr`` and momentum ``beta`` (floats or traced scalars)."""
    if name == "gd":
        return optim.sgd(lr)
    if name == "momentum":
        return optim.sgd(lr, momentum=beta)
    if name == "nesterov":
        return optim.sgd(lr, momentum=beta, nesterov=True)
    if name in ("rmsprop", "adam", "adamax", "adagrad", "adadelta"):
        return getattr(optim, name)(lr)
    raise ValueError(f"optimizer_paths: unknown optimizer {name!r}")


def bowl(w):
    """C(w) = (w1 - 2)^2 + 9 (w2 - 3)^2."""
    return (w[0] - W_STAR[0]) ** 2 + 9.0 * (w[1] - W_STAR[1]) ** 2


def paths_for_rates(name: str, rates: jnp.ndarray, betas: jnp.ndarray, config: Config) -> jnp.ndarray:
    """(len(rates), max_steps + 1, 2): the iterates w_0..w_T for every (rate, momentum) pair,
    all in one compiled program."""
    w0 = jnp.asarray(config.start, jnp.float32)

    def one_path(lr, beta):
        opt = make_optimizer(name, lr, beta)

        def step(carry, _):
            w, s = carry
            u, s = opt.update(jax.grad(bowl)(w), s, w)
            w = optim.apply_updates(w, u)
            return (w, s), w

        _, ws = jax.lax.scan(step, (w0, opt.init(w0)), None, length=config.max_steps)
        return jnp.concatenate([w0[None], ws])

    return jax.jit(jax.vmap(one_path))(rates, betas)


def steps_to_reach(paths: np.ndarray, tolerance: float) -> np.ndarray:
    """Per path, the first t from which ||w_s - w*|| < tolerance for every s >= t
    (to the end of the run), or -1 if the run ends outside."""
    dist = np.linalg.norm(paths - np.asarray(W_STAR), axis=-1)
    outside = ~(dist < tolerance)  # NaN (divergence) counts as outside
    last_outside = outside.shape[-1] - 1 - np.argmax(outside[..., ::-1], axis=-1)
    return np.where(outside[..., -1], -1, np.where(outside.any(axis=-1), last_outside + 1, 0))


def run(config: Config) -> dict:
    rates = np.round(10.0 ** np.linspace(config.lr_log10_min, config.lr_log10_max, config.lr_grid_points), 10)
    results, curves = {}, {}
    for name in config.optimizers:
        betas = config.momentum_values if name in MOMENTUM else (0.0,)
        grid_lr, grid_beta = (a.ravel() for a in np.meshgrid(rates, betas))  # beta-major
        paths = np.asarray(paths_for_rates(name, jnp.asarray(grid_lr, jnp.float32),
                                           jnp.asarray(grid_beta, jnp.float32), config))
        steps = steps_to_reach(paths, config.tolerance)
        reached = steps >= 0
        best = int(np.argmin(np.where(reached, steps, np.iinfo(np.int64).max))) if reached.any() else None
        path = paths[best] if best is not None else paths[len(rates) // 2]
        end = int(steps[best]) + 1 if best is not None else config.max_steps + 1
        row = best // len(rates) if best is not None else len(betas) - 1
        results[name] = {
            "steps": int(steps[best]) if best is not None else None,
            "best_learning_rate": float(grid_lr[best]) if best is not None else None,
            "best_momentum": float(grid_beta[best]) if best is not None and name in MOMENTUM else None,
            "final_distance": float(np.linalg.norm(path[-1] - np.asarray(W_STAR))),
            "path": path[:end].tolist(),
            "steps_by_learning_rate": [int(v) if v >= 0 else None
                                       for v in steps[row * len(rates):(row + 1) * len(rates)]],
        }
        if name in MOMENTUM:
            by_beta = {}
            for i, beta in enumerate(betas):
                s = steps[i * len(rates):(i + 1) * len(rates)]
                by_beta[str(beta)] = int(s[s >= 0].min()) if (s >= 0).any() else None
            results[name]["best_steps_by_momentum"] = by_beta
        curves[name] = np.linalg.norm(path - np.asarray(W_STAR), axis=-1)
    longest = max([r["steps"] or 0 for r in results.values()] + [1])
    history = [{"step": t, **{f"{n}_distance": float(curves[n][t]) for n in config.optimizers}}
               for t in range(min(longest, config.max_steps) + 1)]
    summary = {f"{n}_steps": results[n]["steps"] for n in config.optimizers}
    summary.update({f"{n}_learning_rate": results[n]["best_learning_rate"] for n in config.optimizers})
    summary.update({f"{n}_momentum": results[n]["best_momentum"] for n in config.optimizers if n in MOMENTUM})
    d0 = float(np.linalg.norm(np.asarray(config.start) - np.asarray(W_STAR)))
    return {**summary, "optimizers": results, "learning_rates": rates.tolist(),
            "gd_steps_closed_form": int(np.ceil(np.log(d0 / config.tolerance) / np.log(1 / 0.8))),
            "history": history}


def plot(result: dict, out_dir) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["optimizers"])
    points = np.concatenate([np.asarray(result["optimizers"][n]["path"]) for n in names])
    points = points[np.all(np.isfinite(points), axis=1)]
    lo = np.maximum(np.minimum(points.min(axis=0), W_STAR), np.asarray(W_STAR) - 12) - 0.5
    hi = np.minimum(np.maximum(points.max(axis=0), W_STAR), np.asarray(W_STAR) + 12) + 0.5
    g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    cost = (g1 - W_STAR[0]) ** 2 + 9 * (g2 - W_STAR[1]) ** 2
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        r = result["optimizers"][name]
        path = np.asarray(r["path"])
        ax.contour(g1, g2, cost, levels=np.geomspace(0.05, cost.max(), 16), cmap="Greys", linewidths=0.6)
        ax.plot(path[:, 0], path[:, 1], ".-", color="C3", markersize=2.5, linewidth=0.8)
        ax.plot(*W_STAR, "k*", markersize=9)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        lr, beta = r["best_learning_rate"], r["best_momentum"]
        label = f"lr={lr:g}" + (f", beta={beta:g}" if beta is not None else "")
        ax.set_title(f"{name}: {label}, {r['steps']} steps" if lr is not None else f"{name}: not reached",
                     fontsize=10)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("C(w) = (w1-2)^2 + 9 (w2-3)^2: paths to ||w - w*|| < 1e-3, best learning rate each")
    fig.tight_layout()
    paths_png = os.path.join(out_dir, "optimizer_paths.png")
    fig.savefig(paths_png, dpi=110)
    plt.close(fig)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for name in names:
        ax1.semilogy([h[f"{name}_distance"] for h in result["history"]], label=name)
        steps = [np.nan if s is None else s for s in result["optimizers"][name]["steps_by_learning_rate"]]
        ax2.loglog(result["learning_rates"], steps, ".-", markersize=3, label=name)
    ax1.axhline(1e-3, color="k", linestyle=":")
    ax1.set_xlabel("step")
    ax1.set_ylabel("||w - w*||")
    ax1.legend(fontsize=8)
    ax2.set_xlabel("learning rate")
    ax2.set_ylabel("steps to ||w - w*|| < 1e-3")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    curves_png = os.path.join(out_dir, "optimizer_distances.png")
    fig.savefig(curves_png, dpi=110)
    plt.close(fig)
    return [paths_png, curves_png]
