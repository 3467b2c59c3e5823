"""Compiled train and eval steps built from a Module, a loss and an optimizer.

Imports: jax, fnnet.nn (the Module type), fnnet.optim (apply_updates).
"""
from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from fnnet.nn.module import Module

__all__ = ["make_train_step", "make_eval_step", "HOOK_STREAM"]

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def _check_model(name: str, model) -> None:
    if not isinstance(model, Module):
        raise TypeError(f"{name}: expected a fnnet Module as model, got {type(model).__name__}")


# The key a batch hook draws from: ``fold_in(step_key, HOOK_STREAM)``, apart from the
# model's own key (its children use ``fold_in(step_key, i)`` for small ``i``).
HOOK_STREAM = 0x686F6F6B


def make_train_step(model: Module, loss_fn: LossFn, optimizer, *,
                    penalty: Callable | None = None, compiler_options: dict | None = None,
                    batch_hook: Callable | None = None, batch_metrics: Mapping[str, Callable] | None = None,
                    jit: bool = True) -> Callable:
    """A jitted step ``(params, state, opt_state, x, y, key) -> (params, state, opt_state, loss)``.

    Minimises ``J = loss_fn(model(x), y) + penalty(params)`` by one optimizer update:
    ``g = dJ/dparams``; ``updates, opt_state = optimizer.update(g, opt_state, params)``;
    ``params = params + updates``. The model runs with ``train=True`` and ``key``
    (dropout); its new state (batch-norm statistics) is returned. ``loss`` is the data
    loss without the penalty. The optimizer may be fnnet's or optax's.

    ``batch_hook(x, y, key) -> (x, y)``, if given, transforms the batch inside the
    compiled step first (augmentation, a curriculum), with its own key
    ``fold_in(key, HOOK_STREAM)``. With ``batch_metrics`` (``{name: fn(outputs, y)}``,
    each evaluated on the step's training-mode outputs for its batch, before the update)
    the fourth output is ``{"loss": loss, name: value, ...}`` instead of ``loss``.
    ``jit=False`` returns the plain function (to be traced inside a larger program, e.g.
    a ``lax.scan`` over an epoch).
    """
    _check_model("make_train_step", model)
    from fnnet.optim import apply_updates
    batch_metrics = dict(batch_metrics or {})

    def objective(params, state, x, y, key):
        if batch_hook is not None:
            x, y = batch_hook(x, y, jax.random.fold_in(key, HOOK_STREAM))
        out, new_state = model.apply(params, state, x, key=key, train=True)
        loss = loss_fn(out, y)
        total = loss if penalty is None else loss + penalty(params)
        if batch_metrics:
            loss = {"loss": loss, **{name: jnp.asarray(fn(out, y), loss.dtype)
                                     for name, fn in batch_metrics.items()}}
        return total, (loss, new_state)

    def step(params, state, opt_state, x, y, key):
        grads, (loss, new_state) = jax.grad(objective, has_aux=True)(params, state, x, y, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return apply_updates(params, updates), new_state, opt_state, loss

    return jax.jit(step, compiler_options=compiler_options) if jit else step


def make_eval_step(model: Module, loss_fn: LossFn | None = None,
                   metrics: Mapping[str, Callable] | None = None) -> Callable:
    """A jitted ``(params, state, x, y) -> {"loss": ..., name: metric(...)}`` in eval mode.

    Each metric is a function ``(outputs, y) -> scalar`` that averages over the batch.
    """
    _check_model("make_eval_step", model)
    metrics = dict(metrics or {})
    if loss_fn is not None:
        metrics = {"loss": loss_fn, **metrics}
    if not metrics:
        raise ValueError("make_eval_step: expected a loss_fn or at least one metric, got neither")

    @jax.jit
    def evaluate(params, state, x, y):
        out, _ = model.apply(params, state, x, train=False)
        return {name: jnp.asarray(fn(out, y), jnp.float32) for name, fn in metrics.items()}

    return evaluate
