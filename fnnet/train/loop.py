"""The fit loop: epochs of mini-batch steps, per-epoch dev metrics, early stopping,
checkpoints and exact resumption, and a stop on non-finite numbers.

Randomness is a pure function of ``key``: epoch ``e`` shuffles with
``fold_in(key, 2 * e)`` and its step ``i`` gets ``fold_in(fold_in(key, 2 * e + 1), i)``.
The data order and every dropout mask of epoch ``e`` therefore depend on ``key`` and
``e`` alone, and the position in the key stream is the epoch number.

Resumption. With ``checkpoint=path``, after every finished epoch ``fit`` writes (one
atomic ``.npz``, :mod:`fnnet.train.checkpoint`) all it needs to go on: params, state,
optimizer state, the key's data, the epoch, the early-stopping state (best value,
best epoch, best params and state, epochs without improvement, whether it stopped) and
the history so far, plus a description of the run (data shapes and dtypes,
batch size, shuffling, metrics, early stopping, tree structures, key implementation).
Checkpoints are per epoch: a run interrupted anywhere, by an exception or SIGKILL,
mid-epoch or mid-write, and restarted with ``resume=True`` starts again from the last
finished epoch and ends bit-identical (params, state, optimizer state, history, best
epoch) to the run that never stopped. Resuming with another model, optimizer, key,
data shape or setting raises a ``ValueError`` naming the difference, before any
compute. What cannot be checked (the loss function, the penalty's formula, the data's
values) is the caller's to keep.

Non-finite numbers. After each epoch the losses and every float leaf of params, state
and optimizer state are checked; a non-finite one raises ``FloatingPointError`` and
nothing of that epoch is written, so the file keeps the last finite epoch. The epoch is
then replayed step by step to name the first step whose loss or update went bad.

Imports: jax, numpy, fnnet.data, fnnet.nn, fnnet.train.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.data import batches
from fnnet.nn.module import Module
from fnnet.train.checkpoint import (CheckpointError, _entries, _flatten_to_arrays, _read_arrays,
                                    _stale_temporary_files, _subtree_entries, _unflatten_like,
                                    _write_arrays)
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


@dataclasses.dataclass
class _Progress:
    """Everything the loop carries from one epoch to the next (and to a checkpoint)."""
    params: Any
    state: Any
    opt_state: Any
    epoch: int = 0
    history: list = dataclasses.field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    best_vars: tuple | None = None
    waited: int = 0
    stopped: bool = False


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
      checkpoint: a path; after every finished epoch everything needed to resume
        (see the module docstring) is written there atomically, then ``log`` is called.
      resume: with ``checkpoint`` and an existing file, continue from it: the result
        (params, state, opt_state, the whole ``history``, ``best_epoch``) is
        bit-identical to a run that never stopped. ``epochs`` may be larger than the
        checkpoint's epoch (train on) but not smaller; everything else must match.
      opt_state: initial optimizer state (default ``optimizer.init(params)``).
      progress: show a progress bar (tqdm).
      log: called with each new epoch's history entry.

    Raises:
      ValueError: bad arguments; on resume, a checkpoint written for another model,
        optimizer, key, data shape or setting (the message names the difference), or a
        damaged file (:class:`~fnnet.train.checkpoint.CheckpointError`).
      FloatingPointError: when the training loss or a parameter or optimizer-state
        entry becomes nan or inf; the message names the step and which epoch the
        checkpoint file holds (the last one whose numbers were all finite).
    """
    x_train, y_train = (jnp.asarray(a) for a in train_data)
    if len(x_train) != len(y_train):
        raise ValueError(f"fit: train_data has {len(x_train)} inputs but {len(y_train)} targets")
    if batch_size < 1:
        raise ValueError(f"fit: expected batch_size >= 1, got {batch_size}")
    if drop_last and len(x_train) < batch_size:
        raise ValueError(f"fit: drop_last with batch_size {batch_size} > {len(x_train)} examples leaves no batch")
    dev = None if dev_data is None else tuple(jnp.asarray(a) for a in dev_data)
    if early_stopping is not None:
        expected = {"train_loss", *(f"train_{name}" for name in metrics or {})}
        if dev is not None:
            expected |= {"dev_loss", *(f"dev_{name}" for name in metrics or {})}
        if early_stopping.monitor not in expected:
            raise KeyError(f"EarlyStopping: monitored {early_stopping.monitor!r} is not in the "
                           f"history entry {sorted(expected | {'epoch'})}")
    step_fn = make_train_step(model, loss_fn, optimizer, penalty=penalty)
    eval_fn = make_eval_step(model, loss_fn, metrics)
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    steps_per_epoch = len(x_train) // batch_size if drop_last else math.ceil(len(x_train) / batch_size)

    def epoch_steps(epoch, params, state, opt_state):
        """Yield ``(batch, params, state, opt_state, loss)`` after each step of ``epoch``."""
        shuffle_key = jax.random.fold_in(key, 2 * epoch) if shuffle else None
        step_key = jax.random.fold_in(key, 2 * epoch + 1)
        for i, (xb, yb) in enumerate(batches(x_train, y_train, batch_size, key=shuffle_key,
                                              shuffle=shuffle, drop_last=drop_last)):
            params, state, opt_state, loss = step_fn(params, state, opt_state, xb, yb,
                                                     jax.random.fold_in(step_key, i))
            yield i, params, state, opt_state, loss

    run = _Progress(params, state, opt_state)
    settings = _settings(run, key, x_train, y_train, dev, batch_size, shuffle, drop_last,
                         metrics, penalty, early_stopping)
    on_disk = None  # the epoch the checkpoint file holds, once this call knows it
    if checkpoint is not None and resume:
        for stale in _stale_temporary_files(checkpoint):
            os.remove(stale)
        if os.path.exists(checkpoint):
            run = _load_progress(os.fspath(checkpoint), run, key, settings, epochs, early_stopping)
            on_disk = run.epoch

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, initial=run.epoch, desc="fit", unit="epoch")
    try:
        for epoch in range(run.epoch, epochs):
            if run.stopped:
                break
            start = (run.params, run.state, run.opt_state)
            losses = []
            for _, params, state, opt_state, loss in epoch_steps(epoch, *start):
                losses.append(loss)
            losses = np.asarray(jnp.stack(losses))
            if not (np.all(np.isfinite(losses)) and bool(np.all(_finite_flags((params, state, opt_state))))):
                where = ""
                if checkpoint is not None:
                    where = (f"; the checkpoint {checkpoint} holds epoch {on_disk}, the last with finite numbers"
                             if on_disk is not None else f"; this call wrote no checkpoint to {checkpoint}")
                raise FloatingPointError(_nonfinite_message(epoch_steps(epoch, *start), losses, epoch,
                                                            steps_per_epoch) + where)
            entry = {"epoch": epoch + 1, "train_loss": float(np.mean(losses))}
            if dev is not None:
                entry.update({f"dev_{k}": v for k, v in evaluate(eval_fn, params, state, *dev).items()})
            if metrics:
                train_metrics = evaluate(eval_fn, params, state, x_train, y_train)
                entry.update({f"train_{k}": v for k, v in train_metrics.items() if k != "loss"})
            run.params, run.state, run.opt_state, run.epoch = params, state, opt_state, epoch + 1
            run.history.append(entry)
            if early_stopping is not None:
                if early_stopping.monitor not in entry:
                    raise KeyError(f"EarlyStopping: monitored {early_stopping.monitor!r} is not in the "
                                   f"history entry {sorted(entry)}")
                value = entry[early_stopping.monitor]
                if early_stopping.improved(value, run.best):
                    run.best, run.best_epoch, run.best_vars, run.waited = value, epoch + 1, (params, state), 0
                else:
                    run.waited += 1
                    run.stopped = run.waited > early_stopping.patience
            if checkpoint is not None:
                _write_arrays(checkpoint, _flatten_to_arrays(_progress_tree(run, key, settings, early_stopping)))
                on_disk = run.epoch
            if log is not None:
                log(entry)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in entry.items() if k != "epoch"})
    finally:
        if bar is not None:
            bar.close()
    params, state = run.params, run.state
    if early_stopping is not None and early_stopping.restore_best and run.best_vars is not None:
        params, state = run.best_vars
    return FitResult(params, state, run.opt_state, run.history, run.best_epoch, run.stopped)


