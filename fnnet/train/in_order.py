"""Pieces of reference protocols that are not a loop: PyTorch's default initialisation,
and the summary of several seeds trained side by side.

Reference protocols such as the MNIST-1D paper's (Greydanus & Kobak, 2024,
``notebooks/train.py``) take mini-batches in file order, ``bix = step * batch_size % n``,
and evaluate every ``eval_every`` steps: that is :func:`fnnet.train.fit_population` (or
:func:`fnnet.train.fit`) with ``shuffle=False`` and ``eval_every``, the seeds as the
population. :func:`torch_default_init` re-draws a dense or conv layer's params the way
PyTorch's ``nn.Linear`` / ``nn.Conv*`` do, so such a protocol starts from the same
distribution as the published run; :func:`seed_summary` turns the population's history
into the headline seed's numbers and the spread over seeds.

Imports: jax, fnnet.init, fnnet.nn (the Module type).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import init as initializers
from fnnet.nn.module import Module, spec_of

__all__ = ["seed_summary", "torch_default_init"]


def seed_summary(history: list[dict], tag: str, rows: list[dict] | None = None) -> tuple[dict, list[dict]]:
    """The results and history rows of seeds trained as one population.

    ``history`` is :func:`fnnet.train.fit_population`'s, with ``dev_accuracy`` (the test
    set's) per member; member 0 is the headline run, the others give the spread.

    Returns:
      ``(summary, rows)``: ``summary`` holds ``{tag}_test_accuracy`` (member 0's final
      one, in %) and the ``{tag}_mean_test_accuracy`` / ``{tag}_std_test_accuracy`` of
      the final accuracies over members; ``rows`` has one dict per history entry with its
      ``step``, member 0's ``{tag}_test_accuracy`` and ``{tag}_train_loss`` (the mean
      batch loss of the period; at step 0, the initial loss on the training set), and
      ``{tag}_mean_test_accuracy`` over members, as Python floats. Given the ``rows`` of
      earlier tags (same evaluations), they are extended by this tag's columns.
    """
    acc = 100 * np.asarray([h["dev_accuracy"] for h in history], np.float32)  # (entries, members), in %
    final = acc[-1]
    summary = {f"{tag}_test_accuracy": float(final[0]), f"{tag}_mean_test_accuracy": float(final.mean()),
               f"{tag}_std_test_accuracy": float(final.std())}
    new = [{"step": int(h["step"]), f"{tag}_test_accuracy": float(acc[i, 0]),
            f"{tag}_mean_test_accuracy": float(acc[i].mean()), f"{tag}_train_loss": float(h["train_loss"][0])}
           for i, h in enumerate(history)]
    if rows:
        new = [dict(r, **n) for r, n in zip(rows, new)]
    return summary, new


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
