"""Dense layers, activations and shape ops as Modules.

Parameterless layers are Module instances (``relu``, ``flatten``, ...) and sit in
``serial`` as they are; layers with settings are constructors (``dense(10)``,
``leaky_relu(0.2)``).

Imports: fnnet.functional, fnnet.init.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from fnnet import functional as F
from fnnet import init as initializers
from fnnet.functional._checks import as_int
from fnnet.nn.module import Module, spec_of, stateless

__all__ = ["dense", "activation", "sigmoid", "tanh", "relu", "relu6", "selu", "softplus",
           "softmax", "log_softmax", "leaky_relu", "hard_tanh", "elu", "gelu", "maxout",
           "identity", "flatten", "reshape"]


def dense(features: int, *, use_bias: bool = True,
          kernel_init: initializers.Initializer | None = None,
          bias_init: initializers.Initializer | None = None,
          dtype=jnp.float32, name: str = "dense") -> Module:
    """Fully connected layer ``y = x W + b`` over the last axis.

    Params: ``kernel (in, out)`` drawn from ``kernel_init`` (default He normal,
    ``N(0, 2 / in)``), ``bias (out,)`` from ``bias_init`` (default zeros).
    """
    features = as_int(name, "features", features, minimum=1)
    kernel_init = kernel_init or initializers.he_normal()
    bias_init = bias_init or initializers.zeros()

    def init(key, x):
        spec = spec_of(x)
        if len(spec.shape) < 1:
            raise ValueError(f"{name}: expected input of shape (..., in), got {spec.shape}")
        params = {"kernel": kernel_init(jax.random.fold_in(key, 0), (spec.shape[-1], features), dtype)}
        if use_bias:
            params["bias"] = bias_init(jax.random.fold_in(key, 1), (features,), dtype)
        return params, {}

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        if x.shape[-1:] != params["kernel"].shape[:1]:
            raise ValueError(f"{name}: expected input with last axis {params['kernel'].shape[0]}, "
                             f"got input of shape {x.shape}")
        return F.dense(x, params["kernel"], params.get("bias")), state

    return Module(init, apply, name)


def activation(fn, name: str | None = None) -> Module:
    """Any elementwise function as a Module without params."""
    return stateless(fn, name or getattr(fn, "__name__", "activation"))


sigmoid = activation(F.sigmoid)
tanh = activation(F.tanh)
relu = activation(F.relu)
relu6 = activation(F.relu6)
selu = activation(F.selu)
softplus = activation(F.softplus)
softmax = activation(F.softmax)
log_softmax = activation(F.log_softmax)
identity = stateless(lambda x: x, "identity")


def leaky_relu(negative_slope: float = 0.01) -> Module:
    """``x if x > 0 else negative_slope * x``."""
    return stateless(lambda x: F.leaky_relu(x, negative_slope), "leaky_relu")


def hard_tanh(min_val: float = -1.0, max_val: float = 1.0) -> Module:
    """``min(max(x, min_val), max_val)``."""
    if not min_val < max_val:
        raise ValueError(f"hard_tanh: expected min_val < max_val, got min_val={min_val}, "
                         f"max_val={max_val}")
    return stateless(lambda x: F.hard_tanh(x, min_val, max_val), "hard_tanh")


def elu(alpha: float = 1.0) -> Module:
    """``x if x > 0 else alpha * (exp(x) - 1)``."""
    return stateless(lambda x: F.elu(x, alpha), "elu")


def gelu(approximate: bool = False) -> Module:
    """``x Phi(x)``; ``approximate=True`` for the tanh form (see :func:`fnnet.functional.gelu`)."""
    return stateless(lambda x: F.gelu(x, approximate), "gelu")


def maxout(num_pieces: int) -> Module:
    """Max over groups of ``num_pieces`` consecutive units of the last axis."""
    if num_pieces < 1:
        raise ValueError(f"maxout: expected num_pieces >= 1, got {num_pieces}")
    return stateless(lambda x: F.maxout(x, num_pieces), "maxout")


def _flatten(x):
    if x.ndim < 1:
        raise ValueError(f"flatten: expected input with a batch axis, got shape {x.shape}")
    return x.reshape(x.shape[:1] + (math.prod(x.shape[1:]),))


flatten = stateless(_flatten, "flatten")
"""Flatten every axis but the batch axis: ``(N, ...) -> (N, prod(...))``."""


def reshape(shape: tuple[int, ...]) -> Module:
    """Reshape every axis but the batch axis: ``(N, ...) -> (N, *shape)``; one entry may be -1."""
    shape = tuple(as_int("reshape", "each entry of shape", d) for d in shape)

    def fn(x):
        n = math.prod(x.shape[1:])
        known = math.prod(d for d in shape if d != -1)
        if shape.count(-1) > 1 or (-1 not in shape and known != n) or (-1 in shape and n % known):
            raise ValueError(f"reshape: cannot reshape input {x.shape} to (batch, *{shape})")
        return x.reshape(x.shape[:1] + shape)

    return stateless(fn, "reshape")