@jax.jit
def _finite_flags(tree):
    """One bool per leaf of ``tree``: every entry finite (True for integer leaves)."""
    leaves = jax.tree.leaves(tree)
    flags = [jnp.all(jnp.isfinite(x)) if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.asarray(True)
             for x in leaves]
    return jnp.stack(flags) if flags else jnp.ones((0,), bool)


def _nonfinite_message(steps, losses, epoch: int, steps_per_epoch: int) -> str:
    """Name the first step of ``epoch`` whose loss, or whose update of params, state or
    optimizer state, is not finite: replay the epoch (``steps``) and check every step."""
    names = ["params", "state", "opt_state"]
    for i, params, state, opt_state, loss in steps:
        at = f"step {epoch * steps_per_epoch + i} (epoch {epoch + 1}, batch {i})"
        if not np.isfinite(float(loss)):
            return f"fit: the training loss became {float(loss)} at {at}"
        flags = np.asarray(_finite_flags((params, state, opt_state)))
        if not flags.all():
            flat = jax.tree_util.tree_flatten_with_path((params, state, opt_state))[0]
            path, leaf = flat[int(np.argmin(flags))]
            what = "nan" if np.isnan(np.asarray(leaf)).any() else "inf"
            return (f"fit: the update of {at} made {names[path[0].idx]}{jax.tree_util.keystr(path[1:])} "
                    f"{what} (the step's loss was finite, {float(loss):.6g})")
    bad = int(np.argmax(~np.isfinite(losses))) if not np.all(np.isfinite(losses)) else len(losses) - 1
    return (f"fit: non-finite numbers in epoch {epoch + 1} (first seen at step "
            f"{epoch * steps_per_epoch + bad}; a replay of the epoch did not reproduce them)")


