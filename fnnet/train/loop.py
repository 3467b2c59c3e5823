"""The fit loop: epochs of mini-batch steps, per-epoch dev metrics, early stopping,
checkpoints and resumption, and a stop on a non-finite loss.

Randomness is a pure function of ``key``: epoch ``e`` shuffles with
``fold_in(key, 2 * e)`` and its step ``i`` gets ``fold_in(fold_in(key, 2 * e + 1), i)``,
so a run resumed from a checkpoint ends bit-identical to one that never stopped.

Imports: jax, numpy, fnnet.data, fnnet.nn, fnnet.train.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.data import batches
from fnnet.nn.module import Module
from fnnet.train.checkpoint import load_checkpoint, save_checkpoint
from fnnet.train.step import make_eval_step, make_train_step

__all__ = ["EarlyStopping", "FitResult", "fit", "evaluate"]


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    ``monitor`` names a history entry, e.g. ``"dev_loss"`` or ``"dev_accuracy"``;
    ``mode`` is ``"min"`` or ``"max"``; an improvement must beat the best by more
    than ``min_delta``. With ``restore_best`` the returned params and state are those
    of the best epoch.
    """
    monitor: str = "dev_loss"
    mode: str = "min"
    patience: int = 5
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self):
        if self.mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: expected mode 'min' or 'max', got {self.mode!r}")
        if self.patience < 0:
            raise ValueError(f"EarlyStopping: expected patience >= 0, got {self.patience}")

    def improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns. ``history`` has one dict per epoch:
    ``epoch``, ``train_loss`` and ``dev_<metric>`` entries."""
    params: Any
    state: Any
    opt_state: Any
    history: list
    best_epoch: int | None = None
    stopped_early: bool = False


def evaluate(evaluate_step: Callable, params, state, x, y, batch_size: int = 1024) -> dict:
    """Average the metrics of ``evaluate_step`` over ``(x, y)`` in batches, weighting each
    batch by its size, so the result equals a single pass over the whole set."""
    n = len(x)
    totals: dict[str, float] = {}
    for start in range(0, n, batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        for name, value in evaluate_step(params, state, xb, yb).items():
            totals[name] = totals.get(name, 0.0) + float(value) * len(xb)
    return {name: total / n for name, total in totals.items()}


def fit(model: Module, loss_fn: Callable, optimizer, params, state, train_data, *,
        key, epochs: int, batch_size: int, dev_data=None, shuffle: bool = True,
        drop_last: bool = False, metrics: Mapping[str, Callable] | None = None,
        penalty: Callable | None = None, early_stopping: EarlyStopping | None = None,
        checkpoint: str | os.PathLike | None = None, resume: bool = False,
        opt_state=None, progress: bool = False, log: Callable[[dict], None] | None = None) -> FitResult:
    """Train ``model`` on ``train_data = (x, y)`` for ``epochs`` epochs of mini-batches.

    Args:
      model, loss_fn, optimizer, penalty: as in :func:`make_train_step`.
      params, state: the initial variables (from ``model.init``).
      key: a ``jax.random.key``; all shuffling and dropout derive from it.
      dev_data: ``(x, y)`` evaluated after every epoch with ``loss_fn`` and ``metrics``
        (history entries ``dev_loss``, ``dev_<name>``); also the training-set metrics
        are reported as ``train_<name>`` when ``metrics`` is given.
      early_stopping: an :class:`EarlyStopping` over a history entry.
      checkpoint: a path; after every finished epoch the params, state, optimizer
        state, key and epoch are written there atomically. With ``resume=True`` and an
        existing file, training continues from it (``history`` then holds the
        epochs run after the resume).
      opt_state: initial optimizer state (default ``optimizer.init(params)``).
      progress: show a progress bar (tqdm).
      log: called with each epoch's history entry.

    Raises:
      FloatingPointError: when the training loss becomes nan or inf; the message names
        the step, and the checkpoint file keeps the last good epoch.
    """
    x_train, y_train = (jnp.asarray(a) for a in train_data)
    if len(x_train) != len(y_train):
        raise ValueError(f"fit: train_data has {len(x_train)} inputs but {len(y_train)} targets")
    if batch_size < 1:
        raise ValueError(f"fit: expected batch_size >= 1, got {batch_size}")
    if drop_last and len(x_train) < batch_size:
        raise ValueError(f"fit: drop_last with batch_size {batch_size} > {len(x_train)} examples leaves no batch")
    step_fn = make_train_step(model, loss_fn, optimizer, penalty=penalty)
    eval_fn = make_eval_step(model, loss_fn, metrics)
    opt_state = optimizer.init(params) if opt_state is None else opt_state

    history: list[dict] = []
    start_epoch, best, best_epoch, best_vars, waited = 0, None, None, None, 0
    if checkpoint is not None and resume and os.path.exists(checkpoint):
        saved = load_checkpoint(checkpoint, _ckpt_tree(params, state, opt_state, key, 0))
        params, state, opt_state = saved["params"], saved["state"], saved["opt_state"]
        start_epoch = int(saved["epoch"])

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, initial=start_epoch, desc="fit", unit="epoch")
    stopped_early = False
    for epoch in range(start_epoch, epochs):
        shuffle_key = jax.random.fold_in(key, 2 * epoch) if shuffle else None
        step_key = jax.random.fold_in(key, 2 * epoch + 1)
        losses = []
        for i, (xb, yb) in enumerate(batches(x_train, y_train, batch_size, key=shuffle_key,
                                              shuffle=shuffle, drop_last=drop_last)):
            params, state, opt_state, loss = step_fn(params, state, opt_state, xb, yb,
                                                     jax.random.fold_in(step_key, i))
            losses.append(loss)
        losses = np.asarray(jnp.stack(losses))
        if not np.all(np.isfinite(losses)):
            bad = int(np.argmax(~np.isfinite(losses)))
            global_step = epoch * len(losses) + bad
            where = f"; the checkpoint {checkpoint} keeps epoch {epoch}" if checkpoint else ""
            raise FloatingPointError(f"fit: the training loss became {losses[bad]} at step {global_step} "
                                     f"(epoch {epoch + 1}, batch {bad}){where}")
        entry = {"epoch": epoch + 1, "train_loss": float(np.mean(losses))}
        if dev_data is not None:
            dev = evaluate(eval_fn, params, state, jnp.asarray(dev_data[0]), jnp.asarray(dev_data[1]))
            entry.update({f"dev_{k}": v for k, v in dev.items()})
        if metrics:
            train_metrics = evaluate(eval_fn, params, state, x_train, y_train)
            entry.update({f"train_{k}": v for k, v in train_metrics.items() if k != "loss"})
        history.append(entry)
        if log is not None:
            log(entry)
        if checkpoint is not None:
            save_checkpoint(checkpoint, _ckpt_tree(params, state, opt_state, key, epoch + 1))
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in entry.items() if k != "epoch"})
        if early_stopping is not None:
            if early_stopping.monitor not in entry:
                raise KeyError(f"EarlyStopping: monitored {early_stopping.monitor!r} is not in the "
                               f"history entry {sorted(entry)}")
            value = entry[early_stopping.monitor]
            if early_stopping.improved(value, best):
                best, best_epoch, best_vars, waited = value, epoch + 1, (params, state), 0
            else:
                waited += 1
                if waited > early_stopping.patience:
                    stopped_early = True
                    break
    if bar is not None:
        bar.close()
    if early_stopping is not None and early_stopping.restore_best and best_vars is not None:
        params, state = best_vars
    return FitResult(params, state, opt_state, history, best_epoch, stopped_early)


def _ckpt_tree(params, state, opt_state, key, epoch: int) -> dict:
    return {"params": params, "state": state, "opt_state": opt_state, "key": key,
            "epoch": np.asarray(epoch, np.int64)}
