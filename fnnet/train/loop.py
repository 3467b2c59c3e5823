"""The training loop :func:`fit`, with evaluation periods, early stopping, checkpoints,
exact resumption, data guards and a stop on non-finite numbers (its twin for many
models as one program, :func:`fnnet.train.population.fit_population`, shares its helpers).

Randomness is a pure function of ``key``: step ``t`` is batch ``i = t mod S`` of epoch
``e = t div S``; epoch ``e`` shuffles with ``fold_in(key, 2 * e)`` and its step ``i``
gets ``fold_in(fold_in(key, 2 * e + 1), i)`` (:mod:`fnnet.train.periods`). The data
order and every dropout mask therefore depend on ``key`` and ``t`` alone, and the
position in the key stream is the step number.

Resumption. With ``checkpoint=path``, after every evaluation period (an epoch, or
``eval_every`` steps) ``fit`` writes (one atomic ``.npz``, :mod:`fnnet.train.checkpoint`)
all it needs to go on (:mod:`fnnet.train.resume`): params, state, optimizer state, the
key's data, the step, the early-stopping state (best value, best period, best params
and state, periods without improvement, whether it stopped) and the history so far,
plus a description of the run (data shapes and dtypes, batch size, shuffling, metrics,
early stopping, tree structures, key implementation). A run interrupted anywhere, by
an exception or SIGKILL, mid-period or mid-write, and restarted with ``resume=True``
starts again from the last finished period and ends bit-identical (params, state,
optimizer state, history, best period) to the run that never stopped. Resuming with
another model, optimizer, key, data shape or setting raises a ``ValueError`` naming
the difference, before any compute. What cannot be checked (the loss function, the
penalty's formula, the data's values) is the caller's to keep.

Non-finite numbers. Before the first step the data are checked (finite inputs, labels
in range). After each period the losses and every float leaf of params, state and
optimizer state are checked; a non-finite one raises ``FloatingPointError`` and
nothing of that period is written, so the file keeps the last finite period. The
period is then replayed step by step to name the first step whose loss or update went
bad. A non-finite dev metric stops training too. With ``on_nonfinite="stop"`` (for
experiments about divergence) the bad period is recorded in the history instead and
training ends with the last finite variables.

Imports: jax, numpy, fnnet.nn, fnnet.train.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
import warnings
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.data.splits import num_examples, take_examples
from fnnet.nn.module import Module
from fnnet.train.checkpoint import _flatten_to_arrays, _stale_temporary_files, _write_arrays
from fnnet.train.periods import BatchOrder, compiled_steps, stepwise
from fnnet.train.placement import Placement, place, placement_of, to_host
from fnnet.train.resume import Progress, load_progress, progress_tree, run_settings
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
    """What :func:`fit` returns. ``history`` has one dict per evaluation period:
    ``epoch`` (and ``step`` with ``eval_every``), ``train_loss`` and ``dev_<metric>``
    entries; ``best_epoch`` is the epoch (the step, with ``eval_every``) of the best
    entry under early stopping; ``diverged`` says that ``on_nonfinite="stop"`` ended
    the run at a non-finite number."""
    params: Any
    state: Any
    opt_state: Any
    history: list
    best_epoch: int | None = None
    stopped_early: bool = False
    diverged: bool = False


def evaluate(evaluate_step: Callable, params, state, x, y, batch_size: int = 1024) -> dict:
    """Average the metrics of ``evaluate_step`` over ``(x, y)`` in batches, weighting each
    batch by its size, so the result equals a single pass over the whole set."""
    n = num_examples("evaluate", x, y)
    totals: dict[str, float] = {}
    for start in range(0, n, batch_size):
        rows = slice(start, start + batch_size)
        values = evaluate_step(params, state, take_examples(x, rows), take_examples(y, rows))
        for name, value in values.items():
            totals[name] = totals.get(name, 0.0) + float(value) * (min(n, start + batch_size) - start)
    return {name: total / n for name, total in totals.items()}


def fit(model: Module, loss_fn: Callable, optimizer, params, state, train_data, *,
        key, batch_size: int, epochs: int | None = None, steps: int | None = None,
        eval_every: int | None = None, dev_data=None, shuffle: bool = True,
        drop_last: bool = False, metrics: Mapping[str, Callable] | None = None,
        penalty: Callable | None = None, batch_hook: Callable | None = None,
        compile_epochs: bool = False, early_stopping: EarlyStopping | None = None,
        checkpoint: str | os.PathLike | None = None, resume: bool = False,
        opt_state=None, progress: bool | None = None,
        log: Callable[[dict], None] | Sequence[Callable[[dict], None]] | None = None,
        eval_at_start: bool = False, train_metrics: bool = True,
        on_nonfinite: str = "raise", batch_metrics: Mapping[str, Callable] | None = None,
        policy=None) -> FitResult:
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
      train_data: ``(x, y)``, each an array or a pytree of arrays with the examples
        along axis 0 (``((images, tokens), y)``: the model gets the tuple, the loss the
        targets as given); checked before the first step: equal lengths, finite
        inputs, and integer labels inside ``[0, C)`` when the model gives ``C`` scores
        per example (the error names the array and the first offending index).
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
      eval_at_start: first append an entry for the initial variables, ``{"epoch": 0}``
        (and ``"step": 0``) with ``train_loss`` the loss over the whole training set in
        evaluation mode, and the dev and train metrics (not counted by early stopping).
      train_metrics: with ``metrics``, also evaluate them on the training set after
        every period (``train_<name>``); ``False`` skips that pass.
      on_nonfinite: ``"raise"`` (a ``FloatingPointError``, see below) or ``"stop"``:
        the period whose training numbers or dev metrics became non-finite is appended
        to the history as it stands (its ``train_loss`` may be nan), training ends, and
        the result has ``diverged=True`` and the variables of the last finite period.
        For experiments about divergence.
      batch_metrics: ``{name: fn(outputs, y)}`` evaluated inside every training step on
        its batch's training-mode outputs (before the update); each period's entry gets
        ``batch_<name>``, the mean over its steps, as ``train_loss`` is the mean loss
        (e.g. the training error on the mini-batches, with dropout and batch statistics).
      policy: a sharding policy from :mod:`fnnet.parallel` (``data_parallel(mesh)``,
        ``fully_sharded(mesh)``, ``tensor_parallel(mesh)``): the same steps, compiled
        for the mesh (:mod:`fnnet.train.placement`); ``batch_size`` is the global batch,
        split over the ``data`` axis, so every batch size must divide by its device
        count (checked first). The results equal the single-device run up to the order
        of floating-point sums; the returned variables stay sharded. Over several
        processes (``fnnet.parallel.initialize``) every process calls ``fit`` with the
        same arguments and data; the progress bar shows on process 0 only, and the
        ``checkpoint`` is gathered from all processes and written by process 0 (resume
        reads it on every process: give a path on a file system they share).

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
    # The bar shows at once: the checks and the first compiles below take seconds.
    bar = _progress_bar(progress, None, 0)
    try:
        x_train, y_train = _as_arrays("fit", "train_data", train_data)
        dev = None if dev_data is None else _as_arrays("fit", "dev_data", dev_data)
        n = _check_lengths("fit", "train_data", x_train, y_train)
        steps_per_epoch, total, period = _schedule("fit", n, batch_size, drop_last, epochs, steps, eval_every)
        if bar is not None:  # the step count shows before the data checks and compiles
            bar.reset(total=total)
        _check_data("fit", "train_data", model, params, state, x_train, y_train)
        if dev is not None:
            _check_data("fit", "dev_data", model, params, state, *dev)
        if early_stopping is not None:
            expected = {"train_loss", *(f"train_{name}" for name in metrics or {})}
            if dev is not None:
                expected |= {"dev_loss", *(f"dev_{name}" for name in metrics or {})}
            if early_stopping.monitor not in expected:
                raise KeyError(f"EarlyStopping: monitored {early_stopping.monitor!r} is not in the "
                               f"history entry {sorted(expected | {'epoch'})}")
        if on_nonfinite not in ("raise", "stop"):
            raise ValueError(f"fit: expected on_nonfinite 'raise' or 'stop', got {on_nonfinite!r}")
        logs = [] if log is None else [log] if callable(log) else list(log)
        opt_state = optimizer.init(params) if opt_state is None else opt_state
        placement = None
        if policy is not None:
            placement = placement_of("fit", policy, params, state, opt_state)
            placement.check_batches("fit", n, batch_size, drop_last)
            params, state, opt_state = placement.put(params, state, opt_state)
            x_train, y_train = place((x_train, y_train), placement.replicated)
            dev = None if dev is None else place(dev, placement.replicated)
        step_fn, eval_fn = _steps(model, loss_fn, optimizer, penalty, batch_hook, metrics, placement=placement)
        batch_items = tuple((batch_metrics or {}).items())
        train_fn = (step_fn if not batch_items else
                    _steps(model, loss_fn, optimizer, penalty, batch_hook, metrics, batch_items=batch_items,
                           placement=placement)[0])
        order = BatchOrder(key, n, batch_size, shuffle, drop_last, steps_per_epoch)
        run_steps = (compiled_steps(model, loss_fn, optimizer, penalty, batch_hook, order, x_train, y_train,
                                    batch_metrics=batch_items, placement=placement)
                     if compile_epochs else stepwise(train_fn, order, x_train, y_train))

        run = Progress(params, state, opt_state)
        settings = run_settings(run, key, x_train, y_train, dev, batch_size, shuffle, drop_last,
                             metrics, penalty, early_stopping)
        settings.update(eval_every="epoch" if eval_every is None else str(period),
                        batch_hook="none" if batch_hook is None else "a hook",
                        compile_epochs=str(bool(compile_epochs)), eval_at_start=str(bool(eval_at_start)),
                        train_metrics=str(bool(train_metrics)), batch_metrics=str(sorted(batch_metrics or {})))
        on_disk = None  # the period the checkpoint file holds, once this call knows it
        if checkpoint is not None and resume:
            for stale in _stale_temporary_files(checkpoint):
                os.remove(stale)
            if os.path.exists(checkpoint):
                budget = f"epochs={epochs}" if steps is None else f"steps={steps}"
                run = load_progress(os.fspath(checkpoint), run, key, settings, total, budget, early_stopping)
                if placement is not None:
                    run.params, run.state, run.opt_state = placement.put(run.params, run.state, run.opt_state)
                on_disk = _period_name(run.step, eval_every, steps_per_epoch)

        def measure(entry, params, state):
            if dev is not None:
                entry.update({f"dev_{k}": v for k, v in evaluate(eval_fn, params, state, *dev).items()})
            if metrics and train_metrics:
                values = evaluate(eval_fn, params, state, x_train, y_train)
                entry.update({f"train_{k}": v for k, v in values.items() if k != "loss"})
            return entry

        if eval_at_start and run.step == 0 and not run.history:
            if batch_metrics:
                raise ValueError("fit: eval_at_start has no batches before the first step to give "
                                 f"batch_metrics {sorted(batch_metrics)}; use one or the other")
            entry = {"epoch": 0} if eval_every is None else {"step": 0, "epoch": 0}
            entry["train_loss"] = evaluate(eval_fn, run.params, run.state, x_train, y_train)["loss"]
            run.history.append(measure(entry, run.params, run.state))
            for fn in logs:
                fn(entry)
        if bar is not None:
            bar.reset(total=total)
            bar.initial = bar.n = run.step
            bar.refresh()
        first_loss = None
        diverged = False
        while run.step < total and not run.stopped:
            end = min((run.step // period + 1) * period, total)
            start = (run.params, run.state, run.opt_state)
            params, state, opt_state, losses = run_steps(run.step, end, *start, bar)
            losses, batch_values = _split_losses(losses)
            if not (np.all(np.isfinite(losses)) and bool(np.all(_finite_flags((params, state, opt_state))))):
                if on_nonfinite == "stop":
                    epoch = -(-end // steps_per_epoch)
                    entry = {"epoch": epoch} if eval_every is None else {"step": end, "epoch": epoch}
                    entry["train_loss"] = float(np.mean(losses))
                    run.history.append(entry)
                    for fn in logs:
                        fn(entry)
                    diverged = True
                    break
                where = ""
                if checkpoint is not None:
                    where = (f"; the checkpoint {checkpoint} holds {on_disk}, the last with finite numbers"
                             if on_disk is not None else f"; this call wrote no checkpoint to {checkpoint}")
                replay = stepwise(step_fn, order, x_train, y_train, each=True)(run.step, end, *start, None)
                raise FloatingPointError(_nonfinite_message(replay, losses, run.step, steps_per_epoch) + where)
            epoch = -(-end // steps_per_epoch)
            entry = {"epoch": epoch} if eval_every is None else {"step": end, "epoch": epoch}
            entry["train_loss"] = float(np.mean(losses))
            entry.update({f"batch_{k}": float(np.mean(v)) for k, v in batch_values.items()})
            entry = measure(entry, params, state)
            bad = [k for k, v in entry.items() if k.startswith("dev_") and not math.isfinite(v)]
            if bad and on_nonfinite == "stop":
                run.params, run.state, run.opt_state, run.step = params, state, opt_state, end
                run.history.append(entry)
                for fn in logs:
                    fn(entry)
                diverged = True
                break
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
                tree = progress_tree(run, key, settings, early_stopping)
                if placement is not None and jax.process_count() > 1:
                    tree = to_host(tree)  # every process gathers; process 0 writes
                if jax.process_index() == 0:
                    _write_arrays(checkpoint, _flatten_to_arrays(tree))
                on_disk = _period_name(run.step, eval_every, steps_per_epoch)
            for fn in logs:
                fn(entry)
            if bar is not None:
                bar.set_postfix({k: f"{v:.4g}" for k, v in entry.items() if k not in ("epoch", "step")},
                                refresh=True)
        params, state = run.params, run.state
        if early_stopping is not None and early_stopping.restore_best and run.best_vars is not None:
            params, state = run.best_vars
        return FitResult(params, state, run.opt_state, run.history, run.best_epoch, run.stopped, diverged)
    finally:
        if bar is not None:
            bar.close()


def _steps(model, loss_fn, optimizer, penalty, batch_hook, metrics, population: bool = False,
           batch_items: tuple = (), placement: Placement | None = None):
    """The jitted train step and eval step (for a population: the eval step ``vmap``-ed
    over the members), built once per model, loss, optimizer and metrics, so that
    repeated calls of :func:`fit` compile once. With a placement the train step is
    compiled with its shardings and moves each batch to the batch sharding."""
    args = (model, loss_fn, optimizer, penalty, batch_hook, tuple((metrics or {}).items()), population,
            batch_items, placement)
    try:
        hash(args)
    except TypeError:  # an unhashable piece: build the steps for this call only
        return _build_steps.__wrapped__(*args)
    return _build_steps(*args)


@functools.lru_cache(maxsize=32)
def _build_steps(model, loss_fn, optimizer, penalty, batch_hook, metric_items, population, batch_items,
                 placement):
    eval_fn = make_eval_step(model, loss_fn, dict(metric_items))
    if population:
        return None, jax.jit(jax.vmap(eval_fn, in_axes=(0, 0, None, None)))
    step = make_train_step(model, loss_fn, optimizer, penalty=penalty, batch_hook=batch_hook,
                           batch_metrics=dict(batch_items), jit=placement is None)
    if placement is None:
        return step, eval_fn
    variables = (placement.params, placement.state, placement.opt_state)
    b, r = placement.batch, placement.replicated
    jitted = jax.jit(step, in_shardings=variables + (b, b, r), out_shardings=variables + (r,))

    def placed_step(params, state, opt_state, x, y, key):
        return jitted(params, state, opt_state, *jax.device_put((x, y), b), key)

    return placed_step, eval_fn


def _split_losses(losses):
    """The losses of a run of steps as a NumPy array, and the batch metrics (a dict of
    arrays, empty without them)."""
    losses = to_host(losses)  # a population's losses may be split over several processes
    if isinstance(losses, dict):
        values = {k: np.asarray(v) for k, v in losses.items()}
        return values.pop("loss"), values
    return np.asarray(losses), {}


# A period's mean training loss this many times the first step's loss triggers the
# learning-rate warning.
DIVERGENCE_FACTOR = 10.0


def _warn_if_diverging(loss: float, first: float, run: Progress) -> None:
    if not run.warned and first > 0 and loss > DIVERGENCE_FACTOR * first:
        run.warned = True
        warnings.warn(f"fit: the training loss grew from {first:.4g} (first step) to {loss:.4g}, "
                      f"more than {DIVERGENCE_FACTOR:g}x: the learning rate is likely too high",
                      RuntimeWarning, stacklevel=3)


def _schedule(who: str, n: int, batch_size, drop_last: bool, epochs, steps, eval_every):
    """``(steps_per_epoch, total_steps, steps_per_period)`` from the batching and exactly
    one budget, ``epochs`` or ``steps``; every argument checked."""
    def positive(name, value):
        if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1):
            raise ValueError(f"{who}: expected {name} as a positive int, got {value!r}")
        return int(value)

    batch_size = positive("batch_size", batch_size)
    if drop_last and n < batch_size:
        raise ValueError(f"{who}: drop_last with batch_size {batch_size} > {n} examples leaves no batch")
    per_epoch = n // batch_size if drop_last else math.ceil(n / batch_size)
    if (epochs is None) == (steps is None):
        raise ValueError(f"{who}: give exactly one budget, epochs or steps; got epochs={epochs!r}, "
                         f"steps={steps!r}")
    total = positive("epochs", epochs) * per_epoch if steps is None else positive("steps", steps)
    period = per_epoch if eval_every is None else positive("eval_every", eval_every)
    return per_epoch, total, period


def _period_name(step: int, eval_every, steps_per_epoch: int) -> str:
    return f"epoch {step // steps_per_epoch}" if eval_every is None else f"step {step}"


def _progress_bar(progress, total: int, done: int):
    if progress is None:  # on in a terminal, off in CI, off on all processes but the first
        progress = sys.stderr.isatty() and not os.environ.get("CI") and jax.process_index() == 0
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=done, desc="fit", unit="step", dynamic_ncols=True)


def _as_arrays(who: str, name: str, data) -> tuple:
    """``(x, y)`` of ``data`` with every array (of each, an array or a pytree) as a JAX array."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{who}: expected {name} as a pair (x, y), got {type(data).__name__}"
                        + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else ""))
    return tuple(jax.tree.map(jnp.asarray, part) for part in data)


