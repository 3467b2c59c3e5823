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
import functools
import itertools
import math
import os
import sys
import warnings
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.data import batches
from fnnet.nn.module import Module
from fnnet.train.checkpoint import (CheckpointError, _entries, _flatten_to_arrays, _read_arrays,
                                    _stale_temporary_files, _subtree_entries, _unflatten_like,
                                    _write_arrays)
from fnnet.train.step import make_eval_step, make_train_step

__all__ = ["EarlyStopping", "FitResult", "fit", "fit_population", "evaluate"]


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
    """What :func:`fit` returns. ``history`` has one dict per evaluation period:
    ``epoch`` (and ``step`` with ``eval_every``), ``train_loss`` and ``dev_<metric>``
    entries; ``best_epoch`` is the epoch (the step, with ``eval_every``) of the best
    entry under early stopping."""
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
    step: int = 0
    history: list = dataclasses.field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    best_vars: tuple | None = None
    waited: int = 0
    stopped: bool = False
    warned: bool = False


def fit(model: Module, loss_fn: Callable, optimizer, params, state, train_data, *,
        key, batch_size: int, epochs: int | None = None, steps: int | None = None,
        eval_every: int | None = None, dev_data=None, shuffle: bool = True,
        drop_last: bool = False, metrics: Mapping[str, Callable] | None = None,
        penalty: Callable | None = None, batch_hook: Callable | None = None,
        compile_epochs: bool = False, early_stopping: EarlyStopping | None = None,
        checkpoint: str | os.PathLike | None = None, resume: bool = False,
        opt_state=None, progress: bool | None = None,
        log: Callable[[dict], None] | Sequence[Callable[[dict], None]] | None = None) -> FitResult:
    """Train ``model`` on ``train_data = (x, y)`` with mini-batch steps.

    The budget is ``epochs`` passes over the data or ``steps`` optimizer steps (one of
    them). Step ``t`` is batch ``i = t mod S`` of epoch ``e = t div S`` (``S`` steps
    per epoch), drawn from the epoch's permutation ``fold_in(key, 2 e)`` with the step
    key ``fold_in(fold_in(key, 2 e + 1), i)``. After every evaluation period (an epoch,
    or ``eval_every`` steps) one history entry is appended:
    ``{"epoch": e}`` (or ``{"step": t, "epoch": e}`` with ``eval_every``),
    ``train_loss`` (the mean batch loss of the period), ``dev_loss``, ``dev_<metric>``
    and ``train_<metric>``.

    Args:
      model, loss_fn, optimizer, penalty: as in :func:`make_train_step`.
      params, state: the initial variables (from ``model.init``).
      train_data: ``(x, y)``; checked before the first step: equal lengths, finite
        inputs, and integer labels inside ``[0, C)`` when the model gives ``C`` scores
        per example (the error names the first offending index).
      key: a ``jax.random.key``; all shuffling, dropout and hook randomness derive from it.
      batch_size: examples per step (the last batch of an epoch is smaller unless
        ``drop_last``).
      epochs, steps: the budget, exactly one of them.
      eval_every: steps per evaluation period (default: one epoch).
      dev_data: ``(x, y)`` evaluated after every period with ``loss_fn`` and ``metrics``
        (``dev_loss``, ``dev_<name>``); with ``metrics``, the training set's too
        (``train_<name>``). A non-finite dev number stops training with an error.
      batch_hook: ``(x, y, key) -> (x, y)`` applied to every batch inside the compiled
        step (augmentation, curriculum), see :func:`make_train_step`.
      compile_epochs: run each period's steps as one compiled ``lax.scan`` instead of
        one dispatch per step (fewer, larger programs: fast for small models; the same
        results up to the rounding of the fused program).
      early_stopping: an :class:`EarlyStopping` over a history entry.
      checkpoint: a path; after every period everything needed to resume (see the
        module docstring) is written there atomically, then ``log`` is called.
      resume: with ``checkpoint`` and an existing file, continue from it: the result
        (params, state, opt_state, the whole ``history``, ``best_epoch``) is
        bit-identical to a run that never stopped. The budget may grow, not shrink;
        everything else must match.
      opt_state: initial optimizer state (default ``optimizer.init(params)``).
      progress: a progress bar (tqdm) with the loss and the step rate; default: on when
        standard error is a terminal and the ``CI`` environment variable is unset.
      log: a callable, or a sequence of them, called with each new history entry.

    Raises:
      ValueError: bad arguments or data (the message names the offending index); on
        resume, a checkpoint written for another model, optimizer, key, data shape or
        setting (the message names the difference), or a damaged file
        (:class:`~fnnet.train.checkpoint.CheckpointError`).
      FloatingPointError: when the training loss, a dev metric, or a parameter or
        optimizer-state entry becomes nan or inf; the message names the step and which
        period the checkpoint file holds (the last one whose numbers were all finite).

    Warns:
      RuntimeWarning: once, when a period's training loss exceeds ``10x`` the first
        step's loss: the learning rate is likely too high.
    """
    x_train, y_train = (jnp.asarray(a) for a in train_data)
    dev = None if dev_data is None else tuple(jnp.asarray(a) for a in dev_data)
    _check_data("train_data", model, params, state, x_train, y_train)
    if dev is not None:
        _check_data("dev_data", model, params, state, *dev)
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise ValueError(f"fit: expected batch_size >= 1, got {batch_size!r}")
    if drop_last and len(x_train) < batch_size:
        raise ValueError(f"fit: drop_last with batch_size {batch_size} > {len(x_train)} examples leaves no batch")
    steps_per_epoch = len(x_train) // batch_size if drop_last else math.ceil(len(x_train) / batch_size)
    total = _budget(epochs, steps, steps_per_epoch)
    if eval_every is not None and not (isinstance(eval_every, (int, np.integer)) and eval_every >= 1):
        raise ValueError(f"fit: expected eval_every as a positive int (steps), got {eval_every!r}")
    period = steps_per_epoch if eval_every is None else int(eval_every)
    if early_stopping is not None:
        expected = {"train_loss", *(f"train_{name}" for name in metrics or {})}
        if dev is not None:
            expected |= {"dev_loss", *(f"dev_{name}" for name in metrics or {})}
        if early_stopping.monitor not in expected:
            raise KeyError(f"EarlyStopping: monitored {early_stopping.monitor!r} is not in the "
                           f"history entry {sorted(expected | {'epoch'})}")
    logs = [] if log is None else [log] if callable(log) else list(log)
    step_fn = make_train_step(model, loss_fn, optimizer, penalty=penalty, batch_hook=batch_hook)
    eval_fn = make_eval_step(model, loss_fn, metrics)
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    order = _BatchOrder(key, len(x_train), batch_size, shuffle, drop_last, steps_per_epoch)
    run_steps = (_compiled_steps(model, loss_fn, optimizer, penalty, batch_hook, order, x_train, y_train)
                 if compile_epochs else _stepwise(step_fn, order, x_train, y_train))

    run = _Progress(params, state, opt_state)
    settings = _settings(run, key, x_train, y_train, dev, batch_size, shuffle, drop_last,
                         metrics, penalty, early_stopping)
    settings.update(eval_every="epoch" if eval_every is None else str(period),
                    batch_hook="none" if batch_hook is None else "a hook",
                    compile_epochs=str(bool(compile_epochs)))
    on_disk = None  # the period the checkpoint file holds, once this call knows it
    if checkpoint is not None and resume:
        for stale in _stale_temporary_files(checkpoint):
            os.remove(stale)
        if os.path.exists(checkpoint):
            budget = f"epochs={epochs}" if steps is None else f"steps={steps}"
            run = _load_progress(os.fspath(checkpoint), run, key, settings, total, budget, early_stopping)
            on_disk = _period_name(run.step, eval_every, steps_per_epoch)

    bar = _progress_bar(progress, total, run.step)
    first_loss = None
    try:
        while run.step < total and not run.stopped:
            end = min((run.step // period + 1) * period, total)
            start = (run.params, run.state, run.opt_state)
            params, state, opt_state, losses = run_steps(run.step, end, *start, bar)
            losses = np.asarray(losses)
            if not (np.all(np.isfinite(losses)) and bool(np.all(_finite_flags((params, state, opt_state))))):
                where = ""
                if checkpoint is not None:
                    where = (f"; the checkpoint {checkpoint} holds {on_disk}, the last with finite numbers"
                             if on_disk is not None else f"; this call wrote no checkpoint to {checkpoint}")
                replay = _stepwise(step_fn, order, x_train, y_train, each=True)(run.step, end, *start, None)
                raise FloatingPointError(_nonfinite_message(replay, losses, run.step, steps_per_epoch) + where)
            epoch = -(-end // steps_per_epoch)
            entry = {"epoch": epoch} if eval_every is None else {"step": end, "epoch": epoch}
            entry["train_loss"] = float(np.mean(losses))
            if dev is not None:
                entry.update({f"dev_{k}": v for k, v in evaluate(eval_fn, params, state, *dev).items()})
            if metrics:
                train_metrics = evaluate(eval_fn, params, state, x_train, y_train)
                entry.update({f"train_{k}": v for k, v in train_metrics.items() if k != "loss"})
            bad = [k for k, v in entry.items() if k.startswith("dev_") and not math.isfinite(v)]
            if bad:
                raise FloatingPointError(f"fit: {bad[0]} became {entry[bad[0]]} at "
                                         f"{_period_name(end, eval_every, steps_per_epoch)} although "
                                         "the training loss and parameters are finite: check the dev "
                                         "data and the metric")
            first_loss = float(losses[0]) if first_loss is None else first_loss
            _warn_if_diverging(entry["train_loss"], first_loss, run)
            run.params, run.state, run.opt_state, run.step = params, state, opt_state, end
            run.epoch = end // steps_per_epoch
            run.history.append(entry)
            if early_stopping is not None:
                value = entry[early_stopping.monitor]
                if early_stopping.improved(value, run.best):
                    best_at = epoch if eval_every is None else end
                    run.best, run.best_epoch, run.best_vars, run.waited = value, best_at, (params, state), 0
                else:
                    run.waited += 1
                    run.stopped = run.waited > early_stopping.patience
            if checkpoint is not None:
                _write_arrays(checkpoint, _flatten_to_arrays(_progress_tree(run, key, settings, early_stopping)))
                on_disk = _period_name(run.step, eval_every, steps_per_epoch)
            for fn in logs:
                fn(entry)
            if bar is not None:
                bar.set_postfix({k: f"{v:.4g}" for k, v in entry.items() if k not in ("epoch", "step")},
                                refresh=True)
    finally:
        if bar is not None:
            bar.close()
    params, state = run.params, run.state
    if early_stopping is not None and early_stopping.restore_best and run.best_vars is not None:
        params, state = run.best_vars
    return FitResult(params, state, run.opt_state, run.history, run.best_epoch, run.stopped)


# A period's mean training loss this many times the first step's loss triggers the
# learning-rate warning.
DIVERGENCE_FACTOR = 10.0


def _warn_if_diverging(loss: float, first: float, run: _Progress) -> None:
    if not run.warned and first > 0 and loss > DIVERGENCE_FACTOR * first:
        run.warned = True
        warnings.warn(f"fit: the training loss grew from {first:.4g} (first step) to {loss:.4g}, "
                      f"more than {DIVERGENCE_FACTOR:g}x: the learning rate is likely too high",
                      RuntimeWarning, stacklevel=3)


def _budget(epochs, steps, steps_per_epoch: int) -> int:
    """Total steps from exactly one of ``epochs`` and ``steps``."""
    if (epochs is None) == (steps is None):
        raise ValueError(f"fit: give exactly one budget, epochs or steps; got epochs={epochs!r}, "
                         f"steps={steps!r}")
    name, value = ("epochs", epochs) if steps is None else ("steps", steps)
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1):
        raise ValueError(f"fit: expected {name} as a positive int, got {value!r}")
    return int(value) * steps_per_epoch if steps is None else int(value)


def _period_name(step: int, eval_every, steps_per_epoch: int) -> str:
    return f"epoch {step // steps_per_epoch}" if eval_every is None else f"step {step}"


def _progress_bar(progress, total: int, done: int):
    if progress is None:
        progress = sys.stderr.isatty() and not os.environ.get("CI")
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=done, desc="fit", unit="step", dynamic_ncols=True)


def _check_data(name: str, model: Module, params, state, x, y) -> None:
    """Equal lengths, finite inputs, and integer labels inside ``[0, C)`` for a model
    giving ``C`` scores per example; errors name the first offending index."""
    if len(x) != len(y):
        raise ValueError(f"fit: {name} has {len(x)} inputs but {len(y)} targets")
    if len(x) == 0:
        raise ValueError(f"fit: {name} is empty")
    for what, a in (("input", x), ("target", y)):
        if jnp.issubdtype(a.dtype, jnp.inexact):
            finite = np.asarray(jnp.all(jnp.isfinite(a.reshape(len(a), -1)), axis=1))
            if not finite.all():
                i = int(np.argmin(finite))
                raise ValueError(f"fit: {name} {what} {i} holds a non-finite value "
                                 f"({float(np.asarray(a[i]).ravel()[~np.isfinite(np.asarray(a[i]).ravel())][0])})")
    if not jnp.issubdtype(y.dtype, jnp.integer):
        return
    try:
        out = jax.eval_shape(lambda p, s, v: model.apply(p, s, v)[0], params, state,
                             jax.ShapeDtypeStruct((1,) + x.shape[1:], x.dtype))
    except Exception:  # the step itself will report what does not fit
        return
    if not hasattr(out, "ndim") or out.ndim != y.ndim + 1:
        return
    classes = out.shape[-1]
    flat = np.asarray(y).reshape(len(y), -1)
    bad = np.nonzero(((flat < 0) | (flat >= classes)).any(axis=1))[0]
    if len(bad):
        i = int(bad[0])
        value = flat[i][(flat[i] < 0) | (flat[i] >= classes)][0]
        raise ValueError(f"fit: {name} label {i} is {int(value)}, outside [0, {classes}) for a "
                         f"model giving {classes} scores per example")


@dataclasses.dataclass(frozen=True)
class _BatchOrder:
    """Where step ``t`` takes its batch from: epoch ``t div S``, batch ``t mod S``."""
    key: Any
    n: int
    batch_size: int
    shuffle: bool
    drop_last: bool
    steps_per_epoch: int

    def permutation(self, epoch: int):
        return (jax.random.permutation(jax.random.fold_in(self.key, 2 * epoch), self.n)
                if self.shuffle else jnp.arange(self.n))

    def pieces(self, start: int, end: int):
        """Split steps ``[start, end)`` at epoch boundaries: ``(epoch, i0, i1)`` triples."""
        t = start
        while t < end:
            epoch, i = divmod(t, self.steps_per_epoch)
            stop = min(end - epoch * self.steps_per_epoch, self.steps_per_epoch)
            yield epoch, i, stop
            t = epoch * self.steps_per_epoch + stop


def _stepwise(step_fn, order: _BatchOrder, x, y, each: bool = False):
    """Steps ``[start, end)`` one jitted call each, batches from :func:`fnnet.data.batches`.
    Returns the final variables and the stacked losses, or (``each``) a generator of
    ``(i, params, state, opt_state, loss)`` after every step."""
    def gen(start, end, params, state, opt_state, bar):
        for epoch, i0, i1 in order.pieces(start, end):
            shuffle_key = jax.random.fold_in(order.key, 2 * epoch) if order.shuffle else None
            step_key = jax.random.fold_in(order.key, 2 * epoch + 1)
            epoch_batches = batches(x, y, order.batch_size, key=shuffle_key, shuffle=order.shuffle,
                                    drop_last=order.drop_last)
            for i, (xb, yb) in enumerate(itertools.islice(epoch_batches, i0, i1), start=i0):
                params, state, opt_state, loss = step_fn(params, state, opt_state, xb, yb,
                                                         jax.random.fold_in(step_key, i))
                if bar is not None:
                    bar.update(1)
                yield epoch * order.steps_per_epoch + i, params, state, opt_state, loss

    if each:
        return gen

    def run(start, end, params, state, opt_state, bar):
        losses = []
        for _, params, state, opt_state, loss in gen(start, end, params, state, opt_state, bar):
            losses.append(loss)
        return params, state, opt_state, jnp.stack(losses)

    return run


def _compiled_steps(model, loss_fn, optimizer, penalty, batch_hook, order: _BatchOrder, x, y,
                    members: bool = False):
    """Steps ``[start, end)`` as one compiled program per epoch piece: a ``lax.scan`` over
    the full batches, whose indices come from the epoch's permutation inside the
    program, then the smaller last batch if the piece reaches it. With ``members`` the
    program is ``jax.vmap``-ed over a leading axis of ``order.key``, params, state and
    optimizer state (one key stream per member, the data shared). The program is
    cached per model, loss, optimizer and batching, so repeated calls compile once."""
    args = (model, loss_fn, optimizer, penalty, batch_hook, order.n, order.batch_size, order.shuffle,
            members)
    try:
        hash(args)
    except TypeError:  # an unhashable piece: build the program for this call only
        program = _piece_program.__wrapped__(*args)
    else:
        program = _piece_program(*args)

    def run(start, end, params, state, opt_state, bar):
        losses = []
        for epoch, i0, i1 in order.pieces(start, end):
            params, state, opt_state, piece_losses = program(i0, i1, epoch, order.key, params, state,
                                                              opt_state, x, y)
            losses.append(piece_losses)
            if bar is not None:
                bar.update(i1 - i0)
        return params, state, opt_state, jnp.concatenate(losses, axis=-1)

    return run


@functools.lru_cache(maxsize=32)
def _piece_program(model, loss_fn, optimizer, penalty, batch_hook, n: int, bs: int, shuffle: bool,
                   members: bool):
    step = make_train_step(model, loss_fn, optimizer, penalty=penalty, batch_hook=batch_hook, jit=False)
    full = n // bs

    def piece(i0, i1, epoch, key, params, state, opt_state, x, y):
        perm = jax.random.permutation(jax.random.fold_in(key, 2 * epoch), n) if shuffle else jnp.arange(n)
        step_key = jax.random.fold_in(key, 2 * epoch + 1)

        def body(carry, i):
            idx = jax.lax.dynamic_slice_in_dim(perm, i * bs, bs)
            p, s, o, loss = step(*carry, x[idx], y[idx], jax.random.fold_in(step_key, i))
            return (p, s, o), loss

        carry, losses = (params, state, opt_state), []
        if i0 < min(i1, full):
            carry, scanned = jax.lax.scan(body, carry, jnp.arange(i0, min(i1, full)))
            losses.append(scanned)
        if i1 > full:  # the smaller last batch
            idx = perm[full * bs:]
            *carry, loss = step(*carry, x[idx], y[idx], jax.random.fold_in(step_key, full))
            losses.append(loss[None])
        return (*carry, jnp.concatenate(losses, axis=-1))

    if members:
        return jax.jit(lambda i0, i1, *args: jax.vmap(functools.partial(piece, i0, i1),
                                                      in_axes=(None, 0, 0, 0, 0, None, None))(*args),
                       static_argnums=(0, 1))
    return jax.jit(piece, static_argnums=(0, 1))


def fit_population(model: Module, loss_fn: Callable, optimizer, params, state, train_data, *,
                   keys, batch_size: int, epochs: int | None = None, steps: int | None = None,
                   eval_every: int | None = None, dev_data=None, shuffle: bool = True,
                   drop_last: bool = False, metrics: Mapping[str, Callable] | None = None,
                   penalty: Callable | None = None, batch_hook: Callable | None = None,
                   opt_state=None, progress: bool | None = None,
                   log: Callable[[dict], None] | Sequence[Callable[[dict], None]] | None = None) -> FitResult:
    """:func:`fit` for a population of ``P`` models trained side by side as one program.

    ``params`` and ``state`` carry a leading axis of ``P`` members (e.g.
    ``jax.vmap(lambda k: model.init(k, x))(keys)``) and ``keys`` is ``(P,)`` keys
    (``jax.random.split(key, P)``). Member ``m`` follows exactly the key stream that
    ``fit(..., key=keys[m], compile_epochs=True)`` follows (its own data order, dropout
    and hook randomness) on the shared data; every period's steps run as one
    ``jax.vmap``-ed ``lax.scan``, so the whole population costs one dispatch per
    period. Seeds differ through ``keys`` and ``params``; configurations that are
    arrays (a per-member learning rate inside ``optimizer``'s state, a per-member
    penalty weight) can be vmapped the same way.

    History entries hold one value per member (lists of ``P`` floats). No early
    stopping or checkpoints here: train a member alone with :func:`fit` for those.

    Returns:
      A :class:`FitResult` whose params, state and opt_state have the leading axis ``P``.
    """
    x_train, y_train = (jnp.asarray(a) for a in train_data)
    dev = None if dev_data is None else tuple(jnp.asarray(a) for a in dev_data)
    keys = jnp.asarray(keys) if not isinstance(keys, jax.Array) else keys
    if keys.ndim != 1:
        raise ValueError(f"fit_population: expected keys of shape (P,), got {keys.shape}")
    size = keys.shape[0]
    for what, tree in (("params", params), ("state", state)):
        for leaf in jax.tree.leaves(tree):
            if jnp.ndim(leaf) < 1 or jnp.shape(leaf)[0] != size:
                raise ValueError(f"fit_population: expected every {what} leaf to lead with the "
                                 f"population axis of {size} (the keys), got shape {jnp.shape(leaf)}")
    first = jax.tree.map(lambda a: a[0], (params, state))
    _check_data("train_data", model, *first, x_train, y_train)
    if dev is not None:
        _check_data("dev_data", model, *first, *dev)
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise ValueError(f"fit_population: expected batch_size >= 1, got {batch_size!r}")
    if drop_last and len(x_train) < batch_size:
        raise ValueError(f"fit_population: drop_last with batch_size {batch_size} > {len(x_train)} "
                         "examples leaves no batch")
    steps_per_epoch = len(x_train) // batch_size if drop_last else math.ceil(len(x_train) / batch_size)
    total = _budget(epochs, steps, steps_per_epoch)
    period = steps_per_epoch if eval_every is None else int(eval_every)
    logs = [] if log is None else [log] if callable(log) else list(log)
    if opt_state is None:
        opt_state = jax.vmap(optimizer.init)(params)
    order = _BatchOrder(keys, len(x_train), batch_size, shuffle, drop_last, steps_per_epoch)
    run_steps = _compiled_steps(model, loss_fn, optimizer, penalty, batch_hook, order, x_train, y_train,
                                members=True)
    eval_fn = jax.vmap(make_eval_step(model, loss_fn, metrics), in_axes=(0, 0, None, None))
    history, done = [], 0
    bar = _progress_bar(progress, total, 0)
    try:
        while done < total:
            end = min((done // period + 1) * period, total)
            params, state, opt_state, losses = run_steps(done, end, params, state, opt_state, bar)
            losses = np.asarray(losses)
            if not np.all(np.isfinite(losses)):
                member = int(np.argmax(~np.all(np.isfinite(losses), axis=1)))
                raise FloatingPointError(f"fit_population: member {member}'s training loss became "
                                         f"non-finite between steps {done} and {end}")
            epoch = -(-end // steps_per_epoch)
            entry = {"epoch": epoch} if eval_every is None else {"step": end, "epoch": epoch}
            entry["train_loss"] = losses.mean(axis=1).tolist()
            if dev is not None:
                entry.update({f"dev_{k}": v.tolist()
                              for k, v in _evaluate_members(eval_fn, params, state, *dev).items()})
            if metrics:
                values = _evaluate_members(eval_fn, params, state, x_train, y_train)
                entry.update({f"train_{k}": v.tolist() for k, v in values.items() if k != "loss"})
            history.append(entry)
            done = end
            for fn in logs:
                fn(entry)
    finally:
        if bar is not None:
            bar.close()
    return FitResult(params, state, opt_state, history)


def _evaluate_members(evaluate_step: Callable, params, state, x, y, batch_size: int = 1024) -> dict:
    """:func:`evaluate` for a population: each metric as a ``(P,)`` array."""
    totals: dict = {}
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        for name, value in evaluate_step(params, state, xb, yb).items():
            totals[name] = totals.get(name, 0.0) + np.asarray(value, np.float64) * len(xb)
    return {name: total / len(x) for name, total in totals.items()}


@jax.jit
def _finite_flags(tree):
    """One bool per leaf of ``tree``: every entry finite (True for integer leaves)."""
    leaves = jax.tree.leaves(tree)
    flags = [jnp.all(jnp.isfinite(x)) if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.asarray(True)
             for x in leaves]
    return jnp.stack(flags) if flags else jnp.ones((0,), bool)


def _nonfinite_message(steps, losses, start: int, steps_per_epoch: int) -> str:
    """Name the first step from ``start`` on whose loss, or whose update of params, state
    or optimizer state, is not finite: replay the steps (``steps``) and check each."""
    names = ["params", "state", "opt_state"]
    for t, params, state, opt_state, loss in steps:
        epoch, i = divmod(t, steps_per_epoch)
        at = f"step {t} (epoch {epoch + 1}, batch {i})"
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
    return (f"fit: non-finite numbers after step {start} (first seen at step {start + bad}; a "
            "replay did not reproduce them)")


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
        "step": np.int64(run.step),
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


def _load_progress(file: str, fresh: _Progress, key, settings: dict, total: int, budget: str,
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
    epoch, step = int(entry("['epoch']")), int(entry("['step']"))
    if step > total:
        raise ValueError(f"fit: checkpoint {file} holds epoch {epoch} (step {step}) but fit was given "
                         f"{budget} ({total} steps)")

    def restore(prefix, like):
        name = prefix.replace("']['", " ").strip("[]'")  # "['best']['params']" -> "best params"
        return _unflatten_like(_subtree_entries(entries, prefix), like, file=file, who="fit",
                               given="fit was given", other="fit's arguments", name=name)

    run = _Progress(restore("['params']", fresh.params), restore("['state']", fresh.state),
                    restore("['opt_state']", fresh.opt_state), epoch, step)
    for name in ("params_tree", "state_tree", "opt_state_tree"):  # same paths, other node types
        check(name)
    names = [str(n) for n in entry("['history']['names']").reshape(-1)]
    values, numbers = entry("['history']['values']"), entry("['history']['epoch']")
    if values.shape != (len(numbers), len(names)):
        raise CheckpointError(f"fit: checkpoint {file} holds a history of shape {list(values.shape)} "
                              f"for {len(numbers)} periods and {len(names)} entries")
    run.history = [{"epoch": int(e), **{k: int(v) if k == "step" else float(v) for k, v in zip(names, row)}}
                   for e, row in zip(numbers, values)]
    best_epoch = int(entry("['early_stopping']['best_epoch']"))
    if best_epoch:
        run.best, run.best_epoch = float(entry("['early_stopping']['best_value']")), best_epoch
    run.waited = int(entry("['early_stopping']['waited']"))
    run.stopped = bool(entry("['early_stopping']['stopped']"))
    if early_stopping is not None and early_stopping.restore_best and best_epoch:
        run.best_vars = (restore("['best']['params']", fresh.params), restore("['best']['state']", fresh.state))
    return run