def _spec(a) -> str:
    return f"{np.dtype(a.dtype).name}{list(np.shape(a))}"


def _key_data(key) -> np.ndarray:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(key))
    return np.asarray(key)


def _settings(run: _Progress, key, x, y, dev, batch_size, shuffle, drop_last, metrics, penalty,
              early_stopping) -> dict[str, str]:
    """What a resumed run must share with the one that wrote the checkpoint, as text."""
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    return {
        "train_data": f"x {_spec(x)}, y {_spec(y)}",
        "dev_data": "none" if dev is None else f"x {_spec(dev[0])}, y {_spec(dev[1])}",
        "batch_size": str(batch_size), "shuffle": str(bool(shuffle)), "drop_last": str(bool(drop_last)),
        "metrics": str(sorted(metrics or {})),
        "penalty": "none" if penalty is None else "a penalty",
        "early_stopping": repr(early_stopping),
        "key_impl": str(jax.random.key_impl(key)) if typed else f"raw key data {_spec(key)}",
        "params_tree": str(jax.tree.structure(run.params)),
        "state_tree": str(jax.tree.structure(run.state)),
        "opt_state_tree": str(jax.tree.structure(run.opt_state)),
    }


def _progress_tree(run: _Progress, key, settings: dict, early_stopping) -> dict:
    names = [k for k in run.history[0] if k != "epoch"] if run.history else []
    tree = {
        "params": run.params, "state": run.state, "opt_state": run.opt_state,
        "key": _key_data(key),
        "epoch": np.int64(run.epoch),
        "history": {"epoch": np.asarray([h["epoch"] for h in run.history], np.int64),
                    "names": np.asarray(names, np.str_).reshape(len(names)),
                    "values": np.asarray([[h[k] for k in names] for h in run.history],
                                         np.float64).reshape(len(run.history), len(names))},
        "early_stopping": {"best_value": np.float64(np.nan if run.best is None else run.best),
                           "best_epoch": np.int64(run.best_epoch or 0),
                           "waited": np.int64(run.waited), "stopped": np.bool_(run.stopped)},
        "settings": {k: np.asarray(v, np.str_) for k, v in settings.items()},
    }
    if early_stopping is not None and early_stopping.restore_best and run.best_vars is not None:
        tree["best"] = {"params": run.best_vars[0], "state": run.best_vars[1]}
    return tree


