"""Normalisation and dropout layers as Modules: batch_norm, layer_norm, group_norm, dropout.

Params hold ``scale`` (ones) and ``bias`` (zeros); batch norm keeps its running
``mean`` (zeros) and ``var`` (ones) in ``state``, never in params, so an optimizer
never touches them. Batch norm and dropout switch on the static ``train`` flag.

Imports: numpy, fnnet.functional, fnnet.nn.module.
"""
from __future__ import annotations

import numbers

import jax.numpy as jnp
import numpy as np

from fnnet import functional as F
from fnnet.functional._checks import as_int, as_ints
from fnnet.nn.module import Module, require_key, spec_of

__all__ = ["batch_norm", "layer_norm", "group_norm", "dropout"]


def _affine_params(name, shape, use_scale, use_bias, dtype):
    params = {}
    if use_scale:
        params["scale"] = jnp.ones(shape, dtype)
    if use_bias:
        params["bias"] = jnp.zeros(shape, dtype)
    return params


def _feature_spec(name, x, min_rank=2):
    spec = spec_of(x)
    if len(spec.shape) < min_rank:
        raise ValueError(f"{name}: expected input of shape (batch, ..., features), got {spec.shape}")
    return spec


def batch_norm(*, momentum: float = 0.1, eps: float = 1e-5, axis_name=None,
               use_scale: bool = True, use_bias: bool = True, dtype=None,
               name: str = "batch_norm") -> Module:
    """Batch normalisation over every axis but the last (Ioffe & Szegedy, 2015).

    Training: ``y = scale * (x - mu_B) / sqrt(sigma_B^2 + eps) + bias`` with the batch
    statistics, and the returned state holds
    ``mean <- (1 - momentum) mean + momentum mu_B``,
    ``var <- (1 - momentum) var + momentum sigma_B^2 n / (n - 1)``.
    Evaluation: the running ``mean``/``var`` replace the batch statistics and the
    state comes back unchanged. PyTorch's conventions (``nn.BatchNorm2d`` with
    ``momentum=0.1``); Keras/Flax ``momentum=0.99`` is ``momentum=0.01`` here.

    Args:
      momentum: weight of the new batch in the running averages.
      eps: added to the variance.
      axis_name: average the batch statistics over this mapped axis (``lax.pmean``).
      use_scale, use_bias: learn ``scale (C,)`` / ``bias (C,)``.
      dtype: dtype of params and state (default float32 whatever the input dtype).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> bn = batch_norm()
      >>> x = jnp.arange(8.0).reshape(4, 2)
      >>> params, state = bn.init(jax.random.key(0), x)
      >>> y, state = bn.apply(params, state, x, train=True)
      >>> state["mean"]  # 0.9 * 0 + 0.1 * batch mean
      Array([0.3, 0.4], dtype=float32)
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{name}: expected momentum in [0, 1], got {momentum}")
    dtype = dtype or jnp.float32

    def init(key, x):
        del key
        spec = _feature_spec(name, x)
        c = spec.shape[-1:]
        state = {"mean": jnp.zeros(c, dtype), "var": jnp.ones(c, dtype)}
        return _affine_params(name, c, use_scale, use_bias, dtype), state

    def apply(params, state, x, *, key=None, train=False):
        del key
        scale, bias = params.get("scale"), params.get("bias")
        if not train:
            return F.batch_norm_eval(x, scale, bias, state["mean"], state["var"], eps=eps), state
        y, mean, var = F.batch_norm_train(x, scale, bias, state["mean"], state["var"],
                                          momentum=momentum, eps=eps, axis_name=axis_name)
        return y, {"mean": mean, "var": var}

    return Module(init, apply, name)


def layer_norm(*, axis: int | tuple[int, ...] = -1, eps: float = 1e-5, use_scale: bool = True,
               use_bias: bool = True, dtype=None, name: str = "layer_norm") -> Module:
    """Layer normalisation of each example over ``axis`` (Ba et al., 2016).

    ``y = scale * (x - mu) / sqrt(sigma^2 + eps) + bias``, with ``scale``/``bias`` of
    the shape of ``x`` on ``axis``. The same in training and evaluation; no state.
    """
    dtype = dtype or jnp.float32
    axis = as_ints(name, "axis", axis)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)

    def init(key, x):
        del key
        spec = _feature_spec(name, x, min_rank=1)
        nd = len(spec.shape)
        if any(not -nd <= a < nd for a in axes):
            raise ValueError(f"{name}: axis {axis} out of range for input of shape {spec.shape}")
        shape = tuple(spec.shape[a % nd] for a in sorted({a % nd for a in axes}))
        return _affine_params(name, shape, use_scale, use_bias, dtype), {}

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        return F.layer_norm(x, params.get("scale"), params.get("bias"), axis=axis, eps=eps), state

    return Module(init, apply, name)


def group_norm(num_groups: int, *, eps: float = 1e-5, use_scale: bool = True,
               use_bias: bool = True, dtype=None, name: str = "group_norm") -> Module:
    """Group normalisation (Wu & He, 2018): per example, over the spatial axes and
    each of ``num_groups`` groups of channels; ``scale``/``bias`` per channel."""
    num_groups = as_int(name, "num_groups", num_groups, minimum=1)
    dtype = dtype or jnp.float32

    def init(key, x):
        del key
        spec = _feature_spec(name, x)
        c = spec.shape[-1]
        if c % num_groups:
            raise ValueError(f"{name}: num_groups={num_groups} does not divide the {c} channels "
                             f"of input {spec.shape}")
        return _affine_params(name, (c,), use_scale, use_bias, dtype), {}

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        return F.group_norm(x, params.get("scale"), params.get("bias"), num_groups=num_groups,
                            eps=eps), state

    return Module(init, apply, name)


def dropout(rate: float, *, name: str = "dropout") -> Module:
    """Inverted dropout: in training, zero each entry with probability ``rate`` and
    scale the rest by ``1 / (1 - rate)``; identity in evaluation.

    ``rate`` is the *drop* probability, in [0, 1). ``apply(..., train=True)`` needs a
    ``key``; the same key gives the same mask.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = dropout(0.5)
      >>> params, state = layer.init(jax.random.key(0), jnp.ones((2, 4)))
      >>> y, _ = layer.apply(params, state, jnp.ones((2, 4)), key=jax.random.key(1), train=True)
      >>> sorted(set(y.ravel().tolist()) - {0.0})  # survivors scaled by 1 / (1 - 0.5)
      [2.0]
    """
    if (isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real)
            or not 0.0 <= rate < 1.0):
        raise ValueError(f"{name}: expected a drop rate in [0, 1), got {rate!r}")
    rate = float(rate)

    def init(key, x):
        del key
        spec_of(x)
        return {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params
        if not train:
            return x, state
        require_key(name, key, train)
        return F.dropout(x, rate, key), state

    return Module(init, apply, name)
