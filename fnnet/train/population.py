"""Training a population: :func:`fit_population`, ``P`` models side by side as one
program, one ``jax.vmap``-ed ``lax.scan`` per evaluation period; each member follows the
key stream :func:`fnnet.train.fit` would give it.

Imports: jax, numpy, fnnet.nn, fnnet.train.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.data.splits import num_examples, take_examples
from fnnet.nn.module import Module
from fnnet.train.loop import FitResult, _as_arrays, _check_data, _progress_bar, _schedule, _split_losses, _steps
from fnnet.train.periods import BatchOrder, compiled_steps
from fnnet.train.placement import to_host

__all__ = ["fit_population"]


def fit_population(model: Module, loss_fn: Callable, optimizer, params, state, train_data, *,
                   keys, batch_size: int, epochs: int | None = None, steps: int | None = None,
                   eval_every: int | None = None, dev_data=None, shuffle: bool = True,
                   drop_last: bool = False, metrics: Mapping[str, Callable] | None = None,
                   penalty: Callable | None = None, batch_hook: Callable | None = None,
                   opt_state=None, progress: bool | None = None,
                   log: Callable[[dict], None] | Sequence[Callable[[dict], None]] | None = None,
                   eval_at_start: bool = False, train_metrics: bool = True,
                   on_nonfinite: str = "raise", batch_metrics: Mapping[str, Callable] | None = None) -> FitResult:
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
    ``eval_at_start``, ``train_metrics`` and ``batch_metrics`` are :func:`fit`'s. ``on_nonfinite`` is
    ``"raise"`` (a ``FloatingPointError`` naming the first member whose training loss
    became non-finite) or ``"continue"``: such a member trains on with its non-finite
    numbers (as it would alone, where it cannot recover) and the others are unaffected,
    e.g. a learning-rate search in which the largest rates diverge.

    Returns:
      A :class:`FitResult` whose params, state and opt_state have the leading axis ``P``.
    """
    x_train, y_train = _as_arrays("fit_population", "train_data", train_data)
    dev = None if dev_data is None else _as_arrays("fit_population", "dev_data", dev_data)
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
    _check_data("fit_population", "train_data", model, *first, x_train, y_train)
    if dev is not None:
        _check_data("fit_population", "dev_data", model, *first, *dev)
    steps_per_epoch, total, period = _schedule("fit_population", num_examples("fit_population", x_train, y_train), batch_size, drop_last,
                                               epochs, steps, eval_every)
    if on_nonfinite not in ("raise", "continue"):
        raise ValueError(f"fit_population: expected on_nonfinite 'raise' or 'continue', got {on_nonfinite!r}")
    logs = [] if log is None else [log] if callable(log) else list(log)
    if opt_state is None:
        opt_state = jax.vmap(optimizer.init)(params)
    order = BatchOrder(keys, num_examples("fit_population", x_train, y_train), batch_size, shuffle, drop_last, steps_per_epoch)
    run_steps = compiled_steps(model, loss_fn, optimizer, penalty, batch_hook, order, x_train, y_train,
                                members=True, batch_metrics=tuple((batch_metrics or {}).items()))
    _, eval_fn = _steps(model, loss_fn, optimizer, penalty, batch_hook, metrics, population=True)

    def measure(entry, params, state):
        if dev is not None:
            entry.update({f"dev_{k}": v.tolist()
                          for k, v in _evaluate_members(eval_fn, params, state, *dev).items()})
        if metrics and train_metrics:
            values = _evaluate_members(eval_fn, params, state, x_train, y_train)
            entry.update({f"train_{k}": v.tolist() for k, v in values.items() if k != "loss"})
        return entry

    history, done = [], 0
    if eval_at_start and batch_metrics:
        raise ValueError("fit_population: eval_at_start has no batches before the first step to give "
                         f"batch_metrics {sorted(batch_metrics)}; use one or the other")
    if eval_at_start:
        entry = {"epoch": 0} if eval_every is None else {"step": 0, "epoch": 0}
        entry["train_loss"] = _evaluate_members(eval_fn, params, state, x_train, y_train)["loss"].tolist()
        history.append(measure(entry, params, state))
        for fn in logs:
            fn(entry)
    bar = _progress_bar(progress, total, 0)
    try:
        while done < total:
            end = min((done // period + 1) * period, total)
            params, state, opt_state, losses = run_steps(done, end, params, state, opt_state, bar)
            losses, batch_values = _split_losses(losses)
            if on_nonfinite == "raise" and not np.all(np.isfinite(losses)):
                member = int(np.argmax(~np.all(np.isfinite(losses), axis=1)))
                raise FloatingPointError(f"fit_population: member {member}'s training loss became "
                                         f"non-finite between steps {done} and {end}")
            epoch = -(-end // steps_per_epoch)
            entry = {"epoch": epoch} if eval_every is None else {"step": end, "epoch": epoch}
            entry["train_loss"] = losses.mean(axis=1).tolist()
            entry.update({f"batch_{k}": v.mean(axis=1).tolist() for k, v in batch_values.items()})
            history.append(measure(entry, params, state))
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
    n = num_examples("fit_population", x, y)
    for start in range(0, n, batch_size):
        rows = slice(start, start + batch_size)
        values = to_host(evaluate_step(params, state, take_examples(x, rows), take_examples(y, rows)))
        for name, value in values.items():
            totals[name] = totals.get(name, 0.0) + np.asarray(value, np.float64) * (min(n, start + batch_size) - start)
    return {name: total / n for name, total in totals.items()}