def _excerpt(a: str, b: str, width: int = 50) -> tuple[str, str]:
    """``a`` and ``b`` cut to ``width`` characters either side of their first difference."""
    i = next((j for j, (p, q) in enumerate(zip(a, b)) if p != q), min(len(a), len(b)))
    cut = lambda s: ("..." if i > width else "") + s[max(0, i - width):i + width] + ("..." if len(s) > i + width else "")
    return cut(a), cut(b)


def _load_progress(file: str, fresh: _Progress, key, settings: dict, epochs: int,
                   early_stopping) -> _Progress:
    """Read and check a checkpoint written by :func:`fit`; raise naming any difference."""
    entries = _entries(_read_arrays(file, "fit"), file, "fit")
    by_path = {p: a for p, _, a in entries}

    def entry(path):
        if path not in by_path:
            raise CheckpointError(f"fit: checkpoint {file} lacks {path}: it was not written by fit "
                                  "(or by an older version of it)")
        return by_path[path]

    def check(name):
        saved, now = str(entry(f"['settings']['{name}']")), settings[name]
        if saved != now:
            if name.endswith("_tree"):
                saved, now = _excerpt(saved, now)
            raise ValueError(f"fit: checkpoint {file} was written with {name} {saved} but fit was given {now}")

    for name in settings:
        if not name.endswith("_tree"):
            check(name)
    saved_key, given_key = entry("['key']"), _key_data(key)
    if saved_key.shape != given_key.shape or not np.array_equal(saved_key, given_key):
        raise ValueError(f"fit: checkpoint {file} was written with key data {saved_key.tolist()} "
                         f"but fit was given {given_key.tolist()}")
    epoch = int(entry("['epoch']"))
    if epoch > epochs:
        raise ValueError(f"fit: checkpoint {file} holds epoch {epoch} but fit was given epochs={epochs}")

    def restore(prefix, like):
        name = prefix.replace("']['", " ").strip("[]'")  # "['best']['params']" -> "best params"
        return _unflatten_like(_subtree_entries(entries, prefix), like, file=file, who="fit",
                               given="fit was given", other="fit's arguments", name=name)

    run = _Progress(restore("['params']", fresh.params), restore("['state']", fresh.state),
                    restore("['opt_state']", fresh.opt_state), epoch)
    for name in ("params_tree", "state_tree", "opt_state_tree"):  # same paths, other node types
        check(name)
    names = [str(n) for n in entry("['history']['names']").reshape(-1)]
    values, numbers = entry("['history']['values']"), entry("['history']['epoch']")
    if values.shape != (len(numbers), len(names)) or len(numbers) != epoch:
        raise CheckpointError(f"fit: checkpoint {file} holds a history of shape {list(values.shape)} "
                              f"for {len(numbers)} epochs and {len(names)} entries; its epoch is {epoch}")
    run.history = [{"epoch": int(e), **{k: float(v) for k, v in zip(names, row)}}
                   for e, row in zip(numbers, values)]
    best_epoch = int(entry("['early_stopping']['best_epoch']"))
    if best_epoch:
        run.best, run.best_epoch = float(entry("['early_stopping']['best_value']")), best_epoch
    run.waited = int(entry("['early_stopping']['waited']"))
    run.stopped = bool(entry("['early_stopping']['stopped']"))
    if early_stopping is not None and early_stopping.restore_best and best_epoch:
        run.best_vars = (restore("['best']['params']", fresh.params), restore("['best']['state']", fresh.state))
    return run
