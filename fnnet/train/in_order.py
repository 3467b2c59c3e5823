"""Training on batches taken in order, as one compiled program; PyTorch's default init.

Reference protocols such as the MNIST-1D paper's (Greydanus & Kobak, 2024,
``notebooks/train.py``) take mini-batches in file order without shuffling,
``bix = step * batch_size % n``, and evaluate every ``eval_every`` steps.
:func:`fit_in_order` writes that loop as nested ``lax.scan`` s (an outer scan over
evaluations, an inner scan over the steps between them), so the whole run compiles
once and ``jax.vmap`` trains several seeds side by side. :func:`torch_default_init`
re-draws a dense or conv layer's params the way PyTorch's ``nn.Linear`` / ``nn.Conv*``
do, so such a protocol starts from the same distribution as the published run.
:func:`classify_seeds_in_order` is the whole protocol for a classifier: several seeds,
softmax cross-entropy, test loss and accuracy at every evaluation.

Imports: jax, fnnet.init, fnnet.losses, fnnet.metrics, fnnet.nn (the Module type),
fnnet.optim (apply_updates).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from fnnet import init as initializers
from fnnet.losses import softmax_cross_entropy_with_integer_labels as _cross_entropy
from fnnet.metrics import accuracy as _accuracy
from fnnet.nn.module import Module, count_params, spec_of

__all__ = ["fit_in_order", "classify_seeds_in_order", "seed_summary", "torch_default_init"]


def fit_in_order(loss_fn: Callable, optimizer, params, x, y, *, batch_size: int,
                 eval_steps: Sequence[int], eval_every: int, evaluate: Callable):
    """Train with batches taken in order; evaluate after each step in ``eval_steps``.

    Step ``t`` uses the batch ``x[b_t : b_t + batch_size]`` with
    ``b_t = (t * batch_size) mod n`` and applies one optimizer update,
    ``g = d loss_fn(params, x_b, y_b) / d params``;
    ``params = params + optimizer.update(g, ...)``. For each ``e`` in ``eval_steps``
    the steps ``e - eval_every + 1 .. e`` run (an inner ``lax.scan``), then
    ``evaluate(params)``; steps ``t < 0`` change nothing, so ``eval_steps = (0, 250,
    ..., 6000)`` with ``eval_every = 250`` is the authors' ``for step in
    range(6001)`` with a test after every step ``% 250 == 0``, and ``eval_steps =
    (249, 499, ..., 5999)`` is 6,000 steps evaluated after each 250.

    Pure and traceable: call it under ``jax.jit`` (and ``jax.vmap`` over stacked
    params for several seeds).

    Args:
      loss_fn: ``loss_fn(params, x_batch, y_batch) -> scalar``.
      optimizer: an fnnet or optax ``GradientTransformation``.
      params: the initial params (any pytree).
      x, y: the training set; ``n = x.shape[0]`` must be a multiple of ``batch_size``.
      batch_size: examples per step.
      eval_steps: ascending steps after which to evaluate, ``eval_every`` apart.
      eval_every: steps per evaluation block.
      evaluate: ``evaluate(params) -> pytree`` of arrays (e.g. test accuracy).

    Returns:
      ``(params, curves)``: the final params and a dict with ``"batch_loss"``
      ``(len(eval_steps), eval_every)`` (the training loss of every step of each
      block, before its update; 0 for steps ``t < 0``) and ``"eval"``, the outputs
      of ``evaluate`` stacked along a leading axis of ``len(eval_steps)``.
    """
    from fnnet.optim import apply_updates

    eval_steps = [int(e) for e in eval_steps]
    name = "fit_in_order"
    if not isinstance(eval_every, int) or eval_every < 1:
        raise ValueError(f"{name}: expected eval_every as a positive int, got {eval_every!r}")
    if not eval_steps or any(b - a != eval_every for a, b in zip(eval_steps, eval_steps[1:])):
        raise ValueError(f"{name}: expected eval_steps ascending and {eval_every} (eval_every) "
                         f"apart, got {eval_steps[:4]}{'...' if len(eval_steps) > 4 else ''}")
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"{name}: x has {n} examples but y has {y.shape[0]}")
    if batch_size < 1 or n % batch_size:
        raise ValueError(f"{name}: the training set size {n} must be a multiple of the batch "
                         f"size, got batch_size={batch_size}")
    masked = eval_steps[0] - eval_every + 1 < 0  # static: only then can a step be a no-op

    def step(carry, t):
        p, opt_state = carry
        start = (t * batch_size) % n
        xb = jax.lax.dynamic_slice_in_dim(x, start, batch_size)
        yb = jax.lax.dynamic_slice_in_dim(y, start, batch_size)
        loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
        updates, new_opt_state = optimizer.update(grads, opt_state, p)
        new = (apply_updates(p, updates), new_opt_state)
        if masked:
            new = jax.tree.map(lambda a, old: jnp.where(t >= 0, a, old), new, carry)
            loss = jnp.where(t >= 0, loss, jnp.zeros_like(loss))
        return new, loss

    def block(carry, last):
        carry, batch_loss = jax.lax.scan(step, carry, last - eval_every + 1 + jnp.arange(eval_every))
        return carry, {"batch_loss": batch_loss, "eval": evaluate(carry[0])}

    (params, _), curves = jax.lax.scan(block, (params, optimizer.init(params)), jnp.asarray(eval_steps))
    return params, curves



def classify_seeds_in_order(model: Module, optimizer, seeds, train_data, test_data, *,
                            batch_size: int, steps: int, eval_every: int):
    """Train a classifier from several seeds with batches in order, as one program.

    The MNIST-1D paper's protocol (``notebooks/train.py``): for each seed ``s``,
    params from ``model.init(jax.random.key(s), ...)``, then steps ``0 .. steps``
    (inclusive, the authors' ``range(steps + 1)``) of :func:`fit_in_order` on the mean
    softmax cross-entropy, with the test loss and accuracy after steps ``0, eval_every,
    ..., steps``. All seeds run side by side under one ``jax.jit(jax.vmap(...))`` (a
    model's conv lowering is its layers' ``impl`` field).

    Args:
      model: a Module giving logits; its state (if any) is used as initialised.
      optimizer: an fnnet or optax ``GradientTransformation``.
      seeds: the integer seeds, one run each.
      train_data, test_data: ``(x, y)`` pairs with integer labels.
      batch_size, steps, eval_every: as above; ``steps`` a multiple of ``eval_every``.

    Returns:
      ``(n_params, curves)``: the parameter count of one model and a dict of NumPy
      arrays ``(len(seeds), steps // eval_every + 1)``: ``"train_loss"`` (the batch loss
      of each evaluated step), ``"test_loss"`` and ``"test_accuracy"`` (in %).
    """
    if steps % eval_every:
        raise ValueError(f"classify_seeds_in_order: steps ({steps}) must be a multiple of "
                         f"eval_every ({eval_every})")
    (x, y), (x_test, y_test) = train_data, test_data
    spec = jax.ShapeDtypeStruct((1,) + tuple(x.shape[1:]), x.dtype)
    params, state = jax.jit(jax.vmap(lambda s: model.init(jax.random.key(s), spec)))(jnp.asarray(seeds))
    state = jax.tree.map(lambda a: a[0], state)

    def loss_fn(p, xb, yb):
        return _cross_entropy(model.apply(p, state, xb)[0], yb)

    def evaluate(p):
        logits, _ = model.apply(p, state, x_test)
        return {"test_loss": _cross_entropy(logits, y_test), "test_accuracy": 100 * _accuracy(logits, y_test)}

    def run_one(p):
        _, curves = fit_in_order(loss_fn, optimizer, p, x, y, batch_size=batch_size,
                                 eval_steps=[eval_every * i for i in range(steps // eval_every + 1)],
                                 eval_every=eval_every, evaluate=evaluate)
        return {"train_loss": curves["batch_loss"][:, -1], **curves["eval"]}

    n_params = count_params(jax.tree.map(lambda a: a[0], params))
    return n_params, jax.device_get(jax.jit(jax.vmap(run_one))(params))


def seed_summary(curves, tag: str, eval_every: int, history: list[dict] | None = None
                 ) -> tuple[dict, list[dict]]:
    """The results and history rows of :func:`classify_seeds_in_order`'s curves.

    The first seed is the headline run; the others give the spread.

    Returns:
      ``(summary, rows)``: ``summary`` holds ``{tag}_test_accuracy`` (the first seed's
      final one) and the ``{tag}_mean_test_accuracy`` / ``{tag}_std_test_accuracy``
      of the final accuracies over seeds; ``rows`` has one dict per evaluation with its
      ``step`` and the first seed's ``{tag}_test_accuracy`` and ``{tag}_train_loss``,
      and ``{tag}_mean_test_accuracy`` over seeds, as Python floats. Given the
      ``history`` rows of earlier tags (same evaluations), ``rows`` are those rows
      extended by this tag's columns.
    """
    acc, loss = curves["test_accuracy"], curves["train_loss"]
    final = acc[:, -1]
    summary = {f"{tag}_test_accuracy": float(final[0]), f"{tag}_mean_test_accuracy": float(final.mean()),
               f"{tag}_std_test_accuracy": float(final.std())}
    rows = [{"step": eval_every * i, f"{tag}_test_accuracy": float(acc[0, i]),
             f"{tag}_mean_test_accuracy": float(acc[:, i].mean()), f"{tag}_train_loss": float(loss[0, i])}
            for i in range(acc.shape[1])]
    if history:
        rows = [dict(h, **r) for h, r in zip(history, rows)]
    return summary, rows


def torch_default_init(layer: Module) -> Module:
    """``layer`` with params drawn as PyTorch's ``nn.Linear`` / ``nn.Conv*`` draw them.

    PyTorch's ``reset_parameters`` (Kaiming uniform with ``a = sqrt(5)``) comes to
    ``W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in = in / groups *
    prod(window)``: the product of all but the last axis of fnnet's kernel
    ``(*window, in / groups, out)`` or ``(in, out)``. The kernel is drawn with
    ``fold_in(key, 0)`` and the bias with ``fold_in(key, 1)``, the keys fnnet's dense and
    conv layers use. ``apply`` is the layer's own.

    Args:
      layer: a Module whose params are ``{"kernel", "bias"?}`` (``nn.dense``, ``nn.conv``).
    """
    def init(key, x):
        params, state = jax.eval_shape(layer.init, key, spec_of(x))
        if "kernel" not in params or set(params) - {"kernel", "bias"}:
            raise ValueError(f"torch_default_init: expected a layer with params 'kernel' and "
                             f"optionally 'bias' ({layer.name}), got {sorted(params)}")
        kernel = params["kernel"]
        bound = 1.0 / math.sqrt(math.prod(kernel.shape[:-1]))
        draw = initializers.uniform(bound)
        new = {"kernel": draw(jax.random.fold_in(key, 0), kernel.shape, kernel.dtype)}
        if "bias" in params:
            new["bias"] = draw(jax.random.fold_in(key, 1), params["bias"].shape, params["bias"].dtype)
        return new, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), state)

    return Module(init, layer.apply, layer.name)