def _check_lengths(who: str, name: str, x, y) -> int:
    """The number of examples: every array of ``x`` and of ``y`` (each an array or a
    pytree of arrays) holds the same number along axis 0, and it is not zero."""
    lengths = {}
    for what, tree in (("input", x), ("target", y)):
        leaves = jax.tree_util.tree_leaves_with_path(tree)
        if not leaves or any(jnp.ndim(a) < 1 for _, a in leaves):
            got = ", ".join(f"shape {jnp.shape(a)}" for _, a in leaves) or "no arrays"
            raise ValueError(f"{who}: expected {name} {what}s as arrays with examples along axis 0, got {got}")
        if len({len(a) for _, a in leaves}) > 1:
            raise ValueError(f"{who}: {name} {what}s must have the same number of examples, got "
                             + ", ".join(f"{what}{jax.tree_util.keystr(p)} {a.shape}" for p, a in leaves))
        lengths[what] = len(leaves[0][1])
    if lengths["input"] != lengths["target"]:
        raise ValueError(f"{who}: {name} has {lengths['input']} inputs but {lengths['target']} targets")
    if lengths["input"] == 0:
        raise ValueError(f"{who}: {name} is empty")
    return lengths["input"]


def _check_data(who: str, name: str, model: Module, params, state, x, y) -> None:
    """Equal lengths, finite inputs, and integer labels inside ``[0, C)`` for a model
    giving ``C`` scores per example; errors name the first offending index. ``x`` and
    ``y`` may be pytrees of arrays (checked leaf by leaf; labels only as one array)."""
    _check_lengths(who, name, x, y)
    for what, tree in (("input", x), ("target", y)):
        for path, a in jax.tree_util.tree_leaves_with_path(tree):
            if jnp.issubdtype(a.dtype, jnp.inexact):
                finite = np.asarray(jnp.all(jnp.isfinite(a.reshape(len(a), -1)), axis=1))
                if not finite.all():
                    i = int(np.argmin(finite))
                    row = np.asarray(a[i]).ravel()
                    raise ValueError(f"{who}: {name} {what}{jax.tree_util.keystr(path)} {i} holds a "
                                     f"non-finite value ({row[~np.isfinite(row)][0]})")
    if not (isinstance(y, jax.Array) and jnp.issubdtype(y.dtype, jnp.integer)):
        return
    try:
        spec = jax.tree.map(lambda a: jax.ShapeDtypeStruct((1,) + a.shape[1:], a.dtype), x)
        out = jax.eval_shape(lambda p, s, v: model.apply(p, s, v)[0], params, state, spec)
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
        raise ValueError(f"{who}: {name} label {i} is {int(value)}, outside [0, {classes}) for a "
                         f"model giving {classes} scores per example")


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
