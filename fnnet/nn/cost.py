"""Counting the multiplications of a model or function, from its jaxpr alone.

Imports: jax, fnnet.nn.module.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
from jax.extend import core as jex_core

from fnnet.nn.module import Module, spec_of

__all__ = ["count_multiplies"]


def _spec_tree(tree):
    return jax.tree.map(spec_of, tree)


def _jaxprs_in(value):
    """The jaxprs held by an equation parameter (a jaxpr, a closed jaxpr, or a tuple of them)."""
    if isinstance(value, jex_core.ClosedJaxpr):
        return [value.jaxpr]
    if isinstance(value, jex_core.Jaxpr):
        return [value]
    if isinstance(value, (tuple, list)):
        return [j for v in value for j in _jaxprs_in(v)]
    return []


def _dot_general(eqn) -> int:
    (contract_lhs, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    out = eqn.outvars[0].aval.shape
    return math.prod(out) * math.prod(lhs[d] for d in contract_lhs)


def _conv(eqn) -> int:
    rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out feature, in feature, *spatial)
    rhs = eqn.invars[1].aval.shape
    out = eqn.outvars[0].aval.shape
    return math.prod(out) * rhs[rhs_spec[1]] * math.prod(rhs[d] for d in rhs_spec[2:])


def _count(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_general(eqn)
        elif name == "conv_general_dilated":
            total += _conv(eqn)
        elif name == "scan":
            total += eqn.params["length"] * _count(eqn.params["jaxpr"].jaxpr)
        elif name == "cond":
            total += max(_count(j) for j in _jaxprs_in(eqn.params["branches"]))
        else:  # pjit, custom_jvp_call, custom_vjp_call, remat, while (body once), ...
            total += sum(_count(j) for v in eqn.params.values() for j in _jaxprs_in(v))
    return total


def count_multiplies(model_or_fn: Module | Callable, *args) -> int:
    """The number of scalar multiplications in the matrix products and convolutions
    of one forward pass, counted from the traced program without running it.

    ``jax.make_jaxpr`` traces ``model_or_fn`` on the shapes of ``args`` (arrays or
    ``jax.ShapeDtypeStruct``; no compute), and every ``dot_general`` and
    ``conv_general_dilated`` of the jaxpr contributes::

        dot_general:           prod(output shape) * prod(contracted sizes)
        conv_general_dilated:  prod(output shape) * prod(window) * in_channels / groups

    Sub-programs count too: ``pjit``, ``custom_jvp``/``custom_vjp`` and ``remat``
    bodies once, a ``scan`` body ``length`` times, the costliest branch of a ``cond``;
    a ``while`` body (trip count unknown when tracing) once. Elementwise products
    (batch norm, activations, the bias additions) are not counted: this is the
    "multiply-adds" figure of the papers, e.g. 28 * 28 * 32 * (5 * 5 * 192) =
    120,422,400 for a 5x5 conv from 28x28x192 to 32 channels.

    Both conv lowerings give the same count (the im2col ``dot_general`` of the
    ``"matmul"`` lowering has the products of the ``conv_general_dilated`` of
    ``"xla"``), except for depthwise convs, which the matmul lowering computes with
    elementwise products that are not counted: build a model with depthwise convs
    with ``impl="xla"`` to count them (``models.mobilenet_v1(impl="xla")``), since
    ``"auto"`` picks the matmul lowering for them on CPU.

    Args:
      model_or_fn: a :class:`fnnet.nn.Module` (its params come from ``init`` under
        ``jax.eval_shape``; ``apply`` runs in evaluation mode on ``args[0]``) or a
        function of ``args``.
      *args: example inputs (arrays or ``jax.ShapeDtypeStruct``, batch axis
        included).

    Returns:
      The count, an int.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from fnnet import nn
      >>> count_multiplies(nn.dense(10), jax.ShapeDtypeStruct((4, 3), jnp.float32))
      120
    """
    if isinstance(model_or_fn, Module):
        if len(args) != 1:
            raise TypeError(f"count_multiplies: a Module takes one example input, got "
                            f"{len(args)}")
        spec = spec_of(args[0])
        model = model_or_fn
        params, state = jax.eval_shape(lambda k: model.init(k, spec), jax.random.key(0))
        jaxpr = jax.make_jaxpr(lambda p, s, x: model.apply(p, s, x)[0])(params, state, spec)
    elif callable(model_or_fn):
        jaxpr = jax.make_jaxpr(model_or_fn)(*_spec_tree(args))
    else:
        raise TypeError(f"count_multiplies: expected a Module or a function, got "
                        f"{type(model_or_fn).__name__}")
    return _count(jaxpr.jaxpr)
