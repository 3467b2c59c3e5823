"""Compiled train and eval steps built from a Module, a loss and an optimizer.

Imports: jax, fnnet.nn (the Module type), fnnet.optim (apply_updates).
"""
from __future__ import annotations

import functools
from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from fnnet.nn.module import Module

__all__ = ["make_train_step", "make_eval_step"]

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def _check_model(name: str, model) -> None:
    if not isinstance(model, Module):
        raise TypeError(f"{name}: expected a fnnet Module as model, got {type(model).__name__}")


def make_train_step(model: Module, loss_fn: LossFn, optimizer, *,
                    penalty: Callable | None = None, compiler_options: dict | None = None) -> Callable:
    """A jitted step ``(params, state, opt_state, x, y, key) -> (params, state, opt_state, loss)``.

    Minimises ``J = loss_fn(model(x), y) + penalty(params)`` by one optimizer update:
    ``g = dJ/dparams``; ``updates, opt_state = optimizer.update(g, opt_state, params)``;
    ``params = params + updates``. The model runs with ``train=True`` and ``key``
    (dropout); its new state (batch-norm statistics) is returned. ``loss`` is the data
    loss without the penalty. The optimizer may be fnnet's or optax's.
    """
    _check_model("make_train_step", model)
    from fnnet.optim import apply_updates

    def objective(params, state, x, y, key):
        out, new_state = model.apply(params, state, x, key=key, train=True)
        loss = loss_fn(out, y)
        total = loss if penalty is None else loss + penalty(params)
        return total, (loss, new_state)

    @functools.partial(jax.jit, compiler_options=compiler_options)
    def step(params, state, opt_state, x, y, key):
        grads, (loss, new_state) = jax.grad(objective, has_aux=True)(params, state, x, y, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return apply_updates(params, updates), new_state, opt_state, loss

    return step


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
